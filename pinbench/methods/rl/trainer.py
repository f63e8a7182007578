"""The RL method's training loop (docs/method.md#training-loop). It only orchestrates: the policy
samples, the task scores, the regulariser gives policy and values, the objective gives the loss.

One step:
  1. sample prompts_per_step prompts token by token from the policy (on-policy);
  2. score the new ones with the task reward (a prompt already scored in this run is not rescored);
  3. shape the rewards: scale * zscore + shift across the step's prompts (per group, when the task
     groups them: style transfer z-scores the prompts paired with one input together), or
     scale * R + shift where the task's reward is not z-scored (inversion);
  4. update psi on this batch (on-policy) or on replay_batch prompts from the replay buffer, then
     Polyak-update the target psi';
  5. every run.eval_every steps, score the greedy prompt on the task's selection split (dev); the
     best is the result and is scored on test at the end (``methods.base``: shared by all methods).
     A task that selects on its training reward (inversion) also offers each step's best sampled
     prompt: PIN's code reports the best-reward prompt it sampled (``ClipReward.max_prompt``).
"""

from __future__ import annotations

import time

import torch

from ...registry import METHODS
from ..base import Method
from .config import RLConfig
from .objectives import get_objective
from .policy import QPolicy, Rollout
from .regularizers import make_regularizer
from .shaping import shape_rewards


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
        if rollout.context is not None:  # what a "retokenize" policy read, to rebuild its states
            items |= {"context": rollout.context, "positions": rollout.positions}
        if not self._data:
            self._data = {k: v.new_empty((self.capacity, *v.shape[1:])) for k, v in items.items()}
        if "context" in items and items["context"].shape[1] > self._data["context"].shape[1]:
            self._data["context"] = _widened(self._data["context"], items["context"].shape[1])
        elif "context" in items:
            items["context"] = _widened(items["context"], self._data["context"].shape[1])
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


def _widened(context: torch.Tensor, width: int) -> torch.Tensor:
    """Contexts padded on the right to ``width`` columns. Columns after a row's last read position
    never reach its states (the LM is causal), so their value does not matter."""
    pad = width - context.shape[1]
    return context if pad <= 0 else torch.nn.functional.pad(context, (0, pad), value=0)


