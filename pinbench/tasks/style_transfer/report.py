"""Style transfer's part of ``pinbench report`` (``StyleTransfer.report_sections``): the
style-transfer table (PIN Table 2: content / style / fluency / J / GM per method and task LM) and
example outputs, written as ``tables/style_transfer.{md,tex,csv}``.

The paper scores both directions together: the outputs of the 0->1 prompt on test.0 and of the
1->0 prompt on test.1 are concatenated (1,000 Yelp sentences) and the metrics computed over them
(RLPrompt ``evaluation/run_eval.py``). A run here is one direction, so the table pools the two
directions' runs of the same method, task LM, dataset and seed, sentence by sentence, from the
per-sentence values each run stores with its best prompt (``test_content_each``,
``test_style_correct_each``, ``test_fluent_each``). Then mean ± error over the pooled runs (seeds).
J pools per sentence; GM is taken from the pooled aggregates, as the paper's.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from pinbench.analysis.sections import ReportContext, ReportSection, files_line
from pinbench.analysis.tables import Column, SummaryTable, add_published, summarise, to_markdown

from .task import StyleTransfer

COLUMNS = (
    Column("content", "Content", "higher", 1),
    Column("style", "Style", "higher", 1),
    Column("fluency", "Fluency", "higher", 1),
    Column("joint", "J", "higher", 1),
    Column("gm", "GM", "higher", 1),
    Column("bleu", "BLEU", "higher", 1, latex=False),
    Column("directions", "Directions", None, 0, latex=False),
)
NOTES = ("Both directions pooled per seed (the paper's 1,000 Yelp sentences): Content = 100 x BERTScore-F1 "
         "(output, input) clipped at 0; Style = accuracy (%) of the evaluation classifier (not the reward's); "
         "Fluency = % judged fluent; J = mean over sentences of content x style-correct x fluent; "
         "GM = geometric mean of Content, Style, Fluency; BLEU = mean sentence BLEU against the references.")
SOURCE = StyleTransfer.published_source
TASK = StyleTransfer.name or "style_transfer"  # the trials' task value

# PIN Table 2 (PAPER.md section 10): task LM -> method -> (content, style, fluency, J, GM)
PIN_TABLE2 = {
    "facebook/opt-125m": {"PIN": (55.6, 95.4, 89.4, 46.2, 77.6), "RLPrompt": (53.5, 93.7, 85.2, 41.4, 74.8)},
    "facebook/opt-350m": {"PIN": (58.9, 94.2, 83.4, 46.8, 76.0), "RLPrompt": (52.1, 93.9, 85.3, 41.0, 74.6)},
    "facebook/opt-1.3b": {"PIN": (69.1, 95.7, 84.9, 56.0, 82.4), "RLPrompt": (67.6, 91.6, 89.2, 54.1, 81.9)},
}
MATCHING = {"pin": "PIN", "pin-td": "PIN", "rlprompt": "RLPrompt"}
EACH = ("content_each", "style_correct_each", "fluent_each")


def _lm_name(name: str) -> str:
    return name.split("/")[-1]


def _best_records(trials: pd.DataFrame, prompts: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The style-transfer trials, and their chosen prompts' records (test outputs and
    per-sentence values) by trial id."""
    st = trials[trials["task"] == TASK]
    best = prompts[(prompts["source"] == "best") & prompts["trial_id"].isin(st["trial_id"])]
    return st, best.drop_duplicates("trial_id", keep="last").set_index("trial_id")


def pooled_runs(trials: pd.DataFrame, prompts: pd.DataFrame) -> pd.DataFrame:
    """One row per pooled run (method, task LM, dataset, seed): the paper's metrics over the
    concatenated sentences of its directions, and which directions it has."""
    st, best = _best_records(trials, prompts)
    if not len(st):
        return pd.DataFrame()
    keys = ["method", "task.task_lm", "dataset", "run.seed"]
    rows = []
    for (method, lm, dataset, seed), group in st.groupby(keys, sort=False, dropna=False):
        parts = [best.loc[t] for t in group["trial_id"] if t in best.index
                 and isinstance(best.loc[t].get("test_content_each"), (list, np.ndarray))]
        if not parts:
            continue
        content = np.concatenate([np.asarray(p["test_content_each"], float) for p in parts])
        correct = np.concatenate([np.asarray(p["test_style_correct_each"], float) for p in parts])
        fluent = np.concatenate([np.asarray(p["test_fluent_each"], float) for p in parts])
        c, s, f = content.mean(), 100 * correct.mean(), 100 * fluent.mean()
        sizes = [len(p["test_content_each"]) for p in parts]
        bleu = [float(p.get("test_bleu", np.nan)) for p in parts]
        rows.append({"method": method, "task_lm": lm, "dataset": dataset, "seed": seed,
                     "content": c, "style": s, "fluency": f,
                     "joint": float((content / 100 * correct * fluent).mean() * 100),
                     "gm": float((c * s * f) ** (1 / 3)) if min(c, s, f) > 0 else 0.0,
                     "bleu": float(np.average(bleu, weights=sizes)) if not np.isnan(bleu).any() else np.nan,
                     "directions": len(parts),
                     "direction_names": ", ".join(sorted(group.loc[group["trial_id"].isin(best.index),
                                                                   "task.direction"].astype(str)))})
    return pd.DataFrame(rows)


