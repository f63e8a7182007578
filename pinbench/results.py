"""The results store's schema, its writer and its upgrade path: one module owns the tables.

    trials.parquet   one row per trial: identity (task, method, preset, dataset, selection rule,
                     prompt tokenizer), every config field (``run.*``, ``task.*``, ``method.*``),
                     status, the chosen prompt and its selection and report metrics
    history.parquet  one row per (trial, iteration): the method's metrics, selection metrics where evaluated
    prompts.parquet  one row per evaluated prompt, and the chosen one (source ``best``)

Every table carries ``schema_version``; the columns are documented in docs/results.md ("Results").
Version 3 adds the provenance columns (``pinbench.provenance``); versions 1 (flat ``config.*``
columns, RL on classification only) and 2 are upgraded on read, their provenance left empty. A store is
a local directory or an object-store prefix (``storage.Location``); each file is replaced whole
(``storage``: temporary file + rename on a disk, one upload in a bucket). ``pinbench.analysis.load`` reads
stores through this module.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path

import pandas as pd

from .errors import ConfigError
from .fields import same_value
from .io import STORE_TABLES as TABLES
from .provenance import PROVENANCE_COLUMNS, environment, utc_now
from .run import RunResult, RunSpec, config_hash
from .storage import Location, resolve

log = logging.getLogger(__name__)

STATUSES = frozenset({"completed", "failed", "interrupted", "stopped"})  # a trials row's status
SCHEMA_VERSION = 3
KNOWN_SCHEMA_VERSIONS = frozenset({1, 2, 3})
# Readers start from trials.parquet: it is written last, so every trial it lists already has its
# history and prompts (a reader between two writes sees history rows of trials it does not list yet).
WRITE_ORDER = ("history", "prompts", "trials")

# What a trials row says about itself, so analysis never infers it from settings.
IDENTITY = ("task", "method", "preset", "dataset", "selection_split", "selection_metric", "selection_mode",
            "report_split", "prompt_tokenizer")

# The columns the analysis relies on, per table (after upgrading).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "trials": ("schema_version", "trial_id", "status", *IDENTITY, "run.seed", "best_prompt"),
    "history": ("schema_version", "trial_id", "step"),
    "prompts": ("schema_version", "trial_id", "step", "source", "prompt"),
}


def identity(spec: RunSpec) -> dict:
    """The trial's task, method, preset, dataset and selection rule, from its spec."""
    task = spec.task_class
    metric = task.metric(task.selection_metric)
    tokenizer = getattr(spec.method_config, "policy_lm", None)
    return {"task": spec.task, "method": spec.method, "preset": spec.preset,
            "dataset": task.dataset_name(spec.task_config), "selection_split": task.selection_split,
            "selection_metric": task.selection_metric, "selection_mode": "max" if metric.higher_is_better else "min",
            "report_split": task.report_split, "prompt_tokenizer": tokenizer}


def repeated_trials(trials: pd.DataFrame) -> list[str]:
    """Trial ids a trials table holds more than once (a store has one row per trial)."""
    return sorted(set(trials.loc[trials["trial_id"].duplicated(), "trial_id"].astype(str)))


def trial_row(result: RunResult, trial_id: str, suite: str = "", status: str = "completed",
              error: str = "") -> dict:
    """One trials.parquet row: identity, config fields (``run.*``, ``task.*``, ``method.*``), results."""
    spec, best = result.spec, result.best
    row = {"schema_version": SCHEMA_VERSION, "suite": suite, "trial_id": trial_id, "status": status,
           "error": error, **identity(spec)}
    if result.prompt_tokenizer is not None:
        row["prompt_tokenizer"] = result.prompt_tokenizer
    row.update({k: v for k, v in spec.to_dict().items() if "." in k})
    row["config_hash"] = config_hash(spec)
    row.update({"best_step": best.get("step"), "best_prompt": best.get("prompt"),
                "best_token_ids": best.get("token_ids"), "steps": result.steps_done,
                "wall_time_s": result.wall_time_s})
    split = spec.task_class.selection_split
    row.update({k: v for k, v in best.items() if k.startswith(f"{split}_") and not isinstance(v, list)})
    row.update(result.test)
    row.update({f"budget_{k}": v for k, v in result.budget.items()})
    row["resumed_at"] = list(result.resumed_at)
    row.update(environment(spec), started_at=result.started_at, ended_at=utc_now())
    return row


def frames(result: RunResult, trial_id: str, suite: str = "", status: str = "completed",
           error: str = "") -> dict[str, pd.DataFrame]:
    trials = pd.DataFrame([trial_row(result, trial_id, suite, status, error)])
    history = pd.DataFrame(result.history)
    prompts = pd.DataFrame(result.prompts)
    for frame in (history, prompts):
        frame.insert(0, "trial_id", trial_id)
        frame.insert(0, "schema_version", SCHEMA_VERSION)
    return {"trials": trials, "history": history, "prompts": prompts}


