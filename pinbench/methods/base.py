"""What every method is: it turns a task into a chosen prompt, through the same bookkeeping.

``Method`` is the base class (register a subclass with ``@METHODS.register(name)``); ``PromptBook``
is the part all methods share: scoring with the run's cache (when the task's scores are
deterministic), choosing the best prompt by the task's selection rule, and scoring it on the
report split at the end. A method's named recipes are presets (``pinbench.presets``).
"""

from __future__ import annotations

import math
import time
from typing import Callable, ClassVar, Sequence

import torch

from ..errors import NonFiniteError
from ..run import RunResult, RunSpec
from ..tasks.base import checked_scores


class PromptBook:
    """Scores prompts for a method, keeps every evaluated prompt and the best one by the task's rule."""

    def __init__(self, task, result: RunResult):
        self.task, self.result = task, result
        self.scores: dict[tuple[str, str], dict[str, float]] = {}  # (split, prompt) -> metrics
        metric = task.metric(task.selection_metric)
        self._sign = 1.0 if metric.higher_is_better else -1.0
        self._by_reward = result.spec.run.selection == "reward"

    # -- the budget: every scoring and gradient step a run pays for ----------------------------

    def count(self, split: str, prompts: int, examples: int | None = None) -> None:
        """Record that ``prompts`` prompts were scored on ``split``, over ``examples`` (prompt,
        example) pairs in all (default: each prompt on the whole split)."""
        budget = self.result.budget
        budget[f"scored_{split}"] = budget.get(f"scored_{split}", 0) + prompts
        size = self.task.split_size(split)
        if examples is None and size is not None:
            examples = prompts * size
        if examples is not None:
            budget[f"examples_{split}"] = budget.get(f"examples_{split}", 0) + examples

    def count_gradient(self, examples: int) -> None:
        """Record one gradient step of a white-box method over ``examples`` items."""
        budget = self.result.budget
        budget["gradient_steps"] = budget.get("gradient_steps", 0) + 1
        budget["gradient_examples"] = budget.get("gradient_examples", 0) + examples

    def task_score(self, prompts: Sequence[str], split: str) -> dict:
        """``task.score``, counted in the budget (for a method that needs the raw metrics)."""
        self.count(split, len(prompts))
        return checked_scores(self.task, self.task.score(list(prompts), split), len(prompts))

    def _finite(self, metrics: dict, split: str, prompt: str, step: int | str) -> None:
        """The quantities a prompt is chosen by (the selection metric and the reward) must be
        numbers: a NaN compares false with everything and would be kept or passed over silently."""
        for name in dict.fromkeys((self.task.selection_metric, "reward")):
            value = metrics.get(name)
            if isinstance(value, float) and not math.isfinite(value):
                raise NonFiniteError(f"step {step}: {split}_{name} of prompt {prompt!r} is {value} (the task's "
                                     f"score; the run stops: no prompt can be chosen by it)")

    def score(self, prompts: Sequence[str], split: str) -> list[dict]:
        """Task metrics per prompt (floats; a grouped reward becomes its mean). A cacheable task's
        (split, prompt) is scored once per run."""
        if not self.task.cacheable:
            return _rows(self.task_score(prompts, split), len(prompts))
        new = [p for p in dict.fromkeys(prompts) if (split, p) not in self.scores]
        if new:
            for prompt, row in zip(new, _rows(self.task_score(new, split), len(new))):
                self.scores[(split, prompt)] = row
        return [self.scores[(split, p)] for p in prompts]

    def _key(self, metrics: dict) -> tuple[float, float]:
        """What "better" means under ``run.selection``: the metric then the reward, or the reverse."""
        metric = self._sign * metrics[self.task.selection_metric]
        return (metrics["reward"], metric) if self._by_reward else (metric, metrics["reward"])

    def consider(self, prompt: str, step: int, source: str, token_ids: list[int] | None = None,
                 only_if_best: bool = False, metrics: dict | None = None, **extra) -> dict:
        """Score ``prompt`` on the selection split, record it, keep it if it is strictly the best so
        far; returns its metrics prefixed with the split (``dev_accuracy``). ``only_if_best``
        records it only when it becomes the best (a candidate offered every step). ``metrics``:
        scores the method computed itself (a soft prompt, which is not text), counted by it."""
        split = self.task.selection_split
        metrics = self.score([prompt], split)[0] if metrics is None else metrics
        self._finite(metrics, split, prompt, step)
        record = {"step": step, "source": source, "prompt": prompt, "token_ids": token_ids, **extra,
                  **{f"{split}_{k}": v for k, v in metrics.items()}}
        best = self.result.best
        improves = not best or self._key(metrics) > self._key({k[len(split) + 1:]: v for k, v in best.items()
                                                               if k.startswith(f"{split}_")})
        if improves or not only_if_best:
            self.result.prompts.append(record)
        if improves:
            self.result.best = dict(record)
        return {f"{split}_{k}": v for k, v in metrics.items()}

    def finish(self, test: bool, scorer: Callable[[dict, str], dict] | None = None) -> RunResult:
        """Score the chosen prompt on the task's report split (if ``test`` and the task has one);
        ``scorer(best, split)`` scores it instead of the task (a soft prompt's own path)."""
        best, split = self.result.best, self.task.report_split
        if test and best and split in self.task.splits:
            scored = self.score([best["prompt"]], split)[0] if scorer is None else scorer(best, split)
            self._finite(scored, split, best["prompt"], "test")
            metrics = {f"{split}_{k}": v for k, v in scored.items()}
            self.result.prompts.append({**best, "source": "best", **metrics})
            # the run's numbers; per-prompt lists (outputs) stay with the prompt's record
            self.result.test = {k: v for k, v in metrics.items() if not isinstance(v, list)}
        return self.result

    def state_dict(self) -> dict:
        return {"scores": self.scores}

    def load_state_dict(self, state: dict) -> None:
        self.scores = state["scores"]


