"""What a table row is: a method label for each trial, derived from its config.

A trial whose method settings equal a preset's is that preset (``pin``, ``rlprompt``); one that
differs from the closest preset with the same regulariser is labelled by the difference
(``pin α=0.3``), so an alpha ablation gives one row per alpha. ``by=[...]`` labels with chosen
config fields instead (``alpha=0.3, seed=1``).
"""

from __future__ import annotations

import math

import pandas as pd

from pinbench.config import PRESETS, TrainConfig, preset_values
from pinbench.errors import ConfigError

# The settings that make a method (the rest, such as the dataset or the seed, vary within a row).
METHOD_FIELDS = ("regularizer", "alpha", "q", "top_k", "sample_top_k", "objective", "replay_size",
                 "reward_scale")
# How a field is written in a label.
SHORT = {"alpha": "α", "q": "q", "top_k": "top-k", "sample_top_k": "sample top-k", "objective": "obj",
         "replay_size": "replay", "reward_scale": "scale"}
# Swept hyperparameters the ablation views plot against.
ABLATION_FIELDS = ("alpha", "q", "top_k")

_DEFAULTS = TrainConfig().to_dict()


def _same(a, b) -> bool:
    if pd.isna(a) or pd.isna(b):
        return pd.isna(a) and pd.isna(b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def fmt_value(v) -> str:
    if pd.isna(v):
        return "off"
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return f"{v:g}" if isinstance(v, float) else str(v)


def method_settings(row: pd.Series | dict) -> dict:
    """The METHOD_FIELDS of a trials row (``config.<field>`` columns; absent ones take defaults)."""
    get = row.get
    out = {}
    for f in METHOD_FIELDS:
        v = get(f"config.{f}", _DEFAULTS[f])
        out[f] = None if pd.isna(v) else v
    if out["regularizer"] != "tsallis":
        out["q"] = None  # q only means something for the general Tsallis regulariser
    return out


def method_label(row: pd.Series | dict) -> str:
    """``pin``, ``rlprompt``, ``pin α=0.3`` or, with no preset of the same regulariser,
    ``tsallis q=1.5 α=1``."""
    settings = method_settings(row)
    best: tuple[int, str, list[str]] | None = None
    for name, preset in PRESETS.items():
        if preset["regularizer"] != settings["regularizer"]:
            continue
        full = {**_DEFAULTS, **preset_values(name)}
        if settings["regularizer"] != "tsallis":
            full["q"] = None
        diff = [f for f in METHOD_FIELDS[1:] if not _same(settings[f], full[f])]
        if best is None or len(diff) < best[0]:
            best = (len(diff), name, diff)
    if best is None:
        keys = ["q"] if settings["regularizer"] == "tsallis" else []
        return " ".join([settings["regularizer"], *(f"{SHORT[k]}={fmt_value(settings[k])}" for k in [*keys, "alpha"])])
    _, name, diff = best
    return " ".join([name, *(f"{SHORT[f]}={fmt_value(settings[f])}" for f in diff)])


def label_methods(trials: pd.DataFrame, by: list[str] | None = None) -> pd.Series:
    """A method label per trial: derived from the config (``method_label``) or from ``by`` fields."""
    if not by:
        return trials.apply(method_label, axis=1).rename("method")
    cols = [b if b in trials.columns else f"config.{b}" for b in by]
    missing = [b for b, c in zip(by, cols) if c not in trials.columns]
    if missing:
        raise ConfigError(f"cannot group methods by {missing}: no such column in trials.parquet "
                          f"(config fields: {sorted(c[7:] for c in trials.columns if c.startswith('config.'))})")
    return trials[cols].apply(lambda r: ", ".join(f"{c.removeprefix('config.')}={fmt_value(v)}" for c, v in r.items()),
                              axis=1).rename("method")


def order_methods(labels: list[str]) -> list[str]:
    """Presets first in their PRESETS order, then the rest sorted naturally (α=0.1 before α=1)."""
    def key(label: str):
        head = label.split(" ")[0]
        rank = list(PRESETS).index(head) if head in PRESETS else len(PRESETS)
        parts = []
        for tok in label.replace(",", " ").split():
            value = tok.split("=", 1)[-1]
            try:
                parts.append((0, float(value), ""))
            except ValueError:
                parts.append((1, 0.0, tok))
        return rank, head, parts
    return sorted(dict.fromkeys(labels), key=key)
