"""Read one or several results stores (local directories or ``s3://`` / ``gs://`` / ``file://``
URIs, resolved by ``pinbench.storage``) into pandas frames.

A store is a directory with ``trials.parquet``, ``history.parquet`` and ``prompts.parquet`` (what
``pinbench sweep`` and ``pinbench train --out`` write; columns in docs/results.md, "Results"). A path
may also be a results root whose subdirectories are stores (``results/`` holding one directory per
suite). Trial ids are qualified with the store's name when two stores share one (two
``pinbench train --out`` runs are both ``run``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from pinbench.errors import ConfigError, PinbenchError
from pinbench.results import KNOWN_SCHEMA_VERSIONS, REQUIRED_COLUMNS, STATUSES, TABLES, repeated_trials, upgrade
from pinbench.storage import Location, resolve


class ResultsError(PinbenchError):
    """A results store is missing, empty, malformed or from an unknown schema version."""


@dataclass
class Store:
    """One results directory: where it is and what the report calls it."""

    location: Location
    label: str
    """Short unique name (the directory's name), used to qualify clashing trial ids."""

    @property
    def uri(self) -> str:
        """As the user gave it (a path or a URI)."""
        return self.location.uri

    @property
    def path(self) -> str:
        """The directory inside its filesystem."""
        return self.location.path

    def exists(self, name: str) -> bool:
        return self.location.join(name).is_file()

    def display(self, name: str) -> str:
        return self.location.join(name).uri

    def read(self, name: str, what: str = "results file", hint: str = "") -> pd.DataFrame:
        """A Parquet file of the store; a truncated or foreign file is an error naming it."""
        try:
            return self.location.join(name).read_parquet()
        except Exception as exc:  # ArrowInvalid, OSError
            raise ResultsError(f"cannot read {what} '{self.display(name)}': {exc}{hint}") from exc

    def write(self, name: str, frame: pd.DataFrame) -> None:
        """Write a Parquet file into the store, replacing it whole (``pinbench.storage``)."""
        self.location.join(name).write_parquet(frame)


@dataclass
class Results:
    """The three tables of every store, concatenated; each row has a ``store`` column."""

    trials: pd.DataFrame
    history: pd.DataFrame
    prompts: pd.DataFrame
    stores: list[Store] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What loading changed that a reader should know (copies of one trial counted once)."""

    def completed(self) -> pd.DataFrame:
        return self.trials[self.trials["status"] == "completed"]


def find_stores(uris: list[str]) -> list[Store]:
    """Each argument is a store or a root of stores; error if one holds no results at all."""
    stores: list[Store] = []
    for uri in uris:
        try:
            root = resolve(str(uri))
        except ConfigError as exc:
            raise ResultsError(str(exc)) from exc
        if not root.exists():
            raise ResultsError(f"results directory '{uri}' does not exist")
        if not root.is_dir():
            raise ResultsError(f"'{uri}' is not a directory; pass a results directory (with trials.parquet)")
        store = Store(root, Path(root.path).name or str(uri))
        if store.exists("trials.parquet"):
            below = root.stores_below()
            if below:  # which did the user mean? reading only the run dropped the sweeps' trials unseen
                raise ResultsError(f"'{uri}' is a run's store (trials.parquet) with stores below it "
                                   f"({', '.join(below[:3])}); move one or the other, so that a directory is "
                                   "a store or a root of stores")
            stores.append(store)
            continue
        found = [s for s in (Store(c, c.name) for c in root.subdirectories()) if s.exists("trials.parquet")]
        if not found:
            raise ResultsError(f"no results in '{uri}': expected {', '.join(t + '.parquet' for t in TABLES)} "
                               "there or in its subdirectories (written by `pinbench sweep` or `pinbench train --out`)")
        stores.extend(found)
    stores = _distinct(stores)
    counts, seen = Counter(s.label for s in stores), Counter()
    for s in stores:  # two stores with one directory name: number them
        if counts[s.label] > 1:
            base = s.label
            seen[base] += 1
            s.label = f"{base}#{seen[base]}"
    return stores


def _store_key(store: Store) -> str:
    """Where a store really is: a local directory with symlinks, '..' and a trailing '/' resolved;
    a bucket prefix by its normalised URI."""
    local = store.location.local
    return f"file://{Path(local).resolve()}" if local is not None else store.location.uri.rstrip("/")


def _distinct(stores: list[Store]) -> list[Store]:
    """Each store once, however often or under whichever names it was given (``runs/a runs/a``, a
    root and a store inside it, a symlink): a trial counted twice would be two samples of one run."""
    seen: set[str] = set()
    out = []
    for store in stores:
        key = _store_key(store)
        if key not in seen:
            seen.add(key)
            out.append(store)
    return out


def read_table(store: Store, name: str) -> pd.DataFrame:
    """One table of one store, checked: present, readable, a known schema version, the columns."""
    display = store.display(f"{name}.parquet")
    if not store.exists(f"{name}.parquet"):
        raise ResultsError(f"results file '{display}' is missing (a store has {', '.join(TABLES)})")
    frame = store.read(f"{name}.parquet")
    if "schema_version" not in frame.columns and len(frame):
        raise ResultsError(f"results file '{display}' has no 'schema_version' column; is it a pinbench results table?")
    if len(frame) and not pd.api.types.is_integer_dtype(frame["schema_version"].dropna()):
        example = next((v for v in frame["schema_version"] if not isinstance(v, int)), None)
        raise ResultsError(f"results file '{display}': column 'schema_version' should hold whole numbers, "
                           f"has {type(example).__name__} values such as {example!r}")
    versions = set(pd.unique(frame["schema_version"].dropna()).tolist()) if len(frame) else set()
    unknown = sorted(v for v in versions if v not in KNOWN_SCHEMA_VERSIONS)
    if unknown:
        raise ResultsError(f"results file '{display}' has schema version {unknown[0]}, which this pinbench does not "
                           f"know (known: {sorted(KNOWN_SCHEMA_VERSIONS)}); upgrade pinbench to read it")
    frame = upgrade(frame, name)
    if len(frame):
        missing = [c for c in REQUIRED_COLUMNS[name] if c not in frame.columns]
        if missing:
            raise ResultsError(f"results file '{display}' lacks column(s) {missing}")
    else:  # an empty table (a store whose trials all failed early) keeps its documented columns
        frame = frame.reindex(columns=list(dict.fromkeys([*frame.columns, *REQUIRED_COLUMNS[name]])))
    _check_types(frame, display)
    for column in NOT_NULL.get(name, ()):
        empty = frame[column].isna()
        if empty.any():  # a row the tables would drop silently (no status: neither completed nor failed)
            where = f" (trial {frame.loc[empty, 'trial_id'].iloc[0]!r})" if column != "trial_id" else ""
            raise ResultsError(f"results file '{display}': column '{column}' is empty in {int(empty.sum())} "
                               f"row(s){where}; every row needs it")
    keys = {"history": ["trial_id", "step"], "prompts": ["trial_id", "step", "source", "prompt"]}.get(name)
    if keys and len(frame):
        twice = frame.duplicated(subset=keys)
        if twice.any():  # a table appended to itself: each step would weigh twice in the means
            first = frame.loc[twice].iloc[0]
            raise ResultsError(f"results file '{display}' holds {int(twice.sum())} row(s) twice (trial "
                               f"{first['trial_id']!r}, step {first['step']}); a store has one row per "
                               + ("step of a trial" if name == "history" else "prompt found"))
    if name == "trials" and len(frame):
        repeated = repeated_trials(frame)
        if repeated:  # counted twice, it would be two samples of one run
            raise ResultsError(f"results file '{display}' holds trial(s) {repeated[:3]} more than once "
                               "(a store has one row per trial)")
        unknown = sorted(set(frame["status"].dropna()) - STATUSES)
        if unknown:  # a 'COMPLETED' row would be left out of the tables as if it had failed
            raise ResultsError(f"results file '{display}': status {unknown[0]!r} is not one of {sorted(STATUSES)}")
    frame.insert(0, "store", store.label)
    return frame



# Columns whose type the report computes with: numbers (means, t-tests) and text (ids, status).
NUMERIC_SUFFIXES = ("_accuracy", "_reward", "_s")
NUMERIC_COLUMNS = ("step", "steps", "run.seed", "schema_version", "support", "entropy", "reward_mean")
TEXT_COLUMNS = ("trial_id", "status", "task", "method", "dataset", "best_prompt")
# Columns every row must fill: what a trial is (its row is grouped and filtered by them) and when.
NOT_NULL = {"trials": ("trial_id", "status", "task", "method", "dataset"), "history": ("trial_id", "step")}


def _check_types(frame: pd.DataFrame, display: str) -> None:
    """A table whose columns hold the wrong type (accuracies as text, a step as a float string) is
    an error naming the column, not a mean of strings or a silently dropped row."""
    for column in frame.columns:
        values = frame[column].dropna()
        if not len(values):
            continue
        numeric = column in NUMERIC_COLUMNS or (
            column.startswith(("dev_", "test_", "train_", "best_")) and column.endswith(NUMERIC_SUFFIXES))
        if numeric and (not pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
            bad = values[pd.to_numeric(values, errors="coerce").isna()]
            example = bad.iloc[0] if len(bad) else values.iloc[0]
            raise ResultsError(f"results file '{display}': column '{column}' should hold numbers, "
                               f"has {type(example).__name__} values such as {example!r}")
        if numeric and column.endswith("_accuracy"):
            outside = values[(values < 0) | ((values > 1) & (values != float("inf")))]
            if len(outside):  # 50.0 written as a percent would be reported as 5000% (inf: a warning, left out)
                raise ResultsError(f"results file '{display}': column '{column}' holds {float(outside.iloc[0])!r}; "
                                   "accuracies are fractions between 0 and 1")
        if column in TEXT_COLUMNS and not all(isinstance(v, str) for v in values):
            example = next(v for v in values if not isinstance(v, str))
            raise ResultsError(f"results file '{display}': column '{column}' should hold text, "
                               f"has {type(example).__name__} values such as {example!r}")


def load_results(paths: list[str | Path] | str | Path) -> Results:
    """Load and concatenate every store under ``paths``."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    stores = find_stores([str(p) for p in paths])
    tables: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for store in stores:
        for name in TABLES:
            tables[name].append(read_table(store, name))
    merged = {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()}
    if not len(merged["trials"]):
        raise ResultsError(f"no trials in {', '.join(s.display('trials.parquet') for s in stores)}")
    _check_config_types(merged["trials"], stores)
    notes = _drop_copies(merged)
    # Trial ids must be unique across stores: qualify them with the store where they clash.
    owners = merged["trials"].groupby("trial_id")["store"].nunique()
    clashing = set(owners[owners > 1].index)
    if clashing:
        for frame in merged.values():
            hit = frame["trial_id"].isin(clashing)
            frame.loc[hit, "trial_id"] = frame.loc[hit, "store"] + "/" + frame.loc[hit, "trial_id"].astype(str)
    return Results(merged["trials"], merged["history"], merged["prompts"], stores, notes)


def _check_config_types(trials: pd.DataFrame, stores: list[Store]) -> None:
    """A setting (``method.alpha``) held as text in some rows and as a number in others, such as
    a hand-edited ``"1.0"``, would make two methods of one: refused, naming the store."""
    display = {s.label: s.display("trials.parquet") for s in stores}
    for column in (c for c in trials.columns if c.startswith(("run.", "task.", "method."))):
        values = trials[column].dropna()
        text = values.map(lambda v: isinstance(v, str))
        number = values.map(lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
        if text.any() and number.any():
            odd = text if text.sum() <= number.sum() else number  # the fewer rows are the odd ones
            row = trials.loc[odd[odd].index[0]]
            raise ResultsError(f"results file '{display.get(row['store'], row['store'])}': column '{column}' holds "
                               f"{row[column]!r} for trial {row['trial_id']!r}, a {type(row[column]).__name__} "
                               "where other trials hold a " + ("number" if odd is text else "text") +
                               "; one setting has one type")


def _drop_copies(merged: dict[str, pd.DataFrame]) -> list[str]:
    """A trial row that equals one of another store in everything but the store (a store copied or
    synced under a second path: the same run, started at the same time on the same host) is one
    trial: its rows in the later store go, in every table, so means and tests count it once."""
    trials = merged["trials"]
    if trials["store"].nunique() < 2:
        return []
    import json

    other = [c for c in trials.columns if c != "store"]
    keys = [json.dumps([_plain(v) for v in row], default=str)
            for row in trials[other].itertuples(index=False, name=None)]
    copies = pd.Series(keys, index=trials.index).duplicated()
    if not copies.any():
        return []
    dropped = set(zip(trials.loc[copies, "store"], trials.loc[copies, "trial_id"]))
    for name, frame in merged.items():
        hit = pd.Series([(s, t) in dropped for s, t in zip(frame["store"], frame["trial_id"])], index=frame.index)
        merged[name] = frame[~hit].reset_index(drop=True)
    by_store = Counter(s for s, _ in dropped)
    return [f"store '{store}' repeats {n} trial(s) of another store given (a copy of the same runs): "
            "each is counted once" for store, n in sorted(by_store.items())]


def _plain(value):
    """A cell as JSON can hold it (arrays of list columns as lists; NaN and None alike)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if value is None or (isinstance(value, float) and value != value):
        return None
    return value
