"""A plug-in task (tests/plugins/toy_plugins.py) runs through the commands other than train and
sweep with no change to pinbench: `pinbench eval` (its fields as flags, the base class's table and
predictions) and `pinbench datasets` (its own entries)."""

from pathlib import Path

import pandas as pd
import pytest

from pinbench.cli import main

PLUGINS = str(Path(__file__).parent / "plugins")


@pytest.fixture(autouse=True)
def plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(PLUGINS)


def test_eval_scores_a_plugin_task_with_its_fields_as_flags(tmp_path, capsys):
    out = tmp_path / "scores.csv"
    code = main(["eval", "--plugin", "toy_plugins", "--task", "prompt-length", "--target", "3",
                 "--prompt", "abc", "--prompt", "abcdef", "--split", "dev", "--predictions", str(out)])
    printed = capsys.readouterr().out
    assert code == 0 and "prompt-length (dev)" in printed and "'abcdef'" in printed
    frame = pd.read_csv(out)
    assert frame["prompt"].tolist() == ["abc", "abcdef"]
    assert frame["distance"].tolist() == [0.0, 3.0] and frame["reward"].tolist() == [0.0, -3.0]
    # the test split is the harder one: the split flag reaches the task
    assert main(["eval", "--plugin", "toy_plugins", "--task", "prompt-length", "--target", "3", "--prompt", "abc",
                 "--split", "test", "--predictions", str(out)]) == 0
    assert pd.read_csv(out)["distance"].tolist() == [1.0]


def test_eval_refuses_what_a_plugin_task_cannot_do(tmp_path, capsys):
    base = ["eval", "--plugin", "toy_plugins", "--task", "prompt-length"]
    assert main([*base, "--prompt", "x", "--outputs", str(tmp_path / "o.txt")]) == 2
    assert "does not score files of outputs" in capsys.readouterr().err
    assert main([*base, "--prompt", "x", "--task-lm", "gpt2"]) == 2  # a flag with no field to set
    assert "--task-lm is not a field of this task" in capsys.readouterr().err
    assert main(base) == 2
    assert capsys.readouterr().err.strip().endswith("give at least one --prompt")


def test_datasets_lists_a_plugin_tasks_entries(capsys):
    assert main(["datasets", "--plugin", "toy_plugins"]) == 0
    printed = capsys.readouterr().out
    assert "prompt-length:" in printed and "length-N" in printed and "nothing to download" in printed
    assert "few-shot classification:" in printed and "style transfer:" in printed


@pytest.mark.slow
def test_report_imports_plugins_named_by_plugin_in_a_fresh_process(tmp_path, tiny_lm_dir):
    """A store of a plug-in task read by a process that has not imported the plug-in: without
    `--plugin` the task's own section is missing, with a warning that names the flag; with it the
    section is there. A module that cannot be imported is a one-line error before any store is read."""
    import os
    import subprocess
    import sys

    assert main(["train", "--plugin", "toy_plugins", "--task", "prompt-length", "--method", "fixed-prompts",
                 "--target", "3", "--prompts", "abcd|xy|abc", "--steps", "1", "--eval-every", "1",
                 "--out", str(tmp_path / "store")]) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PLUGINS, os.environ.get("PYTHONPATH")]))}

    # the command, and on its last line which of torch and transformers the process loaded
    run_cli = ("import sys; from pinbench.cli import main; code = main(sys.argv[1:]); "
               "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules)); sys.exit(code)")

    def report(out: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", run_cli, "report", str(tmp_path / "store"), "--out",
                               str(tmp_path / out), "--reference-lm", tiny_lm_dir, *extra],
                              capture_output=True, text=True, env=env, timeout=300)

    without = report("without")
    assert without.returncode == 0, without.stderr
    assert "task 'prompt-length' is not registered here" in without.stdout and "--plugin MODULE" in without.stdout
    assert "## Prompt lengths" not in (tmp_path / "without" / "report.md").read_text()
    assert without.stdout.splitlines()[-1] == "['torch', 'transformers']"  # it computed the perplexities
    assert "naturalness: 1 prompt(s) scored now, 0 from the cache" in without.stdout
    with_plugin = report("with", "--plugin", "toy_plugins")
    assert with_plugin.returncode == 0, with_plugin.stderr
    assert "## Prompt lengths" in (tmp_path / "with" / "report.md").read_text()
    assert "transformers" not in with_plugin.stdout.splitlines()[-1]  # cached: no reference LM loaded
    assert "naturalness: 0 prompt(s) scored now, 1 from the cache" in with_plugin.stdout
    bad = report("bad", "--plugin", "no_such_plugin_module")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith(
        "pinbench: error: plug-in module 'no_such_plugin_module' cannot be imported")
    assert not (tmp_path / "bad").exists()
