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


# Padded widths are rounded up to a multiple of this: a run then meets a few dozen batch shapes,
# not hundreds. oneDNN (bf16 matmuls on CPU) caches a kernel per shape, with its own copies of the
# reordered weights: with exact widths its cache grew by ~0.4 MB per scored example (1 GB over AG
# News' test set) before it filled.
PAD_MULTIPLE = 16


def padded(length: int, multiple: int = PAD_MULTIPLE) -> int:
    return -(-length // multiple) * multiple


def length_batches(lengths: Sequence[int], max_tokens: int, max_rows: int | None = None,
                   multiple: int = 1) -> list[list[int]]:
    """Indices of ``lengths`` sorted by length, grouped so that rows x longest (rounded up to
    ``multiple``) <= ``max_tokens`` (and rows <= ``max_rows`` when given); a single row over the
    budget forms its own batch."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches, current, longest = [], [], 0
    for i in order:
        longest_if = max(longest, padded(lengths[i], multiple))
        full = max_rows is not None and len(current) >= max_rows
        if current and (full or longest_if * (len(current) + 1) > max_tokens):
            batches.append(current)
            current, longest_if = [], padded(lengths[i], multiple)
        current.append(i)
        longest = longest_if
    if current:
        batches.append(current)
    return batches


def pad_right(rows: Sequence[Sequence[int]], pad_id: int, multiple: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded ids [B, longest rounded up to ``multiple``] and their attention mask (1 on real
    tokens)."""
    width = padded(max((len(r) for r in rows), default=0), multiple)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, : len(row)] = torch.as_tensor(list(row), dtype=torch.long)
        mask[r, : len(row)] = 1
    return ids, mask
