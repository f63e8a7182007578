"""``pinbench transfer``: score the best prompts of results stores with other task LMs.

RLPrompt reports that prompts transfer across task models (a prompt learned with RoBERTa-large
still works with GPT-2); this scores every completed classification trial's best prompt with the
task LMs you name (and, by default, with the LM it was learned with again, a consistency check
against the store's own score) and writes one row per (trial, scoring LM, split) to
``<store>/transfer.parquet``, merged with what is already there. ``pinbench report`` turns the
file into the transfer table (``analysis/transfer.py``).

Each (dataset, split seed) group's prompts are scored in one batch per LM exactly as ``pinbench
eval`` scores them: the classification task built from the trial's dataset (and its
``task.dataset_file``), split seed and the scoring LM, exact (float32) unless ``bf16``. A scoring
LM whose tokenizer does not make every verbalizer word one token cannot score the dataset: those
pairs are rows with ``skipped`` holding the reason (naming the word and the model), no accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import signals
from .errors import ConfigError

if TYPE_CHECKING:  # imported where used: the CLI builds this command's parser on every start
    import pandas as pd

TRANSFER_FILE = "transfer.parquet"
TRANSFER_VERSION = 1
KEY = ("trial_id", "scored_with", "split")
COLUMNS = ("transfer_version", "trial_id", "store", "task", "dataset", "split_seed", "method", "preset", "run_seed",
           "prompt", "learned_with", "scored_with", "same_lm", "split", "n_examples", "accuracy", "reward",
           "store_accuracy", "store_reward", "skipped", "dtype", "bf16")


def lm_key(name: str) -> str:
    """A model name as compared and stored: an existing local directory as its absolute path (two
    spellings of one directory are one LM), anything else (an alias, a hub id) as given."""
    path = Path(str(name)).expanduser()
    return str(path.resolve()) if path.is_dir() else str(name)


def _value(row: pd.Series, column: str, default=None):
    import pandas as pd

    v = row.get(column, default)
    if v is None or (not isinstance(v, (list, tuple)) and pd.isna(v)):
        return default
    return v


def _trials(paths: list[str | Path]):
    """Per store: (store, its completed classification trials that have a best prompt, with a
    ``method`` label column)."""
    from pinbench.analysis.load import find_stores, read_table
    from pinbench.analysis.methods import label_methods

    out, seen = [], set()
    for store in find_stores([str(p) for p in paths]):
        if store.path in seen:  # one store named twice (a store and its root)
            continue
        seen.add(store.path)
        trials = read_table(store, "trials")
        trials = trials[(trials["status"] == "completed") & trials["best_prompt"].notna()]
        if "task" in trials.columns:
            trials = trials[trials["task"].fillna("classification") == "classification"]
        if not len(trials):
            continue
        trials = trials.assign(method_label=label_methods(trials).to_numpy())
        out.append((store, trials))
    return out


def _check_split(split: str) -> None:
    if split not in ("train", "dev", "test"):
        raise ConfigError(f"pinbench transfer: split must be train, dev or test, got {split!r}")


def run_transfer(paths: list[str | Path] | str | Path, task_lms: list[str], data_dir: str | Path | None = None,
                 split: str = "test", *, device: str = "cpu", dtype: str = "float32", bf16: bool = False,
                 task_lm_kind: str | None = None, include_source: bool = True, trust_remote_code: bool = False,
                 batch_tokens: int = 4096, write: bool = True,
                 log: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Score every completed classification trial's best prompt in ``paths`` (stores or roots of
    stores) with each of ``task_lms`` (and its own task LM when ``include_source``) on ``split``.

    ``data_dir`` replaces the trials' recorded ``task.data_dir`` when given. ``task_lm_kind``
    applies to ``task_lms`` (default: masked for *bert* names, else causal); a trial's own LM is
    loaded as the trial loaded it. Returns one row per (trial, scoring LM) (columns ``COLUMNS``);
    with ``write``, each store's rows are merged into ``<store>/transfer.parquet`` (rows with the
    same trial, scoring LM and split are replaced). Errors name the store or model; a scoring LM
    that cannot score a dataset (a verbalizer word of several tokens) gives rows with ``skipped``.
    """
    from .models import guess_kind, load_model
    from .run import check_device_available, make_spec
    from .tasks.classification.data import load_dataset_file

    log = log or (lambda _msg: None)
    if isinstance(paths, (str, Path)):
        paths = [paths]
    _check_split(split)
    task_lms = list(dict.fromkeys(str(lm) for lm in task_lms))
    if not task_lms and not include_source:
        raise ConfigError("pinbench transfer: name at least one --task-lm (or keep --include-source)")
    stores = _trials(paths)
    if not stores:
        raise ConfigError(f"pinbench transfer: no completed classification trial with a best prompt in "
                          f"{', '.join(map(str, paths))}")
    if write:  # a damaged transfer.parquet fails now, not after minutes of scoring
        for store, _ in stores:
            existing_transfer(store)
    # One job per (trial, scoring LM): which LM (name, kind), and the task group it is scored in.
    jobs = []
    for store, trials in stores:
        for _, t in trials.iterrows():
            learned = str(_value(t, "task.task_lm", "smollm2-135m"))
            targets = {lm_key(lm): (lm, task_lm_kind) for lm in task_lms}
            if include_source and lm_key(learned) not in targets:
                targets[lm_key(learned)] = (learned, _value(t, "task.task_lm_kind"))
            for key, (name, kind) in targets.items():
                jobs.append({"store": store, "trial": t, "learned": learned, "scored_key": key,
                             "scored_name": name, "kind": kind or guess_kind(name),
                             "group": (str(t["dataset"]), int(_value(t, "task.split_seed", 13)),
                                       _value(t, "task.dataset_file"),
                                       str(data_dir) if data_dir is not None else _value(t, "task.data_dir"),
                                       key, kind or guess_kind(name))})
    groups: dict[tuple, list[dict]] = {}
    for job in jobs:
        groups.setdefault(job["group"], []).append(job)
    # Each group's settings, the device and the data are checked first (a bad --batch-tokens,
    # --data-dir or --device fails in a second); then every named LM loads before anything is
    # scored: a typo fails now, naming the model.
    check_device_available(device)
    specs = {}
    for group, members in groups.items():
        dataset, split_seed, dataset_file, group_dir, _, kind = group
        if dataset_file:
            load_dataset_file(dataset_file)  # a missing file is an error naming it, not a skipped pair
        spec = make_spec({"task": "classification", "task.dataset": dataset, "task.data_dir": group_dir,
                          "task.dataset_file": dataset_file, "task.split_seed": split_seed,
                          "task.task_lm": members[0]["scored_name"], "task.task_lm_kind": kind,
                          "task.task_lm_dtype": dtype, "task.trust_remote_code": trust_remote_code,
                          "task.bf16": bf16, "task.exact_eval": not bf16, "task.max_batch_tokens": batch_tokens,
                          "run.device": device}, "pinbench transfer")
        spec.task_class.check_data(spec.task_config, spec.run, [split])
        specs[group] = spec
    for lm in task_lms:
        load_model(lm, task_lm_kind or guess_kind(lm), dtype=dtype, device=device, trust_remote_code=trust_remote_code)

    rows: list[dict] = []
    try:
        for group, members in groups.items():
            dataset, split_seed, dataset_file, group_dir, key, kind = group
            name, spec = members[0]["scored_name"], specs[group]
            if dataset_file:
                load_dataset_file(dataset_file)  # registered again: another group's file may define the name too
            # The model loads outside the try: a model that cannot load is an error, not a skip.
            load_model(name, kind, dtype=dtype, device=device, trust_remote_code=trust_remote_code)
            skipped, n = None, None
            try:  # what is left to fail here is the model's fit to the dataset (verbalizers, mask token)
                task = spec.task_class.build(spec.task_config, spec.run)
            except ConfigError as exc:
                skipped = str(exc)
                log(f"skipped: {dataset} (split seed {split_seed}) with {name}: {skipped}")
            if skipped is None:
                prompts = list(dict.fromkeys(str(m["trial"]["best_prompt"]) for m in members))
                log(f"scoring {len(prompts)} prompt(s) of {dataset} (split seed {split_seed}, {split}) with {name}")
                evaluation = task.evaluate(prompts, split)
                n = len(task.split(split))
                acc = dict(zip(prompts, evaluation.accuracy.tolist()))
                rew = dict(zip(prompts, evaluation.reward.tolist()))
            for m in members:
                t, store = m["trial"], m["store"]
                same = lm_key(m["learned"]) == key
                prompt = str(t["best_prompt"])
                rows.append({
                    "transfer_version": TRANSFER_VERSION, "trial_id": str(t["trial_id"]), "store": store.uri,
                    "task": "classification", "dataset": dataset, "split_seed": split_seed,
                    "method": t["method_label"], "preset": _value(t, "preset"), "run_seed": _value(t, "run.seed"),
                    "prompt": prompt, "learned_with": m["learned"],
                    "scored_with": m["learned"] if same else key, "same_lm": same, "split": split,
                    "n_examples": n, "accuracy": None if skipped else float(acc[prompt]),
                    "reward": None if skipped else float(rew[prompt]),
                    "store_accuracy": _value(t, f"{split}_accuracy") if same else None,
                    "store_reward": _value(t, f"{split}_reward") if same else None,
                    "skipped": skipped, "dtype": dtype, "bf16": bf16})
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: the groups scored so far are written, then the stop
        if write and rows:
            with signals.deferred("the transfer rows scored so far"):
                _write_rows(stores, _frame(rows))
            log(f"interrupted: {len(rows)} row(s) scored before the stop were written")
        raise
    frame = _frame(rows)
    if write:
        _write_rows(stores, frame)
    return frame


