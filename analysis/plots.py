"""Figures: learning curves (dev accuracy against step) and ablations (test accuracy and prompt
perplexity against alpha, q or top_k), each with mean and error over runs.

Every function returns the matplotlib Figure (tests read its axes); ``save`` writes PNG and PDF.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on clusters and CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .methods import ABLATION_FIELDS, fmt_value, method_settings, order_methods, short  # noqa: E402
from .datasets import dataset_name, order_datasets  # noqa: E402

FORMATS = ("png", "pdf")
PANELS_PER_ROW = 4


def _spread(x: np.ndarray, error: str) -> float:
    if len(x) < 2:
        return 0.0
    sd = float(np.std(x, ddof=1))
    return sd / math.sqrt(len(x)) if error == "se" else sd


def _percent(metric: str) -> bool:
    return metric.endswith("accuracy")


# Per-step history columns that are not a split's metric, and how their axes read.
STEP_LABELS = {"support": "policy support (tokens)", "entropy": "policy entropy",
               "reward_mean": "train reward of the sampled prompts"}


def _label(metric: str) -> str:
    if metric in STEP_LABELS:
        return STEP_LABELS[metric]
    split, _, name = metric.partition("_")
    return f"{split} {name}" + (" (%)" if _percent(metric) else "")


def learning_curves(history: pd.DataFrame, trials: pd.DataFrame, metric: str = "dev_accuracy",
                    error: str = "se", log: bool = False) -> plt.Figure:
    """One panel per dataset; per method the mean over runs at each evaluated (or, for a per-step
    column such as ``support``, every) step and a band of ± error. ``trials`` needs ``method`` and
    ``dataset``; ``log`` puts the y axis on a log scale."""
    if metric not in history.columns:
        raise ValueError(f"history has no '{metric}' column")
    evals = history[history[metric].notna()].merge(trials[["trial_id", "method", "dataset"]], on="trial_id")
    datasets = order_datasets(evals["dataset"].unique())
    ncols = min(max(len(datasets), 1), PANELS_PER_ROW)
    nrows = max(1, math.ceil(len(datasets) / ncols))
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.5 * ncols, 3.4 * nrows), squeeze=False, sharey=True)
    axes = grid.ravel()
    for ax in axes[max(len(datasets), 1):]:
        ax.remove()
    scale = 100.0 if _percent(metric) else 1.0
    for ax, dataset in zip(axes, datasets):
        part = evals[evals["dataset"] == dataset]
        for method in order_methods(part["method"].tolist()):
            runs = part[part["method"] == method]
            by_step = runs.groupby("step")[metric]  # sorted by step
            means = by_step.mean()
            x, mean = means.index.to_numpy(), means.to_numpy() * scale
            band = by_step.agg(lambda v: _spread(v.to_numpy(), error)).to_numpy() * scale
            n = runs["trial_id"].nunique()
            (line,) = ax.plot(x, mean, marker="o", markersize=3, label=f"{method} (n={n})")
            ax.fill_between(x, mean - band, mean + band, color=line.get_color(), alpha=0.2, linewidth=0)
        ax.set_title(dataset_name(dataset))
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in grid[:, 0]:
        ax.set_ylabel(_label(metric))
        if log:
            ax.set_yscale("log")
    title = "Learning curves" if metric not in STEP_LABELS else _label(metric).capitalize()
    fig.suptitle(f"{title}: mean ± {'standard error' if error == 'se' else 'std'} over runs", fontsize=10)
    fig.tight_layout()
    return fig


def ablation_groups(trials: pd.DataFrame, param: str) -> pd.DataFrame:
    """Trials of groups (same method settings but ``param``, same dataset) where ``param`` takes at
    least two values; ``group`` names the line."""
    settings = method_settings(trials)
    if param not in settings.columns:  # no trial's method has this field
        return trials.iloc[:0].assign(group=pd.Series(dtype=str))
    others = [f for f in settings.columns if f != param]
    keys = settings[others].apply(lambda r: " ".join(map(str, r)), axis=1) + " | " + trials["dataset"].astype(str)
    frame = trials.assign(_key=keys.to_numpy(), _x=pd.to_numeric(settings[param], errors="coerce"))
    frame = frame[frame["_x"].notna()]
    varied = frame.groupby("_key")["_x"].nunique()
    frame = frame[frame["_key"].isin(varied[varied >= 2].index)]
    if not len(frame):
        return frame.assign(group=pd.Series(dtype=str))

    def name(i) -> str:
        s = settings.loc[i]
        varying = [f for f in ABLATION_FIELDS if f != param and f in frame.columns and frame[f].nunique() > 1]
        parts = [trials.at[i, "method"].split(" ")[0]] + [f"{short(f)}={fmt_value(s[f])}" for f in varying]
        return f"{' '.join(parts)}, {dataset_name(trials.at[i, 'dataset'])}"
    return frame.assign(group=[name(i) for i in frame.index])


def ablation(trials: pd.DataFrame, param: str, metric: str = "test_accuracy", error: str = "se") -> plt.Figure | None:
    """Left: ``metric`` against ``param``; right: best-prompt perplexity (log scale) against it.
    ``trials`` needs a ``perplexity`` column (naturalness of its best prompt). None when no group
    varies ``param``."""
    frame = ablation_groups(trials, param)
    if not len(frame):
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    scale = 100.0 if _percent(metric) else 1.0
    for group, part in sorted(frame.groupby("group"), key=lambda g: g[0]):
        xs = np.array(sorted(part["_x"].unique()))
        for ax, col, s in ((left, metric, scale), (right, "perplexity", 1.0)):
            y = [part.loc[part["_x"] == x, col].dropna().to_numpy() * s for x in xs]
            keep = np.array([len(v) > 0 for v in y])
            if not keep.any():
                continue
            means = np.array([v.mean() for v in y if len(v)])
            errs = np.array([_spread(v, error) for v in y if len(v)])
            ax.errorbar(xs[keep], means, yerr=errs, marker="o", capsize=3, label=group)
    span = frame["_x"].max() / max(frame["_x"].min(), 1e-12)
    for ax in (left, right):
        ax.set_xlabel(short(param) if param != "top_k" else "top-k (filter size)")
        if span >= 20:
            ax.set_xscale("log")
        ax.set_xticks(sorted(frame["_x"].unique()), [fmt_value(float(x)) for x in sorted(frame["_x"].unique())])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    left.set_ylabel(_label(metric))
    right.set_ylabel("prompt perplexity")
    ppl = frame["perplexity"].dropna() if "perplexity" in frame.columns else pd.Series(dtype=float)
    if len(ppl) and ppl.min() > 0 and ppl.max() / ppl.min() >= 10:  # gibberish reaches 1e6+: log scale
        right.set_yscale("log")
    left.legend(fontsize=8)
    fig.suptitle(f"Ablation over {short(param)}: mean ± "
                 f"{'standard error' if error == 'se' else 'std'} over runs", fontsize=10)
    fig.tight_layout()
    return fig


def save(fig: plt.Figure, stem: str | Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` (atomically) and close the figure."""
    from pinbench.io import atomic_path

    paths = []
    for fmt in FORMATS:
        target = Path(f"{stem}.{fmt}")
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")
        paths.append(target)
    plt.close(fig)
    return paths
