"""The analysis package and `pinbench report` on a hand-made results set with known numbers."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats

from pinbench.analysis import ReportOptions, ResultsError, build_report, load_results
from pinbench.analysis import naturalness as nat
from pinbench.analysis import plots
from pinbench.analysis.methods import label_methods, method_label
from pinbench.analysis.naturalness import NaturalnessOptions
from pinbench.analysis.report import ablation_columns
from pinbench.tasks.classification.published import MATCHING_ROWS, PIN_TABLE1, published_rows
from pinbench.analysis.tables import Column, add_published, summarise, to_latex, to_markdown
from pinbench.cli import main
from pinbench.results import TABLES, frames, trial_row, write_results
from pinbench.run import RunResult, make_spec
from pinbench.suite import load_suite

# (preset, overrides, dataset, split seed, seed, test accuracy, best prompt); None: a failed trial
RUNS = [
    ("pin", {}, "sst-2", 13, 0, 0.90, "the movie was great"),
    ("pin", {}, "sst-2", 13, 1, 0.92, "this film is good"),
    ("pin", {}, "sst-2", 21, 0, 0.94, "the story is nice"),
    ("rlprompt", {}, "sst-2", 13, 0, 0.80, "great great great"),
    ("rlprompt", {}, "sst-2", 13, 1, 0.81, "the the the the"),
    ("rlprompt", {}, "sst-2", 21, 0, 0.82, "good good good"),
    ("rlprompt", {}, "sst-2", 21, 1, None, None),
    ("pin", {"alpha": 0.5}, "sst-2", 13, 0, 0.85, "the plot was fun"),
    ("pin", {"alpha": 0.5}, "sst-2", 13, 1, 0.95, "the movie was great"),
    ("pin", {"alpha": 0.5}, "sst-2", 21, 0, 0.90, "a nice story"),
    ("pin", {}, "mr", 13, 0, 0.70, "the film was good"),
    ("pin", {}, "mr", 13, 1, 0.72, "the film was bad"),
    ("rlprompt", {}, "mr", 13, 0, 0.75, "bad bad bad"),
    ("rlprompt", {}, "mr", 13, 1, 0.77, "nice nice nice"),
]


def make_store(directory: Path, model: str, runs=RUNS, suite: str = "handmade") -> Path:
    """A results store with the given test accuracies, written by pinbench's own results writer."""
    tables = {name: [] for name in TABLES}
    for i, (preset, overrides, dataset, split_seed, seed, acc, prompt) in enumerate(runs):
        spec = make_spec({"preset": preset, "dataset": dataset, "split_seed": split_seed, "seed": seed,
                          "policy_lm": model, "task_lm": model, "steps": 20, "eval_every": 10, **overrides})
        result = RunResult(spec, steps_done=20, wall_time_s=1.0, prompt_tokenizer=model)
        if acc is not None:
            support = 5.0 if spec.method_config.regularizer == "sparse_tsallis" else 49.0
            result.history = [{"step": step, "reward_mean": 1.0, "entropy": 0.5, "support": support,
                               "dev_accuracy": acc - (0.1 if step == 10 else 0.0), "greedy_prompt": prompt}
                              for step in (10, 20)]
            result.best = {"step": 20, "prompt": prompt, "token_ids": None, "dev_accuracy": acc}
            result.test = {"test_accuracy": acc, "test_reward": 10 * acc}
            result.prompts = [{"step": 20, "source": "best", "prompt": prompt, "token_ids": None,
                               "dev_accuracy": acc, "test_accuracy": acc}]
        status, error = ("completed", "") if acc is not None else ("failed", "Traceback ...\nRuntimeError: out of memory")
        for name, frame in frames(result, f"t{i:02d}", suite, status, error).items():
            tables[name].append(frame)
    write_results(directory, {name: pd.concat([f for f in parts if len(f)] or parts[:1], ignore_index=True)
                              for name, parts in tables.items()})
    return directory


@pytest.fixture
def store(tmp_path, tiny_lm_dir) -> Path:
    return make_store(tmp_path / "results" / "handmade", tiny_lm_dir)


def options(model: str, **kw) -> ReportOptions:
    return ReportOptions(naturalness=NaturalnessOptions(reference_lm=model), **kw)


# ---------------------------------------------------------------------------------------------
# Comparison tables: exact cells, errors, bold, daggers
# ---------------------------------------------------------------------------------------------


def test_comparison_table_cells_bold_and_daggers(store, tmp_path, tiny_lm_dir):
    report = build_report([store], tmp_path / "report", options(tiny_lm_dir))
    table = report.comparison
    assert table.rows == ["rlprompt", "pin", "pin α=0.5"]  # PIN Table 1's order
    assert table.mean.loc["pin", "sst-2"] == pytest.approx(92.0)
    assert table.err.loc["pin", "sst-2"] == pytest.approx(2.0 / math.sqrt(3))  # std 2, n 3
    assert table.err.loc["rlprompt", "sst-2"] == pytest.approx(1.0 / math.sqrt(3))  # the failed run is not counted
    assert table.n.loc["rlprompt", "sst-2"] == 3
    assert table.mean.loc["pin", "Avg"] == pytest.approx(81.5)
    assert math.isnan(table.mean.loc["pin α=0.5", "Avg"])  # no mr runs: no average
    # Welch's t-test, by hand: t = (m1 - m2) / sqrt(s1²/n1 + s2²/n2), Welch-Satterthwaite df
    a, b = np.array([85.0, 95.0, 90.0]), np.array([80.0, 81.0, 82.0])
    va, vb = a.var(ddof=1) / 3, b.var(ddof=1) / 3
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
    assert table.pvalue.loc["pin α=0.5", "sst-2"] == pytest.approx(2 * stats.t.sf(t, df))
    assert table.pvalue.loc["pin α=0.5", "sst-2"] > 0.05  # Student's pooled test would say 0.03
    assert stats.ttest_ind(a, b).pvalue < 0.05
    md = to_markdown(table).splitlines()
    assert md[0] == "| Method | SST-2 | MR | Avg |"
    assert "| pin | **92.0 ± 1.2**† | 71.0 ± 1.0 | **81.5** |" in md
    assert "| pin α=0.5 | 90.0 ± 2.9 | – | – |" in md
    assert "| rlprompt | 81.0 ± 0.6 | **76.0 ± 1.0** | 78.5 |" in md
    assert "n = 2 to 3" in to_markdown(table) and "standard error" in to_markdown(table)
    tex = (tmp_path / "report" / "tables" / "comparison.tex").read_text()
    assert "\\toprule" in tex and "\\bottomrule" in tex
    assert "pin & \\textbf{92.0{\\scriptsize$\\pm$1.2}$^\\dagger$} & 71.0{\\scriptsize$\\pm$1.0} & \\textbf{81.5} \\\\" in tex
    assert "pin $\\alpha$=0.5 & 90.0{\\scriptsize$\\pm$2.9} & -- & -- \\\\" in tex  # escaped for pdflatex
    long = pd.read_csv(tmp_path / "report" / "tables" / "comparison.csv")
    cell = long[(long["method"] == "pin") & (long["column"] == "sst-2")].iloc[0]
    assert cell["n"] == 3 and bool(cell["best"]) and bool(cell["significant"]) and cell["p_value"] < 0.05


