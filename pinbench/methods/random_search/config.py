"""Random search's configuration and its preset."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...fields import require
from ...presets import Preset, register_presets


@dataclass
class RandomSearchConfig:
    """Random search's fields (``method.<field>``): the RL method's sampling without learning."""

    SETUP_FIELDS: ClassVar[tuple[str, ...]] = ("policy_lm",)

    policy_lm: str = "smollm2-135m"
    """Causal LM whose top-k next tokens are the candidates at each position (PIN's filter set)."""
    prompt_length: int = 5
    """L, tokens per prompt."""
    top_k: int | None = 10000
    """Each token is drawn uniformly from the LM's top-k given the prefix (None: the whole vocabulary)."""
    prompts_per_step: int = 16
    """Random prompts scored on the training reward per step (the RL methods' prompts per step)."""

    def __post_init__(self):
        require([(self.prompt_length >= 1, "prompt_length", ">= 1"),
                 (self.top_k is None or self.top_k >= 1, "top_k", ">= 1 or None"),
                 (self.prompts_per_step >= 1, "prompts_per_step", ">= 1")], self)


# PIN's classification budget: 6,000 steps x 16 prompts scored on the training split, the best
# training-reward prompt so far scored on dev every 20 steps (as PIN scores its greedy prompt).
PRESETS: dict[str, Preset] = register_presets(
    Preset("random-search", "random_search", "Random search: 16 random prompts per step from the policy LM's top-10,000 "
                                             "tokens, the best training reward scored on dev every 20 steps (PIN's budget)",
           {"method.prompt_length": 5, "method.top_k": 10000, "method.prompts_per_step": 16,
            "run.steps": 6000, "run.eval_every": 20}, order=80),
)
