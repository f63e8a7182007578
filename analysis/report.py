"""``pinbench report``: results stores in, tables, figures and a one-page ``report.md`` out.

    <out>/report.md                     summary linking everything below, with the top prompts
    <out>/tables/comparison.{md,tex,csv}   metric per method x dataset (+ Avg), mean ± error
    <out>/tables/naturalness.{md,tex,csv}  perplexity, Zipf, word shares, support per method
    <out>/tables/settling.{md,tex,csv}     support over training and greedy-prompt changes per method
    <out>/tables/prompts.{md,csv}          every trial's best prompt with accuracy and naturalness
    <out>/tables/provenance.csv            one row per distinct set-up (code, libraries, machine) of the rows
    <out>/tables/<name>.{md,tex,csv}, <out>/figures/<name>.{png,pdf}   a task's own sections (its
                                           papers' tables and figures): ``Task.report_sections``
    <out>/tables/transfer.{md,tex,csv}     best prompts scored with other task LMs (after `pinbench transfer`)
    <out>/figures/learning_curves.{png,pdf}
    <out>/figures/train_reward.{png,pdf}      the sampled prompts' raw task reward at every step
    <out>/figures/policy_support.{png,pdf}    the tokens the sampling policy can draw, over training
    <out>/figures/ablation_<alpha|q|top_k>.{png,pdf}   where the results vary that setting: a panel
                                           per metric (ABLATION_COLUMNS), a line per other setting, the baseline's band
    <out>/tables/ablation_<alpha|q|top_k>.{md,tex,csv}  the same numbers, a row per line and value, the baseline's row

The report is generic over tasks: it groups the completed trials by their ``task`` column and asks
each task's class (``pinbench.registry.TASKS``) what is its own (``pinbench.tasks.base.Task``'s
report hooks): dataset titles, published rows beside the comparison table, the caption's runs,
where a top prompt was found, and its sections of report.md (``sections.ReportContext`` in,
``sections.ReportSection`` out).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pinbench.errors import ConfigError, first_few
from pinbench.io import write_table, write_text
from pinbench.registry import TASKS
from pinbench.run import MODEL_FIELD_SUFFIXES
from pinbench.tasks.base import Task

from . import plots
from .datasets import dataset_name, order_datasets
from .load import Results, ResultsError, load_results
from .methods import ABLATION_FIELDS, label_methods, order_methods, short
from .naturalness import NaturalnessOptions, naturalness, prompt_tokenizers
from .provenance import provenance_markdown, provenance_table, provenance_warnings
from .sections import ReportContext, ReportSection
from .settling import SETTLING_COLUMNS, SETTLING_NOTES, settling
from .tables import (Column, SummaryTable, ablation_table, add_published, format_number, summarise, to_markdown,
                     write_table_set)
from .transfer import load_transfer, transfer_section, transfer_table

# Naturalness table columns: (key, header, better, decimals, scale)
NATURALNESS_COLUMNS = (
    Column("perplexity", "Perplexity", "lower", 1, short="PPL"),
    Column("zipf_mean", "Zipf mean", "higher", 2, short="Zipf"),
    Column("zipf_min", "Zipf min", "higher", 2, latex=False),
    Column("dictionary_word_share", "Dict. words (%)", "higher", 1, 100.0, short="Dict."),
    Column("fragment_share", "Fragments (%)", "lower", 1, 100.0, short="Frag."),
    Column("repeated_token_rate", "Repeats (%)", "lower", 1, 100.0, short="Rep."),
    Column("non_ascii_share", "Non-ASCII (%)", "lower", 1, 100.0, latex=False),
    Column("support", "Support", None, 1),
    Column("entropy", "Entropy", None, 2, latex=False),
)
NATURALNESS_NOTES = ("PPL: perplexity; Zipf: mean English Zipf frequency of the words; Dict.: % of words "
                     "that are dictionary words; Frag.: % of policy tokens that are word pieces or byte fragments; "
                     "Rep.: % repeated tokens; Support: tokens the policy can sample, last 10% of steps.")
LAST_FRACTION = 0.1  # support, entropy and train reward: mean over the last 10% of logged steps
# The ablation figure's panels and table's columns after the report's metric: per trial.
ABLATION_COLUMNS = (
    Column("reward_mean", "Train reward", "higher", 1, short="Reward"),
    Column("support", "Policy support (tokens)", None, 1, short="Support"),
    Column("perplexity", "Prompt perplexity", "lower", 1, short="PPL"),
    Column("zipf_mean", "Zipf frequency (mean)", "higher", 2, short="Zipf"),
    Column("repeated_token_rate", "Repeated tokens (%)", "lower", 1, 100.0, short="Rep."),
)
ABLATION_NOTES = ("Reward: raw task reward of the sampled prompts; Support: tokens the policy can sample; both mean "
                  "over the last 10% of steps. PPL, Zipf, Rep.: the best prompt's perplexity, mean Zipf frequency "
                  "of its words and % repeated tokens.")


@dataclass
class ReportOptions:
    metric: str | None = None
    """The comparison table's metric: a test_<metric> or dev_<metric> column of trials.parquet;
    None takes what the trials recorded: their task's selection metric on its report split."""
    error: str = "se"
    """Error bars and ± in tables: se (standard error) or std (standard deviation)."""
    baseline: str | None = "auto"
    """Row the daggers test against: a method label, 'auto' or None. 'auto' is rlprompt when it is
    a row (the method PIN's claim is made against), else no daggers; the caption says which."""
    published: str = "none"
    """Published rows beside ours (the tasks' papers: ``Task.published_source``): none, matching or all."""
    method_by: list[str] | None = None
    """Config fields that define a row instead of the derived method label."""
    top_prompts: int = 3
    """Prompts per method listed in report.md."""
    use_cache: bool = True
    """Read and extend naturalness.parquet in the results directories."""
    naturalness: NaturalnessOptions = field(default_factory=NaturalnessOptions)