def test_standard_deviation_and_ties():
    samples = pd.DataFrame({"row": ["a", "a", "b", "b", "c"], "column": ["x"] * 5,
                            "value": [1.0, 3.0, 2.0, 2.0, 5.0]})
    table = summarise(samples, [Column("x", "X", "lower", 1)], title="t", error="std", baseline="b")
    assert table.err.loc["a", "x"] == pytest.approx(math.sqrt(2))
    assert math.isnan(table.err.loc["c", "x"])  # n = 1: no error, no test
    assert math.isnan(table.pvalue.loc["c", "x"])
    assert table.bold["x"].tolist() == [True, True, False]  # lower is better; a tie is bold twice
    assert "| c | 5.0 |" in to_markdown(table)
    with pytest.raises(Exception, match="baseline method 'zz'"):
        summarise(samples, [Column("x", "X")], title="t", baseline="zz")


def test_bold_and_daggers_in_markdown_and_latex_ties_lower_is_better_and_latex_only_columns():
    """Without pdflatex: the LaTeX cells themselves. Accuracy: a (92.04) and b (91.96) both print
    92.0, so both are bold although a's mean is higher; perplexity is lower-is-better (c's 6.0
    is bold); Extra is not ranked and not in the LaTeX table (latex=False)."""
    values = {("a", "acc"): [92.0, 92.1, 92.02], ("b", "acc"): [91.9, 92.0, 91.98], ("c", "acc"): [80, 81, 82],
              ("a", "ppl"): [10, 12, 11], ("b", "ppl"): [20, 22, 21], ("c", "ppl"): [5, 6, 7],
              ("a", "extra"): [1, 2, 3], ("b", "extra"): [1, 2, 3], ("c", "extra"): [1, 2, 3]}
    samples = pd.DataFrame([(r, c, v) for (r, c), vs in values.items() for v in vs], columns=["row", "column", "value"])
    columns = [Column("acc", "Accuracy"), Column("ppl", "Perplexity", "lower", short="PPL"),
               Column("extra", "Extra", None, latex=False)]
    table = summarise(samples, columns, title="t", baseline="c")
    assert table.mean.loc["a", "acc"] > table.mean.loc["b", "acc"]  # a tie only at the printed precision
    # Welch by hand for a's perplexity: t = 5 / sqrt(1/3 + 1/3) = 6.124, df = 4: p = 0.0036
    assert table.pvalue.loc["a", "ppl"] == pytest.approx(0.0036, abs=1e-4)
    assert table.pvalue.loc["a", "extra"] == pytest.approx(1.0)  # the same runs: no dagger
    md = to_markdown(table).splitlines()
    assert md[:5] == ["| Method | Accuracy | Perplexity | Extra |", "|:---|---:|---:|---:|",
                      "| a | **92.0 ± 0.0**† | 11.0 ± 0.6† | 2.0 ± 0.6 |",
                      "| b | **92.0 ± 0.0**† | 21.0 ± 0.6† | 2.0 ± 0.6 |",
                      "| c | 81.0 ± 0.6 | **6.0 ± 0.6** | 2.0 ± 0.6 |"]
    tex = to_latex(table, "tab:t")
    body = tex[tex.index("\\toprule"):tex.index("\\bottomrule")].splitlines()
    assert body == ["\\toprule", "Method & Accuracy & PPL \\\\", "\\midrule",
                    "a & \\textbf{92.0{\\scriptsize$\\pm$0.0}$^\\dagger$} & 11.0{\\scriptsize$\\pm$0.6}$^\\dagger$ \\\\",
                    "b & \\textbf{92.0{\\scriptsize$\\pm$0.0}$^\\dagger$} & 21.0{\\scriptsize$\\pm$0.6}$^\\dagger$ \\\\",
                    "c & 81.0{\\scriptsize$\\pm$0.6} & \\textbf{6.0{\\scriptsize$\\pm$0.6}} \\\\"]
    assert "\\begin{tabular}{lcc}" in tex and "Extra" not in tex  # two value columns, as shown


