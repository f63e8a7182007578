"""The ablation figure and table (`pinbench report`'s ablation_alpha) on a hand-made store shaped
like suites/tsallis-cpu.yaml: pin at three alphas x q in {1.5 (tsallis), 2 (sparse_tsallis)} x two
seeds, plus rlprompt. Every metric of a cell is m - d (seed 0) and m + d (seed 1): its mean is m,
its standard error d and its standard deviation d * sqrt(2), so each bar and ± is known by hand.
The naturalness cache is written with the store: no model is loaded."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from matplotlib import pyplot as plt
from matplotlib.collections import PolyCollection
from matplotlib.container import ErrorbarContainer
from matplotlib.patches import Polygon, Rectangle

from pinbench.analysis import ReportOptions, load_results
from pinbench.analysis import plots
from pinbench.analysis.naturalness import CACHE_FILE, CACHE_VERSION, NaturalnessOptions
from pinbench.analysis.report import ablation_columns, prepare
from pinbench.analysis.tables import ablation_table, to_latex, to_markdown
from pinbench.results import TABLES, frames, write_results
from pinbench.run import RunResult, make_spec

ALPHAS = (0.25, 1.0, 4.0)
QS = (1.5, 2.0)
REFERENCE_LM = "hand-made-lm"  # only a cache key: every prompt's naturalness is in the cache
LM = "smollm2-135m"  # recorded as policy and task LM; never loaded
STEPS = 10  # the last 10% of steps is the last step: earlier steps carry decoys


def cell(q: float, alpha: float) -> dict[str, tuple[float, float]]:
    """(mean m, standard error d) of each per-trial metric, unscaled, for pin at (q, alpha)."""
    a, s = ALPHAS.index(alpha), QS.index(q)
    return {"test_accuracy": (0.60 + 0.02 * a + 0.10 * s, 0.01 * (1 + a)),
            "reward_mean": (10.0 + a + 5.0 * s, 0.5 * (1 + s)),
            "support": ((100.0 if q == 1.5 else 10.0) * 2 ** a, (10.0 if q == 1.5 else 1.0) * 2 ** a),
            "perplexity": (1000.0 * (1 + a) * (1 + s), 100.0 * (1 + a)),
            "zipf_mean": (5.0 - 0.5 * a - s, 0.1 * (1 + a)),
            "repeated_token_rate": (0.2 * (1 + a) + 0.1 * s, 0.1)}


RLPROMPT = {"test_accuracy": (0.50, 0.01), "reward_mean": (8.0, 1.0), "support": (256.0, 0.0),
            "perplexity": (1e6, 2e5), "zipf_mean": (1.0, 0.5), "repeated_token_rate": (0.8, 0.1)}
NATURALNESS = ("perplexity", "zipf_mean", "repeated_token_rate")


def runs() -> list[tuple[dict, dict[str, float]]]:
    """(make_spec values, per-trial metrics) of every trial."""
    out = []
    for q in QS:
        method = {"method.regularizer": "sparse_tsallis"} if q == 2.0 else {"method.regularizer": "tsallis",
                                                                            "method.q": q}
        for alpha in ALPHAS:
            for seed, sign in ((0, -1), (1, 1)):
                values = {k: m + sign * d for k, (m, d) in cell(q, alpha).items()}
                out.append(({"preset": "pin", **method, "method.alpha": alpha, "run.seed": seed}, values))
    for seed, sign in ((0, -1), (1, 1)):
        out.append(({"preset": "rlprompt", "run.seed": seed}, {k: m + sign * d for k, (m, d) in RLPROMPT.items()}))
    return out


def write_store(directory) -> None:
    """pinbench's own results writer, and a naturalness cache holding every best prompt."""
    tables = {name: [] for name in TABLES}
    cache = []
    for i, (values, metrics) in enumerate(runs()):
        spec = make_spec({"dataset": "sst-2", "split_seed": 13, "policy_lm": LM, "task_lm": LM,
                          "steps": STEPS, "eval_every": 5, **values})
        prompt = f"hand made prompt {i}"
        result = RunResult(spec, steps_done=STEPS, wall_time_s=1.0, prompt_tokenizer=LM)
        result.history = [{"step": step, "entropy": 0.5,
                           "reward_mean": metrics["reward_mean"] if step == STEPS else -50.0,
                           "support": metrics["support"] if step == STEPS else 1e4}
                          for step in range(1, STEPS + 1)]
        result.best = {"step": STEPS, "prompt": prompt, "token_ids": None, "dev_accuracy": 0.5}
        result.test = {"test_accuracy": metrics["test_accuracy"]}
        for name, frame in frames(result, f"t{i:02d}", "tsallis-handmade").items():
            tables[name].append(frame)
        cache.append({"cache_version": CACHE_VERSION, "prompt": prompt, "reference_lm": REFERENCE_LM,
                      "policy_lm": LM, **{k: metrics[k] for k in NATURALNESS}})
    write_results(directory, {name: pd.concat([f for f in parts if len(f)] or parts[:1], ignore_index=True)
                              for name, parts in tables.items()})
    pd.DataFrame(cache).to_parquet(directory / CACHE_FILE)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    directory = tmp_path_factory.mktemp("tsallis-handmade")
    write_store(directory)
    return directory