@dataclass
class Report:
    out: Path
    files: list[Path]
    comparison: SummaryTable
    naturalness: SummaryTable
    trials: pd.DataFrame
    """Completed trials with method, naturalness of the best prompt, support and entropy."""
    computed_prompts: int
    """Prompts whose naturalness was computed for this report."""
    cached_prompts: int
    """Prompts whose naturalness came from the stores' caches."""
    warnings: list[str]
    sections: list[ReportSection] = field(default_factory=list)
    """The tasks' own sections of report.md (``Task.report_sections``), with their tables and figures."""


def _policy_stats(history: pd.DataFrame) -> pd.DataFrame:
    """Per trial: mean support, entropy and train reward (``reward_mean``) over the last
    LAST_FRACTION of its logged steps."""
    cols = [c for c in ("support", "entropy", "reward_mean") if c in history.columns]
    if not cols or not len(history):
        return pd.DataFrame(columns=["trial_id", "support", "entropy", "reward_mean"])

    def tail(part: pd.DataFrame) -> pd.Series:
        part = part.sort_values("step")
        k = max(1, int(round(len(part) * LAST_FRACTION)))
        return part[cols].tail(k).mean()
    return history.groupby("trial_id")[["step", *cols]].apply(tail).reset_index()


def ablation_columns(trials: pd.DataFrame, metric: str) -> list[Column]:
    """The report's metric (as the comparison table shows it), then ABLATION_COLUMNS."""
    percent = metric.endswith("accuracy")
    decimals = 1 if percent or trials[metric].abs().max() >= 1 else 3
    split, _, name = metric.partition("_")
    head = Column(metric, f"{split.capitalize()} {name.replace('_', ' ')}" + (" (%)" if percent else ""),
                  metric_direction(trials, metric), decimals, 100.0 if percent else 1.0)
    return [head, *ABLATION_COLUMNS]


def default_metric(trials: pd.DataFrame) -> str:
    """The metric the trials recorded as theirs: the selection metric on the report split
    (``test_accuracy``), else on the selection split; trials of tasks that disagree need --metric."""
    picks = set()
    for _, r in trials.drop_duplicates(["selection_metric", "selection_split", "report_split"]).iterrows():
        split = r["report_split"] if isinstance(r["report_split"], str) and \
            f"{r['report_split']}_{r['selection_metric']}" in trials.columns else r["selection_split"]
        picks.add(f"{split}_{r['selection_metric']}")
    if len(picks) != 1:
        raise ConfigError(f"these trials select prompts by different metrics ({sorted(picks)}): pass --metric")
    return picks.pop()