def test_published_rows_reproduce_the_papers_averages():
    rows = published_rows(["pin", "rlprompt", "pin α=0.5"], "matching")
    assert list(rows) == ["PIN", "RLPrompt+"]
    assert rows["PIN"]["sst-2"] == (92.0, 0.1)
    # every typed-in row averages to the paper's printed Avg, but one that the paper misprints
    for name, cells in published_rows([], "all").items():
        mean = np.mean([m for k, (m, _) in cells.items() if k != "Avg"])
        if name == "In-context demonstration":
            assert round(mean, 1) == 75.2 and cells["Avg"][0] == 77.3
        else:
            assert abs(mean - cells["Avg"][0]) <= 0.051, name
    assert len(published_rows([], "all")) == len(PIN_TABLE1)
    # every preset the paper's few-shot suite runs is compared with its published row (random
    # search, the RL methods' floor, is not a row of the paper)
    suite = load_suite(Path(__file__).resolve().parent.parent / "suites" / "paper-fsc.yaml")
    for preset in {point["preset"] for point in suite.points()} - {"random-search"}:
        assert list(published_rows([preset], "matching")) == [MATCHING_ROWS[preset]], preset
    assert published_rows(["grips-rlprompt"], "matching") == published_rows(["grips"], "matching")
    # in a table: the printed Avg when every dataset is shown, else recomputed over those shown
    seven = ["sst-2", "yelp-2", "mr", "cr", "agnews", "yahoo", "subj"]
    for shown, expected in ((seven, 77.3), (["sst-2", "mr"], (85.9 + 80.6) / 2)):
        samples = pd.DataFrame({"row": "pin", "column": shown, "value": 0.5})
        table = summarise(samples, [Column(d, d) for d in shown], title="t", average=True)
        table = add_published(table, published_rows([], "all"), "PIN")
        assert table.published["In-context demonstration"]["Avg"][0] == pytest.approx(expected)


def test_published_rows_in_the_table_are_not_ranked(store, tmp_path, tiny_lm_dir):
    report = build_report([store], tmp_path / "r", options(tiny_lm_dir, published="matching"))
    md = to_markdown(report.comparison)
    # the published columns are the datasets shown; Avg recomputed over them
    assert "| PIN (pub.) | 92.0 ± 0.1 | 87.2 ± 0.3 | 89.6 |" in md
    assert "**92.0 ± 1.2**†" in md  # ours stays the bold one
    tex = (tmp_path / "r" / "tables" / "comparison.tex").read_text()
    assert "\\midrule\nRLPrompt+ (pub.)" in tex and tex.index("RLPrompt+ (pub.)") < tex.index("PIN (pub.)")


def test_method_labels_come_from_the_recorded_preset_and_its_changes():
    def row(preset=None, **kw):
        return trial_row(RunResult(make_spec({"preset": preset, **kw})), "t")
    assert method_label(row("pin")) == "pin"
    assert method_label(row("rlprompt", seed=4, dataset="mr")) == "rlprompt"
    assert method_label(row("pin", alpha=0.3)) == "pin α=0.3"
    assert method_label(row("pin-no-filter")) == "pin-no-filter"
    # the recorded preset decides, not the settings: pin with the filter off is pin changed, even
    # though its settings equal the pin-no-filter preset's
    assert method_label(row("pin", top_k=None)) == "pin top-k=off"
    assert method_label(row("pin-released")) == "pin-released"
    assert method_label(row("pin", top_k=5000)) == "pin top-k=5000"
    assert method_label(row("rlprompt", reward_scale=1.0)) == "rlprompt scale=1"
    assert method_label(row(regularizer="tsallis", q=1.2)) == "rl regularizer=tsallis q=1.2"
    # two settings never share a label (6 significant digits made these one row, averaged)
    assert method_label(row("pin", alpha=0.1234561)) == "pin α=0.1234561"
    assert method_label(row("pin", alpha=0.1234564)) == "pin α=0.1234564"
    frame = pd.DataFrame([row("pin", alpha=0.3), row("pin", alpha=2.0)])
    assert label_methods(frame, ["alpha"]).tolist() == ["method.alpha=0.3", "method.alpha=2"]
    with pytest.raises(Exception, match="no such column"):
        label_methods(frame, ["nope"])


def test_a_version_1_store_is_upgraded_on_read(tmp_path):
    """Schema 1 wrote flat config.<field> columns and no identity: reading it gives the sections,
    the task, the method and the closest preset of its regulariser (the rule version 1 labelled by)."""
    v1 = {"schema_version": 1, "suite": "old", "status": "completed", "error": "", "best_prompt": "great",
          "best_step": 10, "test_accuracy": 0.8, "steps": 20, "wall_time_s": 1.0,
          "config.dataset": "sst-2", "config.split_seed": 13, "config.seed": 0, "config.policy_lm": "gpt2",
          "config.task_lm": "gpt2", "config.steps": 20, "config.regularizer": "sparse_tsallis", "config.alpha": 1.0,
          "config.top_k": 10000, "config.sample_top_k": None, "config.objective": "mc", "config.replay_size": 64000,
          "config.replay_batch": 256, "config.replay_warmup": True, "config.reward_scale": 1.0,
          "config.reward_shift": 0.0, "config.lr": 5e-5, "config.prompts_per_step": 16, "config.q": 1.5,
          "config.mlp_hidden": 2048, "config.prompt_length": 5, "config.grad_clip": 5.0, "config.polyak": 0.001}
    trials = pd.DataFrame([{**v1, "trial_id": "a"}, {**v1, "trial_id": "b", "config.alpha": 0.3}])
    trials.to_parquet(tmp_path / "trials.parquet")
    for name, cols in (("history", {"step": [1]}), ("prompts", {"step": [1], "source": ["best"], "prompt": ["great"]})):
        pd.DataFrame({"schema_version": [1], "trial_id": ["a"], **cols}).to_parquet(tmp_path / f"{name}.parquet")
    loaded = load_results(tmp_path).trials.set_index("trial_id")
    assert loaded.loc["a", "task"] == "classification" and loaded.loc["a", "method"] == "rl"
    assert loaded.loc["a", "preset"] == "pin" and loaded.loc["b", "preset"] == "pin"  # the closest, as v1 labelled
    assert loaded.loc["a", "run.seed"] == 0 and loaded.loc["a", "task.split_seed"] == 13
    assert loaded.loc["b", "method.alpha"] == 0.3 and loaded.loc["a", "prompt_tokenizer"] == "gpt2"
    assert not [c for c in loaded.columns if c.startswith("config.")]
    assert [method_label(loaded.loc[t].to_dict() | {"trial_id": t}) for t in ("a", "b")] == ["pin", "pin α=0.3"]


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


