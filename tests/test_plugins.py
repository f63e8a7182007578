"""A task and a method added as a plug-in module (tests/plugins/toy_plugins.py) run through
`pinbench train`, a Ray sweep and `pinbench report` without any change to pinbench."""

import os
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from pinbench.cli import main
from pinbench.errors import ConfigError
from pinbench.run import make_spec

PLUGINS = str(Path(__file__).parent / "plugins")


@pytest.fixture(autouse=True)
def plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(PLUGINS)


def test_a_plugin_task_and_method_are_resolved_checked_and_run():
    spec = make_spec({"plugins": ["toy_plugins"], "task": "prompt-length", "method": "fixed-prompts",
                      "target": 5, "method.prompts": "hi|hello|hello world", "steps": 3, "eval_every": 1})
    assert (spec.task_config.target, spec.method_config.prompts, spec.run.steps) == (5, "hi|hello|hello world", 3)
    method = spec.method_class(spec)
    assert method.task.differentiable() is None  # the task declares no white-box path
    result = method.train()
    # the task's rule: the lowest dev distance wins ("hello", 0), then scored on test (+1 there)
    assert result.best["prompt"] == "hello" and result.best["dev_distance"] == 0.0
    assert result.test == {"test_distance": 1.0, "test_reward": -1.0}
    assert [r["candidate"] for r in result.history] == ["hi", "hello", "hello world"]
    # the method's own rules and the sections' field lists come from its config dataclass
    with pytest.raises(ConfigError, match="method 'fixed-prompts'.*empty candidate"):
        make_spec({"plugins": ["toy_plugins"], "task": "prompt-length", "method": "fixed-prompts",
                   "method.prompts": "a||b"})
    with pytest.raises(ConfigError, match="unknown key 'alpha'; run: .*; task 'prompt-length': target; "
                                          "method 'fixed-prompts': prompts"):
        make_spec({"plugins": ["toy_plugins"], "task": "prompt-length", "method": "fixed-prompts", "alpha": 1.0})


def test_a_task_without_splits_keeps_the_best_reward_seen_and_its_outputs():
    spec = make_spec({"plugins": ["toy_plugins"], "task": "prompt-length-no-splits", "method": "fixed-prompts",
                      "target": 5, "method.prompts": "hi|hello|hello world", "steps": 3, "eval_every": 1})
    method = spec.method_class(spec)
    result = method.train()
    assert result.best["prompt"] == "hello" and result.best["train_reward"] == 0.0
    assert result.best["train_outputs"] == ["HELLO"]  # stored with the prompt as the task gave it
    assert result.test == {}  # no report split: the selection scores are the result
    assert method.book.scores == {}  # not cacheable: nothing kept
    from pinbench.results import trial_row

    row = trial_row(result, "t")
    assert (row["selection_split"], row["report_split"], row["train_reward"]) == ("train", None, 0.0)


def test_train_cli_takes_the_plugins_fields_as_flags(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--plugin", "toy_plugins", "--task", "prompt-length", "--method", "fixed-prompts",
                 "--target", "3", "--prompts", "abcd|xy|abc", "--steps", "3", "--eval-every", "1", "--out", str(out)])
    assert code == 0
    trials = pd.read_parquet(out / "trials.parquet")
    row = trials.iloc[0]
    assert (row["task"], row["method"], row["dataset"], row["best_prompt"]) == ("prompt-length", "fixed-prompts",
                                                                             "length-3", "abc")
    assert (row["selection_metric"], row["selection_mode"], row["test_distance"]) == ("distance", "min", 1.0)
    assert row["prompt_tokenizer"] is None and row["task.target"] == 3


