"""Textual inversion's part of ``pinbench report`` (``Inversion.report_sections``): how well each
method's best prompts match their target images under CLIP, and how natural they read
(``tables/inversion.{md,tex,csv}``); and a figure of each image beside every method's best prompt
for it (``figures/inversion_prompts.{png,pdf}``).

A run inverts one image (or several, comma-separated in ``task.image``); a run's CLIP score is its
chosen prompt's cosine recomputed from its text (``test_reward``), or where a run has none its
training score (``train_reward``, the selection metric). The table is mean ± error over a method's
runs, images x seeds.
"""

from __future__ import annotations

import math
import re
import textwrap

import numpy as np
import pandas as pd

from pinbench.analysis.sections import ReportContext, ReportSection, files_line
from pinbench.analysis.tables import Column, SummaryTable, summarise, to_markdown
from pinbench.errors import DataError

from .images import read_image
from .task import Inversion, image_paths

COSINE_DECIMALS = 3
WRAP = 28  # characters per line of a prompt in the figure
TASK = Inversion.name or "inversion"  # the trials' task value


def inversion_runs(trials: pd.DataFrame) -> pd.DataFrame:
    """The inversion trials, with ``clip_score``: the test cosine, else the training one."""
    inv = trials[trials["task"] == TASK].copy()
    train = inv["train_reward"] if "train_reward" in inv.columns else pd.Series(np.nan, index=inv.index)
    test = inv["test_reward"] if "test_reward" in inv.columns else pd.Series(np.nan, index=inv.index)
    inv["clip_score"] = pd.to_numeric(test, errors="coerce").fillna(pd.to_numeric(train, errors="coerce"))
    return inv


def _values(frame: pd.DataFrame, column: str) -> list[str]:
    if column not in frame.columns:
        return []
    return sorted({str(v) for v in frame[column] if v is not None and v == v})


def _model_name(model: str) -> str:
    """A hub id or directory as its last part (``openai/clip-vit-base-patch32``: ``clip-vit-base-patch32``)."""
    return model.rstrip("/").split("/")[-1]


def _image_count(runs: pd.DataFrame) -> int:
    """Distinct target images of the runs: (directory, entry) over their ``task.image`` lists."""
    dirs = runs["task.data_dir"] if "task.data_dir" in runs.columns else pd.Series(None, index=runs.index)
    return len({(str(d), e.strip()) for d, v in zip(dirs, runs["task.image"]) if isinstance(v, str)
                for e in v.split(",") if e.strip()})