def test_load_errors_name_the_file(tmp_path, tiny_lm_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="no results in '.*empty'"):
        load_results(tmp_path / "empty")
    with pytest.raises(ResultsError, match="does not exist"):
        load_results(tmp_path / "nowhere")
    bad = make_store(tmp_path / "bad", tiny_lm_dir)
    trials = pd.read_parquet(bad / "trials.parquet")
    trials.drop(columns=["dataset"]).to_parquet(bad / "trials.parquet")
    with pytest.raises(ResultsError, match=r"bad/trials.parquet' lacks column\(s\) \['dataset'\]"):
        load_results(bad)
    trials.assign(schema_version=99).to_parquet(bad / "trials.parquet")
    with pytest.raises(ResultsError, match="bad/trials.parquet' has schema version 99"):
        load_results(bad)
    (bad / "history.parquet").unlink()
    trials.to_parquet(bad / "trials.parquet")
    with pytest.raises(ResultsError, match="bad/history.parquet' is missing"):
        load_results(bad)


def test_load_roots_uris_and_clashing_ids(tmp_path, tiny_lm_dir):
    one = make_store(tmp_path / "a" / "run", tiny_lm_dir, RUNS[:2])
    two = make_store(tmp_path / "b" / "run", tiny_lm_dir, RUNS[3:5])
    other = make_store(tmp_path / "a" / "other", tiny_lm_dir, RUNS[10:11])
    results = load_results([f"file://{tmp_path / 'a'}", two])  # a root of two stores, through pyarrow's URI path
    assert sorted(s.label for s in results.stores) == ["other", "run#1", "run#2"]
    assert len(results.trials) == 5 and results.trials["trial_id"].is_unique
    # every store has a t00: all are qualified; t01 exists in both "run" stores
    assert set(results.trials["trial_id"]) == {"run#1/t00", "run#1/t01", "run#2/t00", "run#2/t01", "other/t00"}
    # history rows follow their trial's new id
    assert set(results.history["trial_id"]) <= set(results.trials["trial_id"])
    assert one.is_dir() and other.is_dir()


# ---------------------------------------------------------------------------------------------
# Naturalness
# ---------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_naturalness_cache_is_reused(store, tmp_path, tiny_lm_dir, monkeypatch):
    first = build_report([store], tmp_path / "r1", options(tiny_lm_dir))
    unique = first.trials["best_prompt"].nunique()
    assert first.computed_prompts == unique and first.cached_prompts == 0
    cache = pd.read_parquet(store / "naturalness.parquet")
    assert len(cache) == unique and cache["perplexity"].gt(1).all()

    def fail(*args, **kwargs):
        raise AssertionError("perplexity computed again despite the cache")
    monkeypatch.setattr(nat, "perplexities", fail)
    second = build_report([store], tmp_path / "r2", options(tiny_lm_dir))
    assert second.computed_prompts == 0 and second.cached_prompts == unique
    pd.testing.assert_series_equal(first.trials["perplexity"], second.trials["perplexity"])
    # another reference LM is another cache key: it has to be computed
    with pytest.raises(AssertionError, match="computed again"):
        build_report([store], tmp_path / "r3", options(tiny_lm_dir + "/"))
    monkeypatch.undo()
    assert build_report([store], tmp_path / "r3", options(tiny_lm_dir + "/")).computed_prompts == unique
    assert len(pd.read_parquet(store / "naturalness.parquet")) == 2 * unique  # both reference LMs cached
    # --no-cache recomputes, and keeps the other reference LM's rows
    fourth = build_report([store], tmp_path / "r4", options(tiny_lm_dir, use_cache=False))
    assert fourth.computed_prompts == unique and fourth.cached_prompts == 0
    assert len(pd.read_parquet(store / "naturalness.parquet")) == 2 * unique


def test_perplexity_of_a_model_whose_probabilities_are_known():
    """A GPT-2 whose next-token distribution is fixed by hand: the final layer norm's weight 0 and
    bias e_0 make every hidden state e_0, so the logits are column 0 of the (tied) embedding:
    ln 2 for 'the', 0 for the other 50 tokens. p(the) = 2/52, any other token 1/52, whatever the
    context; the first word is conditioned on </s> (the word tokenizer's EOS)."""
    from conftest import build_gpt2

    lm = build_gpt2()
    tok = lm.tokenizer
    assert len(tok) == 51 and nat.context_token(tok) == (tok.eos_token_id, "</s>")
    model = lm.model
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.zero_()
        model.transformer.ln_f.bias[0] = 1.0
        model.transformer.wte.weight.zero_()
        model.transformer.wte.weight[tok.convert_tokens_to_ids("the"), 0] = math.log(2)
    texts = ["the the", "the movie", "movie", "movie was great fun", "", "the"]
    # exp(mean NLL): 52/2; exp((ln 26 + ln 52) / 2) = 52/sqrt(2); 52; 52; nothing scored; 26 —
    # in one padded batch, so a wrong mask or length in the mean shows up
    expected = [26.0, 52 / math.sqrt(2), 52.0, 52.0, float("nan"), 26.0]
    assert nat.perplexities(texts, lm, batch_size=8) == pytest.approx(expected, rel=1e-5, nan_ok=True)
    assert nat.perplexities(texts, lm, batch_size=2) == pytest.approx(expected, rel=1e-5, nan_ok=True)


