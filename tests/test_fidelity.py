"""docs/fidelity.md cannot drift: each row's pinbench value is what the code runs, each status is
a match or a deviation with its reason, and (with the authors' repositories at hand) each quoted
value is on the line the row names."""

from __future__ import annotations

import importlib
import os
import re
import subprocess
from functools import lru_cache
from pathlib import Path

import pytest

from pinbench.methods import PRESETS
from pinbench.run import make_spec
from pinbench.suite import load_suite, make_trial

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "fidelity.md"
PAPER_SUITES = {"classification": "paper-fsc", "style_transfer": "paper-tst", "inversion": "paper-inversion"}
COLUMNS = ("task", "preset", "setting", "authors", "authors_value", "pinbench", "status")


def rows() -> list[dict]:
    out = []
    for number, line in enumerate(DOC.read_text().splitlines(), 1):
        cells = [c.strip() for c in line.strip().strip("|").split(" | ")]
        if line.startswith("| ") and cells[0] in PAPER_SUITES:
            assert len(cells) == len(COLUMNS), f"docs/fidelity.md:{number}: {len(cells)} columns"
            out.append({**dict(zip(COLUMNS, cells)), "line": number})
    return out


def declared_as() -> list[tuple[str, str, list[str]]]:
    pattern = re.compile(r"^- `([\w-]+)` as `([\w-]+)` in ([\w, ]+)")
    return [(m[1], m[2], [t.strip() for t in m[3].split(",")])
            for m in map(pattern.match, DOC.read_text().splitlines()) if m]


@lru_cache(maxsize=None)
def settings(task: str, preset: str) -> dict:
    """What the paper suite for ``task`` runs for ``preset`` (its first trial); for a preset the
    suite does not run, what it would run in the place of one of the same method."""
    suite = load_suite(ROOT / "suites" / f"{PAPER_SUITES[task]}.yaml")
    points = suite.points()
    preset_of = lambda point: point.get("preset", suite.base.get("preset"))  # noqa: E731
    for point in points:
        if preset_of(point) == preset:
            return make_trial(suite, point).spec.to_dict()
    own = PRESETS[preset].settings(task)
    for point in points:  # (a grid value of a key the preset sets would hide the preset's value)
        if preset_of(point) and PRESETS[preset_of(point)].method == PRESETS[preset].method:
            kept = {k: v for k, v in point.items() if k not in own}
            return make_trial(suite, {**kept, "preset": preset}).spec.to_dict()
    return make_spec({"preset": preset, "task": task}).to_dict()


def value(task: str, preset: str, setting: str):
    if setting.startswith("code:"):
        module, name = setting[5:].rsplit(".", 1)
        return getattr(importlib.import_module(module), name)
    return settings(task, preset)[setting]


def same(text: str, actual) -> bool:
    if actual is None or isinstance(actual, bool):
        return text == {None: "none", True: "true", False: "false"}[actual]
    if isinstance(actual, (int, float)):
        try:
            return float(text) == float(actual)
        except ValueError:
            return False
    return text == str(actual)


ROWS = rows()


def test_the_table_covers_every_paper_preset():
    assert len(ROWS) > 100
    for task, suite in PAPER_SUITES.items():
        presets = {point.get("preset") for point in load_suite(ROOT / "suites" / f"{suite}.yaml").points()}
        documented = {r["preset"] for r in ROWS if r["task"] == task} | {
            name for name, _, tasks in declared_as() if task in tasks}
        assert presets - {None} <= documented, f"{suite} runs presets docs/fidelity.md does not list"


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['line']}-{r['preset']}-{r['setting']}")
def test_each_pinbench_value_is_what_the_code_runs(row):
    actual = value(row["task"], row["preset"], row["setting"])
    assert same(row["pinbench"], actual), f"docs/fidelity.md:{row['line']}: table says {row['pinbench']!r}, " \
                                          f"the code runs {actual!r}"
    status = row["status"]
    assert status.startswith("match") or re.match(r"deviation: \S.{10,}", status), \
        f"docs/fidelity.md:{row['line']}: status must be 'match' or 'deviation: <reason>'"
    assert re.fullmatch(r"`.+`", row["authors_value"]), f"docs/fidelity.md:{row['line']}: quote the authors' text"


def test_presets_declared_as_another_have_its_values():
    declared = declared_as()
    assert declared, "docs/fidelity.md declares no derived presets"
    for name, base, tasks in declared:
        for task in tasks:
            own = {r["setting"] for r in ROWS if r["task"] == task and r["preset"] == name}
            for row in ROWS:
                if row["task"] == task and row["preset"] == base and row["setting"] not in own:
                    assert value(task, name, row["setting"]) == value(task, base, row["setting"]), \
                        f"{name} differs from {base} in {task} {row['setting']}: give it its own row"


# -- the authors' text, where their repositories are at hand ---------------------------------

MIRRORS = {"PIN": Path("/work/.mirror/Youseob+PIN/repo"), "RLPrompt": Path("/work/.mirror/mingkaid+rl-prompt/repo"),
           "PEZ": Path("/work/.mirror/YuxinWenRick+hard-prompts-made-easy/repo")}
FOLDERS = {"PIN": "PIN", "RLPrompt": "rl-prompt", "PEZ": "hard-prompts-made-easy"}


def authors_file(repo: str, path: str) -> list[str] | None:
    name, _, branch = repo.partition("@")
    folder = os.environ.get("PINBENCH_AUTHORS_DIR")
    if folder and not branch:
        file = Path(folder) / FOLDERS[name] / path
        return file.read_text(errors="replace").splitlines() if file.is_file() else None
    mirror = MIRRORS[name]
    if not mirror.is_dir():
        return None
    shown = subprocess.run(["git", "-C", str(mirror), "show", f"{branch or 'HEAD'}:{path}"], capture_output=True,
                           text=True, errors="replace")
    return shown.stdout.splitlines() if shown.returncode == 0 else None


def test_each_quoted_value_is_on_its_line():
    checked = 0
    for row in ROWS:
        repo, path, line = re.fullmatch(r"([\w@-]+):(.+):(\d+)", row["authors"]).groups()
        lines = authors_file(repo, path)
        if lines is None:
            continue
        quoted = row["authors_value"].strip("`")
        text = lines[int(line) - 1] if int(line) <= len(lines) else ""
        assert quoted in text, f"docs/fidelity.md:{row['line']}: {row['authors']} reads {text.strip()!r}"
        checked += 1
    if not checked:
        pytest.skip("the authors' repositories are not here (set PINBENCH_AUTHORS_DIR)")
