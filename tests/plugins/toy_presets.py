"""Presets added from outside pinbench: each is one ``PRESETS.register`` line, for the toy plug-in
method (toy_plugins) or a built-in one.

A module of its own (not toy_plugins) so a test can import it and drop its presets afterwards:
registered presets stay for the process, and other tests list every preset.
"""

from __future__ import annotations

import toy_plugins  # noqa: F401 - the task and method these presets are recipes for
from pinbench.registry import PRESETS
from pinbench.presets import Preset

# A recipe of the plug-in method: values for its own task, and for any other task ("*"). Its order
# puts its report row between PIN Table 1's first two rows (manual 10, instructions 20).
PRESETS.register(Preset(
    "toy-short", "fixed-prompts", "The toy method's short prompts (any task)",
    {"run.steps": 2, "run.eval_every": 1},
    {"prompt-length": {"method.prompts": "hi|hello", "task.target": 2}, "*": {"method.prompts": "a|abc"}},
    order=15))

# A recipe of a built-in method, for any task: PIN with a smaller alpha; no order, so after the
# built-in presets.
PRESETS.register(Preset(
    "toy-pin-alpha", "rl", "PIN with alpha 0.5 and twice the reward scale (any task)",
    {"method.alpha": 0.5, "method.regularizer": "sparse_tsallis", "run.steps": 3},
    {"*": {"method.reward_scale": 2.0}}))
