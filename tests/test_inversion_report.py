"""The textual-inversion table and figure, and their place in `pinbench report`, on hand-made runs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from pinbench.analysis import ReportOptions, build_report
from pinbench.tasks.inversion.report import inversion_figure, inversion_table
from pinbench.analysis.naturalness import NaturalnessOptions
from pinbench.analysis.tables import to_latex, to_long, to_markdown
from pinbench.results import TABLES, frames, write_results
from pinbench.run import RunResult, make_spec

REWARD_CLIP, EVAL_CLIP = "openai/clip-vit-base-patch32", "openai/clip-vit-large-patch14"
NAN = float("nan")
SE4 = math.sqrt(0.002 / 3) / 2  # values mean ± 0.01, ± 0.03: std sqrt(0.002 / 3), n = 4

# (method, image index, seed, test reward, train reward, eval CLIP score, perplexity, Zipf mean, CLIP tokens)
RUNS = [
    ("pin", 0, 0, 0.30, 0.31, 0.25, 40.0, 5.0, 5),
    ("pin", 0, 1, 0.32, 0.33, 0.27, 60.0, 5.0, 5),
    ("pin", 1, 0, 0.28, 0.29, 0.23, 50.0, 4.0, 5),
    ("pin", 1, 1, 0.26, 0.27, 0.21, 50.0, 4.0, 5),
    ("pez", 0, 0, 0.35, 0.36, 0.20, 2000.0, 1.0, 16),
    ("pez", 0, 1, NAN, 0.33, NAN, 4000.0, 2.0, 16),  # no test score: its training score counts
    ("pez", 1, 0, 0.31, 0.32, 0.22, 3000.0, 1.0, 16),
    ("pez", 1, 1, 0.29, 0.30, 0.18, 3000.0, 2.0, 16),
]


def trials_frame(images=("0.png", "1.png"), data_dir=None, eval_clip=True) -> pd.DataFrame:
    rows = [{"trial_id": f"t{i}", "task": "inversion", "method": m, "dataset": "lexica", "task.image": images[img],
             "task.data_dir": data_dir, "task.clip_model": REWARD_CLIP,
             "task.eval_clip_model": EVAL_CLIP if eval_clip else None, "run.seed": seed,
             "best_prompt": f"{m} prompt for image {img} seed {seed}", "train_reward": train, "test_reward": test,
             "test_eval_clip_score": ev if eval_clip else NAN, "test_clip_tokens": float(tokens),
             "perplexity": ppl, "zipf_mean": zipf}
            for i, (m, img, seed, test, train, ev, ppl, zipf, tokens) in enumerate(RUNS)]
    # another task's trial: left out of the inversion table and figure
    rows.append({"trial_id": "c0", "task": "classification", "method": "rlprompt", "dataset": "sst-2",
                 "run.seed": 0, "best_prompt": "great", "test_accuracy": 0.9})
    return pd.DataFrame(rows)


def test_table_means_errors_bold_and_headers():
    table = inversion_table(trials_frame(), ["rlprompt", "pez", "pin"], baseline="rlprompt")
    assert table.rows == ["pez", "pin"]  # methods order; rlprompt has no inversion runs
    assert table.baseline is None  # the baseline is not a row: no daggers
    assert table.mean.loc["pin", "clip_score"] == pytest.approx(0.29)
    assert table.err.loc["pin", "clip_score"] == pytest.approx(SE4)
    assert table.mean.loc["pez", "clip_score"] == pytest.approx(0.32)  # (0.35 + 0.33 + 0.31 + 0.29) / 4
    assert table.err.loc["pez", "clip_score"] == pytest.approx(SE4)
    assert table.n.loc["pez", "test_eval_clip_score"] == 3
    assert table.mean.loc["pez", "test_eval_clip_score"] == pytest.approx(0.20)
    assert table.err.loc["pez", "test_eval_clip_score"] == pytest.approx(0.02 / math.sqrt(3))
    assert table.err.loc["pez", "perplexity"] == pytest.approx(math.sqrt(2e6 / 3) / 2)
    assert table.mean.loc["pin", "images"] == 2 and math.isnan(table.err.loc["pin", "images"])
    # the reward's CLIP favours pez, the second CLIP and the naturalness columns pin
    assert table.bold["clip_score"].tolist() == [True, False]
    assert table.bold["test_eval_clip_score"].tolist() == [False, True]
    assert table.bold["perplexity"].tolist() == [False, True]
    assert not table.bold["test_clip_tokens"].any() and not table.bold["images"].any()
    md = to_markdown(table).splitlines()
    assert md[0] == ("| Method | CLIP score (clip-vit-base-patch32) | CLIP score (clip-vit-large-patch14) "
                     "| Perplexity | Zipf mean | CLIP tokens | Images |")
    assert "| pin | 0.290 ± 0.013 | **0.240 ± 0.013** | **50.0 ± 4.1** | **4.50 ± 0.29** | 5.0 ± 0.0 | 2 |" in md
    assert "| pez | **0.320 ± 0.013** | 0.200 ± 0.012 | 3000.0 ± 408.2 | 1.50 ± 0.29 | 16.0 ± 0.0 | 2 |" in md
    assert "(images × seeds), n = 3 to 4" in to_markdown(table)
    assert REWARD_CLIP in table.notes and EVAL_CLIP in table.notes and "gap between the two CLIP" in table.notes
    assert "training score" in table.notes  # one pez run fell back to it
    tex = to_latex(table, "tab:x")
    assert (r"Method & CLIP score (clip-vit-base-patch32) & CLIP score (clip-vit-large-patch14) & PPL & Zipf "
            r"& Tokens \\") in tex  # Images: Markdown and CSV only
    long = to_long(table)
    assert long.loc[(long["method"] == "pez") & (long["column"] == "images"), "n"].item() == 4


def test_second_clip_column_only_with_its_scores():
    table = inversion_table(trials_frame(eval_clip=False), ["pin", "pez"])
    assert [c.key for c in table.columns] == ["clip_score", "perplexity", "zipf_mean", "test_clip_tokens", "images"]
    assert "gap" not in table.notes
    assert inversion_table(trials_frame().query("task != 'inversion'"), ["rlprompt"]) is None


def write_images(directory, names) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", (8, 8), (40 * i, 100, 200)).save(directory / name)


def texts(fig) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_figure_puts_each_image_beside_the_best_seeds_prompt(tmp_path):
    write_images(tmp_path, ["2.png", "10.png"])
    fig, warnings = inversion_figure(trials_frame(("2.png", "10.png"), str(tmp_path)), ["pin", "pez"])
    assert warnings == []
    assert len(fig.axes) == 2 * 3  # images x (target + methods)
    assert [ax.get_ylabel() for ax in fig.axes[::3]] == ["2.png", "10.png"]  # natural order
    assert [ax.get_title() for ax in fig.axes[:3]] == ["target", "pin", "pez"]
    shown = [t.replace("\n", " ") for t in texts(fig)]
    assert "pin prompt for image 0 seed 1" in shown and "0.320" in shown  # the better of pin's two seeds
    assert "pin prompt for image 0 seed 0" not in shown
    assert "pez prompt for image 0 seed 0" in shown and "0.350" in shown
    fig, warnings = inversion_figure(trials_frame(("2.png", "10.png"), str(tmp_path)), ["pin", "pez"], max_images=1)
    assert len(fig.axes) == 3 and warnings == ["inversion figure: the first 1 of 2 target images are shown"]


def test_figure_without_the_image_files_warns_with_their_name(tmp_path):
    fig, warnings = inversion_figure(trials_frame(("2.png", "10.png"), str(tmp_path)), ["pin", "pez"])
    assert fig is None and len(warnings) == 1
    assert "'2.png' not found in " + str(tmp_path) in warnings[0]


def test_figure_with_an_image_that_is_no_longer_an_image_warns_with_its_name(tmp_path):
    """An image replaced since training (here a Git LFS pointer) ended the whole report with a PIL
    traceback; the figure is left out with a warning, as for a missing image."""
    write_images(tmp_path, ["10.png"])
    (tmp_path / "2.png").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 9\n")
    fig, warnings = inversion_figure(trials_frame(("2.png", "10.png"), str(tmp_path)), ["pin", "pez"])
    assert fig is None and len(warnings) == 1
    assert f"target image '{tmp_path / '2.png'}' cannot be read as an image" in warnings[0]


# ---------------------------------------------------------------------------------------------
# `pinbench report` on a store of inversion runs
# ---------------------------------------------------------------------------------------------


def make_inversion_store(directory, image_dir, lm_dir: str, clip_dir: str):
    """pin and pez runs on two images, two seeds each, through pinbench's own results writer."""
    tables = {name: [] for name in TABLES}
    for i, (preset, img, seed, test, train, _, _, _, tokens) in enumerate(RUNS):
        preset = {"pin": "pin", "pez": "pez"}[preset]
        spec = make_spec({"preset": preset, "task": "inversion", "image": f"{img}.png", "data_dir": str(image_dir),
                          "clip_model": REWARD_CLIP, "seed": seed, "steps": 20,
                          **({"policy_lm": lm_dir} if preset == "pin" else {})})
        result = RunResult(spec, steps_done=20, wall_time_s=1.0,
                           prompt_tokenizer=lm_dir if preset == "pin" else clip_dir)
        prompt = "a photo of the cat" if preset == "pin" else "cat dog red sky"
        result.history = [{"step": s, "reward_mean": train - 0.01, "train_reward": train} for s in (10, 20)]
        result.best = {"step": 20, "prompt": prompt, "token_ids": None, "train_reward": train}
        result.test = {"test_reward": test, "test_eval_clip_score": NAN, "test_clip_tokens": float(tokens)}
        result.prompts = [{"step": 20, "source": "best", "prompt": prompt, "token_ids": None, "train_reward": train}]
        for name, frame in frames(result, f"t{i:02d}", "inversion").items():
            tables[name].append(frame)
    write_results(directory, {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()})
    return directory


