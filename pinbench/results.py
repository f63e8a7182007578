"""The results store: three Parquet tables shared by `pinbench train --out` and sweeps.

    trials.parquet   one row per trial: identity, every config field, status, best and test metrics
    history.parquet  one row per (trial, step): per-step training metrics, dev metrics where evaluated
    prompts.parquet  one row per evaluated prompt: greedy prompts at each evaluation, and the best

Every table carries ``schema_version``; the columns are documented in the README ("Results").
Files are written atomically (temporary file + rename).
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .io import write_table, write_text
from .trainer import TrainResult

SCHEMA_VERSION = 1
TABLES = ("trials", "history", "prompts")


def trial_row(result: TrainResult, trial_id: str, suite: str = "", status: str = "completed",
              error: str = "") -> dict:
    """One trials.parquet row: identity, config fields (prefixed ``config.``), results."""
    best = result.best
    row = {
        "schema_version": SCHEMA_VERSION, "suite": suite, "trial_id": trial_id,
        "status": status, "error": error,
        **{f"config.{k}": v for k, v in result.config.to_dict().items()},
        "best_step": best.get("step"), "best_prompt": best.get("prompt"),
        "best_token_ids": best.get("token_ids"),
        "steps": result.steps_done, "wall_time_s": result.wall_time_s,
    }
    row.update({k: v for k, v in best.items() if k.startswith("dev_")})
    row.update(result.test)
    return row


def frames(result: TrainResult, trial_id: str, suite: str = "", status: str = "completed",
           error: str = "") -> dict[str, pd.DataFrame]:
    trials = pd.DataFrame([trial_row(result, trial_id, suite, status, error)])
    history = pd.DataFrame(result.history)
    prompts = pd.DataFrame(result.prompts)
    for frame in (history, prompts):
        frame.insert(0, "trial_id", trial_id)
        frame.insert(0, "schema_version", SCHEMA_VERSION)
    return {"trials": trials, "history": history, "prompts": prompts}


def write_results(out_dir: str | Path, tables: dict[str, pd.DataFrame]) -> dict[str, Path]:
    """Write the three tables under ``out_dir`` (atomically, each file)."""
    out_dir = Path(out_dir)
    paths = {}
    for name in TABLES:
        paths[name] = write_table(tables[name], out_dir / f"{name}.parquet")
    return paths


def write_run(out_dir: str | Path, result: TrainResult, trial_id: str = "run",
              status: str = "completed") -> dict[str, Path]:
    """Everything `pinbench train --out` writes: the three tables and a readable config.json."""
    paths = write_results(out_dir, frames(result, trial_id, status=status))
    paths["config"] = write_text(json.dumps(result.config.to_dict(), indent=2) + "\n", Path(out_dir) / "config.json")
    return paths
