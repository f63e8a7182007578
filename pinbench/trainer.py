"""The training loop (PAPER.md section 6). It only orchestrates: the policy samples, the task
scores, the regulariser gives policy and values, the objective gives the loss.

One step:
  1. sample prompts_per_step prompts token by token from the policy (on-policy);
  2. score the new ones with the task reward (a prompt already scored in this run is not rescored);
  3. shape the rewards: scale * zscore + shift across the step's prompts;
  4. update psi on this batch (on-policy) or on replay_batch prompts from the replay buffer, then
     Polyak-update the target psi';
  5. every eval_every steps, score the greedy prompt on dev; the best dev prompt is the result
     and is scored on test at the end.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import torch

from .config import TrainConfig
from .objectives import get_objective
from .policy import QPolicy, Rollout
from .regularizers import make_regularizer
from .rewards import shape_rewards


class Task(Protocol):
    """What the trainer needs of a task: per-prompt metrics including ``reward``."""

    selection_metric: str
    default_reward_scale: float
    default_reward_shift: float

    def score(self, prompts: Sequence[str], split: str = "train") -> dict[str, torch.Tensor]: ...


class ReplayBuffer:
    """A ring buffer of trajectories: tokens, frozen-LM states, filter thresholds, shaped reward."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.size = 0
        self._next = 0
        self._data: dict[str, torch.Tensor] = {}

    def add(self, rollout: Rollout, rewards: torch.Tensor) -> None:
        items = {"tokens": rollout.tokens, "hidden": rollout.hidden, "threshold": rollout.threshold,
                 "reward": rewards}
        if not self._data:
            self._data = {k: v.new_empty((self.capacity, *v.shape[1:])) for k, v in items.items()}
        n = rewards.shape[0]
        index = (self._next + torch.arange(n)) % self.capacity
        for k, v in items.items():
            self._data[k][index] = v
        self._next = (self._next + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """n trajectories drawn uniformly with replacement (the authors' buffer: np.random.randint)."""
        index = torch.randint(self.size, (n,), generator=generator, device=generator.device)
        return {k: v[index] for k, v in self._data.items()}

    def state_dict(self) -> dict:
        return {"size": self.size, "next": self._next,
                "data": {k: v[: self.size].clone() for k, v in self._data.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.size, self._next = state["size"], state["next"]
        self._data = {}
        for k, v in state["data"].items():
            self._data[k] = v.new_empty((self.capacity, *v.shape[1:]))
            self._data[k][: self.size] = v


@dataclass
class TrainResult:
    """What a run produced (also written as Parquet by ``pinbench.results``)."""

    config: TrainConfig
    history: list[dict] = field(default_factory=list)  # one row per step
    prompts: list[dict] = field(default_factory=list)  # evaluated greedy prompts, and the best
    best: dict = field(default_factory=dict)  # best dev prompt: step, prompt, token ids, metrics
    test: dict = field(default_factory=dict)  # the best prompt's test metrics
    wall_time_s: float = 0.0
    steps_done: int = 0


class Trainer:
    """RL prompt optimisation for one config.

    Args:
        config: the run's settings.
        task: anything with ``score(prompts, split)`` (see ``Task``); built from the config if None.
        policy_lm: the frozen policy LM; loaded from ``config.policy_lm`` if None.
    """

    def __init__(self, config: TrainConfig, task: Task | None = None, policy_lm=None):
        from .models import load_model

        self.config = config.validate()
        self.task = task if task is not None else build_task(config)
        if policy_lm is None:
            policy_lm = load_model(config.policy_lm, "causal", device=config.device)
        self.regularizer = make_regularizer(config.regularizer, config.q)
        self.objective = get_objective(config.objective)
        torch.manual_seed(config.seed)  # fixes the MLP initialisation
        self.policy = QPolicy(policy_lm, hidden=config.mlp_hidden, prompt_length=config.prompt_length,
                              top_k=config.top_k, sample_top_k=config.sample_top_k)
        self.optimizer = torch.optim.Adam(self.policy.mlp.parameters(), lr=config.lr)
        self.generator = torch.Generator(device=self.policy.head_weight.device).manual_seed(config.seed)
        self.buffer = ReplayBuffer(config.replay_size) if config.replay_size > 0 else None
        scale = config.reward_scale if config.reward_scale is not None else task_default(self.task, "scale")
        shift = config.reward_shift if config.reward_shift is not None else task_default(self.task, "shift")
        self.reward_scale, self.reward_shift = scale, shift
        self._scores: dict[tuple[str, str], dict[str, float]] = {}  # (split, prompt) -> metrics
        self.result = TrainResult(config)
        self.step_count = 0

    # -- scoring with a per-run cache ------------------------------------------------------

    def score(self, prompts: Sequence[str], split: str) -> list[dict[str, float]]:
        """Task metrics per prompt; prompts already scored on this split are not rescored."""
        new = [p for p in dict.fromkeys(prompts) if (split, p) not in self._scores]
        if new:
            metrics = self.task.score(new, split)
            for i, prompt in enumerate(new):
                self._scores[(split, prompt)] = {k: float(v[i]) for k, v in metrics.items()}
        return [self._scores[(split, p)] for p in prompts]

    # -- one step --------------------------------------------------------------------------

    def loss(self, tokens: torch.Tensor, hidden: torch.Tensor, threshold: torch.Tensor,
             reward: torch.Tensor) -> torch.Tensor:
        """The objective on a batch of trajectories (B, L) with shaped final rewards (B)."""
        cfg, policy = self.config, self.policy
        v = None
        if self.objective.needs_value:
            q_all = policy.q_values(hidden, threshold)  # [B, L, V], filtered tokens at -inf
            q_taken = q_all.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
            v = self.regularizer.value(q_all, cfg.alpha)
        else:  # mc and td need only Q(s_t, a_t) with gradient
            q_taken = policy.q_taken(hidden, tokens)
        v_bar = None
        if self.objective.needs_target:
            with torch.no_grad():
                v_bar = self.regularizer.value(policy.q_values(hidden, threshold, target=True), cfg.alpha)
        return self.objective.loss(q_taken, v, v_bar, reward)

    def step(self) -> dict:
        cfg = self.config
        t0 = time.perf_counter()
        rollout = self.policy.rollout(cfg.prompts_per_step, self.regularizer, cfg.alpha, self.generator)
        texts = self.policy.decode(rollout.tokens)
        t1 = time.perf_counter()
        scored_before = len(self._scores)
        raw = torch.tensor([m["reward"] for m in self.score(texts, "train")])
        t2 = time.perf_counter()
        shaped = shape_rewards(raw, self.reward_scale, self.reward_shift).to(rollout.hidden.device)
        batch = {"tokens": rollout.tokens, "hidden": rollout.hidden, "threshold": rollout.threshold,
                 "reward": shaped}
        if self.buffer is not None:
            self.buffer.add(rollout, shaped)
            # The authors' off-policy modules only explore until the buffer holds one replay batch.
            warming_up = cfg.replay_warmup and self.buffer.size < cfg.replay_batch
            batch = None if warming_up else self.buffer.sample(cfg.replay_batch, self.generator)
        loss = grad_norm = None  # no update this step (replay warm-up)
        if batch is not None:
            loss = self.loss(batch["tokens"], batch["hidden"], batch["threshold"], batch["reward"])
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.policy.mlp.parameters(), cfg.grad_clip)
            self.optimizer.step()
            self.policy.polyak_update(cfg.polyak)
        t3 = time.perf_counter()
        self.step_count += 1
        row = {
            "step": self.step_count,
            "reward_mean": float(raw.mean()), "reward_max": float(raw.max()),
            "loss": None if loss is None else float(loss.detach()),
            "grad_norm": None if grad_norm is None else float(grad_norm),
            "entropy": float(rollout.entropy.mean()), "support": float(rollout.support.mean()),
            "unique_prompts": len(set(texts)), "new_prompts": len(self._scores) - scored_before,
            "sample_s": t1 - t0, "score_s": t2 - t1, "update_s": t3 - t2,
        }
        if self.step_count % cfg.eval_every == 0 or self.step_count == cfg.steps:
            row.update(self.evaluate())
        self.result.history.append(row)
        return row

    @torch.no_grad()
    def greedy(self) -> tuple[str, list[int]]:
        rollout = self.policy.rollout(1, self.regularizer, self.config.alpha, greedy=True)
        return self.policy.decode(rollout.tokens)[0], rollout.tokens[0].tolist()

    def evaluate(self) -> dict:
        """Score the greedy prompt on dev; keep it if it is the best so far."""
        prompt, ids = self.greedy()
        dev = self.score([prompt], "dev")[0]
        train = self.score([prompt], "train")[0]
        record = {"step": self.step_count, "source": "greedy", "prompt": prompt, "token_ids": ids,
                  "train_reward": train["reward"], **{f"dev_{k}": v for k, v in dev.items()}}
        self.result.prompts.append(record)
        key = self.task.selection_metric
        best = self.result.best
        if not best or (dev[key], dev["reward"]) > (best[f"dev_{key}"], best["dev_reward"]):
            self.result.best = dict(record)
        return {f"dev_{k}": v for k, v in dev.items()} | {"greedy_prompt": prompt}

    def finish(self) -> TrainResult:
        """Score the best dev prompt on test (if asked)."""
        best = self.result.best
        if self.config.test and best:
            test = self.score([best["prompt"]], "test")[0]
            self.result.test = {f"test_{k}": v for k, v in test.items()}
            self.result.prompts.append({**best, "source": "best", **self.result.test})
        self.result.steps_done = self.step_count
        return self.result

    def train(self, on_step: Callable[[dict], None] | None = None) -> TrainResult:
        start = time.perf_counter()
        try:
            while self.step_count < self.config.steps:
                row = self.step()
                if on_step is not None:
                    on_step(row)
        finally:  # an interrupted run keeps its time and steps
            self.result.wall_time_s += time.perf_counter() - start
            self.result.steps_done = self.step_count
        return self.finish()

    # -- checkpoints (a run can continue where it stopped) ---------------------------------

    def state_dict(self, compact: bool = False) -> dict:
        """Everything needed to continue the run. ``compact`` leaves the replay buffer's frozen-LM
        states out (the bulk of a PIN checkpoint: 64000 x L x d floats); loading recomputes them."""
        buffer = None if self.buffer is None else self.buffer.state_dict()
        if compact and buffer is not None:
            buffer["data"].pop("hidden", None)
        return {
            "mlp": self.policy.mlp.state_dict(), "target": self.policy.target.state_dict(),
            "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
            "buffer": buffer,
            "step": self.step_count, "scores": self._scores,
            "history": self.result.history, "prompts": self.result.prompts, "best": self.result.best,
            "wall_time_s": self.result.wall_time_s,
        }

    def load_state_dict(self, state: dict) -> None:
        self.policy.mlp.load_state_dict(state["mlp"])
        self.policy.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        if self.buffer is not None and state["buffer"] is not None:
            buffer = state["buffer"]
            if "hidden" not in buffer["data"] and buffer["size"] > 0:
                buffer = {**buffer, "data": {**buffer["data"],
                                             "hidden": self.policy.hidden_states(buffer["data"]["tokens"])}}
            self.buffer.load_state_dict(buffer)
        self.step_count = state["step"]
        self._scores = state["scores"]
        self.result.history, self.result.prompts = state["history"], state["prompts"]
        self.result.best, self.result.wall_time_s = state["best"], state["wall_time_s"]


def task_default(task, which: str) -> float:
    return float(getattr(task, f"default_reward_{which}", 1.0 if which == "scale" else 0.0))


def build_task(config: TrainConfig):
    """The few-shot classification task a config names, with its task LM."""
    from .data import load_dataset_file
    from .models import guess_kind, load_model
    from .tasks.classification import FewShotClassification

    if config.dataset_file:
        load_dataset_file(config.dataset_file)
    kind = config.task_lm_kind or guess_kind(config.task_lm)
    task_lm = load_model(config.task_lm, kind, device=config.device)
    task = FewShotClassification(config.dataset, task_lm, config.data_dir, config.split_seed, bf16=config.bf16,
                                 exact_eval=config.exact_eval)
    task.check_splits(["train", "dev"] + (["test"] if config.test else []))
    return task