def test_word_and_token_statistics(tiny_gpt2):
    w = nat.word_stats("the movie was great")
    assert w["dictionary_word_share"] == 1.0 and w["zipf_min"] > 3
    assert nat.word_stats("zxqv the")["dictionary_word_share"] == 0.5
    assert math.isnan(nat.word_stats("... !")["zipf_mean"])
    ids = tiny_gpt2.tokenizer("great great the", add_special_tokens=False).input_ids
    s = nat.token_stats("great great the", ids, tiny_gpt2.tokenizer)
    assert s["repeated_token_rate"] == pytest.approx(1 / 3) and s["fragment_share"] == 0.0
    assert nat.token_stats("café", None, None)["non_ascii_share"] == pytest.approx(0.25)


@pytest.mark.slow
def test_naturalness_orders_hand_picked_prompts(smollm2):
    tok = smollm2.tokenizer
    natural, rlprompt = "This movie was really great", "o overall downright just downright"
    randoms = [tok.decode(np.random.default_rng(seed).integers(100, len(tok), 5).tolist()) for seed in range(3)]
    ppl = nat.perplexities([natural, rlprompt, *randoms], smollm2)
    assert ppl[0] < ppl[1] < min(ppl[2:])
    zipf = [nat.word_stats(t)["zipf_mean"] for t in (natural, rlprompt, *randoms)]
    assert zipf[0] > zipf[1] > max(zipf[2:])
    assert nat.context_token(tok) == (0, "<|endoftext|>")  # SmolLM2 adds no BOS; documents end in <|endoftext|>
    # " downright" is two policy tokens: word pieces, not words
    ids = tok(rlprompt, add_special_tokens=False).input_ids
    assert nat.token_kinds(ids, tok) == ["word", "word", "piece", "piece", "word", "piece", "piece"]
    assert nat.token_stats(natural, None, tok)["fragment_share"] == 0.0
    # a byte token (half of a UTF-8 character) is a byte fragment
    partial = tok("é", add_special_tokens=False).input_ids
    assert "byte" in nat.token_kinds(tok.convert_tokens_to_ids(["Ã"]) + partial, tok)


# ---------------------------------------------------------------------------------------------
# Outputs: LaTeX that compiles, figures with the right axes, report.md, the CLI
# ---------------------------------------------------------------------------------------------


def test_latex_tables_compile(store, tmp_path, tiny_lm_dir):
    if shutil.which("pdflatex") is None:
        # pdflatex is a system tool, not a Python dependency: the one skip that stays in CI. The
        # tables' LaTeX text is checked without it (test_bold_and_daggers_..., the comparison test).
        pytest.skip("pdflatex not found: install Debian's texlive-latex-base and texlive-latex-recommended "
                    "(.ci/run does) to compile the generated tables")
    report = build_report([store], tmp_path / "r", options(tiny_lm_dir, published="all"))
    texs = sorted((report.out / "tables").glob("*.tex"))
    assert [t.name for t in texs] == ["ablation_alpha.tex", "comparison.tex", "naturalness.tex", "settling.tex"]
    for tex in texs:
        doc = tmp_path / f"doc-{tex.stem}.tex"
        doc.write_text("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
                       f"\\input{{{tex.as_posix()}}}\n\\end{{document}}\n")
        # No timeout: nonstopmode with -halt-on-error and no stdin never waits for input, so a
        # LaTeX error ends the run (and fails here) instead of hanging.
        run = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", doc.name],
                             cwd=tmp_path, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        assert run.returncode == 0, run.stdout[-3000:]
        assert (tmp_path / f"doc-{tex.stem}.pdf").stat().st_size > 1000


def test_latex_escapes_method_names():
    samples = pd.DataFrame({"row": ["sparse_tsallis 50%"], "column": ["x"], "value": [1.0]})
    tex = to_latex(summarise(samples, [Column("x", "a & b")], title="t"), "tab:x")
    assert "sparse\\_tsallis 50\\%" in tex and "a \\& b" in tex
    # < > | print as other glyphs in OT1 text; a control character stops pdflatex
    from pinbench.analysis.tables import latex_text

    assert latex_text("p < 0.05 | a>b") == "p $<$ 0.05 $|$ a$>$b"
    assert latex_text("bell\x07 tab\tline\nend\x7f") == "bell? tab line end?"


def test_figures(store, tmp_path, tiny_lm_dir):
    import matplotlib.image

    report = build_report([store], tmp_path / "r", options(tiny_lm_dir))
    for stem in ("learning_curves", "ablation_alpha", "policy_support", "train_reward"):
        png = report.out / "figures" / f"{stem}.png"
        assert png.stat().st_size > 0 and (report.out / "figures" / f"{stem}.pdf").stat().st_size > 0
        assert matplotlib.image.imread(png).shape[0] > 100
    assert not (report.out / "figures" / "ablation_q.png").exists()  # nothing varies q
    assert not (report.out / "figures" / "policy_entropy.png").exists()  # Shannon and Tsallis: not one scale
    assert "## Did the runs settle?" in (report.out / "report.md").read_text()

    results = load_results(store)
    fig = plots.learning_curves(results.history, report.trials)
    axes = fig.axes
    assert [a.get_title() for a in axes] == ["SST-2", "MR"]
    assert axes[0].get_xlabel() == "step" and axes[0].get_ylabel() == "dev accuracy (%)"
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert labels == ["rlprompt (n=3)", "pin (n=3)", "pin α=0.5 (n=3)"]
    pin = next(line for line in axes[0].get_lines() if line.get_label() == "pin (n=3)")
    assert pin.get_xdata().tolist() == [10, 20]
    assert pin.get_ydata() == pytest.approx([82.0, 92.0])  # mean of dev accuracy at each step

    fig = plots.learning_curves(results.history, report.trials, "support", log=True)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "policy support (tokens)" and ax.get_yscale() == "log"
    by_label = {line.get_label(): line.get_ydata().tolist() for line in ax.get_lines()}
    assert by_label["pin (n=3)"] == [5.0, 5.0] and by_label["rlprompt (n=3)"] == [49.0, 49.0]

    # the ablation figure's own tests: tests/test_ablation_figure.py
    columns = ablation_columns(report.trials, "test_accuracy")
    fig = plots.ablation(report.trials, "method.alpha", columns, reference="rlprompt")
    accuracy, perplexity = fig.axes[0], fig.axes[columns.index(next(c for c in columns if c.key == "perplexity"))]
    assert accuracy.get_xlabel() == "α" and accuracy.get_ylabel() == "Test accuracy (%)"
    assert perplexity.get_ylabel() == "Prompt perplexity"
    line = accuracy.get_lines()[0]
    assert line.get_xdata().tolist() == [0.5, 1.0]
    assert line.get_ydata() == pytest.approx([90.0, 92.0])
    assert fig.legends[0].get_texts()[0].get_text() == "pin"
    sst2 = report.trials[report.trials["dataset"] == "sst-2"]
    ppl = sst2[sst2["method"].isin(["pin", "pin α=0.5"])].groupby("method.alpha")["perplexity"].mean()
    assert perplexity.get_lines()[0].get_ydata() == pytest.approx(ppl.loc[[0.5, 1.0]].to_numpy())
    assert plots.ablation(report.trials, "method.q", columns) is None