def _frame(rows: list[dict]) -> pd.DataFrame:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    for col in ("accuracy", "reward", "store_accuracy", "store_reward"):
        frame[col] = frame[col].astype(float)
    return frame


def _write_rows(stores, frame: pd.DataFrame) -> None:
    for store, _ in stores:
        write_transfer(store, frame[frame["store"] == store.uri])


def write_transfer(store, rows: pd.DataFrame) -> None:
    """Merge ``rows`` into ``<store>/transfer.parquet``: rows of the same (trial, scoring LM,
    split) are replaced, the rest kept; written atomically on a local disk."""
    import pandas as pd

    if not len(rows):
        return
    from contextlib import nullcontext

    from .io import one_at_a_time

    local = store.location.local
    # read, merge and write under a lock: two transfers into one store at once keep both's rows
    with one_at_a_time(local / TRANSFER_FILE) if local is not None else nullcontext():
        old = existing_transfer(store)
        if old is not None:
            new_keys = set(map(tuple, rows[list(KEY)].astype(str).to_numpy().tolist()))
            keep = [tuple(k) not in new_keys for k in old[list(KEY)].astype(str).to_numpy().tolist()]
            rows = pd.concat([old[keep], rows], ignore_index=True) if any(keep) else rows
        store.write(TRANSFER_FILE, rows.reset_index(drop=True))


