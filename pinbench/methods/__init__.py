"""Methods: each turns a task into a chosen prompt (``base.Method``); the registry is
``pinbench.registry.METHODS``. Presets are named recipes of a method, each registered by its method's
``config`` module in ``pinbench.presets.PRESETS`` (re-exported here)."""

from __future__ import annotations

from ..presets import PRESETS, Preset, get_preset
from .base import Method, PromptBook

__all__ = ["Method", "Preset", "PromptBook", "PRESETS", "get_preset"]