def test_a_cell_of_runs_with_different_models_or_steps_is_named_in_the_warnings(store, tmp_path, tiny_lm_dir):
    """A method label names the recipe, not the models: runs of one preset with another task LM
    (or step count) would be averaged as seeds of one setting. The report says which cell and
    which settings; the seeds, split seeds and alpha rows of a clean store raise nothing."""
    from pinbench.analysis.report import mixed_setups

    trials = pd.read_parquet(store / "trials.parquet")
    labelled = trials[trials["status"] == "completed"].assign(method=lambda t: label_methods(t).to_numpy())
    assert mixed_setups(labelled) == []
    first = trials.index[(trials["preset"] == "rlprompt") & (trials["dataset"] == "mr")][0]
    trials.loc[first, "task.task_lm"] = "roberta-large"
    trials.to_parquet(store / "trials.parquet", index=False)
    report = build_report([store], tmp_path / "report", options(tiny_lm_dir))
    assert [w for w in report.warnings if "averages" in w] == [
        f"rlprompt on mr: the cell averages 2 runs of different settings (task.task_lm: "
        f"{', '.join(sorted([tiny_lm_dir, 'roberta-large']))}); report them apart (--method-by, or one report per "
        "setting)"]


def test_top_prompts_come_best_first_when_lower_is_better():
    from pinbench.analysis.report import top_prompts_markdown

    trials = pd.DataFrame({"method": ["m", "m", "m"], "test_distance": [0.5, 0.1, 0.9],
                           "best_prompt": ["middle", "best", "worst"], "dataset": "d", "run.seed": [0, 1, 2],
                           "task": "classification", "selection_metric": "distance", "selection_mode": "min"})
    text = top_prompts_markdown(trials, ["m"], "test_distance", 2)
    assert text.index('"best"') < text.index('"middle"') and '"worst"' not in text


@pytest.mark.slow
def test_report_markdown_and_cli(store, tmp_path, tiny_lm_dir, capsys):
    out = tmp_path / "report"
    code = main(["report", str(store), "--out", str(out), "--reference-lm", tiny_lm_dir, "--published", "matching"])
    assert code == 0
    assert "report is" in capsys.readouterr().out
    text = (out / "report.md").read_text()
    assert "| pin | **92.0 ± 1.2**† | 71.0 ± 1.0 | **81.5** |" in text
    assert "## Naturalness" in text and "| Method | Perplexity | Zipf mean" in text
    assert "![Learning curves](figures/learning_curves.png)" in text
    assert "![Ablation over α](figures/ablation_alpha.png)" in text
    assert "[LaTeX](tables/ablation_alpha.tex)" in text  # the ablation table: its own tests in test_ablation_figure.py
    assert "| pin, α=0.5 | 90.0 ± 2.9 |" in text and "| rlprompt | 81.0 ± 0.6 |" in text  # SST-2 runs only
    assert '"the story is nice": test accuracy 94.0%' in text  # pin's top prompt
    assert "1 failed (listed at the end)" in text and "## Failed trials" in text
    assert f"- `t06` (store `{store}`): RuntimeError: out of memory" in text  # the failed trial, listed
    # where the columns are defined: a file of pinbench's repository (a relative link would point
    # nowhere from --out), whose section exists
    assert "Every column is defined in docs/results.md of pinbench's repository, section Reports" in text
    assert "\n## Reports\n" in (Path(__file__).resolve().parents[1] / "docs" / "results.md").read_text()
    for link in ("tables/comparison.tex", "tables/naturalness.csv", "figures/learning_curves.pdf"):
        assert (out / link).is_file()
    prompts = pd.read_csv(out / "tables" / "prompts.csv")
    assert len(prompts) == 13 and {"perplexity", "zipf_mean", "test_accuracy"} <= set(prompts.columns)

    # another metric: its own numbers, and no published accuracies beside them
    other = build_report([store], tmp_path / "reward", options(tiny_lm_dir, metric="test_reward", published="all"))
    assert other.comparison.mean.loc["pin", "sst-2"] == pytest.approx(9.2)
    assert other.comparison.published == {} and "published rows left out" in other.warnings[0]
    assert "published rows left out" in (tmp_path / "reward" / "report.md").read_text()

    only_failed = make_store(tmp_path / "failed", tiny_lm_dir, [RUNS[6]])
    assert main(["report", str(only_failed), "--out", str(out)]) == 2
    assert "no completed trials" in (err := capsys.readouterr().err) and "(1 failed)" in err
    assert "RuntimeError: out of memory" in err
    assert main(["report", str(tmp_path / "nothing-here"), "--out", str(out)]) == 2
    assert "nothing-here' does not exist" in capsys.readouterr().err
    assert main(["report", str(store), "--out", str(out), "--metric", "test_f1", "--reference-lm", tiny_lm_dir]) == 2
    assert "metric 'test_f1'" in capsys.readouterr().err
    assert main(["report", str(store), "--out", str(out), "--baseline", "pez", "--reference-lm", tiny_lm_dir]) == 2
    assert "baseline 'pez'" in capsys.readouterr().err


