"""Figures: learning curves (dev accuracy against step) and ablations (a panel per metric against
alpha, q or top_k: a line per setting held fixed, a reference method's band), each with mean and
error over runs.

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

from .methods import fmt_value, method_settings, order_methods, short  # noqa: E402
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


def tsallis_q(settings: pd.DataFrame) -> pd.Series:
    """The Tsallis index of each trial's policy: 2 under ``sparse_tsallis`` (sparsemax is 2-entmax),
    none under ``shannon`` (softmax: no q), else the recorded ``method.q`` (every trial records
    one, the field's default 1.5 too where its regulariser ignores it)."""
    q = pd.to_numeric(settings["method.q"], errors="coerce") if "method.q" in settings.columns else \
        pd.Series(np.nan, index=settings.index)
    if "method.regularizer" not in settings.columns:
        return q
    regularizer = settings["method.regularizer"]
    return q.mask(regularizer == "sparse_tsallis", 2.0).mask(regularizer == "shannon", np.nan)


def _setting_text(field: str, value) -> str:
    text = f"{short(field)}={fmt_value(value)}"
    return text + " (sparsemax)" if field == "method.q" and value == 2 else text


def ablation_groups(trials: pd.DataFrame, param: str) -> pd.DataFrame:
    """Trials of groups (same method settings but ``param``, same dataset) where ``param`` takes at
    least two values; ``group`` names the line: the preset, the settings that tell the groups
    apart (``pin q=1.5``, ``pin q=2 (sparsemax)``) and, when there are several, the dataset.
    ``sparse_tsallis`` reads as ``tsallis`` at q = 2 (the same policy), so q is one axis."""
    settings = method_settings(trials)
    if "method.regularizer" in settings.columns:
        settings = settings.assign(**{"method.q": tsallis_q(settings),
                                      "method.regularizer": settings["method.regularizer"].replace(
                                          "sparse_tsallis", "tsallis")})
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
    shown = settings.loc[frame.index]
    varying = [f for f in others if f != "preset" and shown[f].astype(str).nunique() > 1]
    several = frame["dataset"].nunique() > 1

    def name(i) -> str:
        parts = [shown.at[i, "preset"] or trials.at[i, "method"].split(" ")[0]] \
            + [_setting_text(f, shown.at[i, f]) for f in varying]
        return " ".join(parts) + (f", {dataset_name(trials.at[i, 'dataset'])}" if several else "")
    return frame.assign(group=[name(i) for i in frame.index])


def ablation_reference(trials: pd.DataFrame, frame: pd.DataFrame, reference: str | None) -> pd.DataFrame:
    """The ``reference`` method's trials (a ``method`` label, e.g. rlprompt) on the dataset of the
    ablation ``frame``; none when it has several datasets (one band would mix them)."""
    datasets = frame["dataset"].unique()
    if reference is None or len(datasets) != 1:
        return trials.iloc[:0]
    return trials[(trials["method"] == reference) & (trials["dataset"] == datasets[0])]


# Settings a factor apart matter, not a difference: their ablation axes are logarithmic; so are
# the metrics that span orders of magnitude (gibberish perplexity reaches 1e6+; support 1 to 1e4).
LOG_SETTINGS = ("method.alpha", "method.top_k")
LOG_METRICS = ("perplexity", "support")


def _n_text(counts) -> str:
    counts = list(counts)
    return f"n = {min(counts)}" if min(counts) == max(counts) else f"n = {min(counts)} to {max(counts)}"


def ablation(trials: pd.DataFrame, param: str, columns, error: str = "se",
             reference: str | None = None) -> plt.Figure | None:
    """One panel per column (``tables.Column``: key, name, scale) of ``trials`` against ``param``
    (log axis for alpha and top-k, a tick at every value), a line per group (``ablation_groups``)
    with the mean and ± error over its runs at each value, and the ``reference`` method's mean ±
    error over its runs as a grey band (``ablation_reference``). Perplexity and support have a log
    y axis (LOG_METRICS). None when no group varies ``param``."""
    frame = ablation_groups(trials, param)
    columns = [c for c in columns if c.key in frame.columns and frame[c.key].notna().any()]
    if not len(frame) or not columns:
        return None
    ref = ablation_reference(trials, frame, reference)
    ncols = min(len(columns), 3)
    nrows = math.ceil(len(columns) / ncols)
    fig, grid = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    axes = grid.ravel()
    for ax in axes[len(columns):]:
        ax.remove()
    xs_all = sorted(frame["_x"].unique())
    groups = order_methods(frame["group"].tolist())
    spread = "standard error" if error == "se" else "std"
    markers = "osD^v<>p"
    for ax, col in zip(axes, columns):
        for k, group in enumerate(groups):
            part = frame[frame["group"] == group]
            xs = np.array(sorted(part["_x"].unique()))
            y = [part.loc[part["_x"] == x, col.key].dropna().to_numpy(dtype=float) * col.scale for x in xs]
            keep = np.array([len(v) > 0 for v in y])
            if not keep.any():
                continue
            means = np.array([v.mean() for v in y if len(v)])
            errs = np.array([_spread(v, error) for v in y if len(v)])
            ax.errorbar(xs[keep], means, yerr=errs, marker=markers[k % len(markers)], markersize=5, capsize=3,
                        color=f"C{k}", label=group)
        values = frame[col.key].dropna().to_numpy(dtype=float) * col.scale
        r = ref[col.key].dropna().to_numpy(dtype=float) * col.scale if col.key in ref.columns else np.array([])
        if len(r):
            m, e = float(r.mean()), _spread(r, error)
            ax.axhspan(m - e, m + e, color="0.5", alpha=0.25, linewidth=0)
            ax.axhline(m, color="0.4", linestyle="--", linewidth=1,
                       label=f"{reference} (n={len(r)}): mean, band ± {spread}")
            values = np.concatenate([values, r])
        if col.key in LOG_METRICS and len(values) and values.min() > 0:
            ax.set_yscale("log")
        if param in LOG_SETTINGS and min(xs_all) > 0:
            ax.set_xscale("log")
        ax.set_xticks(xs_all, [fmt_value(float(x)) for x in xs_all])
        ax.minorticks_off()
        ax.set_xlabel(short(param) if param != "method.top_k" else "top-k (filter size)")
        ax.set_ylabel(col.name)
        ax.grid(alpha=0.3)
    legend = {}  # label -> handle over the panels (a reference without this panel's metric is in another)
    for ax in axes[:len(columns)]:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            legend.setdefault(label, handle)
    labels = sorted(legend, key=lambda label: label.startswith(f"{reference} (n="))  # the band last
    datasets = frame["dataset"].unique()
    on = f" on {dataset_name(datasets[0])}" if len(datasets) == 1 else ""
    title = (f"Ablation over {short(param)}{on}: mean ± {spread} over runs (split seeds × seeds), "
             f"{_n_text(frame.groupby(['group', '_x']).size())} per point")
    if len(ref):
        title += f"; grey band: {reference}'s mean ± {spread}"
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, 0.06 if nrows > 1 else 0.1, 1, 1))
    fig.legend([legend[label] for label in labels], labels, loc="lower center", ncol=min(len(labels), 5),
               fontsize=8, frameon=False)
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
