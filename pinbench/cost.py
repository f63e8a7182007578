"""What a suite will cost: its trials' steps times measured step times, per model set-up.

Step times come from two kinds of source (``load_step_times``):

* a JSON written by ``bench/gpu_paper_shapes.py`` on a GPU: ``{"setups": [{"task", "method",
  "models": {dotted model fields}, "step_s", "eval_s", "step_s_by_dataset": {dataset: s}, "device"},
  ...]}``, seconds per training step (``step_s_by_dataset`` where the step scales with a dataset's
  training split) and per evaluation;
* a results store of earlier runs (a directory with ``trials.parquet``): each completed trial's
  ``wall_time_s / steps`` (evaluations and test included), the median per set-up (and dataset).

A trial's projected time is ``steps x step_s + evaluations x eval_s``; a set-up's hours are its
trials' sum, and device-hours those hours times the suite's ``resources.gpu`` per trial (two
trials sharing a GPU at 0.5 cost half a GPU-hour each per hour). ``pinbench sweep SUITE --dry-run``
prints the table (``print_projection``) when a source has a set-up of the suite.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .errors import ConfigError
from .smoke import group_setups, setup_key

GPU_JSON = Path(__file__).resolve().parent.parent / "bench" / "gpu_paper_shapes.json"
"""Where ``bench/gpu_paper_shapes.py`` writes its numbers by default (looked for by --dry-run)."""


@dataclass
class StepTime:
    """Measured time of one model set-up's step."""

    task: str
    method: str
    models: dict
    step_s: float
    eval_s: float = 0.0
    by_dataset: dict = field(default_factory=dict)
    source: str = ""

    @property
    def key(self) -> tuple:
        return (self.task, self.method, tuple(sorted(self.models.items())))

    def for_dataset(self, dataset: str | None) -> float:
        return float(self.by_dataset.get(dataset, self.step_s)) if dataset is not None else self.step_s


def _seconds(value, where: str, allow_zero: bool = False) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or \
            value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{where}: expected a finite number of seconds {'>= 0' if allow_zero else '> 0'}, "
                          f"got {value!r}")
    return float(value)


def from_json(path: str | Path) -> list[StepTime]:
    """The set-ups of a ``bench/gpu_paper_shapes.py`` JSON, each field checked (a wrong file is one
    line naming the entry, not a projection from wrong numbers)."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"step times '{path}' cannot be read as JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("setups", []), list):
        raise ConfigError(f"step times '{path}': expected a JSON object with a 'setups' list "
                          "(bench/gpu_paper_shapes.py writes one)")
    device = doc.get("device", "")
    out = []
    for i, entry in enumerate(doc.get("setups", [])):
        where = f"step times '{path}': setups[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected an object, got {type(entry).__name__}")
        if entry.get("step_s") is None:
            continue  # a set-up the script could not run (out of memory): no time to project from
        for key in ("task", "method"):
            if not isinstance(entry.get(key), str):
                raise ConfigError(f"{where}.{key}: expected a name, got {entry.get(key)!r}")
        models = entry.get("models") or {}
        by_dataset = entry.get("step_s_by_dataset") or {}
        for key, value in (("models", models), ("step_s_by_dataset", by_dataset)):
            if not isinstance(value, dict):
                raise ConfigError(f"{where}.{key}: expected an object, got {type(value).__name__}")
        by_dataset = {str(d): _seconds(v, f"{where}.step_s_by_dataset.{d}") for d, v in by_dataset.items()}
        out.append(StepTime(entry["task"], entry["method"], dict(models), _seconds(entry["step_s"], f"{where}.step_s"),
                            _seconds(entry.get("eval_s") or 0.0, f"{where}.eval_s", allow_zero=True), by_dataset,
                            f"{path.name}{' (' + str(device) + ')' if device else ''}"))
    return out


def from_store(path: str | Path) -> list[StepTime]:
    """Median seconds per step of each set-up's completed trials in a store (wall time / steps)."""
    path = Path(path)
    file = path / "trials.parquet" if path.is_dir() else path
    try:
        trials = pd.read_parquet(file)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise ConfigError(f"step times '{file}' cannot be read as a results table ({exc})") from None
    if not len(trials):
        return []
    missing = sorted({"status", "steps", "wall_time_s"} - set(trials.columns))
    if missing:
        raise ConfigError(f"step times '{file}': not a pinbench trials table (no column(s) {missing})")
    trials = trials[(trials["status"] == "completed") & (trials["steps"] > 0) & (trials["wall_time_s"] > 0)]
    groups: dict[tuple, list[dict]] = {}
    for row in trials.to_dict("records"):
        groups.setdefault(setup_key(row), []).append(row)
    out = []
    for key, rows in groups.items():
        per_step = pd.Series([r["wall_time_s"] / r["steps"] for r in rows])
        datasets = pd.DataFrame({"dataset": [r.get("dataset") for r in rows], "s": per_step})
        by_dataset = {d: float(g["s"].median()) for d, g in datasets.groupby("dataset") if d is not None}
        out.append(StepTime(key[0], key[1], dict(key[2]), float(per_step.median()), 0.0, by_dataset,
                            f"store {file.parent.name} ({len(rows)} trials)"))
    return out