def existing_transfer(store) -> pd.DataFrame | None:
    """The store's ``transfer.parquet`` that new rows merge into (None: there is none); one that
    cannot be read or lacks the key columns is an error naming it, before anything is scored."""
    if not store.exists(TRANSFER_FILE):
        return None
    old = store.read(TRANSFER_FILE, "transfer file")
    missing = [c for c in KEY if c not in old.columns]
    if missing:
        raise ConfigError(f"transfer file '{store.display(TRANSFER_FILE)}' lacks column(s) {missing}; "
                          "move it away to start a new one")
    return old


def read_transfer(store) -> pd.DataFrame | None:
    """A store's ``transfer.parquet``, or None when it has none."""
    if not store.exists(TRANSFER_FILE):
        return None
    return store.read(TRANSFER_FILE, "transfer file")


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------


def add_transfer_parser(sub) -> argparse.ArgumentParser:
    """``pinbench transfer``: its subparser on ``sub`` (argparse subparsers), with ``func`` set."""
    p = sub.add_parser("transfer", help="score the best prompts of results stores with other task LMs",
                       description="Score every completed classification trial's best prompt with each --task-lm "
                                   "(and with the LM it was learned with, a check against the store's score) and "
                                   "merge the scores into <store>/transfer.parquet; `pinbench report` makes the "
                                   "transfer table from it.")
    p.add_argument("results", nargs="+", help="results directories: a store (with trials.parquet) or a root of stores")
    p.add_argument("--task-lm", action="append", default=[], required=True, metavar="NAME",
                   help="a task LM to score with: an offline alias, a hub id or a local directory (repeatable)")
    p.add_argument("--task-lm-kind", choices=("causal", "masked"), default=None,
                   help="load the --task-lm models as causal or masked LMs (default: masked if the name "
                        "contains 'bert', else causal)")
    p.add_argument("--data-dir", default=None,
                   help="few-shot data root (default: each trial's recorded task.data_dir)")
    p.add_argument("--split", default="test", choices=("train", "dev", "test"), help="split to score (default: test)")
    p.add_argument("--include-source", action=argparse.BooleanOptionalAction, default=True,
                   help="also rescore each prompt with the LM it was learned with (the check against the "
                        "store's score; default on)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="model weights dtype")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=False,
                   help="score with a bfloat16 weight copy (fast, not exact; default off)")
    p.add_argument("--batch-tokens", type=int, default=4096, help="padded tokens per forward pass")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub")
    p.set_defaults(func=cmd_transfer)
    return p