@METHODS.register("rl")
class RLMethod(Method):
    """RL prompt optimisation: frozen policy LM + trainable Q head (presets pin, rlprompt, ...).

    Args:
        spec: the run (``spec.method_config`` is an ``RLConfig``).
        task: the task; built from the spec if None.
        policy_lm: the frozen policy LM; loaded from ``method.policy_lm`` if None.
    """

    config_class = RLConfig
    evaluation_source = "greedy"

    def __init__(self, spec, task=None, policy_lm=None):
        from ...models import load_model

        super().__init__(spec, task)
        config, run = self.config, self.run
        if policy_lm is None:
            policy_lm = load_model(config.policy_lm, "causal", device=run.device)
        self.regularizer = make_regularizer(config.regularizer, config.q)
        self.objective = get_objective(config.objective)
        torch.manual_seed(run.seed)  # fixes the MLP initialisation
        self.policy = QPolicy(policy_lm, hidden=config.mlp_hidden, prompt_length=config.prompt_length,
                              top_k=config.top_k, sample_top_k=config.sample_top_k, q_bias=config.q_bias,
                              policy_input=config.policy_input)
        self.optimizer = torch.optim.Adam(self.policy.mlp.parameters(), lr=config.lr)
        self.generator = torch.Generator(device=self.policy.head_weight.device).manual_seed(run.seed)
        self.buffer = ReplayBuffer(config.replay_size) if config.replay_size > 0 else None
        task = self.task
        self.reward_scale, self.reward_shift, self.reward_zscore = config.shaping(task.reward_kind)

    @property
    def prompt_tokenizer(self) -> str:
        return self.config.policy_lm

    def train_rewards(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Raw training rewards as (draws [P, K], groups [P] or None): a cacheable task's rewards
        come from the run's score cache (K = 1, one group); otherwise the task's own draws and
        groups (``Task.score`` on "train": ``reward_draws``, ``reward_group``)."""
        if self.task.cacheable:
            return torch.tensor([[m["reward"]] for m in self.book.score(texts, "train")]), None
        metrics = self.book.task_score(texts, "train")
        draws = metrics.get("reward_draws", metrics["reward"].reshape(-1, 1))
        return draws.float().reshape(len(texts), -1), metrics.get("reward_group")

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

    def iterate(self) -> dict:
        cfg = self.config
        t0 = time.perf_counter()
        rollout = self.policy.rollout(cfg.prompts_per_step, self.regularizer, cfg.alpha, self.generator)
        texts = self.policy.decode(rollout.tokens)
        t1 = time.perf_counter()
        scored_before = len(self.book.scores)
        draws, groups = self.train_rewards(texts)
        t2 = time.perf_counter()
        shaped = shape_rewards(draws, self.reward_scale, self.reward_shift, groups,
                               standardize=self.reward_zscore).to(rollout.hidden.device)
        per_prompt = draws.mean(-1)
        if self.task.selection_split == "train":  # the best sample is a candidate (PIN: max_prompt)
            best = int(per_prompt.argmax())
            self.book.consider(texts[best], self.step_count + 1, "sampled", rollout.tokens[best].tolist(),
                               only_if_best=True)
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
        return {
            "reward_mean": float(per_prompt.mean()), "reward_max": float(per_prompt.max()),
            "loss": None if loss is None else float(loss.detach()),
            "grad_norm": None if grad_norm is None else float(grad_norm),
            "entropy": float(rollout.entropy.mean()), "support": float(rollout.support.mean()),
            "unique_prompts": len(set(texts)), "new_prompts": len(self.book.scores) - scored_before,
            "sample_s": t1 - t0, "score_s": t2 - t1, "update_s": t3 - t2,
        }

    @torch.no_grad()
    def greedy(self) -> tuple[str, list[int]]:
        rollout = self.policy.rollout(1, self.regularizer, self.config.alpha, greedy=True)
        return self.policy.decode(rollout.tokens)[0], rollout.tokens[0].tolist()

    current_prompt = greedy

    def evaluation_extras(self, prompt: str) -> dict:
        """The greedy prompt's train reward (from the run's cache), beside its dev scores. A task
        whose scores are not cacheable (sampled generations, a moving stream of training inputs)
        would pay a new scoring and move its stream: nothing is added then."""
        if not self.task.cacheable or self.task.selection_split == "train":  # (train: scored already)
            return {}
        return {"train_reward": self.book.score([prompt], "train")[0]["reward"]}

    # -- checkpoints (a run can continue where it stopped) ---------------------------------

    def state_dict(self, compact: bool = False) -> dict:
        """Everything needed to continue the run. ``compact`` leaves the replay buffer's frozen-LM
        states out (the bulk of a PIN checkpoint: 64000 x L x d floats); loading recomputes them
        (from the tokens, or from what a "retokenize" policy read: ``context``, ``positions``)."""
        buffer = None if self.buffer is None else self.buffer.state_dict()
        if compact and buffer is not None:
            buffer["data"].pop("hidden", None)
        return {**super().state_dict(compact),
                "mlp": self.policy.mlp.state_dict(), "target": self.policy.target.state_dict(),
                "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "buffer": buffer}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.policy.mlp.load_state_dict(state["mlp"])
        self.policy.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        if self.buffer is not None and state["buffer"] is not None:
            buffer = state["buffer"]
            data = buffer["data"]
            if "hidden" not in data and buffer["size"] > 0:
                hidden = self.policy.hidden_states(data["tokens"], data.get("context"), data.get("positions"))
                buffer = {**buffer, "data": {**data, "hidden": hidden}}
            self.buffer.load_state_dict(buffer)
