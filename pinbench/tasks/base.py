"""What every task is: it owns its data, its reward, its metrics and how its best prompt is chosen.

A method asks a task for one thing: ``score(prompts, split)``, per-prompt metrics that include
``reward`` (the training signal). Everything a method or the analysis must not guess is declared
here as a class attribute, and recorded with each result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class Metric:
    """A per-prompt metric a task reports, and which way is better."""

    name: str
    higher_is_better: bool = True
    description: str = ""


class Task:
    """Base class of tasks (register a subclass with ``@TASKS.register(name)``).

    A subclass sets the class attributes, a ``config_class`` dataclass (its fields, with docstrings,
    are the task's keys ``task.<field>``) and implements ``build``, ``score`` and ``dataset_name``.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type]
    metrics: ClassVar[tuple[Metric, ...]] = (Metric("reward"),)
    """Per-prompt metrics ``score`` returns (``reward`` among them)."""
    splits: ClassVar[tuple[str, ...]] = ("train", "dev", "test")
    """The splits the task has; ("train",) when there is only the training signal (one target image)."""
    selection_split: ClassVar[str] = "dev"
    """Where the reported prompt is chosen: its best score on this split ("train": best reward seen)."""
    selection_metric: ClassVar[str] = "reward"
    """The metric that chooses it (ties: reward)."""
    report_split: ClassVar[str | None] = "test"
    """The split the chosen prompt is finally scored on (None: the selection scores are the result)."""
    cacheable: ClassVar[bool] = True
    """Scores are deterministic, so a method may score a (split, prompt) once and reuse it. False
    for sampled scores (style transfer's generations) and moving training inputs: the method then
    asks the task every time, and the task keeps its own state (``state_dict``)."""
    default_reward_scale: ClassVar[float] = 1.0
    default_reward_shift: ClassVar[float] = 0.0
    zscore_rewards: ClassVar[bool] = True
    """Whether a reward-shaping method z-scores the training rewards before scaling them, as the
    authors' reward classes do for classification and style transfer; False: scale x raw reward +
    shift (PIN's CLIP reward)."""

    @classmethod
    def build(cls, config, run) -> "Task":
        """The task for a config (``config_class``) and the run settings (device, seed)."""
        raise NotImplementedError

    @classmethod
    def load(cls, config, run, splits: Sequence[str] | None = None) -> "Task":
        """``build`` after ``check_data``: missing or broken data fails before any model loads
        (``pinbench eval`` on one split, training on the run's splits); so does a device this
        machine does not have."""
        from ..run import check_device_available

        check_device_available(run.device)
        cls.check_data(config, run, splits)
        return cls.build(config, run)

    @classmethod
    def dataset_name(cls, config) -> str:
        """What a config's task is solved on (a dataset, an image set): a report's column."""
        raise NotImplementedError

    def check_splits(self, splits: Sequence[str]) -> None:
        """Fail now, before any training, if a split a run will need is missing: an unknown name,
        or data that ``split`` cannot read."""
        unknown = [s for s in splits if s not in self.splits]
        if unknown:
            raise ConfigError(f"task '{self.name}' has no split(s) {unknown}; it has {list(self.splits)}")
        for name in splits:
            self.split(name)

    @classmethod
    def check_data(cls, config, run, splits: Sequence[str] | None = None) -> None:
        """Read the data files a run of this config needs (``splits``, default: the run's), loading
        no model: the error names the file. A sweep's driver calls it for every trial before Ray
        starts (a trial that cannot find its data would otherwise fail only after launch), and
        ``load`` before it builds. Tasks without data files need nothing."""

    def split(self, name: str):
        """A split's data, read (and kept) on first use; a task without data files returns None."""
        return None

    def split_size(self, name: str) -> int | None:
        """Examples a prompt is run on when scored on a split (the budget counts prompt x example
        pairs); None when the task cannot say."""
        data = self.split(name)
        return len(data) if data is not None and hasattr(data, "__len__") else None

    def reference_prompts(self, kind: str) -> list[str]:
        """Prompts the literature gives for this task's data: ``manual`` (a hand-written prompt)
        or ``instruction`` (a task instruction); [] when it has none (the baselines use them)."""
        return []

    def score(self, prompts: Sequence[str], split: str = "train") -> dict[str, torch.Tensor]:
        """Per-prompt metrics on a split: {name: tensor [P]}, ``reward`` among them. A value that is
        a list with one entry per prompt (e.g. the task's sampled outputs) is stored with each
        evaluated prompt as it is. On "train" a task may add how its rewards are z-scored:
        ``reward_draws`` [P, K] (``reward`` is their mean; the z-score's std pools them) and
        ``reward_group`` [P] (prompts z-scored together; default: all of them)."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """What a run must checkpoint to continue this task where it was (a position in a stream
        of training inputs, a sampling counter); plain Python values and tensors."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def differentiable(self) -> "WhiteBox | None":
        """A white-box path (gradients with respect to prompt embeddings) for gradient methods, or
        None when the task has none."""
        return None

    @classmethod
    def metric(cls, name: str) -> Metric:
        for m in cls.metrics:
            if m.name == name:
                return m
        raise ConfigError(f"task '{cls.name}' has no metric '{name}'; it has {[m.name for m in cls.metrics]}")

    @classmethod
    def run_splits(cls, test: bool) -> list[str]:
        """The splits a run scores: training, selection and (if ``test``) the reported one."""
        wanted = ["train", cls.selection_split] + ([cls.report_split] if test and cls.report_split else [])
        return [s for s in dict.fromkeys(wanted) if s in cls.splits]


class WhiteBox:
    """A task's differentiable path, for gradient methods (PEZ, soft prompts, AutoPrompt): the
    task's objective as a function of L prompt embeddings in the input-embedding space of the
    task's own model, whose vocabulary the hard prompt's tokens come from."""

    model_name: str
    """The model whose tokenizer and embeddings the prompt tokens belong to (results record it)."""

    @property
    def vocabulary(self) -> torch.Tensor:
        """The model's input embedding matrix [V, d]: what projections snap onto."""
        raise NotImplementedError

    def special_ids(self) -> list[int]:
        """Token ids that are not text (start, end, padding, mask): a method may leave them out."""
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        """The prompt text of token ids, as ``Task.score`` takes it."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt text placed in the task's template (``decode``'s inverse where
        the tokenizer allows: a method can see when a prompt does not survive the round trip)."""
        raise NotImplementedError

    @property
    def num_items(self) -> int:
        """How many items (training examples, target images) the training objective has."""
        raise NotImplementedError

    def batch(self, size: int | None, generator: torch.Generator) -> list[int]:
        """Indices of ``size`` items drawn without replacement (None, or as many as there are:
        all of them, in order), for ``loss``."""
        n = self.num_items
        if size is None or size >= n:
            return list(range(n))
        return torch.randperm(n, generator=generator)[:size].tolist()

    def loss(self, prompt: torch.Tensor, batch) -> torch.Tensor:
        """The objective to minimise for ``prompt`` [L, d] on ``batch``: a scalar with gradient."""
        raise NotImplementedError