def mixed_setups(trials: pd.DataFrame) -> list[str]:
    """A warning per table cell (method label x dataset) whose runs used different models or step
    counts: a method label names the recipe, not the models, so such runs would be averaged as
    seeds of one setting."""
    columns = [c for c in trials.columns if c.startswith(("task.", "method.")) and c.endswith(MODEL_FIELD_SUFFIXES)]
    columns += [c for c in ("run.steps",) if c in trials.columns]
    warnings = []
    for (method, dataset), cell in trials.groupby(["method", "dataset"], sort=True):
        differ = {c: sorted({str(v) for v in cell[c].dropna()}) for c in columns
                  if cell[c].astype(str).nunique(dropna=False) > 1}
        if differ:
            what = "; ".join(f"{c}: {first_few(v)}" for c, v in differ.items())
            warnings.append(f"{method} on {dataset}: the cell averages {len(cell)} runs of different settings "
                            f"({what}); report them apart (--method-by, or one report per setting)")
    return warnings


def metric_direction(trials: pd.DataFrame, metric: str) -> str:
    """'higher' or 'lower' is better, from the trials' recorded selection mode for that metric."""
    name = metric.split("_", 1)[1] if "_" in metric else metric
    modes = trials.loc[trials["selection_metric"] == name, "selection_mode"].dropna().unique()
    return "lower" if len(modes) == 1 and modes[0] == "min" else "higher"


def _check_metric(trials: pd.DataFrame, metric: str) -> None:
    """The metric must be a split's number (``test_accuracy``), not a count or a text column."""
    have = sorted(c for c in trials.columns if c.startswith(("test_", "dev_", "train_"))
                  and pd.api.types.is_numeric_dtype(trials[c]) and not pd.api.types.is_bool_dtype(trials[c]))
    if metric not in have:
        raise ConfigError(f"--metric '{metric}' is not a split's numeric metric in trials.parquet; available: {have}")


@dataclass
class Prepared:
    trials: pd.DataFrame
    """Completed trials with method labels, best-prompt naturalness and policy statistics."""
    methods: list[str]
    """Table rows, in order."""
    baseline: str | None
    """The row daggers test against."""
    warnings: list[str]
    computed: int
    """Prompts whose naturalness was computed now."""
    cached: int
    """Prompts whose naturalness came from the stores' caches."""


def prepare(results: Results, options: ReportOptions) -> Prepared:
    """Label the completed trials' methods, resolve the baseline (a bad name fails before any
    scoring), then join best-prompt naturalness and policy statistics."""
    trials = results.completed().copy()
    if not len(trials):
        others = results.trials
        counts = ", ".join(f"{n} {status}" for status, n in others["status"].value_counts().items())
        errors = [e for e in others.get("error", pd.Series(dtype=str)).dropna().astype(str) if e.strip()]
        raise ResultsError(f"no completed trials in {', '.join(s.uri for s in results.stores)} ({counts})"
                           + (f"; first error: {errors[0].strip().splitlines()[-1]}" if errors else ""))
    if options.metric is None:
        options.metric = default_metric(trials)
    _check_metric(trials, options.metric)
    notes = list(results.notes)
    values = trials[options.metric].astype(float)
    finite = np.isfinite(values)
    if not finite.all():  # NaN would drop out of a mean unseen; infinity would print as "inf"
        bad = trials.loc[~finite, "trial_id"].astype(str).tolist()
        notes.append(f"{len(bad)} completed trial(s) have no finite {options.metric} ({first_few(bad)}): left out "
                     "of its means")
        trials = trials.assign(**{options.metric: values.where(finite)})
    trials["method_name"] = trials["method"]  # the registry name; "method" becomes the row label
    trials["method"] = label_methods(trials, options.method_by).to_numpy()
    notes += mixed_setups(trials)
    methods = order_methods(trials["method"].tolist())
    baseline = _baseline(options.baseline, methods)
    nat = naturalness(results, options.naturalness, use_cache=options.use_cache)
    per_prompt = nat.table.drop(columns=["cache_version", "reference_lm"], errors="ignore")
    trials = trials.assign(_tokenizer=prompt_tokenizers(trials).to_numpy())
    trials = trials.merge(per_prompt, how="left", left_on=["best_prompt", "_tokenizer"],
                          right_on=["prompt", "policy_lm"]).drop(columns=["prompt", "policy_lm", "_tokenizer"])
    trials = trials.merge(_policy_stats(results.history), how="left", on="trial_id")
    trials = trials.merge(settling(results.history), how="left", on="trial_id")
    return Prepared(trials, methods, baseline, [*notes, *nat.warnings], nat.computed, nat.cached)