def judges_note(trials: pd.DataFrame) -> str:
    """Which models judged the runs: fluency by a CoLA classifier or by pinbench's proxy, style by
    hub classifiers or pinbench's offline ones, content by which BERTScore encoder."""
    def values(col):
        return sorted({str(v) for v in trials.get(col, pd.Series(dtype=object)) if v is not None and v == v})
    fluency = values("task.fluency_classifier")
    parts = [f"Fluency judged by {', '.join(fluency)}" if fluency and trials["task.fluency_classifier"].notna().all() else
             "Fluency is a proxy (" + ", ".join(values("task.reference_lm") or ["reference LM"]) +
             " perplexity under the threshold 90% of the human-written test sentences pass), not the paper's CoLA classifier"]
    judge = values("task.eval_style_classifier")
    parts.append(f"style judged by {', '.join(judge)}" if judge and trials["task.eval_style_classifier"].notna().all()
                 else "style judged by pinbench's offline classifier (minilm-l6 features, trained apart from the reward's)")
    parts.append("content by BERTScore with " + ", ".join(values("task.content_model") or ["minilm-l6"]))
    return "; ".join(parts) + "."


def row_label(method: str, task_lm: str, several_lms: bool) -> str:
    return f"{method} · {_lm_name(task_lm)}" if several_lms else method


def style_transfer_table(trials: pd.DataFrame, prompts: pd.DataFrame, methods: list[str], *,
                         error: str = "se", baseline: str | None = None, published: str = "none") -> SummaryTable | None:
    """Table 2 over the pooled runs; rows are methods (x task LM when the results have several)."""
    runs = pooled_runs(trials, prompts)
    if not len(runs):
        return None
    lms = list(dict.fromkeys(runs["task_lm"]))
    several = len(lms) > 1
    runs["row"] = [row_label(m, lm, several) for m, lm in zip(runs["method"], runs["task_lm"])]
    rows = [row_label(m, lm, several) for lm in lms for m in methods if ((runs["method"] == m) & (runs["task_lm"] == lm)).any()]
    samples = runs.melt(id_vars=["row"], value_vars=[c.key for c in COLUMNS], var_name="column")
    base = None
    if baseline is not None and not several and baseline in rows:
        base = baseline
    datasets = ", ".join(sorted(runs["dataset"].astype(str).unique()))
    table = summarise(samples, list(COLUMNS), title=f"Style transfer ({datasets}, test, both directions pooled)",
                      rows=rows, error=error, baseline=base)
    table.notes = NOTES + " " + judges_note(trials[trials["task"] == TASK])
    table.runs = "seeds; a run pools its seed's directions"
    if published != "none":
        add_published(table, published_rows(methods, lms, published), SOURCE)
    return table


def published_rows(methods: list[str], task_lms: list[str], which: str) -> dict:
    """PIN Table 2 rows: ``all`` of them, or ``matching``: the methods we ran, at our task LMs when
    they are the paper's, else at every task LM of the paper (labelled with it)."""
    wanted = {MATCHING[m.split(" ")[0]] for m in methods if m.split(" ")[0] in MATCHING}
    ours = [lm for lm in task_lms if lm in PIN_TABLE2]
    lms = list(PIN_TABLE2) if which == "all" or not ours else ours
    rows = {}
    for lm in lms:
        for name, values in PIN_TABLE2[lm].items():
            if which == "all" or name in wanted:
                label = name if len(lms) == 1 and lm in task_lms else f"{name} · {_lm_name(lm)}"
                rows[label] = {c.key: (v, None) for c, v in zip(COLUMNS, values)}
    return rows


def example_outputs(trials: pd.DataFrame, prompts: pd.DataFrame, methods: list[str], k: int = 3) -> str:
    """Markdown: per method and direction, the best prompt and its first k test outputs beside the
    inputs (the first completed seed)."""
    st, best = _best_records(trials, prompts)
    lines = []
    for method in methods:
        mine = st[st["method"] == method].sort_values(["task.direction", "run.seed"])
        for direction, group in mine.groupby("task.direction", sort=True):
            tid = next((t for t in group["trial_id"] if t in best.index), None)
            if tid is None:
                continue
            rec = best.loc[tid]
            inputs, outputs = rec.get("test_inputs"), rec.get("test_outputs")
            if not isinstance(outputs, (list, np.ndarray)):
                continue
            lines.append(f"**{method}**, {direction}, prompt `{rec['prompt']}`:")
            lines.append("")
            for i in range(min(k, len(outputs))):
                src = inputs[i] if isinstance(inputs, (list, np.ndarray)) else "?"
                lines.append(f"- {src} → {outputs[i] or '(empty)'}")
            lines.append("")
    return "\n".join(lines)


def report_sections(context: ReportContext) -> list[ReportSection]:
    """The style-transfer table and example outputs; nothing without a run's per-sentence values."""
    table = style_transfer_table(context.trials, context.prompts, context.methods, error=context.error,
                                 baseline=context.baseline, published=context.published)
    if table is None:
        return []
    section = ReportSection(table.title)
    context.write_table(section, table, "style_transfer", "tab:pinbench-style-transfer")
    section.lines = [to_markdown(table), table.notes, "", files_line("style_transfer"), "",
                     "Example outputs (first test sentences, best prompt of the first seed):", "",
                     example_outputs(context.trials, context.prompts, context.methods), ""]
    return [section]