def test_settling_reads_support_and_greedy_changes_off_the_history():
    from pinbench.analysis.settling import settling

    history = pd.DataFrame({
        "trial_id": ["a"] * 8 + ["b"] * 2,
        "step": [1, 2, 3, 4, 5, 6, 7, 8, 1, 2],
        "support": [5000.0, 4000.0, 300.0, 40.0, 20.0, 20.0, 19.0, 18.0, 256.0, 256.0],
        "greedy_prompt": [None, "x y", None, "two two", None, "two two", None, "a b", None, "c d"],
    })
    out = settling(history).set_index("trial_id")
    # a: 8 steps -> 10% is step 1 (nearest 0.8), 25% step 2, 50% step 4, 100% step 8
    assert out.loc["a", ["support_at_10", "support_at_25", "support_at_50", "support_at_100"]].tolist() == \
        [5000.0, 4000.0, 40.0, 18.0]
    # greedy prompts x y -> two two -> two two -> a b: 2 changes; 2 of 4 repeat a word
    assert out.loc["a", "greedy_changes"] == 2.0 and out.loc["a", "greedy_repeats"] == 0.5
    assert pd.isna(out.loc["b", "greedy_changes"])  # one evaluation: nothing to compare
    assert out.loc["b", "greedy_repeats"] == 0.0


def test_an_error_is_written_in_its_means_unit():
    from pinbench.analysis.tables import cell, latex_cell

    assert cell(11400.0, 4967.4, 1) == "11.4K ± 5.0K"  # not "11.4K ± 4967.4"
    assert cell(493400.0, 239400.0, 1) == "493.4K ± 239.4K"
    assert cell(2.5e6, 3e5, 1) == "2.5M ± 0.3M"
    assert cell(62.5, 1.26, 1) == "62.5 ± 1.3" and cell(62.5, float("nan"), 1) == "62.5"
    assert cell(5000.0, 12000.0, 1) == "5000.0 ± 12.0K"  # a small mean keeps its digits
    assert latex_cell(11400.0, 4967.4, 1) == r"11.4K{\scriptsize$\pm$5.0K}"


def test_a_store_given_twice_or_under_another_name_counts_once(store, tmp_path):
    """`report runs/a runs/a`, a root and a store inside it, a trailing slash, '..' and a symlink:
    each trial is counted once (the captions' n and every mean and test rely on it)."""
    from pinbench.analysis.load import load_results

    once = load_results([store])
    link = tmp_path / "link"
    link.symlink_to(store)
    for paths in ([store, store, store], [store.parent, store], [f"{store}/", store.parent / ".." / "results" / store.name],
                  [store, link]):
        again = load_results([str(p) for p in paths])
        assert len(again.trials) == len(once.trials) == len(RUNS), paths
        assert sorted(again.trials["trial_id"]) == sorted(once.trials["trial_id"])
        assert len(again.history) == len(once.history) and len(again.stores) == 1


def test_a_copy_of_a_store_under_another_path_counts_each_trial_once(store, tmp_path):
    """A store copied (cp -r, rsync, a bucket synced down) and given beside the original: its
    trials are the same runs (same rows, provenance included), counted once with a note; a store
    of other runs of the same suite (another machine) still counts as more samples."""
    import shutil

    from pinbench.analysis.load import load_results

    copy = tmp_path / "elsewhere" / "handmade-copy"
    shutil.copytree(store, copy)
    once = load_results([store])
    both = load_results([store, copy])
    assert len(both.trials) == len(once.trials) and len(both.history) == len(once.history)
    assert len(both.prompts) == len(once.prompts)
    assert both.notes == [f"store 'handmade-copy' repeats {len(RUNS)} trial(s) of another store given "
                          "(a copy of the same runs): each is counted once"]
    rerun = make_store(tmp_path / "other" / "handmade", once.trials["task.task_lm"].iloc[0])
    trials = pd.read_parquet(rerun / "trials.parquet")
    trials["started_at"] = "2026-01-01T00:00:00Z"  # the same trials, run again at another time
    trials.to_parquet(rerun / "trials.parquet", index=False)
    assert len(load_results([store, rerun]).trials) == 2 * len(once.trials)


@pytest.mark.parametrize("column,value,kind", [("test_accuracy", "0.75", "numbers"), ("status", 1, "text")])
def test_a_results_table_with_a_wrongly_typed_column_is_an_error_naming_it(store, column, value, kind):
    """Accuracies written as text would be averaged as strings or dropped; an error names the column."""
    from pinbench.analysis.load import ResultsError, load_results

    trials = pd.read_parquet(store / "trials.parquet")
    trials[column] = [value] * len(trials)
    trials.to_parquet(store / "trials.parquet", index=False)
    with pytest.raises(ResultsError, match=rf"trials.parquet': column '{column}' should hold {kind}"):
        load_results([store])