def inversion_table(trials: pd.DataFrame, methods: list[str], error: str = "se", baseline: str | None = None,
                    *, reference_lm: str | None = None) -> SummaryTable | None:
    """One row per method with inversion trials (in ``methods`` order): CLIP score under the reward's
    CLIP and, where recorded, under the second CLIP; the best prompts' perplexity (under
    ``reference_lm``, named in the notes), Zipf mean and CLIP tokens. None without inversion trials."""
    inv = inversion_runs(trials)
    if not len(inv):
        return None
    rows = [m for m in methods if (inv["method"] == m).any()]
    rewards = _values(inv, "task.clip_model")
    reward_name = _model_name(rewards[0]) if len(rewards) == 1 else "reward"
    columns = [Column("clip_score", f"CLIP score ({reward_name})", "higher", COSINE_DECIMALS)]
    scored = inv[inv["test_eval_clip_score"].notna()] if "test_eval_clip_score" in inv.columns else inv.iloc[:0]
    judges = _values(scored, "task.eval_clip_model")
    if len(scored):
        judge_name = _model_name(judges[0]) if len(judges) == 1 else "second CLIP"
        columns.append(Column("test_eval_clip_score", f"CLIP score ({judge_name})", "higher", COSINE_DECIMALS))
    columns += [c for c in (Column("perplexity", "Perplexity", "lower", 1, short="PPL"),
                            Column("zipf_mean", "Zipf mean", "higher", 2, short="Zipf"))
                if c.key in inv.columns and inv[c.key].notna().any()]
    if "test_clip_tokens" in inv.columns and inv["test_clip_tokens"].notna().any():
        columns.append(Column("test_clip_tokens", "CLIP tokens", None, 1, short="Tokens"))
    columns.append(Column("images", "Images", None, 0, latex=False))
    inv["images"] = np.nan  # filled in below: a count per row, not a mean over runs
    samples = inv.melt(id_vars=["method"], value_vars=[c.key for c in columns], var_name="column") \
        .rename(columns={"method": "row"})
    datasets = ", ".join(_values(inv, "dataset"))
    table = summarise(samples, columns, title=f"Textual inversion ({datasets}): CLIP score and naturalness "
                      "of the best prompts", rows=rows, error=error,
                      baseline=baseline if baseline in rows else None)
    for row in rows:
        mine = inv[inv["method"] == row]
        table.mean.loc[row, "images"] = _image_count(mine)
        table.n.loc[row, "images"] = len(mine)
    table.runs = Inversion.report_runs
    test = inv["test_reward"] if "test_reward" in inv.columns else pd.Series(np.nan, index=inv.index)
    fell_back = bool((inv["clip_score"].notna() & test.isna()).any())
    table.notes = _notes(rewards, judges, bool(len(scored)), reference_lm, fell_back)
    return table


def _notes(rewards: list[str], judges: list[str], judged: bool, reference_lm: str | None,
           missing_test: bool) -> str:
    parts = [f"CLIP score: cosine of the CLIP text features of the best prompt and the target image's (mean "
             f"over a run's images) under the reward's CLIP, {', '.join(rewards) or 'task.clip_model'} "
             "(task.clip_model), recomputed from the prompt's text"
             + ("; runs without a test score count with their training score" if missing_test else "") + "."]
    if judged:
        parts.append(f"The second CLIP score is the same cosine under {', '.join(judges) or 'task.eval_clip_model'} "
                     "(task.eval_clip_model), which did not shape training: a prompt that fools only the "
                     "reward's encoder shows as a gap between the two CLIP columns.")
    parts.append("PPL: perplexity of the prompt" + (f" under {reference_lm}" if reference_lm else "")
                 + "; Zipf: mean English Zipf frequency of its words; CLIP tokens: its length in CLIP tokens "
                 "(not ranked); Images: distinct target images of the row's runs (a count).")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# Figure: target images beside the best prompts
# ---------------------------------------------------------------------------------------------


def _natural(text: str) -> list:
    """Sort key reading digit runs as numbers: 2.jpg before 10.jpg."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text)]


def _none(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


def best_per_image(trials: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Per (target, method): the run with the highest CLIP score among the method's seeds. Targets
    are (``task.data_dir``, ``task.image``): two image sets may both have a ``0.jpg``."""
    inv = inversion_runs(trials)
    inv = inv[inv["method"].isin(methods) & inv["task.image"].notna()]
    if "task.data_dir" not in inv.columns:
        inv["task.data_dir"] = None
    inv = inv.assign(_dir=inv["task.data_dir"].map(lambda v: str(v) if _none(v) is not None else ""),
                     _score=inv["clip_score"].fillna(-np.inf))
    best = inv.sort_values("_score", ascending=False, kind="stable").drop_duplicates(["_dir", "task.image", "method"])
    return best.drop(columns=["_score"])