def test_report_has_the_inversion_table_figure_and_section(tmp_path, tiny_lm_dir, tiny_clip_dir):
    images = tmp_path / "lexica"
    write_images(images, ["0.png", "1.png"])
    store = make_inversion_store(tmp_path / "results" / "inversion", images, tiny_lm_dir, str(tiny_clip_dir))
    options = ReportOptions(naturalness=NaturalnessOptions(reference_lm=tiny_lm_dir))
    report = build_report([store], tmp_path / "report", options)
    out = tmp_path / "report"
    for name in ("tables/inversion.md", "tables/inversion.tex", "tables/inversion.csv",
                 "figures/inversion_prompts.png", "figures/inversion_prompts.pdf"):
        assert (out / name).is_file(), name
    text = (out / "report.md").read_text()
    assert "## Textual inversion" in text and "![Best prompts per image](figures/inversion_prompts.png)" in text
    assert "| pez | **0.320 ± 0.013** |" in text  # the hand-made pez runs, test score with one fallback
    assert '- "cat dog red sky": test reward 0.3500, ' in text and "(lexica, image 0.png, seed 0)" in text
    long = pd.read_csv(out / "tables" / "inversion.csv")
    assert set(long["column"]) == {"clip_score", "perplexity", "zipf_mean", "test_clip_tokens", "images"}
    assert np.isfinite(long.loc[long["column"] == "perplexity", "mean"]).all()  # naturalness was joined
    assert not any("inversion" in w for w in report.warnings)
    assert any("have no finite test_reward (t05): left out of its means" in w for w in report.warnings)
    comparison = (out / "tables" / "comparison.md").read_text()  # cosines to 3 decimals, runs named
    assert "**0.317 ± 0.018**" in comparison and "images × seeds" in comparison  # (the run without a test score left out)

    for image in images.iterdir():  # the report read elsewhere than the images: table yes, figure no
        image.unlink()
    report = build_report([store], tmp_path / "elsewhere", options)
    assert (tmp_path / "elsewhere" / "tables" / "inversion.md").is_file()
    assert not (tmp_path / "elsewhere" / "figures" / "inversion_prompts.png").exists()
    assert any("'0.png' not found" in w for w in report.warnings)
    assert "'0.png' not found" in (tmp_path / "elsewhere" / "report.md").read_text()