def load_step_times(path: str | Path) -> list[StepTime]:
    """A GPU-script JSON or a results store (a directory with trials.parquet, or the file)."""
    path = Path(path)
    if path.suffix == ".json":
        return from_json(path)
    if (path / "trials.parquet").is_file() or (path.is_file() and path.suffix == ".parquet"):
        return from_store(path)
    raise ConfigError(f"step times '{path}': expected a JSON of bench/gpu_paper_shapes.py or a results store "
                      "(a directory with trials.parquet)")


def default_sources(suite, results: str | None = None) -> list[Path]:
    """The suite's own store under ``results`` (earlier runs of it), then the GPU script's default JSON."""
    out = []
    if results is not None and "://" not in str(results):
        store = Path(results) / suite.name
        if (store / "trials.parquet").is_file():
            out.append(store)
    if GPU_JSON.is_file():
        out.append(GPU_JSON)
    return out


def project(suite, times: list[StepTime]) -> pd.DataFrame:
    """One row per model set-up of the suite: trials, steps, the step time used (the first source
    that has the set-up), hours and device-hours; NaN where no source has it."""
    known: dict[tuple, StepTime] = {}
    for t in times:
        known.setdefault(t.key, t)
    gpu = float(suite.resources.get("gpu") or 0)
    rows = []
    for setup in group_setups(suite):
        found = known.get(setup.key)
        steps = sum(t.spec.run.steps for t in setup.trials)
        evals = sum(math.ceil(t.spec.run.steps / t.spec.run.eval_every) for t in setup.trials)
        seconds = math.nan
        step_s = math.nan
        if found is not None:
            per_trial = [t.spec.run.steps * found.for_dataset(t.spec.task_class.dataset_name(t.spec.task_config))
                         + math.ceil(t.spec.run.steps / t.spec.run.eval_every) * found.eval_s for t in setup.trials]
            seconds = sum(per_trial)
            step_s = sum(t.spec.run.steps * found.for_dataset(t.spec.task_class.dataset_name(t.spec.task_config))
                         for t in setup.trials) / steps
        rows.append({"set-up": setup.label, "presets": ", ".join(setup.presets), "trials": len(setup.trials),
                     "steps": steps, "evaluations": evals, "step_s": step_s, "hours": seconds / 3600,
                     "device_hours": seconds / 3600 * gpu if gpu else math.nan,
                     "source": found.source if found is not None else ""})
    return pd.DataFrame(rows)


def print_projection(suite, console, paths=(), results: str | None = None) -> pd.DataFrame | None:
    """``--dry-run``'s cost table: from ``paths`` (``--step-times``) and the default sources; one
    line instead when no source has a set-up of the suite. Returns the projection (None then)."""
    from rich.table import Table

    sources = [Path(p) for p in paths] + [p for p in default_sources(suite, results) if p not in map(Path, paths)]
    times = [t for source in sources for t in load_step_times(source)]
    frame = project(suite, times)
    if not len(frame) or frame["source"].eq("").all():
        console.print("no measured step times for this suite's model set-ups: run bench/gpu_paper_shapes.py on a "
                      "GPU (or the suite itself) and pass --step-times FILE_OR_STORE for a cost projection")
        return None
    gpu = float(suite.resources.get("gpu") or 0)
    table = Table(title=f"{suite.name}: projected cost (trials x steps x measured step time)")
    for col in ("set-up", "presets", "trials", "steps", "s/step", "hours", "GPU-hours", "source"):
        table.add_column(col, justify="right" if col in ("trials", "steps", "s/step", "hours", "GPU-hours") else "left")
    fmt = lambda v, spec: "-" if v != v else format(v, spec)  # noqa: E731 - NaN as "-"
    for row in frame.to_dict("records"):
        table.add_row(row["set-up"], row["presets"], str(row["trials"]), f"{row['steps']:,}", fmt(row["step_s"], ".3f"),
                      fmt(row["hours"], ",.1f"), fmt(row["device_hours"], ",.1f"), row["source"] or "no measurement")
    console.print(table)
    covered = frame[frame["source"] != ""]
    total = covered["hours"].sum()
    line = f"measured set-ups: {len(covered)}/{len(frame)}; {total:,.1f} trial-hours"
    if gpu:
        line += f", {covered['device_hours'].sum():,.1f} GPU-hours at {gpu:g} GPU per trial"
    console.print(line + " (set-ups without a measurement not counted)")
    return frame
