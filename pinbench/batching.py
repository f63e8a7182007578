"""Token-budgeted batching: every forward pass in pinbench holds at most a budget of padded tokens.

Memory of a transformer forward grows with rows x padded width (activations, keys and values,
attention scores, logits), not with the number of rows alone; a fixed row count lets one long
input (an 850-token line) or a long split blow up a batch. So batches are formed by tokens:
sorted by length (little padding), cut where rows x longest would pass the budget. A row longer
than the budget goes alone: the least any forward can hold.
"""

from __future__ import annotations

from typing import Sequence

import torch


def length_batches(lengths: Sequence[int], max_tokens: int, max_rows: int | None = None) -> list[list[int]]:
    """Indices of ``lengths`` sorted by length, grouped so that rows x longest <= ``max_tokens``
    (and rows <= ``max_rows`` when given); a single row over the budget forms its own batch."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, current, longest = [], [], 0
    for i in order:
        longest_if = max(longest, lengths[i])
        full = max_rows is not None and len(current) >= max_rows
        if current and (full or longest_if * (len(current) + 1) > max_tokens):
            batches.append(current)
            current, longest_if = [], lengths[i]
        current.append(i)
        longest = longest_if
    if current:
        batches.append(current)
    return batches


def pad_right(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, longest] and their attention mask (1 on real tokens)."""
    width = max((len(r) for r in rows), default=0)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
        mask[r, : len(row)] = 1
    return ids, mask
