"""Few-shot text classification (PAPER.md section 7): the task owns its data and its reward."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from .. import rewards
from ..data import DatasetSpec, Split, get_dataset, read_split
from ..models import LoadedModel
from ..scoring import Progress, VerbalizerScorer


@dataclass(frozen=True)
class Evaluation:
    """Scores of P prompts on E examples."""

    prompts: tuple[str, ...]
    probs: torch.Tensor  # [P, E, C] verbalizer probabilities
    labels: torch.Tensor  # [E]

    @property
    def example_rewards(self) -> torch.Tensor:
        """[P, E] gap reward per example."""
        return rewards.gap_reward_per_example(self.probs, self.labels)

    @property
    def reward(self) -> torch.Tensor:
        """[P] mean gap reward per prompt."""
        return self.example_rewards.mean(-1)

    @property
    def accuracy(self) -> torch.Tensor:
        """[P] accuracy per prompt."""
        return rewards.accuracy(self.probs, self.labels)

    @property
    def predictions(self) -> torch.Tensor:
        """[P, E] predicted class per example."""
        return self.probs.argmax(-1)


class FewShotClassification:
    """A dataset split seed scored by a frozen task LM through its verbalizers.

    Args:
        dataset: registry name or a ``DatasetSpec``.
        task_lm: the frozen task LM (causal or masked).
        data_dir: root of the LM-BFF layout (e.g. ``../shared/data/few-shot``).
        split_seed: which ``16-<seed>`` split.
        bf16: score training rewards with a bfloat16 copy of the task LM's weights (see
            ``VerbalizerScorer``).
        exact_eval: score every split but train (dev, which selects the best prompt, and test, the
            reported number) exactly, in the task LM's own dtype, even when ``bf16`` is on.
    """

    # Without a preset, PIN's code's shaping: 1 * zscore (PAPER.md section 8; presets set their own).
    default_reward_scale = 1.0
    default_reward_shift = 0.0

    def __init__(self, dataset: str | DatasetSpec, task_lm: LoadedModel, data_dir: str | Path | None,
                 split_seed: int = 13, *, bf16: bool = False, exact_eval: bool = True,
                 max_batch_tokens: int = 4096):
        self.spec = get_dataset(dataset) if isinstance(dataset, str) else dataset
        self.task_lm = task_lm
        self.data_dir = data_dir
        self.split_seed = split_seed
        self.scorer = VerbalizerScorer(task_lm, self.spec, bf16=bf16, max_batch_tokens=max_batch_tokens)
        # bf16 moves class probabilities by up to ~0.05 and flips predictions (README: Performance):
        # fast enough for a training signal, not for the numbers a user reports.
        self.exact_scorer = self.scorer if not (bf16 and exact_eval) else \
            VerbalizerScorer(task_lm, self.spec, bf16=False, max_batch_tokens=max_batch_tokens)
        self._splits: dict[str, Split] = {}

    def split(self, name: str) -> Split:
        if name not in self._splits:
            self._splits[name] = read_split(self.spec, name, self.split_seed, self.data_dir)
        return self._splits[name]

    # -- the trainer's task interface -----------------------------------------------------
    selection_metric = "accuracy"  # the best dev prompt maximises this (ties: reward)

    def check_splits(self, splits: Sequence[str]) -> None:
        """Read the splits a run will need now, so a missing file fails before training."""
        for name in splits:
            self.split(name)

    def score(self, prompts: Sequence[str], split: str = "train") -> dict[str, torch.Tensor]:
        """Per-prompt metrics on a split: ``reward`` (mean gap reward, the training signal) and
        ``accuracy``."""
        result = self.evaluate(prompts, split)
        return {"reward": result.reward, "accuracy": result.accuracy}

    def evaluate(self, prompts: Sequence[str], split: str = "train", *,
                 progress: Progress | None = None) -> Evaluation:
        data = self.split(split)
        scorer = self.scorer if split == "train" else self.exact_scorer
        probs = scorer.score(list(prompts), data.texts, progress=progress)
        return Evaluation(tuple(prompts), probs, torch.tensor(data.labels))
