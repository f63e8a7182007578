"""Presets: named recipes of a method (``pin`` is one of ``rl``), kept in a registry like tasks and
methods.

A preset fixes some fields (``method.alpha``, ``run.steps``, ``task.template``), for every task
(``values``) and per task (``per_task``, with ``"*"`` for any task it does not name). Each method
package registers its own presets when its ``config`` module is imported; the built-in modules are
imported on first use of the registry. A plug-in module registers more:

    from pinbench.presets import PRESETS, Preset

    PRESETS.register(Preset("my-recipe", "rl", "what it is, where its values come from",
                            {"method.alpha": 0.5}, {"*": {"method.reward_scale": 2.0}}))

This module depends on ``errors`` only: ``run.make_spec`` imports it at the top, and the method
modules (which import ``run``) import it too, without a circle.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator

from .errors import ConfigError

#: The order of a preset that gives none: after PIN Table 1's rows (their orders are 10 to 110).
PLUGIN_ORDER = 1000.0


@dataclass(frozen=True)
class Preset:
    """A named recipe: a method and the values of its fields (and run settings) it fixes."""

    name: str
    method: str
    description: str
    """One line for reports and --help: what the recipe is and where its values come from."""
    values: dict = field(default_factory=dict)
    """Dotted keys (``method.alpha``, ``run.steps``) it sets for every task."""
    per_task: dict[str, dict] = field(default_factory=dict)
    """Task name -> dotted keys it sets for that task only (the code's reward shaping per task);
    ``"*"``: the keys for any other task (a plug-in task included)."""
    order: float = PLUGIN_ORDER
    """Where the preset's row goes in reports and listings (lower first): PIN Table 1's row order
    for the built-in presets, ``PLUGIN_ORDER`` (after them) unless a plug-in gives one; presets of
    equal order keep the order they were registered in."""

    def settings(self, task: str) -> dict:
        """Every key the recipe sets for ``task`` (its task-specific values where it has them)."""
        return {**self.values, **self.per_task.get(task, self.per_task.get("*", {}))}

    def values_for(self, task: str, where: str = "config") -> dict:
        """``settings(task)`` for a run: a recipe with per-task values must have the task's."""
        if self.per_task and task not in self.per_task and "*" not in self.per_task:
            raise ConfigError(f"{where}: preset '{self.name}' has no values for task '{task}' (it has "
                              f"{sorted(self.per_task)}); set them yourself (e.g. method.reward_scale) or pick "
                              f"another preset")
        return self.settings(task)


class PresetRegistry:
    """Preset names -> ``Preset``, iterated in ``Preset.order`` (then registration order). Reads
    like a dict (``name in PRESETS``, ``PRESETS[name]``, ``.items()``); the built-in method modules
    that register presets are imported on first use."""

    kind = "preset"

    def __init__(self, builtin_modules: Iterable[str]):
        self._modules = tuple(builtin_modules)
        self._entries: dict[str, Preset] = {}
        self._loaded = False

    def _load(self) -> None:
        if not self._loaded:
            self._loaded = True  # before the imports: their register() calls come back here
            for module in self._modules:
                importlib.import_module(module)

    def register(self, preset: Preset) -> Preset:
        """Add ``preset``; a name taken by another preset is an error (the built-ins are loaded
        first, so a plug-in cannot replace one). Returns the preset."""
        if not isinstance(preset, Preset):
            raise ConfigError(f"a preset must be a pinbench.presets.Preset, got {type(preset).__name__}")
        if not isinstance(preset.order, (int, float)) or isinstance(preset.order, bool) or math.isnan(preset.order):
            raise ConfigError(f"preset '{preset.name}': order must be a number, got {preset.order!r}")
        self._load()
        known = self._entries.get(preset.name)
        if known is not None and known != preset:
            raise ConfigError(f"preset '{preset.name}' is registered twice (a recipe of method '{known.method}' "
                              f"and one of method '{preset.method}'): register yours under another name")
        self._entries[preset.name] = preset
        return preset

    def get(self, name: str, where: str = "config") -> Preset:
        self._load()
        if name not in self._entries:
            raise ConfigError(f"{where}: unknown preset {name!r}; expected one of {sorted(self._entries)}")
        return self._entries[name]

    def names(self) -> list[str]:
        """Every preset's name, in order (``Preset.order``, then registration)."""
        self._load()
        position = {name: i for i, name in enumerate(self._entries)}
        return sorted(self._entries, key=lambda n: (self._entries[n].order, position[n]))

    # -- a read-only dict's interface (tests may set an entry with monkeypatch.setitem) -------

    def __getitem__(self, name: str) -> Preset:
        self._load()
        return self._entries[name]

    def __setitem__(self, name: str, preset: Preset) -> None:
        self._load()
        self._entries[name] = preset

    def __delitem__(self, name: str) -> None:
        self._load()
        del self._entries[name]

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._entries)

    def keys(self) -> list[str]:
        return self.names()

    def values(self) -> list[Preset]:
        return [self._entries[n] for n in self.names()]

    def items(self) -> list[tuple[str, Preset]]:
        return [(n, self._entries[n]) for n in self.names()]


#: Every preset. The built-in ones are registered by their method's ``config`` module.
PRESETS = PresetRegistry((
    "pinbench.methods.fixed.config",
    "pinbench.methods.soft_prompt.config",
    "pinbench.methods.grips.config",
    "pinbench.methods.autoprompt.config",
    "pinbench.methods.pez.config",
    "pinbench.methods.random_search.config",
    "pinbench.methods.rl.config",
))


def register_presets(*presets: Preset) -> dict[str, Preset]:
    """Register each preset; returns them by name (a method module's own ``PRESETS`` dict)."""
    return {p.name: PRESETS.register(p) for p in presets}


def get_preset(name: str, where: str = "config") -> Preset:
    """The preset called ``name``; an unknown name is an error listing the known ones."""
    return PRESETS.get(name, where)
