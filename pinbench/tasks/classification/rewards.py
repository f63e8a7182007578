"""Classification rewards and metrics on verbalizer probabilities (docs/tasks/classification.md)."""

from __future__ import annotations

import torch

# RLPrompt's classification reward: a correct prediction pays 200 x gap, a wrong one 180 x gap
# (gap < 0 then), so the reward is steeper on the right side of the decision boundary.
CORRECT_COEF = 200.0
INCORRECT_COEF = 180.0


def probability_gap(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """gap = p(true) - max_{c != true} p(c); probs [..., E, C], labels [E] -> [..., E]."""
    labels = labels.to(probs.device).long()
    index = labels.expand(probs.shape[:-1]).unsqueeze(-1)
    p_true = probs.gather(-1, index).squeeze(-1)
    others = probs.scatter(-1, index, float("-inf"))
    return p_true - others.max(-1).values


def gap_reward_per_example(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-example reward: 200 * gap if gap > 0 else 180 * gap. [..., E, C] -> [..., E]."""
    gap = probability_gap(probs, labels)
    return torch.where(gap > 0, CORRECT_COEF * gap, INCORRECT_COEF * gap)


def gap_reward(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Prompt reward: the per-example gap reward averaged over examples. [P, E, C] -> [P]."""
    return gap_reward_per_example(probs, labels).mean(-1)


def accuracy(probs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Share of examples whose argmax verbalizer is the label. [P, E, C] -> [P]."""
    return (probs.argmax(-1) == labels.to(probs.device)).float().mean(-1)