def cmd_transfer(args: argparse.Namespace) -> int:
    import pandas as pd

    import os

    from rich.console import Console
    from rich.table import Table

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    console = Console()
    if not console.is_terminal:  # logs: full lines, not wrapped at 80 columns
        console = Console(width=max(console.width, 160))
    frame = run_transfer(args.results, args.task_lm, args.data_dir, args.split, device=args.device,
                         dtype=args.dtype, bf16=args.bf16, task_lm_kind=args.task_lm_kind,
                         include_source=args.include_source, trust_remote_code=args.trust_remote_code,
                         batch_tokens=args.batch_tokens, log=console.print)
    table = Table(title=f"prompt transfer ({args.split} accuracy)")
    for col in ("trial", "method", "dataset", "learned with", "scored with", "accuracy", "store"):
        table.add_column(col, justify="right" if col in ("accuracy", "store") else "left")
    several = frame["store"].nunique() > 1
    for _, r in frame.iterrows():
        acc = "skipped" if isinstance(r["skipped"], str) else f"{100 * r['accuracy']:.2f}%"
        store = "" if pd.isna(r["store_accuracy"]) else f"{100 * r['store_accuracy']:.2f}%"
        trial = f"{Path(r['store']).name}/{r['trial_id']}" if several else r["trial_id"]
        table.add_row(trial, r["method"], f"{r['dataset']} ({r['split_seed']})",
                      Path(r["learned_with"]).name, Path(r["scored_with"]).name, acc, store)
    console.print(table)
    check = frame[frame["same_lm"] & frame["accuracy"].notna() & frame["store_accuracy"].notna()]
    off = check[check["accuracy"] != check["store_accuracy"]]
    if len(check):
        console.print(f"rescored with the LM they were learned with: {len(check) - len(off)} of {len(check)} "
                      "prompt(s) reproduce the store's accuracy"
                      + ("" if not len(off) else " (others differ: another dtype, bf16 or device?)"))
    skipped = frame[frame["skipped"].notna()]
    if len(skipped):
        console.print(f"[yellow]{len(skipped)} (prompt, LM) pair(s) skipped[/yellow]: "
                      + "; ".join(dict.fromkeys(skipped["skipped"])))
    written = sorted(set(frame["store"]))
    console.print("scores merged into " + ", ".join(f"{s.rstrip('/')}/{TRANSFER_FILE}" for s in written))
    return 0
