"""Shipped suites run by name from any directory, `pinbench list` shows them, and a user's suite
may `extends:` a shipped one (or another file) and override fields."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from pinbench.cli import main
from pinbench.errors import ConfigError
from pinbench.suite import find_suite, load_suite, shipped_suites, suite_size

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_every_file_in_suites_is_shipped_under_its_own_name():
    shipped = shipped_suites()
    assert set(shipped) == {p.stem for p in (REPO / "suites").glob("*.yaml")}
    for name, path in shipped.items():
        assert load_suite(name).name == name, f"{path}: 'name:' must equal the file's stem, the name users type"


def test_a_name_runs_the_shipped_suite_from_any_directory(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["sweep", "paper-fsc", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "suite paper-fsc: 1120 trial(s)" in out.replace(",", "")
    assert load_suite("quickstart").source == str(REPO / "suites" / "quickstart.yaml")


def test_a_file_beside_the_user_wins_over_a_shipped_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "quickstart", "name: mine\nbase: {preset: pin, steps: 3}\n")
    assert load_suite("quickstart").name == "mine"
    assert load_suite(str(tmp_path / "quickstart")).name == "mine"


def test_an_unknown_name_lists_the_shipped_suites(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"suite 'paper-fcs' is neither a file nor a shipped suite; "
                                          r"shipped suites: .*paper-fsc"):
        find_suite("paper-fcs")
    with pytest.raises(ConfigError, match="neither a file"):
        find_suite("sub/paper-fsc")  # a path is a path: no name lookup


def test_list_shows_each_shipped_suite_with_its_trial_count_and_description(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    section = out[out.index("suites"):]
    for name in shipped_suites():
        suite = load_suite(name)
        line = next(line for line in section.splitlines() if line.strip().startswith(name + " "))
        assert f"{suite_size(suite):,} trial(s)" in line and suite.description[:40] in line


def test_extends_merges_base_key_by_key_and_replaces_the_grid(tmp_path):
    child = write(tmp_path / "mine.yaml", """\
        extends: quickstart
        name: my-quickstart
        base:
          steps: 4              # quickstart says `run.steps: 40`: the same field, so this one wins
          method.alpha: 0.5
        grid:
          seed: [0, 1, 2]
        """)
    parent, suite = load_suite("quickstart"), load_suite(child)
    assert suite.name == "my-quickstart" and suite.description == parent.description
    assert suite_size(suite) == 3
    specs = [t.spec for t in suite.trials()]
    assert {s.run.steps for s in specs} == {4}
    assert {s.method_config.alpha for s in specs} == {0.5}
    assert {s.run.seed for s in specs} == {0, 1, 2}
    # the rest of quickstart's base is kept
    assert specs[0].task_config.dataset == parent.trials()[0].spec.task_config.dataset
    assert specs[0].task_config.task_lm == parent.trials()[0].spec.task_config.task_lm


def test_extends_chains_through_files_relative_to_the_extending_one(tmp_path):
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "mid.yaml", "extends: quickstart\nname: mid\nbase: {steps: 7}\nresources: {cpu: 2}\n")
    child = write(tmp_path / "leaf.yaml", "extends: sub/mid.yaml\nname: leaf\nresources: {gpu: 1}\n")
    suite = load_suite(child)
    assert {t.spec.run.steps for t in suite.trials()} == {7}
    assert suite.resources == {"cpu": 2, "gpu": 1}  # merged key by key across the chain


def test_set_overrides_an_inherited_field_spelled_differently(tmp_path):
    child = write(tmp_path / "mine.yaml", "extends: quickstart\nname: mine\n")
    suite = load_suite(child, {"run.steps": 2})
    assert {t.spec.run.steps for t in suite.trials()} == {2}


@pytest.mark.parametrize("text, message", [
    ("extends: quickstart\nbase: {steps: 2}\n", r"mine.yaml: a suite that extends 'quickstart' needs its own 'name'"),
    ("extends: nope\nname: x\n", r"mine.yaml: extends: suite 'nope' is neither a file nor a shipped suite"),
    ("extends: [quickstart]\nname: x\n", r"mine.yaml: extends: expected a shipped suite's name or a suite file"),
    ("extends: mine.yaml\nname: x\n", r"mine.yaml: extends: 'mine.yaml' extends this file again"),
    ("extends: quickstart\nname: x\nbase: {method.alphaa: 1}\n", r"mine.yaml: base.*alphaa"),
])
def test_bad_extends_gets_one_line_naming_the_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_suite(write(tmp_path / "mine.yaml", text))


def test_a_loop_through_two_files_is_named(tmp_path):
    write(tmp_path / "a.yaml", "extends: b.yaml\nname: a\n")
    write(tmp_path / "b.yaml", "extends: a.yaml\nname: b\n")
    with pytest.raises(ConfigError, match=r"extends: 'a.yaml' extends this file again \(a loop: .*a.yaml -> .*b.yaml -> .*a.yaml"):
        load_suite(tmp_path / "a.yaml")


def test_list_into_a_closed_pipe_exits_quietly():
    """`pinbench list | head -1`: the reader closes the pipe early; no traceback, exit 141 (SIGPIPE)."""
    import subprocess
    import sys

    done = subprocess.run(f"'{sys.executable}' -m pinbench.cli list | head -1", shell=True, capture_output=True,
                          text=True, executable="/bin/bash", timeout=120)
    assert done.stdout == "tasks:\n" and done.stderr == ""