def inversion_figure(trials: pd.DataFrame, methods: list[str], max_images: int = 10):
    """A grid: one row per target image (sorted naturally, at most ``max_images``), the image first,
    then each method's best prompt for it and its CLIP score. Returns (Figure or None, warnings);
    None without inversion trials, or when an image file cannot be found (the report may run
    where the images are not), with a warning naming it."""
    import matplotlib.pyplot as plt

    best = best_per_image(trials, methods)
    if not len(best):
        return None, []
    cols = [m for m in methods if (best["method"] == m).any()]
    best["task.image"] = best["task.image"].astype(str)
    targets = sorted(set(zip(best["_dir"], best["task.image"], best["dataset"].astype(str))),
                     key=lambda t: (_natural(t[2]), _natural(t[1]), t[0]))
    several_sets = len({t[2] for t in targets}) > 1
    warnings = []
    if len(targets) > max_images:
        warnings.append(f"inversion figure: the first {max_images} of {len(targets)} target images are shown")
        targets = targets[:max_images]
    pictures = []
    for data_dir, image, _ in targets:
        try:
            path = image_paths(image, data_dir or None)[0]  # several images: the first stands for them
            im = read_image(path)  # the checks training made (a file replaced since, an LFS pointer)
        except DataError as exc:
            return None, warnings + [f"no inversion figure: {exc} (the report reads the images from where "
                                     "the runs found them)"]
        im.thumbnail((256, 256))  # keeps the PDF small
        pictures.append(im)
    fig, grid = plt.subplots(len(targets), 1 + len(cols), figsize=(1.8 + 2.4 * len(cols), 2.0 * len(targets)),
                             squeeze=False)
    for r, ((data_dir, image, dataset), picture) in enumerate(zip(targets, pictures)):
        ax = grid[r, 0]
        ax.imshow(picture)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_ylabel(f"{dataset}/{image}" if several_sets else image, fontsize=8)
        for c, method in enumerate(cols, start=1):
            ax = grid[r, c]
            ax.axis("off")
            hit = best[(best["_dir"] == data_dir) & (best["task.image"] == image) & (best["method"] == method)]
            if not len(hit):
                ax.text(0.5, 0.5, "–", ha="center", va="center", fontsize=9)
                continue
            run = hit.iloc[0]
            prompt = str(run["best_prompt"]) if _none(run["best_prompt"]) is not None else ""
            # parse_math off: a prompt with two '$' would otherwise be typeset as mathematics
            ax.text(0.5, 0.6, textwrap.fill(prompt, WRAP) or "(empty)", ha="center", va="center", fontsize=7,
                    parse_math=False)
            score = run["clip_score"]
            ax.text(0.5, 0.08, "–" if pd.isna(score) else f"{score:.{COSINE_DECIMALS}f}", ha="center",
                    va="center", fontsize=8, fontweight="bold")
    grid[0, 0].set_title("target", fontsize=9)
    for c, method in enumerate(cols, start=1):
        grid[0, c].set_title(method, fontsize=9)
    fig.suptitle("Textual inversion: each method's best prompt per image (highest CLIP score over seeds)",
                 fontsize=10)
    fig.tight_layout()
    return fig, warnings


def report_sections(context: ReportContext) -> list[ReportSection]:
    """The inversion table, and the figure of the best prompts per image where the images are found."""
    table = inversion_table(context.trials, context.methods, error=context.error, baseline=context.baseline,
                            reference_lm=context.reference_lm)
    if table is None:
        return []
    section = ReportSection("Textual inversion")
    context.write_table(section, table, "inversion", "tab:pinbench-inversion")
    section.lines = [to_markdown(table), table.notes, "", files_line("inversion"), ""]
    fig, notes = inversion_figure(context.trials, context.methods)
    for note in notes:
        context.warn(note)
    if fig is not None:
        rel = context.save_figure(section, fig, "inversion_prompts").relative_to(context.out)
        section.lines += ["Each target image beside every method's best prompt for it (the seed with the highest CLIP "
                          "score) and that score:", "",
                          f"![Best prompts per image]({rel.as_posix()}) ([PDF]({rel.with_suffix('.pdf').as_posix()}))", ""]
    else:
        section.lines += ["No figure of the best prompts per image (see Warnings).", ""]
    return [section]