def test_a_store_that_cannot_be_written_still_gets_its_report(store, tmp_path, tiny_lm_dir, monkeypatch):
    """The naturalness cache is written into the store; a read-only store (a colleague's, a mounted
    bucket) gives the report anyway, with a warning that the cache was not saved."""
    from pinbench.analysis.load import Store

    def read_only(self, name, frame):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Store, "write", read_only)
    report = build_report([store], tmp_path / "r", options(tiny_lm_dir))
    assert report.computed_prompts == report.trials["best_prompt"].nunique()
    assert report.trials["perplexity"].notna().all()
    assert any("naturalness cache not saved" in w and "Permission denied" in w for w in report.warnings)
    assert not (store / "naturalness.parquet").exists()


def test_the_analysis_package_names_no_task():
    """The report is generic: each task's report code is in its package (Task.report_sections)."""
    import pinbench.analysis

    root = Path(pinbench.analysis.__file__).parent
    for path in sorted(root.glob("*.py")):
        text = path.read_text()
        for name in ("classification", "style_transfer", "inversion"):
            assert name not in text, f"{path.name} names the task '{name}'"


def test_a_task_not_registered_here_is_reported_without_its_sections():
    from pinbench.analysis.report import task_class
    from pinbench.tasks import Task

    warnings = []
    assert task_class("no-such-plugin-task", warnings) is Task
    assert "task 'no-such-plugin-task' is not registered here" in warnings[0]
    assert Task.report_sections(None) == [] and Task.comparison_published(None) == {}


def test_columns_and_rows_titled_alike_stay_apart_in_every_format():
    """Datasets `sst-2` and `SST-2` (both titled SST-2), `café` and `cafè` (both `caf?` in
    LaTeX) and one called `Method`: each keeps its own column (one used to overwrite the other,
    and the LaTeX writer then crashed); a dataset called `Avg` is refused (its mean would be
    overwritten by the average)."""
    from pinbench.analysis.tables import Column, summarise, to_latex, to_long, to_markdown
    from pinbench.errors import ConfigError

    keys = {"sst-2": "SST-2", "SST-2": "SST-2", "café": "café", "cafè": "cafè", "Method": "Method"}
    columns = [Column(k, title) for k, title in keys.items()]
    samples = pd.DataFrame([{"row": row, "column": k, "value": v + i}
                            for i, k in enumerate(keys) for row, v in (("pín", 10.0), ("pìn", 20.0))])
    table = summarise(samples, columns, title="t")
    md = to_markdown(table).splitlines()
    header = [c.strip() for c in md[0].strip("|").split("|")]
    assert header == ["Method", "SST-2", "SST-2 [SST-2]", "café", "cafè", "Method [Method]"]
    assert [c.strip() for c in md[2].strip("|").split("|")] == ["pín", "10.0", "11.0", "12.0", "13.0", "14.0"]
    latex = to_latex(table, "tab:t")
    body = latex[latex.index("\\midrule"):latex.index("\\bottomrule")]
    assert body.count("&") == 2 * 5 and "caf? [caf?]" in latex and "p?n &" in latex and "p?n (2) &" in latex
    assert len(to_long(table)) == 2 * 5
    with pytest.raises(ConfigError, match="keyed 'Avg'"):
        summarise(samples.assign(column="Avg"), [Column("Avg", "Avg")], title="t", average=True)


def test_a_huge_best_prompt_is_measured_on_its_start_with_a_warning(store, tmp_path, tiny_lm_dir):
    """A 500,000-character best prompt (a broken method, a hand-edited store) went whole through the
    reference LM: the report ran for minutes and grew past 13 GB. Its naturalness is now measured on
    its first 10,000 characters, and the report says so."""
    trials = pd.read_parquet(store / "trials.parquet")
    huge = "the movie " * 50_000
    trials.loc[0, "best_prompt"], trials.loc[0, "best_token_ids"] = huge, None
    trials.to_parquet(store / "trials.parquet", index=False)
    report = build_report([store], tmp_path / "report", options(tiny_lm_dir))
    assert any("1 prompt(s) longer than 10,000 characters" in w for w in report.warnings)
    row = report.trials[report.trials["best_prompt"] == huge]
    assert len(row) == 1 and np.isfinite(row["perplexity"].iloc[0])


def test_a_trial_without_a_finite_metric_is_left_out_of_the_means_with_a_warning(store, tmp_path, tiny_lm_dir):
    """A completed trial whose test accuracy is NaN (or infinite) dropped out of the mean unseen
    (n smaller, no word) or printed as 'inf'; the report now names it in its warnings."""
    trials = pd.read_parquet(store / "trials.parquet")
    done = trials.index[trials["status"] == "completed"]
    trials.loc[done[0], "test_accuracy"], trials.loc[done[1], "test_accuracy"] = float("nan"), float("inf")
    trials.to_parquet(store / "trials.parquet", index=False)
    report = build_report([store], tmp_path / "report", options(tiny_lm_dir))
    ids = ", ".join(trials.loc[done[:2], "trial_id"])
    assert f"2 completed trial(s) have no finite test_accuracy ({ids}): left out of its means" in report.warnings
    assert "inf" not in (tmp_path / "report" / "tables" / "comparison.md").read_text()


@pytest.mark.slow
def test_a_report_into_a_used_directory_removes_what_the_earlier_report_wrote_and_it_did_not(store, tmp_path,
                                                                                            tiny_lm_dir):
    """A report of store B into the --out of store A's report left A's transfer tables beside B's
    report (a paper's LaTeX would include them). Files the earlier report wrote and this one does
    not are removed; files pinbench did not write stay."""
    out = tmp_path / "report"
    build_report([store], out, options(tiny_lm_dir))
    (out / "tables" / "transfer.tex").write_text("store A's transfer table")
    with open(out / ".pinbench-report-files", "a") as record:
        record.write("tables/transfer.tex\n")  # as if the earlier report had written it
    (out / "notes.txt").write_text("mine")
    report = build_report([store], out, options(tiny_lm_dir))
    assert not (out / "tables" / "transfer.tex").exists() and (out / "notes.txt").read_text() == "mine"
    assert all(Path(f).exists() for f in report.files)