def _rows(metrics: dict, n: int) -> list[dict]:
    """Per prompt: each tensor metric as a float (a row of several values, e.g. a task's reward
    draws, as its mean); other per-prompt values (a task's sampled outputs, a list per prompt) as
    they are, so they are stored with the prompt."""
    return [{k: float(v[i].float().mean()) if torch.is_tensor(v) else v[i] for k, v in metrics.items()}
            for i in range(n)]


class Method:
    """Base class of methods. A subclass sets ``config_class`` (its fields, with docstrings, are the
    keys ``method.<field>``; its ``__post_init__`` checks its own rules) and implements ``iterate``
    and ``current_prompt``; ``step`` counts, evaluates every ``run.eval_every`` iterations and logs,
    ``train`` runs the budget (``run.steps``).

    Args:
        spec: the run (its ``method_config`` is this method's config).
        task: the task; built from the spec if None.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type]
    evaluation_source: ClassVar[str] = "current"
    """What an evaluated prompt is called in the results (``source``; the RL policy's: greedy)."""
    finite_quantities: ClassVar[tuple[str, ...]] = ("reward_mean", "reward_max", "loss", "grad_norm")
    """History-row quantities that must stay finite: a NaN or infinity stops the run at that step
    (the first one named: a bad reward before the loss it makes)."""

    def __init__(self, spec: RunSpec, task=None):
        self.spec, self.run = spec, spec.run
        self.config = spec.method_config
        if task is None:
            task = spec.task_class.load(spec.task_config, spec.run)
            task.check_splits(task.run_splits(spec.run.test))
        self.task = task
        self.result = RunResult(spec, prompt_tokenizer=self.prompt_tokenizer)
        self.book = PromptBook(task, self.result)
        self.step_count = 0

    @property
    def prompt_tokenizer(self) -> str | None:
        """The model whose tokenizer made the prompts' token ids (None: the prompts are text only)."""
        return None

    def iterate(self) -> dict:
        """One iteration of the method: its history row's metrics."""
        raise NotImplementedError

    def current_prompt(self) -> tuple[str, list[int] | None]:
        """The method's prompt now (evaluated every ``eval_every`` steps)."""
        raise NotImplementedError

    def evaluate(self) -> dict:
        """Score the current prompt on the selection split; keep it if it is the best so far."""
        prompt, ids = self.current_prompt()
        source = self.evaluation_source
        return self.book.consider(prompt, self.step_count, source, ids, **self.evaluation_extras(prompt)) \
            | {f"{source}_prompt": prompt}

    def evaluated_prompt(self, row: dict) -> str | None:
        """The prompt evaluated at a history row's step, or None when the step had no evaluation."""
        return row.get(f"{self.evaluation_source}_prompt")

    def evaluation_extras(self, prompt: str) -> dict:
        """More to record with an evaluated prompt (a method's own measurements of it)."""
        return {}

    def step(self) -> dict:
        """One iteration, counted and logged (with the evaluation when one is due)."""
        row = self.iterate()
        self.step_count += 1
        row = {"step": self.step_count, **row}
        for quantity in self.finite_quantities:
            value = row.get(quantity)
            if value is not None and not math.isfinite(value):
                self.result.history.append(row)  # the failing step stays in the record
                raise NonFiniteError(f"step {self.step_count}: {quantity} is {value} "
                                     f"(the run stops: every later update would build on it)")
        if self.evaluation_due():
            try:
                row.update(self.evaluate())
            except BaseException:  # Ctrl-C or a failure while scoring: the step itself happened
                self.result.history.append(row)
                raise
        self.result.history.append(row)
        return row

    def evaluation_due(self) -> bool:
        """Evaluate after this iteration: every ``run.eval_every`` and at the last."""
        return self.step_count % self.run.eval_every == 0 or self.step_count == self.run.steps

    def exhausted(self) -> bool:
        """True when the method has nothing left to try (a fixed list of prompts): the run ends
        before ``run.steps``."""
        return False

    def train(self, on_step: Callable[[dict], None] | None = None) -> RunResult:
        start = time.perf_counter()
        try:
            while self.step_count < self.run.steps and not self.exhausted():
                row = self.step()
                if on_step is not None:
                    on_step(row)
        finally:  # an interrupted run keeps its time and steps
            self.result.wall_time_s += time.perf_counter() - start
            self.result.steps_done = self.step_count
        return self.finish()

    def finish(self) -> RunResult:
        self.result.steps_done = self.step_count
        return self.book.finish(self.run.test, self.report_scorer())

    def report_scorer(self) -> Callable[[dict, str], dict] | None:
        """How the chosen prompt is scored on the report split: None, by the task from its text;
        a method whose prompts are not text (soft prompts) returns its own ``(best, split) ->
        metrics``."""
        return None

    # -- checkpoints: a method adds its own state to these -----------------------------------

    def state_dict(self, compact: bool = False) -> dict:
        r = self.result
        return {"step": self.step_count, "book": self.book.state_dict(), "history": r.history,
                "prompts": r.prompts, "best": r.best, "wall_time_s": r.wall_time_s,
                "task": self.task.state_dict(), "budget": dict(r.budget), "resumed_at": list(r.resumed_at)}

    def load_state_dict(self, state: dict) -> None:
        self.step_count = state["step"]
        self.book.load_state_dict(state["book"])
        self.task.load_state_dict(state.get("task", {}))
        r = self.result
        r.history, r.prompts, r.best, r.wall_time_s = state["history"], state["prompts"], state["best"], state["wall_time_s"]
        r.budget = dict(state.get("budget", {}))
        r.resumed_at = [*state.get("resumed_at", []), self.step_count]  # this load is a resume