def task_class(name: str, warnings: list[str] | None = None) -> type[Task]:
    """The registered class of a trials' ``task`` value; the base ``Task`` (no report hooks) when
    it is not known here (a plug-in task whose module is not imported), with a warning."""
    try:
        return TASKS.get(name)
    except ConfigError:
        if warnings is not None:
            warnings.append(f"task '{name}' is not registered here (a plug-in task whose module is not imported): "
                            "its trials are reported without the task's own sections; pass `--plugin MODULE` "
                            "(the module the trials' suite lists under plugins:)")
        return Task


def task_contexts(prep: Prepared, options: ReportOptions, prompts: pd.DataFrame | None = None,
                  out: Path | None = None) -> list[tuple[type[Task], ReportContext]]:
    """Per task of the trials (in the registry's order, then unknown names sorted): its class and
    the ``ReportContext`` of its share of the report. A context warns into ``prep.warnings``."""
    trials = prep.trials
    present = set(trials["task"].dropna().astype(str))
    names = [n for n in TASKS.names() if n in present] + sorted(present - set(TASKS.names()))
    contexts = []
    for name in names:
        part = trials[trials["task"] == name]
        mine = prompts.iloc[:0] if prompts is None or "trial_id" not in prompts.columns else \
            prompts[prompts["trial_id"].isin(part["trial_id"])]
        context = ReportContext(
            task=name, trials=part, prompts=mine if prompts is not None else pd.DataFrame(),
            methods=[m for m in prep.methods if m in set(part["method"])], baseline=prep.baseline,
            error=options.error, published=options.published, metric=options.metric,
            reference_lm=options.naturalness.reference_lm, out=Path(out) if out is not None else Path("."),
            warnings=prep.warnings)
        contexts.append((task_class(name, prep.warnings), context))
    return contexts


def comparison_table(prep: Prepared, options: ReportOptions,
                     contexts: list[tuple[type[Task], ReportContext]] | None = None) -> SummaryTable:
    trials, methods = prep.trials, prep.methods
    if contexts is None:
        contexts = task_contexts(prep, options)
    datasets = order_datasets(trials["dataset"].unique())
    percent = options.metric.endswith("accuracy")
    better = metric_direction(trials, options.metric)
    # a metric below 1 in size (a CLIP cosine) needs more than one decimal to tell methods apart
    decimals = 1 if percent or trials[options.metric].abs().max() >= 1 else 3
    columns = [Column(d, dataset_name(d), better, decimals, 100.0 if percent else 1.0) for d in datasets]
    samples = pd.DataFrame({"row": trials["method"], "column": trials["dataset"], "value": trials[options.metric]})
    split, _, name = options.metric.partition("_")
    title = f"{split.capitalize()} {name.replace('_', ' ')}" + (" (%)" if percent else "")
    table = summarise(samples, columns, title=title, rows=methods, error=options.error,
                      baseline=prep.baseline, average=len(datasets) > 1)
    if len(contexts) == 1 and contexts[0][0].report_runs:  # what one run is, where the task says
        table.runs = contexts[0][0].report_runs
    # Each task's published rows (in its metric only: beside another they would mislead)
    published, sources = {}, []
    for cls, context in contexts:
        rows = cls.comparison_published(context) if options.published != "none" else {}
        if rows:
            published.update(rows)
            sources.append(cls.published_source)
    return add_published(table, published, "; ".join(dict.fromkeys(sources)))


def naturalness_table(prep: Prepared, options: ReportOptions) -> SummaryTable:
    trials = prep.trials
    columns = [c for c in NATURALNESS_COLUMNS if c.key in trials.columns and trials[c.key].notna().any()]
    samples = trials.melt(id_vars=["method"], value_vars=[c.key for c in columns], var_name="column") \
        .rename(columns={"method": "row"})
    ref = options.naturalness.reference_lm
    table = summarise(samples, columns, title=f"Naturalness of the best prompts (perplexity under {ref})",
                      rows=prep.methods, error=options.error, baseline=prep.baseline)
    table.notes = NATURALNESS_NOTES
    return table


