"""The prompt-transfer table: best prompts learned with one task LM, scored with others.

``pinbench transfer`` writes ``<store>/transfer.parquet`` (one row per trial x scoring LM x split;
``pinbench/transfer.py``). Here: rows are "<method> · <the LM the prompt was learned with>",
columns the LM it is scored with, cells the mean ± error of the split's accuracy (%) over the
trials (split seeds x seeds). Datasets are not pooled: with several, each (method, LM) row is
repeated per dataset ("<method> · <LM> · <dataset>"), since a mean over datasets would mix their
difficulty into the transfer gap. The diagonal rescoring with the prompt's own LM is the check
against the store's score; the notes say how many reproduce it and which pairs could not be
scored (a verbalizer word that is several tokens for the scoring LM).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from pinbench.errors import first_few

from .datasets import dataset_name, order_datasets
from .tables import Column, SummaryTable, summarise, to_markdown


def load_transfer(results, trials: pd.DataFrame, warnings: list[str] | None = None) -> pd.DataFrame:
    """Every store's ``transfer.parquet`` rows for ``trials`` (the report's completed trials, with
    its ``method`` labels, which replace the labels the file recorded); empty when no store has one.
    Trial ids are qualified as ``load_results`` qualified them (``<store>/<id>`` when two stores
    share an id)."""
    from pinbench.transfer import read_transfer

    frames = []
    for store in results.stores:
        frame = read_transfer(store)
        if frame is None or not len(frame):
            continue
        mine = trials.loc[trials["store"] == store.label, "trial_id"].astype(str)
        prefix = f"{store.label}/"
        ids = {t.removeprefix(prefix) if t.startswith(prefix) else t: t for t in mine}
        frame = frame.assign(store=store.label, trial_id=frame["trial_id"].astype(str).map(ids))
        frames.append(frame[frame["trial_id"].notna()])
    if not frames:
        return pd.DataFrame()
    frame = pd.concat(frames, ignore_index=True).drop(columns=["method"], errors="ignore")
    current = trials[["trial_id", "method", "best_prompt"]].drop_duplicates("trial_id")
    frame = frame.merge(current, on="trial_id", how="inner")
    # a row scored another prompt than the trial's best now: the trial was run again since
    stale = frame["prompt"].astype(str) != frame["best_prompt"].astype(str)
    if stale.any() and warnings is not None:
        warnings.append(f"{int(stale.sum())} transfer score(s) are of an earlier run's best prompt (trial(s) "
                        f"{first_few(sorted(set(frame.loc[stale, 'trial_id'])))}): left out; run "
                        "`pinbench transfer` again")
    return frame[~stale].drop(columns=["best_prompt"])


def lm_names(names) -> dict[str, str]:
    """Short names for task LMs: the last part of a path or hub id (``roberta-large``,
    ``opt-125m``); the full names where two LMs would share one."""
    names = list(dict.fromkeys(str(n) for n in names))
    short = {n: Path(n.rstrip("/")).name or n for n in names}
    counts = pd.Series(list(short.values())).value_counts()
    return {n: (s if counts[s] == 1 else n) for n, s in short.items()}


def _split(transfer: pd.DataFrame) -> str:
    splits = transfer["split"].dropna().astype(str)
    return "test" if (splits == "test").any() else splits.mode().iloc[0]


def transfer_table(transfer: pd.DataFrame, methods: list[str], error: str = "se") -> SummaryTable | None:
    """Accuracy (%) per (method, learned-with LM[, dataset]) row and scoring-LM column, mean ±
    ``error`` over trials; None without transfer rows. ``methods`` orders the rows. One split:
    test where the file has it."""
    if transfer is None or not len(transfer):
        return None
    split = _split(transfer)
    data = transfer[transfer["split"] == split].copy()
    short = lm_names([*data["learned_with"], *data["scored_with"]])
    data["learned"] = data["learned_with"].astype(str).map(short)
    data["scored"] = data["scored_with"].astype(str).map(short)
    datasets = order_datasets(data["dataset"].astype(str).unique())
    several = len(datasets) > 1
    learned = sorted(dict.fromkeys(data["learned"]))

    def label(method, lm, dataset) -> str:
        return f"{method} · {lm}" + (f" · {dataset_name(dataset)}" if several else "")

    data["row"] = [label(m, lm, d) for m, lm, d in zip(data["method"], data["learned"], data["dataset"].astype(str))]
    order = [m for m in methods if m in set(data["method"])] + sorted(set(data["method"]) - set(methods))
    rows = [label(m, lm, d) for d in datasets for m in order for lm in learned
            if ((data["method"] == m) & (data["learned"] == lm) & (data["dataset"].astype(str) == d)).any()]
    scored = [*[lm for lm in learned if lm in set(data["scored"])], *sorted(set(data["scored"]) - set(learned))]
    columns = [Column(lm, lm, "higher", 1, 100.0) for lm in scored]
    samples = pd.DataFrame({"row": data["row"], "column": data["scored"], "value": data["accuracy"].astype(float)})
    title = f"Prompt transfer: {split} accuracy (%) of each best prompt scored with another task LM"
    table = summarise(samples, columns, title=title, rows=rows, error=error)
    table.notes = transfer_notes(data)
    return table


def transfer_notes(data: pd.DataFrame) -> str:
    """What rows and columns are, the diagonal's check against the stores, the pairs not scored."""
    several = data["dataset"].nunique() > 1
    notes = ["Rows: method · task LM the prompt was learned with" + (" · dataset" if several else "")
             + "; columns: task LM it is scored with (pinbench transfer); datasets are not pooled."]
    check = data[data["same_lm"].astype(bool) & data["accuracy"].notna() & data["store_accuracy"].notna()]
    if len(check):
        same = int((check["accuracy"] == check["store_accuracy"]).sum())
        notes.append(f"Rescored with the LM it was learned with, {same} of {len(check)} prompt(s) reproduce "
                     "the store's accuracy exactly.")
    inexact = data[(data["dtype"].astype(str) != "float32") | data["bf16"].fillna(False).astype(bool)] \
        if {"dtype", "bf16"} <= set(data.columns) else ()
    if len(inexact):
        notes.append(f"{len(inexact)} score(s) are from bfloat16 weights, not exact.")
    skipped = data[data["skipped"].notna()]
    if len(skipped):
        pairs = skipped.drop_duplicates(["learned", "scored", "dataset"])
        notes.append("Not scored: " + "; ".join(
            f"{dataset_name(str(r['dataset']))} prompts learned with {r['learned']} under {r['scored']} "
            f"({str(r['skipped']).strip().splitlines()[-1]})" for _, r in pairs.iterrows()) + ".")
    return " ".join(notes)


def transfer_section(table: SummaryTable | None) -> list[str]:
    """report.md's "Prompt transfer" section (nothing without a table)."""
    if table is None:
        return []
    return ["## Prompt transfer", "", to_markdown(table), table.notes, "",
            "Files: [Markdown](tables/transfer.md) · [LaTeX](tables/transfer.tex) · [CSV](tables/transfer.csv)", ""]