def report_options(**kw) -> ReportOptions:
    return ReportOptions(naturalness=NaturalnessOptions(reference_lm=REFERENCE_LM), **kw)


@pytest.fixture(scope="module")
def trials(store) -> pd.DataFrame:
    prep = prepare(load_results(store), report_options())
    assert prep.computed == 0  # all from the cache: no reference LM was loaded
    assert prep.baseline == "rlprompt"
    return prep.trials


def test_train_reward_and_support_are_the_last_tenth_of_steps(trials):
    """Not the decoys of the steps before the last of 10."""
    first = trials.set_index("trial_id").loc["t00"]  # q = 1.5, alpha 0.25, seed 0: m - d
    assert first["reward_mean"] == pytest.approx(10.0 - 0.5) and first["support"] == pytest.approx(100.0 - 10.0)


def columns(trials):
    return ablation_columns(trials, "test_accuracy")


@pytest.fixture(scope="module")
def figure(trials):
    """The report's figure: error bars and band the standard error, rlprompt the reference."""
    return plots.ablation(trials, "method.alpha", columns(trials), "se", reference="rlprompt")


KEYS = ["test_accuracy", "reward_mean", "support", "perplexity", "zipf_mean", "repeated_token_rate"]
SCALE = {"test_accuracy": 100.0, "repeated_token_rate": 100.0}
LINES = {"pin q=1.5": 1.5, "pin q=2 (sparsemax)": 2.0}


def _errorbars(ax) -> dict[str, ErrorbarContainer]:
    return {c.get_label(): c for c in ax.containers if isinstance(c, ErrorbarContainer)}