def test_report_on_a_plugin_tasks_store_has_the_tasks_own_section(tmp_path, tiny_lm_dir):
    """`pinbench report` asks each task of the trials for its sections (Task.report_sections): the
    plug-in's table is written and linked beside the generic ones, with its dataset title and its
    words on where a top prompt was found."""
    for seed, prompts in ((0, "abcd|xy|abc"), (1, "abcdef|ab")):
        assert main(["train", "--plugin", "toy_plugins", "--task", "prompt-length", "--method", "fixed-prompts",
                     "--target", "3", "--prompts", prompts, "--steps", "2", "--eval-every", "1",
                     "--seed", str(seed), "--out", str(tmp_path / "results" / f"seed{seed}")]) == 0
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "results"), "--out", str(out), "--reference-lm", tiny_lm_dir,
                 "--method-by", "prompts"]) == 0
    text = (out / "report.md").read_text()
    assert "## Prompt lengths" in text and "Target lengths: 3." in text
    assert "Files: [Markdown](tables/prompt_length.md)" in text
    assert text.index("## Comparison") < text.index("## Prompt lengths") < text.index("## Naturalness")
    assert ", target 3, seed 0)" in text  # report_prompt_where, in the top prompts
    table = (out / "tables" / "prompt_length.md").read_text()
    assert "| Method | Length (characters) |" in table
    assert "| method.prompts=abcd\\|xy\\|abc | 4.0 |" in table  # the best prompt of seed 0: "abcd" (dev distance 1)
    assert (out / "tables" / "prompt_length.tex").is_file() and (out / "tables" / "prompt_length.csv").is_file()
    assert "| Method | Length 3 |" in (out / "tables" / "comparison.md").read_text()  # Task.dataset_titles


SUITE = """\
    name: toy
    plugins: [toy_plugins]
    base:
      task: prompt-length
      method: fixed-prompts
      task.target: 11
      run.steps: 3
      run.eval_every: 1
    grid:
      method.prompts: ["a|hello world|hi", "hello|hello there friend|x"]
      run.seed: [0, 1]
    resources: {cpu: 1, gpu: 0}
    """


@pytest.fixture(scope="module")
def ray_with_plugins():
    """A local Ray whose workers import the plug-in module (they inherit PYTHONPATH)."""
    import ray

    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [PLUGINS, before]))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
    if before is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = before


@pytest.mark.slow
def test_a_plugin_runs_through_a_sweep_and_appears_in_a_report(ray_with_plugins, tmp_path, tiny_gpt2):
    suite = tmp_path / "toy.yaml"
    suite.write_text(textwrap.dedent(SUITE))
    assert main(["sweep", str(suite), "--results", str(tmp_path / "results")]) == 0
    trials = pd.read_parquet(tmp_path / "results" / "toy" / "trials.parquet")
    assert len(trials) == 4 and (trials["status"] == "completed").all()
    assert set(trials["best_prompt"]) == {"hello world", "hello"}  # length 11: distance 0; "hello": 6
    assert sorted(trials["test_distance"]) == [1.0, 1.0, 7.0, 7.0]

    model = tmp_path / "ref-lm"
    tiny_gpt2.model.save_pretrained(model)
    tiny_gpt2.tokenizer.save_pretrained(model)
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "results" / "toy"), "--out", str(out), "--reference-lm", str(model)]) == 0
    md = (out / "tables" / "comparison.md").read_text()
    # rows are the method plus the field that differs; the metric and its direction come from
    # what the trials recorded (test distance, lower is better: the 1.0 row is bold)
    assert "Test distance" in md
    assert "| fixed-prompts prompts=a\\|hello world\\|hi | **1.0 ± 0.0** |" in md
    assert "| fixed-prompts prompts=hello\\|hello there friend\\|x | 7.0 ± 0.0 |" in md
    report = (out / "report.md").read_text()
    assert "No daggers: no baseline row" in report


def test_a_step_interrupted_while_its_prompt_is_scored_keeps_its_history_row(monkeypatch):
    """Ctrl-C during a step's evaluation: the run had counted the step but lost its row (trials
    said 2 steps, history held 1); the row is kept, without the evaluation's numbers."""
    spec = make_spec({"plugins": ["toy_plugins"], "task": "prompt-length", "method": "fixed-prompts",
                      "method.prompts": "hi|hello", "steps": 3, "eval_every": 1})
    method = spec.method_class(spec)
    method.step()

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(method.book, "consider", interrupted)
    with pytest.raises(KeyboardInterrupt):
        method.step()
    assert method.step_count == 2 and [r["step"] for r in method.result.history] == [1, 2]
    assert "dev_distance" in method.result.history[0] and "dev_distance" not in method.result.history[1]
