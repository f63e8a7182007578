"""What a table row is: a method label for each trial, from what the trial recorded.

Every trial records its method and preset (results schema 2). A trial whose method fields equal its
preset's is that preset (``pin``, ``rlprompt``); one that changed some is labelled by the change
(``pin α=0.3``), so an alpha ablation gives one row per alpha. A trial without a preset is its
method plus the fields it changed from the method's defaults (``rl regularizer=tsallis q=1.5``).
``by=[...]`` labels with chosen columns instead (``method.alpha=0.3, run.seed=1``).
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd

from pinbench.errors import ConfigError
from pinbench.fields import same_value
from pinbench.methods import PRESETS
from pinbench.registry import DEFAULT_TASK, METHODS

# How a field is written in a label (others: their own name).
SHORT = {"alpha": "α", "top_k": "top-k", "sample_top_k": "sample top-k", "objective": "obj",
         "replay_size": "replay", "reward_scale": "scale"}
# Swept hyperparameters the ablation views plot against (``method.<field>`` columns).
ABLATION_FIELDS = ("method.alpha", "method.q", "method.top_k")


def short(column: str) -> str:
    name = column.split(".", 1)[-1]
    return SHORT.get(name, name)


def fmt_value(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "off"
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if isinstance(v, float):  # short, unless that would give two settings one label
        return f"{v:g}" if float(f"{v:g}") == v else repr(v)
    return str(v)


def _reference(method: str, preset: str | None, task: str) -> dict:
    """The method fields a trial is compared with: its preset's for its task, else the defaults."""
    try:
        config_class = METHODS.config_class(method)
    except ConfigError:  # a plug-in method not importable here: compare with nothing
        return {}
    setup = getattr(config_class, "SETUP_FIELDS", ())
    values = {f"method.{f.name}": (f.default if f.default is not dataclasses.MISSING else f.default_factory())
              for f in dataclasses.fields(config_class) if f.name not in setup}
    if preset in PRESETS:
        values.update({k: v for k, v in PRESETS[preset].settings(task).items() if k in values})
    return values


def _value(row, column):
    v = row.get(column)
    return None if v is None or (not isinstance(v, (list, tuple)) and pd.isna(v)) else v


def method_label(row: pd.Series | dict) -> str:
    """``pin``, ``pin α=0.3``, or with no preset ``rl regularizer=tsallis q=1.5``."""
    preset = _value(row, "preset")
    reference = _reference(row["method"], preset, row.get("task", DEFAULT_TASK))
    diff = [c for c, v in reference.items() if c in row and not same_value(_value(row, c), v)]
    head = preset or row["method"]
    return " ".join([head, *(f"{short(c)}={fmt_value(_value(row, c))}" for c in diff)])


def method_settings(trials: pd.DataFrame) -> pd.DataFrame:
    """The ``method.*`` columns of the trials and their preset (what an ablation line holds fixed)."""
    cols = [c for c in trials.columns if c.startswith("method.")]
    return trials[cols].assign(preset=trials["preset"].fillna(""))


def label_methods(trials: pd.DataFrame, by: list[str] | None = None) -> pd.Series:
    """A method label per trial: from what it recorded (``method_label``) or from ``by`` columns."""
    if not by:
        return trials.apply(method_label, axis=1).rename("method")
    sections = ("run.", "task.", "method.")
    cols = []
    for b in by:
        matches = [b] if b in trials.columns else [s + b for s in sections if s + b in trials.columns]
        if len(matches) != 1:
            fields = sorted(c for c in trials.columns if c.startswith(sections))
            raise ConfigError(f"cannot group methods by '{b}': "
                              + ("no such column in trials.parquet" if not matches else f"it is {matches}")
                              + f" (fields: {fields})")
        cols.append(matches[0])
    return trials[cols].apply(lambda r: ", ".join(f"{c}={fmt_value(v)}" for c, v in r.items()),
                              axis=1).rename("method")


def order_methods(labels: list[str]) -> list[str]:
    """Presets first in their PRESETS order, then the rest sorted naturally (α=0.1 before α=1)."""
    def key(label: str):
        head = label.split(" ")[0]
        rank = PRESETS[head].order if head in PRESETS else math.inf  # Preset.order: PIN Table 1, then plug-ins
        parts = []
        for tok in label.replace(",", " ").split():
            value = tok.split("=", 1)[-1]
            try:
                parts.append((0, float(value), ""))
            except ValueError:
                parts.append((1, 0.0, tok))
        return rank, head, parts
    return sorted(dict.fromkeys(labels), key=key)
