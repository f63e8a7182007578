"""Methods: each turns a task into a chosen prompt (``base.Method``); the registry is
``pinbench.registry.METHODS``. Presets are named recipes of a method, defined with it."""

from __future__ import annotations

from ..errors import ConfigError
from .base import Method, Preset, PromptBook
from .autoprompt.config import PRESETS as _AUTOPROMPT_PRESETS
from .fixed.config import PRESETS as _FIXED_PRESETS
from .grips.config import PRESETS as _GRIPS_PRESETS
from .pez.config import PRESETS as _PEZ_PRESETS
from .random_search.config import PRESETS as _RANDOM_PRESETS
from .rl.config import PRESETS as _RL_PRESETS
from .soft_prompt.config import PRESETS as _SOFT_PROMPT_PRESETS

_ALL = {**_FIXED_PRESETS, **_GRIPS_PRESETS, **_AUTOPROMPT_PRESETS, **_PEZ_PRESETS, **_RANDOM_PRESETS, **_RL_PRESETS,
        **_SOFT_PROMPT_PRESETS}
# PIN Table 1's row order (reports order their rows by it); random search, the floor of the RL
# methods, just before them; PIN's other readings after PIN; each baseline's RLPrompt-script reading
# (`-rlprompt`) after it.
TABLE1_ORDER = ("manual", "instructions", "in-context", "in-context-rlprompt", "soft-prompt", "soft-prompt-rlprompt",
                "grips", "grips-rlprompt", "autoprompt", "autoprompt-rlprompt", "pez", "random-search",
                "rlprompt", "pin", "pin-td", "pin-released", "pin-no-filter")
PRESETS: dict[str, Preset] = {**{n: _ALL[n] for n in TABLE1_ORDER if n in _ALL}, **_ALL}


def get_preset(name: str, where: str = "config") -> Preset:
    if name not in PRESETS:
        raise ConfigError(f"{where}: unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[name]


__all__ = ["Method", "Preset", "PromptBook", "PRESETS", "get_preset"]