def settling_table(prep: Prepared, options: ReportOptions) -> SummaryTable:
    trials = prep.trials
    columns = [c for c in SETTLING_COLUMNS if c.key in trials.columns and trials[c.key].notna().any()]
    samples = trials.melt(id_vars=["method"], value_vars=[c.key for c in columns], var_name="column") \
        .rename(columns={"method": "row"})
    table = summarise(samples, columns, title="Did the runs settle? Policy support and greedy prompts over training",
                      rows=prep.methods, error=options.error)
    table.notes = SETTLING_NOTES
    return table


def _baseline(choice: str | None, methods: list[str]) -> str | None:
    if choice == "auto":
        return "rlprompt" if "rlprompt" in methods else None
    if choice is not None and choice not in methods:
        raise ConfigError(f"baseline '{choice}' is not a method of these results; methods: {methods}")
    return choice


def prompts_frame(trials: pd.DataFrame, metric: str) -> pd.DataFrame:
    cols = ["method", "task", "preset", "dataset", "task.split_seed", "run.seed", "trial_id", "best_prompt", "best_step",
            *[c for c in trials.columns if c.startswith(("dev_", "test_"))],
            *[c.key for c in NATURALNESS_COLUMNS if c.key in trials.columns]]
    frame = trials[[c for c in dict.fromkeys(cols) if c in trials.columns]]
    frame = frame.sort_values(["method", metric], ascending=[True, metric_direction(trials, metric) == "lower"])
    return frame.rename(columns={"task.split_seed": "split_seed", "run.seed": "seed"})


def _quote(prompt: str) -> str:
    return json.dumps(str(prompt), ensure_ascii=False).replace("|", "\\|")


def _pct(x) -> str:
    return "–" if pd.isna(x) else f"{100 * x:.1f}%"


def _num(x, fmt: str = ".1f") -> str:
    return "–" if pd.isna(x) else format(x, fmt)


def top_prompts_markdown(trials: pd.DataFrame, methods: list[str], metric: str, k: int) -> str:
    classes: dict[str, type[Task]] = {}
    lower = metric_direction(trials, metric) == "lower"  # the best first, whichever way is better

    def where(row) -> str:  # the task's words after the dataset and split seed (an image)
        name = row.get("task")
        if not isinstance(name, str):
            return ""
        if name not in classes:
            classes[name] = task_class(name)
        return classes[name].report_prompt_where(row)

    lines = []
    for method in methods:
        part = trials[trials["method"] == method].sort_values(metric, ascending=lower).head(k)
        lines.append(f"**{method}**\n")
        for _, r in part.iterrows():
            acc = _pct(r[metric]) if metric.endswith("accuracy") else _num(r[metric], ".4f")
            ppl = r.get("perplexity")
            lines.append(f"- {_quote(r['best_prompt'])}: {metric.replace('_', ' ')} {acc}, "
                         f"perplexity {'–' if pd.isna(ppl) else format_number(ppl, 1)}, "
                         f"Zipf mean {_num(r.get('zipf_mean'), '.2f')} "
                         f"({dataset_name(r['dataset'])}{_split_seed(r)}{where(r)}, seed {r['run.seed']})")
        lines.append("")
    return "\n".join(lines)


def _split_seed(row) -> str:
    v = row.get("task.split_seed")
    return "" if v is None or pd.isna(v) else f", split seed {int(v)}"