def write_results(out_dir: str | Path | Location, tables: dict[str, pd.DataFrame]) -> dict[str, Location]:
    """Write the three tables under ``out_dir`` (a path or a URI), each replaced whole, trials last."""
    out = resolve(out_dir)
    return {name: out.join(f"{name}.parquet").write_parquet(tables[name]) for name in WRITE_ORDER}


def write_run(out_dir: str | Path | Location, result: RunResult, trial_id: str = "run",
              status: str = "completed", error: str = "") -> dict[str, Location]:
    """Everything `pinbench train --out` writes: the three tables and a readable config.json."""
    out = resolve(out_dir)
    paths = write_results(out, frames(result, trial_id, status=status, error=error))
    paths["config"] = out.join("config.json").write_text(json.dumps(result.spec.nested(), indent=2) + "\n")
    return paths


class ResultsStore:
    """``<root>/<suite>/`` with the three tables; one entry per trial id, rewritten whole at each
    change (the sweep's driver owns it). ``root`` is a path or a URI (``s3://bucket/prefix``)."""

    def __init__(self, root: str | Path | Location, suite_name: str):
        self.location = resolve(root).join(suite_name)
        self.suite_name = suite_name
        self._tables: dict[str, dict[str, pd.DataFrame]] = {}
        if self.location.join("trials.parquet").is_file():
            loaded = {name: self._read(name) for name in TABLES}
            for tid in loaded["trials"]["trial_id"]:
                self._tables[tid] = {name: df[df["trial_id"] == tid] for name, df in loaded.items()}

    def _read(self, name: str) -> pd.DataFrame:
        """One table of the store this sweep adds to; a missing or damaged one is an error naming
        it (before Ray starts), not a traceback and not a store silently rewritten without it."""
        file = self.location.join(f"{name}.parquet")
        hint = "move the store away, or give the sweep another --results"
        try:
            frame = file.read_parquet()
        except FileNotFoundError:
            raise ConfigError(f"results store '{self.uri}' has trials.parquet but no {name}.parquet; {hint}") from None
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"results store '{self.uri}': cannot read {name}.parquet ({first}); {hint}") from None
        needed = ("trial_id", "status") if name == "trials" else ("trial_id",)
        missing = [c for c in needed if c not in frame.columns]
        if missing and len(frame):
            raise ConfigError(f"results store '{self.uri}': {name}.parquet has no column(s) {missing}: not a "
                              f"pinbench store, or damaged; {hint}")
        repeated = repeated_trials(frame) if name == "trials" else []
        if repeated:
            raise ConfigError(f"results store '{self.uri}': trials.parquet holds trial(s) {repeated[:3]} more than "
                              f"once (a store has one row per trial); {hint}")
        return frame

    @property
    def uri(self) -> str:
        """Where the store is, as given (for messages)."""
        return self.location.uri

    @property
    def dir(self) -> Path | None:
        """The store's local directory; None for a store in an object store."""
        return self.location.local

    def completed(self) -> set[str]:
        return {tid for tid, t in self._tables.items() if t["trials"]["status"].iloc[0] == "completed"}

    def completed_as(self, hashes: dict[str, str]) -> set[str]:
        """Completed trials whose recorded settings (``config_hash``) are still ``hashes[trial_id]``;
        a row written before the hash was recorded counts as unchanged."""
        out = set()
        for tid in self.completed() & set(hashes):
            recorded = self._tables[tid]["trials"].get("config_hash", pd.Series([None])).iloc[0]
            if recorded is None or (isinstance(recorded, float) and recorded != recorded) or recorded == hashes[tid]:
                out.add(tid)
        return out

    def table(self, name: str) -> pd.DataFrame:
        """One table over every trial the store holds (as ``flush`` writes it)."""
        parts = [t[name] for t in self._tables.values() if len(t[name])]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame({"schema_version": [], "trial_id": []})

    def add_completed(self, directory: str | Path) -> str:
        """Add a finished trial from the three tables in a local ``directory`` (its checkpoint)."""
        tables = {name: pd.read_parquet(Path(directory) / f"{name}.parquet") for name in TABLES}
        tid = str(tables["trials"]["trial_id"].iloc[0])
        self._tables[tid] = tables
        self.flush()
        return tid

    def add_failed(self, trial_id: str, spec: RunSpec, error: str) -> None:
        """Record a failed trial; a completed row of the same id (an earlier run of the sweep into
        this store) is kept: a rerun that fails never replaces results already computed."""
        if trial_id in self.completed():
            log.warning("trial %s failed in this run (%s); the store keeps its completed row from an earlier "
                        "run", trial_id, error.splitlines()[0] if error else "")
            return
        result = RunResult(spec)
        self._tables[trial_id] = frames(result, trial_id, self.suite_name, status="failed", error=error)
        self.flush()

    def trial_ids(self) -> set[str]:
        return set(self._tables)

    def set_aside(self, trial_ids: set[str], reason: str) -> Location:
        """Move these trials' rows out of the store into ``superseded-<UTC time>/`` inside it (a
        store of its own that reports read only when named): trials an edited suite no longer has
        would otherwise be averaged with the suite's. Nothing is deleted."""
        stamp = utc_now().replace(":", "").replace("-", "")
        aside = self.location.join(f"superseded-{stamp}")
        moved = {name: pd.concat([self._tables[t][name] for t in sorted(trial_ids) if len(self._tables[t][name])]
                                 or [self._tables[sorted(trial_ids)[0]][name]], ignore_index=True)
                 for name in TABLES}
        write_results(aside, moved)
        aside.join("README.txt").write_text(f"Trials set aside from {self.uri}: {reason}.\n")
        for t in trial_ids:
            del self._tables[t]
        self.flush()
        return aside

    def add_stopped(self, trial_id: str, spec: RunSpec, last: dict, history: list[dict] | None = None) -> None:
        """Record a trial the scheduler stopped early (ASHA) from its reports: status ``stopped``,
        the step it reached, its best prompt so far with its selection-split metrics, and
        ``history``, the rows it reported (one per evaluation; the steps between are not kept)."""
        result = RunResult(spec, steps_done=int(last.get("step") or 0), history=list(history or []))
        split = spec.task_class.selection_split
        best = {k.removeprefix("best_"): v for k, v in last.items()
                if k.startswith(f"best_{split}_") and isinstance(v, (int, float))}
        if last.get("best_prompt") is not None:
            result.best = {"step": None, "prompt": str(last["best_prompt"]), "token_ids": None, **best}
        self._tables[trial_id] = frames(result, trial_id, self.suite_name, status="stopped",
                                        error=f"stopped by the scheduler at step {result.steps_done}")
        self.flush()

    def flush(self) -> None:
        """Rewrite the tables (trials last); first delete what an earlier writer, killed mid-write,
        left of its temporary files (the driver is the store's only writer)."""
        self.location.remove_stale_temp([f"{name}.parquet" for name in TABLES])
        write_results(self.location, {name: self.table(name) for name in TABLES})


