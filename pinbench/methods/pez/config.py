"""PEZ's configuration and its preset (PEZ's ``sample_config.json`` and ``optim_utils.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from ...fields import require
from ...presets import Preset, register_presets

ALLOWED_TOKENS = ("all", "no_special")


@dataclass
class PEZConfig:
    """PEZ's fields (``method.<field>``). Defaults are PEZ's code for CLIP inversion."""

    prompt_length: int = 16
    """L, prompt tokens (PEZ: 16 for CLIP inversion; its README finds 16 generalises best)."""
    lr: float = 0.1
    """AdamW learning rate on the continuous embeddings."""
    weight_decay: float = 0.1
    """AdamW's decoupled weight decay, acting on the continuous embeddings."""
    batch_size: int | None = 1
    """Items of the task's objective per step: target images (PEZ's ``batch_size``: 1) or training
    examples; None: all of them every step."""
    allowed_tokens: str = "all"
    """Which vocabulary rows the prompt may take, at initialisation and projection: all (PEZ's
    code: start and end tokens included) or no_special (every special token left out)."""
    grad_clip: float | None = None
    """Clip the gradient's norm (None: no clipping, as PEZ's CLIP code; its LM code clips at 1)."""

    def __post_init__(self):
        require([(self.prompt_length >= 1, "prompt_length", ">= 1"),
                 (self.lr > 0, "lr", "> 0"),
                 (self.weight_decay >= 0, "weight_decay", ">= 0"),
                 (self.batch_size is None or self.batch_size >= 1, "batch_size", ">= 1 or None"),
                 (self.allowed_tokens in ALLOWED_TOKENS, "allowed_tokens", f"one of {ALLOWED_TOKENS}"),
                 (self.grad_clip is None or self.grad_clip > 0, "grad_clip", "> 0 or None")], self)


# Inversion: PEZ's sample_config.json (16 tokens, 3,000 iterations, AdamW lr 0.1, weight decay 0.1,
# one image per step), every iteration's projection a candidate (optim_utils.optimize_prompt_loop
# scores it before each update). Classification: PIN's Table 1 "PEZ+" row has no released code;
# our reading keeps PEZ's optimiser and budget with the other methods' 5 tokens, no special tokens
# (a mask token in the prompt would be scored), batches of 16 examples as PEZ's LM code, and the
# prompt chosen on dev every 20 steps like the RL methods (docs/tasks/inversion.md#3).
PRESETS: dict[str, Preset] = register_presets(
    Preset("pez", "pez", "PEZ (Wen et al. 2023): projected gradient descent on token embeddings, AdamW "
                         "lr 0.1, weight decay 0.1, 3,000 steps (inversion: 16 tokens; classification: 5)",
           {"method.lr": 0.1, "method.weight_decay": 0.1, "method.grad_clip": None, "run.steps": 3000},
           {"inversion": {"method.prompt_length": 16, "method.batch_size": 1, "method.allowed_tokens": "all",
                          "run.eval_every": 1},
            "classification": {"method.prompt_length": 5, "method.batch_size": 16,
                               "method.allowed_tokens": "no_special", "run.eval_every": 20}}, order=70),
)