def build_report(paths: list[str | Path], out: str | Path, options: ReportOptions | None = None) -> Report:
    options = dataclasses.replace(options or ReportOptions())  # its metric may be resolved below
    out = Path(out)
    results = load_results(paths)
    prep = prepare(results, options)
    trials, warnings = prep.trials, prep.warnings
    contexts = task_contexts(prep, options, results.prompts, out)
    if options.published != "none":
        for cls, context in contexts:
            if not cls.published_source:
                warnings.append(f"no published rows for task '{context.task}': pinbench knows no published "
                                "numbers for it")
    files: list[Path] = []
    tables_dir, figures_dir = out / "tables", out / "figures"

    comparison = comparison_table(prep, options, contexts)
    files += write_table_set(comparison, tables_dir / "comparison", "tab:pinbench-comparison")
    nat_table = naturalness_table(prep, options)
    files += write_table_set(nat_table, tables_dir / "naturalness", "tab:pinbench-naturalness")
    settle = settling_table(prep, options)
    files += write_table_set(settle, tables_dir / "settling", "tab:pinbench-settling")
    prompts = prompts_frame(trials, options.metric)
    files.append(write_table(prompts, tables_dir / "prompts.csv"))
    sections: list[ReportSection] = []
    for cls, context in contexts:  # each task's own tables, figures and report.md sections
        for section in cls.report_sections(context):
            sections.append(section)
            files += section.files
    transfer = transfer_table(load_transfer(results, trials, warnings), prep.methods, error=options.error)
    if transfer is not None:  # transfer.parquet, written by `pinbench transfer`
        files += write_table_set(transfer, tables_dir / "transfer", "tab:pinbench-transfer")

    figures: dict[str, Path] = {}
    splits = trials["selection_split"].dropna().unique()
    dev_metric = f"{splits[0] if len(splits) == 1 else 'dev'}_" + options.metric.split("_", 1)[1]
    if dev_metric in results.history.columns and results.history[dev_metric].notna().any():
        fig = plots.learning_curves(results.history, trials, dev_metric, options.error)
        saved = plots.save(fig, figures_dir / "learning_curves")
        files += saved
        figures["Learning curves"] = saved[0]
    else:
        warnings.append(f"no learning curves: history.parquet has no '{dev_metric}' values")
    # Every step's raw task reward of the sampled prompts (smoother than a small dev split), and
    # when the policy concentrated: the tokens it can sample, comparable across regularisers (each
    # logs its own entropy, Shannon or Tsallis, which are not on one scale).
    for column, stem, title, log in (("reward_mean", "train_reward", "Training reward", False),
                                     ("support", "policy_support", "Policy support over training", True)):
        if column in results.history.columns and results.history[column].notna().any():
            fig = plots.learning_curves(results.history, trials, column, options.error, log=log)
            saved = plots.save(fig, figures_dir / stem)
            files += saved
            figures[title] = saved[0]
    ablations: dict[str, SummaryTable] = {}
    columns = ablation_columns(trials, options.metric)
    for param in ABLATION_FIELDS:
        fig = plots.ablation(trials, param, columns, options.error, reference=prep.baseline)
        if fig is not None:
            stem = f"ablation_{param.split('.')[-1]}"
            saved = plots.save(fig, figures_dir / stem)
            files += saved
            title = f"Ablation over {short(param)}"
            figures[title] = saved[0]
            frame = plots.ablation_groups(trials, param)
            ablations[title] = ablation_table(frame, param, columns, error=options.error,
                                              reference=plots.ablation_reference(trials, frame, prep.baseline),
                                              reference_name=prep.baseline)
            ablations[title].notes = ABLATION_NOTES
            files += write_table_set(ablations[title], tables_dir / stem, f"tab:pinbench-{stem.replace('_', '-')}")

    provenance = provenance_table(trials)  # which code and machine made the rows
    files.append(write_table(provenance, tables_dir / "provenance.csv"))
    warnings += provenance_warnings(trials)
    failed = results.trials[results.trials["status"] != "completed"]
    text = _report_markdown(results, prep, failed, comparison, nat_table, figures, options, out, settle,
                            sections, transfer=transfer, ablations=ablations, provenance=provenance)
    files.append(write_text(text, out / "report.md"))
    _remove_stale_files(out, files)
    return Report(out, files, comparison, nat_table, trials, prep.computed, prep.cached, warnings, sections)


REPORT_FILES = ".pinbench-report-files"  # in --out: what the last report wrote there


def _remove_stale_files(out: Path, files: list[Path]) -> None:
    """Remove what an earlier report into ``out`` wrote and this one did not (another store's
    transfer table left beside this store's report); files pinbench did not write stay."""
    written = sorted({str(Path(f).resolve().relative_to(out.resolve())) for f in files})
    record = out / REPORT_FILES
    earlier = record.read_text(encoding="utf-8").splitlines() if record.is_file() else []
    for rel in set(earlier) - set(written):
        target = (out / rel).resolve()
        if target.is_relative_to(out.resolve()) and target.is_file():
            target.unlink()
    write_text("\n".join(written) + "\n", record)


def _method_legend(methods) -> list[str]:
    """What each preset row is (e.g. which reading of PIN), for the rows named after a preset."""
    from pinbench.methods import PRESETS

    named = [m for m in methods if m.split(" ")[0] in PRESETS]
    if not named:
        return []
    heads = dict.fromkeys(m.split(" ")[0] for m in named)
    return ["Methods: " + "; ".join(f"**{h}**: {PRESETS[h].description}" for h in heads) + ".", ""]


