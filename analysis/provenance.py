"""What produced a report's rows: the provenance columns of the trials (``pinbench.provenance``)
summarised as one line per distinct set-up (code, libraries, machine), and warnings when the rows
came from different code, so a reader can tell which code made a table."""

from __future__ import annotations

import pandas as pd

from pinbench.provenance import CODE_COLUMNS, PROVENANCE_COLUMNS

UNKNOWN = "—"  # a row written before provenance was recorded (schema < 3), or a value not known
# The set-up columns, as the report's table names them; start and end times are aggregated.
SETUP_COLUMNS = {
    "pinbench_version": "pinbench", "pinbench_commit": "commit", "pinbench_dirty": "dirty",
    "python_version": "Python", "torch_version": "torch", "transformers_version": "transformers",
    "ray_version": "ray", "pyarrow_version": "pyarrow", "device_name": "device", "dtype": "dtype",
    "threads": "threads", "host": "host",
}


def _shown(column: str, value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return UNKNOWN
    if column == "pinbench_commit":
        return str(value)[:12]
    if column == "pinbench_dirty":
        return "yes" if bool(value) else "no"
    if column == "threads":
        return str(int(value))
    return str(value)


def provenance_table(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per distinct set-up of ``trials``, with its trial count and the first start and
    last end (UTC); rows without provenance show ``—``."""
    frame = pd.DataFrame({name: [_shown(col, v) for v in trials[col]] if col in trials.columns
                          else [UNKNOWN] * len(trials) for col, name in SETUP_COLUMNS.items()})
    for col in ("started_at", "ended_at"):
        frame[col] = trials[col].to_numpy() if col in trials.columns else None
    keys = list(SETUP_COLUMNS.values())
    table = frame.groupby(keys, sort=False, dropna=False).agg(
        trials=("host", "size"), first_start=("started_at", "min"), last_end=("ended_at", "max")).reset_index()
    for col in ("first_start", "last_end"):
        table[col] = table[col].map(lambda v: UNKNOWN if v is None or pd.isna(v) else v)
    return table


def provenance_warnings(trials: pd.DataFrame) -> list[str]:
    """A warning per code column whose rows differ (their numbers may not be comparable), and one
    for rows that record no provenance."""
    warnings = []
    for col in CODE_COLUMNS:
        if col not in trials.columns:
            continue
        values = sorted({_shown(col, v) for v in trials[col]} - {UNKNOWN})
        if len(values) > 1:
            counts = trials[col].map(lambda v: _shown(col, v)).value_counts()
            warnings.append(f"the rows come from {len(values)} different {SETUP_COLUMNS[col]} "
                            f"{'states' if col == 'pinbench_dirty' else 'values'} "
                            f"({', '.join(f'{v}: {counts[v]} trial(s)' for v in values)}): "
                            "their numbers may not be comparable (see Provenance)")
    present = [c for c in PROVENANCE_COLUMNS if c in trials.columns]
    missing = int(trials[present].isna().all(axis=1).sum()) if present else len(trials)
    if missing:
        warnings.append(f"{missing} trial(s) record no provenance (written before results schema 3): "
                        "which code made them is unknown")
    return warnings


def provenance_markdown(table: pd.DataFrame) -> list[str]:
    """The report.md section."""
    cell = lambda v: str(v).replace("|", "\\|")  # noqa: E731
    header = ["set-up", *table.columns]
    lines = ["## Provenance", "",
             "What produced the rows: one line per distinct set-up of code, libraries and machine "
             f"(times UTC; {UNKNOWN}: not recorded). Files: [CSV](tables/provenance.csv)", "",
             "| " + " | ".join(header) + " |", "|" + "|".join([":---"] * len(header)) + "|"]
    for i, row in enumerate(table.itertuples(index=False), 1):
        lines.append("| " + " | ".join([str(i), *map(cell, row)]) + " |")
    return [*lines, ""]