def _bar_halves(container: ErrorbarContainer) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x, lower and upper half-length of each vertical error bar."""
    _, _, (bars,) = container.lines
    segments = np.array(bars.get_segments())  # [[x, y - err], [x, y + err]] per point
    (line, *_) = container.lines
    y = np.asarray(line.get_ydata(), dtype=float)
    return segments[:, 0, 0], y - segments[:, 0, 1], segments[:, 1, 1] - y


def _band(ax) -> tuple[float, float]:
    """The y extent, in data units, of the panel's one shaded band (axhspan: a Rectangle in
    matplotlib >= 3.9, a Polygon with data y before; fill_between: a PolyCollection)."""
    spans = [p for p in ax.patches if isinstance(p, (Rectangle, Polygon))]
    spans += [c for c in ax.collections if isinstance(c, PolyCollection)]
    assert len(spans) == 1, f"{ax.get_ylabel()}: expected one band, got {spans}"
    (span,) = spans
    if isinstance(span, Rectangle):
        y0 = span.get_y()
        return y0, y0 + span.get_height()
    ys = (span.get_xy() if isinstance(span, Polygon) else span.get_paths()[0].vertices)[:, 1]
    return float(ys.min()), float(ys.max())


def test_one_panel_per_metric_log_alpha_axis_one_line_per_q(figure):
    fig = figure
    axes = fig.axes
    assert [ax.get_ylabel() for ax in axes] == ["Test accuracy (%)", "Train reward", "Policy support (tokens)",
                                                "Prompt perplexity", "Zipf frequency (mean)", "Repeated tokens (%)"]
    for ax in axes:
        assert ax.get_xlabel() == "α" and ax.get_xscale() == "log"
        assert list(ax.get_xticks()) == pytest.approx(ALPHAS)
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0.25", "1", "4"]
        assert set(_errorbars(ax)) == set(LINES)  # one line per q, rlprompt not among them
    # perplexity and support span orders of magnitude: log y; the rest linear
    assert [ax.get_yscale() for ax in axes] == ["linear", "linear", "log", "log", "linear", "linear"]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["pin q=1.5", "pin q=2 (sparsemax)", "rlprompt (n=2): mean, band ± standard error"]
    title = fig._suptitle.get_text()
    assert "on SST-2" in title and "mean ± standard error" in title and "n = 2 per point" in title
    assert "grey band: rlprompt's mean ± standard error" in title


@pytest.mark.parametrize("error", ["se", "std"])
def test_means_at_each_alpha_and_error_bars_by_hand(trials, figure, error):
    fig = figure if error == "se" else plots.ablation(trials, "method.alpha", columns(trials), error, "rlprompt")
    for ax, key in zip(fig.axes, KEYS):
        scale = SCALE.get(key, 1.0)
        for label, q in LINES.items():
            container = _errorbars(ax)[label]
            line = container.lines[0]
            assert line.get_xdata().tolist() == pytest.approx(list(ALPHAS)), (key, label)
            assert line.get_ydata() == pytest.approx([cell(q, a)[key][0] * scale for a in ALPHAS]), (key, label)
            # seed values m ± d: standard error d, standard deviation d * sqrt(2)
            want = [cell(q, a)[key][1] * scale * (1.0 if error == "se" else math.sqrt(2)) for a in ALPHAS]
            x, below, above = _bar_halves(container)
            assert x == pytest.approx(list(ALPHAS))
            assert above == pytest.approx(want), (key, label)
            if ax.get_yscale() == "linear":
                assert below == pytest.approx(want), (key, label)
    assert ("standard error" if error == "se" else "std") in fig._suptitle.get_text()


def test_rlprompt_reference_band_is_its_mean_plus_minus_se(trials, figure):
    for ax, key in zip(figure.axes, KEYS):
        scale = SCALE.get(key, 1.0)
        m, d = RLPROMPT[key][0] * scale, RLPROMPT[key][1] * scale
        assert _band(ax) == pytest.approx((m - d, m + d)), key
        (mean_line,) = [line for line in ax.get_lines() if line.get_label().startswith("rlprompt")]
        assert mean_line.get_ydata() == pytest.approx([m, m]), key
    # no reference named, or none in the results: no band
    fig = plots.ablation(trials, "method.alpha", columns(trials), "se", reference=None)
    assert not fig.axes[0].patches and "grey band" not in fig._suptitle.get_text()


def test_ablation_over_q_has_a_line_per_alpha(trials):
    """sparse_tsallis reads as q = 2, so the same trials vary q at each alpha (a linear axis)."""
    fig = plots.ablation(trials, "method.q", columns(trials), "se", reference="rlprompt")
    ax = fig.axes[0]
    assert ax.get_xscale() == "linear" and list(ax.get_xticks()) == pytest.approx(QS)
    bars = _errorbars(ax)
    assert set(bars) == {"pin α=0.25", "pin α=1", "pin α=4"}
    accuracy = [cell(q, 1.0)["test_accuracy"][0] * 100 for q in QS]
    assert bars["pin α=1"].lines[0].get_ydata() == pytest.approx(accuracy)


def _row(q: float, alpha: float) -> str:
    return f"pin q={q:g}{' (sparsemax)' if q == 2 else ''}, α={alpha:g}"


def test_table_rows_alpha_by_q_means_errors_and_rlprompt_row(trials):
    frame = plots.ablation_groups(trials, "method.alpha")
    table = ablation_table(frame, "method.alpha", columns(trials), error="se", reference_name="rlprompt",
                           reference=plots.ablation_reference(trials, frame, "rlprompt"))
    assert table.rows == [_row(q, a) for q in QS for a in ALPHAS] + ["rlprompt"]
    assert [c.key for c in table.columns] == KEYS
    for q in QS:
        for a in ALPHAS:
            for key in KEYS:
                m, d = cell(q, a)[key]
                assert table.mean.loc[_row(q, a), key] == pytest.approx(m * SCALE.get(key, 1.0))
                assert table.err.loc[_row(q, a), key] == pytest.approx(d * SCALE.get(key, 1.0))
                assert table.n.loc[_row(q, a), key] == 2
    assert table.baseline == "rlprompt"
    md = to_markdown(table).replace("†", "").splitlines()  # daggers: Welch's test, tests/test_analysis.py
    assert md[0] == ("| Method | Test accuracy (%) | Train reward | Policy support (tokens) | Prompt perplexity "
                     "| Zipf frequency (mean) | Repeated tokens (%) |")
    # q = 1.5, alpha 1: accuracy 62 ± 2, reward 11 ± 0.5, support 200 ± 20, ppl 2000 ± 200, Zipf 4.5 ± 0.2,
    # repeats 40 ± 10
    assert ("| pin q=1.5, α=1 | 62.0 ± 2.0 | 11.0 ± 0.5 | 200.0 ± 20.0 | 2000.0 ± 200.0 | 4.50 ± 0.20 "
            "| 40.0 ± 10.0 |") in md
    assert "| rlprompt | 50.0 ± 1.0 | 8.0 ± 1.0 | 256.0 ± 0.0 | 1.0M ± 0.2M | 1.00 ± 0.50 | 80.0 ± 10.0 |" in md
    tex = to_latex(table, "tab:ablation").replace("$^\\dagger$", "")
    assert r"Method & Test accuracy (\%) & Reward & Support & PPL & Zipf & Rep. \\" in tex
    assert r"pin q=2 (sparsemax), $\alpha$=0.25 & 70.0{\scriptsize$\pm$1.0} & 15.0{\scriptsize$\pm$1.0} & " in tex
    assert r"rlprompt & 50.0{\scriptsize$\pm$1.0} & 8.0{\scriptsize$\pm$1.0} & 256.0{\scriptsize$\pm$0.0}" in tex
    assert "standard error" in table.caption() and "n = 2" in table.caption()
    std = ablation_table(frame, "method.alpha", columns(trials), error="std")
    assert std.err.loc[_row(1.5, 1.0), "test_accuracy"] == pytest.approx(2.0 * math.sqrt(2))
    assert "rlprompt" not in std.rows  # no reference given: no reference row