# ---------------------------------------------------------------------------------------------
# Reading older stores
# ---------------------------------------------------------------------------------------------


def _config_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """A list-valued config field (``method.prompts``, ``task.style_label_index``) as lists, the
    values ``make_spec`` gives, not the arrays Parquet gives back."""
    columns = [c for c in frame.columns if c.startswith(("run.", "task.", "method.")) and frame[c].dtype == object]
    arrays = [c for c in columns if any(hasattr(v, "tolist") and getattr(v, "ndim", 0) == 1 for v in frame[c])]
    if not arrays:
        return frame
    as_list = lambda v: v.tolist() if hasattr(v, "tolist") and getattr(v, "ndim", 0) == 1 else v  # noqa: E731
    return frame.assign(**{c: frame[c].map(as_list) for c in arrays})


def upgrade(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    """A table of any known version in the current layout. Version 1 trials (RL on few-shot
    classification, flat ``config.<field>`` columns) get their sections and identity. Version 1 did
    not record a preset: as its reports did, a trial's preset is the one of its regulariser that
    differs from it in the fewest method fields (labels then name the differences)."""
    if table == "trials" and len(frame):  # versions 1 and 2 recorded no provenance
        frame = frame.assign(**{c: None for c in PROVENANCE_COLUMNS if c not in frame.columns})
        frame = _config_lists(frame)
    if table != "trials" or not len(frame) or "config.dataset" not in frame.columns:
        return frame
    from .methods.rl.config import PRESETS, RLConfig
    from .run import RunConfig
    from .tasks.classification.task import ClassificationConfig

    frame = frame.copy()
    sections = {"run": RunConfig, "task": ClassificationConfig, "method": RLConfig}
    owner = {f.name: s for s, cls in sections.items() for f in dataclasses.fields(cls)}
    frame = frame.rename(columns={c: f"{owner[c[7:]]}.{c[7:]}" for c in frame.columns
                                  if c.startswith("config.") and c[7:] in owner})
    frame = frame.drop(columns=[c for c in frame.columns if c.startswith("config.")])

    def preset_of(row) -> str | None:
        best = None
        for name, preset in PRESETS.items():
            values = {k: v for k, v in preset.values_for("classification").items() if k.startswith("method.")}
            if values["method.regularizer"] != row.get("method.regularizer"):
                continue
            diff = sum(not same_value(row.get(k), v) for k, v in values.items())
            if best is None or diff < best[0]:
                best = (diff, name)
        return None if best is None else best[1]

    frame["task"], frame["method"] = "classification", "rl"
    frame["preset"] = frame.apply(preset_of, axis=1)
    frame["dataset"] = frame["task.dataset"]
    frame["selection_split"], frame["selection_metric"], frame["selection_mode"] = "dev", "accuracy", "max"
    frame["report_split"] = "test"
    frame["prompt_tokenizer"] = frame["method.policy_lm"]
    return frame

