"""Did the runs settle? Per trial, from its history: the policy's support at fractions of
training, and whether the greedy prompt still changed over the last evaluations.

A step budget is enough when the support has stopped falling and the greedy prompt stays the
same between evaluations; a report built from runs that had not settled compares snapshots.
"""

from __future__ import annotations

import pandas as pd

from .tables import Column

FRACTIONS = (0.1, 0.25, 0.5, 1.0)
LAST_EVALUATIONS = 5

SETTLING_COLUMNS = (
    *(Column(f"support_at_{int(100 * f)}", f"Support at {int(100 * f)}%", None, 1, short=f"S{int(100 * f)}")
      for f in FRACTIONS),
    Column("greedy_changes", f"Greedy changes (last {LAST_EVALUATIONS} evals)", "lower", 1, short="Chg."),
    Column("greedy_repeats", "Greedy prompts repeating a token (%)", "lower", 1, 100.0, short="Rep."),
)
SETTLING_NOTES = (f"Support: tokens the sampling policy can draw, mean over positions, at the step nearest each "
                  f"fraction of the run; Greedy changes: how many times the greedy prompt changed between the "
                  f"last {LAST_EVALUATIONS} evaluations (0: settled); repeats: share of all evaluated greedy "
                  f"prompts in which a word occurs twice or more.")


def _repeats(prompt: str) -> bool:
    words = str(prompt).split()
    return len(words) != len(set(words))


def settling(history: pd.DataFrame) -> pd.DataFrame:
    """One row per trial: ``support_at_<pct>``, ``greedy_changes``, ``greedy_repeats``."""
    rows = []
    for trial_id, part in history.groupby("trial_id"):
        part = part.sort_values("step")
        row = {"trial_id": trial_id}
        if "support" in part.columns and part["support"].notna().any():
            steps = part.loc[part["support"].notna(), ["step", "support"]]
            last = steps["step"].max()
            for f in FRACTIONS:
                nearest = (steps["step"] - f * last).abs().idxmin()
                row[f"support_at_{int(100 * f)}"] = float(steps.loc[nearest, "support"])
        if "greedy_prompt" in part.columns:
            greedy = part["greedy_prompt"].dropna().astype(str).tolist()
            tail = greedy[-LAST_EVALUATIONS:]
            row["greedy_changes"] = float(sum(a != b for a, b in zip(tail, tail[1:]))) if len(tail) > 1 else None
            row["greedy_repeats"] = sum(map(_repeats, greedy)) / len(greedy) if greedy else None
        rows.append(row)
    return pd.DataFrame(rows, columns=["trial_id", *(c.key for c in SETTLING_COLUMNS)])