def _baseline_note(prep) -> list[str]:
    if prep.baseline is None:
        return ["No daggers: no baseline row (the default baseline is rlprompt when it is a row; --baseline "
                "names another).", ""]
    return [f"†: the row's mean differs from {prep.baseline}'s (Welch's t-test, p < 0.05); the baseline is "
            "rlprompt when it is a row unless --baseline names another.", ""]


def _report_markdown(results, prep, failed, comparison, nat_table, figures, options, out, settle=None,
                     sections=(), transfer=None, ablations=None, provenance=None) -> str:
    trials, warnings = prep.trials, prep.warnings
    nat = options.naturalness
    ctx = trials["context_token"].dropna().unique().tolist() if "context_token" in trials.columns else []
    lines = [
        "# pinbench report", "",
        f"Results: {', '.join(f'`{s.uri}`' for s in results.stores)}. {len(trials)} completed trial(s)"
        + "".join(f", {n} {status}" for status, n in failed["status"].value_counts().sort_index().items())
        + (" (listed at the end)" if len(failed) else "") + ". "
        f"Generated {_dt.datetime.now().strftime('%Y-%m-%d %H:%M')}.", "",
        f"## Comparison: {comparison.title}", "", to_markdown(comparison),
        "Files: [Markdown](tables/comparison.md) · [LaTeX](tables/comparison.tex) · [CSV](tables/comparison.csv)", "",
        *_method_legend(trials["method"].unique()),
        *_baseline_note(prep),
        *(line for section in sections for line in section.markdown()),
        *transfer_section(transfer),
        "## Naturalness", "", to_markdown(nat_table),
        f"Each trial's best prompt; perplexity under `{nat.reference_lm}` with the first token conditioned on "
        f"{', '.join(f'`{c}`' for c in ctx) or 'nothing'}; Zipf from wordfreq (0 = unknown word). "
        "Every column is defined in docs/results.md of pinbench's repository, section Reports "
        "(docs/results.md#reports).", "",
        "Files: [Markdown](tables/naturalness.md) · [LaTeX](tables/naturalness.tex) · [CSV](tables/naturalness.csv) · "
        "[all best prompts](tables/prompts.csv)", "",
    ]
    if settle is not None and settle.columns:
        lines += ["## Did the runs settle?", "", to_markdown(settle), SETTLING_NOTES, "",
                  "Files: [Markdown](tables/settling.md) · [LaTeX](tables/settling.tex) · [CSV](tables/settling.csv)", ""]
    if figures:
        lines += ["## Figures", ""]
        for title, path in figures.items():
            rel = path.relative_to(out)
            lines += [f"### {title}", "", f"![{title}]({rel.as_posix()}) ([PDF]({rel.with_suffix('.pdf').as_posix()}))", ""]
            if title in (ablations or {}):
                table = f"tables/{rel.stem}"
                lines += [to_markdown(ablations[title]),
                          f"Files: [Markdown]({table}.md) · [LaTeX]({table}.tex) · [CSV]({table}.csv)", ""]
    if not any(t.startswith("Ablation") for t in figures):
        lines += [f"No ablation figure: no method varies {', '.join(short(f) for f in ABLATION_FIELDS)} "
                  "with everything else fixed.", ""]
    lines += [f"## Top prompts by {options.metric.replace('_', ' ')}", "",
              top_prompts_markdown(trials, prep.methods, options.metric, options.top_prompts)]
    if provenance is not None:
        lines += provenance_markdown(provenance)
    if len(failed):  # failed, interrupted (Ctrl-C), stopped (by the scheduler): each under its own heading
        store_of = {s.label: s.uri for s in results.stores}
        for status, rows in failed.groupby("status", sort=True):
            lines += [f"## {str(status).capitalize()} trials", ""]
            for _, r in rows.iterrows():
                err = str(r.get("error") or "").strip().splitlines()
                why = err[-1] if err else ("stopped before its last step" if status == "interrupted" else "no error recorded")
                lines.append(f"- `{r['trial_id']}` (store `{store_of.get(r.get('store'), r.get('store'))}`): {why}")
            lines.append("")
    if warnings:
        lines += ["## Warnings", "", *(f"- {w}" for w in warnings), ""]
    return "\n".join(lines)
