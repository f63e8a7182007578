"""The style-transfer table: directions pooled sentence by sentence per seed, then summarised."""

from __future__ import annotations

import pandas as pd
import pytest

from pinbench.tasks.style_transfer.report import pooled_runs, published_rows, style_transfer_table
from pinbench.analysis.tables import to_latex, to_markdown


def _runs():
    # pin seed 0: direction 0_to_1 has 2 sentences, 1_to_0 has 1; rlprompt seeds 0 and 1 (one direction)
    trials = pd.DataFrame([
        {"trial_id": "p0a", "task": "style_transfer", "method": "pin", "task.task_lm": "lm", "dataset": "yelp",
         "run.seed": 0, "task.direction": "0_to_1"},
        {"trial_id": "p0b", "task": "style_transfer", "method": "pin", "task.task_lm": "lm", "dataset": "yelp",
         "run.seed": 0, "task.direction": "1_to_0"},
        {"trial_id": "r0", "task": "style_transfer", "method": "rlprompt", "task.task_lm": "lm", "dataset": "yelp",
         "run.seed": 0, "task.direction": "0_to_1"},
        {"trial_id": "r1", "task": "style_transfer", "method": "rlprompt", "task.task_lm": "lm", "dataset": "yelp",
         "run.seed": 1, "task.direction": "0_to_1"},
    ])
    rec = lambda tid, content, correct, fluent, bleu: {
        "trial_id": tid, "source": "best", "prompt": tid, "test_content_each": content,
        "test_style_correct_each": correct, "test_fluent_each": fluent, "test_bleu": bleu,
        "test_inputs": [f"in{i}" for i in range(len(content))], "test_outputs": [f"out{i}" for i in range(len(content))]}
    prompts = pd.DataFrame([
        {"trial_id": "p0a", "source": "greedy", "prompt": "ignored"},
        rec("p0a", [80.0, 40.0], [1.0, 0.0], [1.0, 1.0], 10.0),
        rec("p0b", [60.0], [1.0], [0.0], 40.0),
        rec("r0", [50.0], [1.0], [1.0], 5.0),
        rec("r1", [30.0], [0.0], [1.0], 7.0),
    ])
    return trials, prompts


def test_directions_are_pooled_sentence_by_sentence():
    trials, prompts = _runs()
    runs = pooled_runs(trials, prompts).set_index(["method", "seed"])
    pin = runs.loc[("pin", 0)]
    assert pin["directions"] == 2
    assert pin["content"] == pytest.approx(60.0)          # (80 + 40 + 60) / 3, not (60 + 60) / 2
    assert pin["style"] == pytest.approx(200 / 3)         # 2 of 3 correct
    assert pin["fluency"] == pytest.approx(200 / 3)
    assert pin["joint"] == pytest.approx((0.8 + 0 + 0) / 3 * 100)
    assert pin["gm"] == pytest.approx((60 * 200 / 3 * 200 / 3) ** (1 / 3))
    assert pin["bleu"] == pytest.approx((10 * 2 + 40 * 1) / 3)  # sentence-weighted
    assert runs.loc[("rlprompt", 1), "gm"] == 0.0  # style 0 %: GM 0


def test_table_summarises_pooled_runs_with_published_rows_and_latex():
    trials, prompts = _runs()
    table = style_transfer_table(trials, prompts, ["pin", "rlprompt"], published="matching")
    assert table.mean.loc["rlprompt", "content"] == pytest.approx(40.0)
    assert table.n.loc["rlprompt", "content"] == 2 and table.n.loc["pin", "content"] == 1
    assert table.err.loc["rlprompt", "content"] == pytest.approx(10.0)  # std 14.14 / sqrt 2
    assert table.bold.loc["pin", "content"] and not table.bold.loc["rlprompt", "content"]
    # our task LM is not the paper's: both methods at each of the paper's three task LMs
    assert set(table.published) == {f"{m} · {lm}" for m in ("PIN", "RLPrompt")
                                    for lm in ("opt-125m", "opt-350m", "opt-1.3b")}
    assert table.published["PIN · opt-125m"]["joint"] == (46.2, None)
    assert "Fluency is a proxy" in table.notes  # no CoLA classifier recorded: the report says so
    md, tex = to_markdown(table), to_latex(table, "tab:x")
    assert "| pin |" in md and "PIN · opt-1.3b (pub.)" in md
    assert r"PIN $\cdot$ opt-1.3b" in tex
    assert r"Method & Content & Style & Fluency & J & GM \\" in tex  # BLEU, Directions: Markdown/CSV only


def test_published_rows_follow_our_task_lm_when_it_is_the_papers():
    rows = published_rows(["pin"], ["facebook/opt-350m"], "matching")
    assert rows == {"PIN": {"content": (58.9, None), "style": (94.2, None), "fluency": (83.4, None),
                            "joint": (46.8, None), "gm": (76.0, None)}}
    assert len(published_rows(["pin"], ["facebook/opt-350m"], "all")) == 6
