"""Reward shaping for the RL method (docs/method.md#reward-shaping): scale * zscore(R) + shift.

A task returns rewards of shape [P] (one z-score group: the step's prompts) or [P, G] (G groups,
e.g. one per input for style transfer): each column is z-scored across the prompts, then the
columns are averaged into one reward per prompt.
"""

from __future__ import annotations

import torch


def zscore(rewards: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """(R - mean) / (std + eps) across the prompts (dim 0), per column of a [P, G] input. The std
    is the population one (divides by P), as the authors' ``np.std`` in fsc_reward.py of both
    codebases. A single prompt has no spread: its z-score is 0.
    """
    if rewards.shape[0] < 2:
        return torch.zeros_like(rewards)
    return (rewards - rewards.mean(0)) / (rewards.std(0, correction=0) + eps)


def shape_rewards(rewards: torch.Tensor, scale: float = 1.0, shift: float = 0.0, eps: float = 1e-4) -> torch.Tensor:
    """Per-step shaping: scale * zscore(R) + shift (RLPrompt: 5z for classification, 100z - 20 for style)."""
    z = zscore(rewards, eps)
    if z.dim() > 1:  # one z-score per group, then one reward per prompt
        z = z.mean(-1)
    return scale * z + shift
