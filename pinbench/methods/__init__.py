"""Methods: each turns a task into a chosen prompt (``base.Method``); the registry is
``pinbench.registry.METHODS``. Presets are named recipes of a method, each registered by its method's
``config`` module in ``pinbench.presets.PRESETS`` (re-exported here)."""

from __future__ import annotations

from ..presets import PRESETS, Preset, get_preset

__all__ = ["Method", "Preset", "PromptBook", "PRESETS", "get_preset"]


def __getattr__(name: str):
    # The base class (torch) on first use: a method's config module, inside this package, is
    # imported by commands that load no torch (registry.py: ``configs``).
    if name in ("Method", "PromptBook"):
        from . import base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
