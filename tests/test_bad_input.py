"""The "Bad input" catalogue (docs/bad-input.md), row by row: every input a user can get wrong gives one clear
line naming the file, key, value or model that is wrong.

One source of truth, checked both ways: each catalogue row (``| # | input | command | error |``; a row
without an id is a group's title) is a
pytest item that builds its bad input in a temporary directory (the working directory of the case,
so relative paths print as written), runs it through ``pinbench.cli.main`` and matches the printed
line against the catalogue's ``error`` cell (``…`` stands for any text); and the catalogue's ids must be
exactly the cases defined here.

Adding a row: write a case function below (its arguments are pytest fixtures by name; it returns
the CLI's argv, or a callable whose exception message is the row's error) decorated with
``@case("the-id")``, and add the row to the table in docs/bad-input.md.
"""

from __future__ import annotations

import inspect
import pickle
import re
import shutil
import socket
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd
import pytest

from pinbench.cli import main
from pinbench.errors import PinbenchError

CATALOGUE = Path(__file__).resolve().parents[1] / "docs" / "bad-input.md"
SECTION = "## Bad input"


# ---------------------------------------------------------------------------------------------
# The catalogue's table (docs/bad-input.md)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    id: str
    input: str
    command: str
    error: str


def _cell(text: str) -> str:
    """A table cell's text without its code-span backticks (``…`` or `…`)."""
    text = text.strip()
    for ticks in ("``", "`"):
        if len(text) > 2 * len(ticks) and text.startswith(ticks) and text.endswith(ticks):
            return text[len(ticks):-len(ticks)].strip()
    return text


def catalogue_rows() -> list[Row]:
    text = CATALOGUE.read_text(encoding="utf-8")
    start = text.find(f"\n{SECTION}\n")
    if start < 0:
        return []  # the set test below names the missing rows
    end = text.find("\n## ", start + 1)
    rows = []
    for line in text[start:end if end >= 0 else None].splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if cells[0] == "#" or set(cells[0]) <= set("-: "):
            continue  # the header, the rule under it and a group's title row (no id)
        assert len(cells) == 4, f"{CATALOGUE.name} {SECTION}: a row needs 4 cells (# | input | command | error): {line}"
        rows.append(Row(_cell(cells[0]), cells[1], cells[2], _cell(cells[3]).replace("\\|", "|")))
    return rows


def pattern(error: str) -> str:
    """The catalogue's message as a regular expression: literal text, ``…`` for any text."""
    return ".*".join(re.escape(part) for part in error.split("…"))


# ---------------------------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    build: Callable
    code: int = 2
    """The exit code (2: pinbench's errors and argparse's)."""
    usage: bool = False
    """argparse's errors come after its usage lines; the row's line is the last one."""
    stream: str = "err"
    """Where the line is printed: err (``pinbench: error: ...``) or out."""


CASES: dict[str, Case] = {}


def case(id: str, **kw):
    def register(fn):
        assert id not in CASES, f"case {id} defined twice"
        CASES[id] = Case(fn, **kw)
        return fn
    return register


def write(path: str, text: str | bytes) -> str:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return str(path)


def sweep(body: str, *extra: str, dry_run: bool = True) -> list[str]:
    """``pinbench sweep bad.yaml --dry-run`` on a suite ``name: s`` plus ``body``."""
    suite = write("bad.yaml", "name: s\n" + textwrap.dedent(body))
    return ["sweep", suite, *(["--dry-run"] if dry_run else []), *extra]


SPACE = "search:\n  space:\n    method.alpha: {type: uniform, low: 0.1, high: 10}\n"

ROWS = ["the movie was great\t1", "i hated the plot\t0", "it is okay\t2", "fun film\t1"]


def reviews(rows=ROWS, header: str = "sentence\tlabel", verbalizers: str = '[" bad", " good", " okay"]',
            test: str | bytes | None = None, extra: str = "") -> None:
    """Dataset ``reviews`` in ``reviews.yaml``, its split seed 5 under ``data/`` (words of the tiny
    models' vocabulary); ``test``: the test split's file content instead; ``extra``: one more
    setting of the dataset (``"text_column: review"``)."""
    for split in ("train", "dev", "test"):
        content = "\n".join([header, *rows]) + "\n"
        write(f"data/reviews/16-5/{split}.tsv", test if split == "test" and test is not None else content)
    write("reviews.yaml", f"""\
        reviews:
          verbalizers: {verbalizers}
          template: "{{input}} {{prompt}} {{mask}} ."
        """ + (f"  {extra}\n" if extra else ""))


def evaluate(model: str, *extra: str, data_dir: str = "data") -> list[str]:
    return ["eval", "--dataset", "reviews", "--dataset-file", "reviews.yaml", "--data-dir", data_dir,
            "--split-seed", "5", "--prompt", "it was", "--task-lm", str(model), *extra]


# ---- suite files (pinbench sweep SUITE --dry-run) ----


@case("suite-missing")
def _():
    return ["sweep", "nope.yaml", "--dry-run"]


@case("suite-directory")
def _():
    Path("suites").mkdir()
    return ["sweep", "suites", "--dry-run"]


@case("suite-unknown-name")
def _():
    return ["sweep", "paper-fcs"]


@case("suite-not-yaml")
def _():
    return sweep("base: {seed: [1}\n")


@case("suite-not-utf8")
def _():
    return ["sweep", write("bad.yaml", b"name: caf\xe9\n"), "--dry-run"]


@case("suite-not-mapping")
def _():
    return ["sweep", write("bad.yaml", "- name: s\n"), "--dry-run"]


@case("suite-no-name")
def _():
    return ["sweep", write("bad.yaml", "base: {seed: 1}\n"), "--dry-run"]


@case("suite-extends-no-name")
def _():
    return ["sweep", write("bad.yaml", "extends: quickstart\n"), "--dry-run"]


@case("suite-extends-name-not-string")
def _():
    return ["sweep", write("bad.yaml", "name: 123\nextends: quickstart\n"), "--dry-run"]


@case("suite-extends-unknown")
def _():
    return sweep("extends: paper-fcs\n")


@case("suite-extends-loop")
def _():
    write("b.yaml", "name: b\nextends: a.yaml\n")
    return ["sweep", write("a.yaml", "name: a\nextends: b.yaml\n"), "--dry-run"]


@case("suite-extends-not-string")
def _():
    return sweep("extends: [quickstart]\n")


@case("suite-extends-same-name")
def _():
    return ["sweep", write("bad.yaml", "name: quickstart\nextends: quickstart\nbase: {run.steps: 4}\n"), "--dry-run"]


@case("suite-preset-wrong-task")
def _():
    return sweep("base: {preset: manual, task: inversion}\n")


@case("suite-cuda-without-gpu")
def _():
    return sweep("base: {preset: pin, run.device: cuda}\nresources: {cpu: 1, gpu: 0}\n")


@case("suite-name-reserved")
def _():
    return ["sweep", write("bad.yaml", "name: _ray\n"), "--dry-run"]


@case("suite-extends-null-base")
def _():
    return ["sweep", write("bad.yaml", "name: q2\nextends: quickstart\nbase:\n  # run.steps: 4\n"), "--dry-run"]


@case("suite-unknown-key")
def _():
    return sweep("grids:\n  seed: [0, 1]\n")


@case("suite-unknown-field")
def _():
    return sweep("base:\n  method.alpah: 0.5\n")


@case("suite-unknown-bare-key")
def _():
    return sweep("base:\n  stpes: 10\n")


@case("suite-unknown-section")
def _():
    return sweep("base:\n  model.lr: 0.001\n")


@case("suite-wrong-type")
def _():
    return sweep("base:\n  run.steps: ten\n")


@case("suite-number-read-as-string")
def _():
    return sweep("base:\n  alpha: 1e-3\n")


@case("suite-list-length")
def _():
    return sweep("base:\n  task: style_transfer\n  task.style_label_index: [1]\n")


@case("suite-list-element")
def _():
    return sweep("base:\n  method: fixed\n  method.prompts: [it was, 3]\n")


@case("suite-null-value")
def _():
    return sweep("base:\n  run.steps: null\n")


@case("suite-out-of-range")
def _():
    return sweep("base:\n  run.steps: 0\n")


@case("suite-grid-bad-value")
def _():
    return sweep("grid:\n  method.alpha: [0.5, high]\n")


@case("suite-unknown-regularizer")
def _():
    return sweep("base:\n  method.regularizer: tsalis\n")


@case("suite-unknown-preset")
def _():
    return sweep("base:\n  preset: pinn\n")


@case("suite-preset-of-other-method")
def _():
    return sweep("base:\n  preset: pin\n  method: pez\n")


@case("suite-unknown-task")
def _():
    return sweep("base:\n  task: translation\n")


@case("suite-unknown-method")
def _():
    return sweep("base:\n  method: dpo\n")


@case("suite-missing-plugin")
def _():
    return sweep("plugins: [my_tasks]\n")


@case("suite-empty-grid-axis")
def _():
    return sweep("grid:\n  seed: []\n")


@case("suite-empty-grid")
def _():
    return sweep("grid: []\n")


@case("suite-grid-not-list")
def _():
    return sweep("grid:\n  seed: 3\n")


@case("suite-duplicate-trial")
def _():
    return sweep("grid:\n  - seed: [0, 1]\n  - run.seed: [1]\n")


@case("suite-same-value-twice")
def _():
    return sweep("grid:\n  method.alpha: [1, 1.0]\n")


@case("suite-key-not-string")
def _():
    return sweep("base:\n  1: 2\n")


@case("suite-resources-negative")
def _():
    return sweep("resources: {cpu: -1}\n")


@case("suite-max-concurrent")
def _():
    return sweep("max_concurrent: 0\n")


@case("suite-max-concurrent-bool")
def _():
    return sweep("max_concurrent: true\n")


@case("suite-description-not-text")
def _():
    return sweep("description: [a, b]\n")


@case("search-unknown-distribution")
def _():
    return sweep("search:\n  space:\n    method.alpha: {type: normal, low: 0, high: 1}\n")


@case("search-unknown-field")
def _():
    return sweep("search:\n  space:\n    method.alpah: {type: uniform, low: 0.1, high: 10}\n")


@case("search-low-above-high")
def _():
    return sweep("search:\n  space:\n    method.alpha: {type: loguniform, low: 10, high: 0.1}\n")


@case("search-bound-not-number")
def _():
    return sweep("search:\n  space:\n    method.alpha: {type: loguniform, low: 1e-5, high: 1.0}\n")


@case("search-loguniform-low-zero")
def _():
    return sweep("search:\n  space:\n    method.alpha: {type: loguniform, low: 0, high: 1.0}\n")


@case("search-floats-for-int-field")
def _():
    return sweep("search:\n  space:\n    steps: {type: uniform, low: 1, high: 5}\n")


@case("search-seed-not-integer")
def _():
    return sweep("search:\n  seed: abc\n" + SPACE.removeprefix("search:\n"))


@case("search-more-samples-than-points")
def _():
    return sweep("search:\n  num_samples: 4\n  space:\n    seed: {type: choice, values: [0, 1]}\n")


@case("search-choice-repeated")
def _():
    return sweep("search:\n  num_samples: 2\n  space:\n    method.alpha: {type: choice, values: [1, 1.0]}\n")


@case("search-bound-out-of-range")
def _():
    return sweep("search:\n  space:\n    method.alpha: {type: uniform, low: -1.0, high: -0.5}\n")


@case("suite-exponent-without-sign")
def _():
    return sweep("base:\n  lr: 1.0e5\n")


@case("search-missing-bound")
def _():
    return sweep("search:\n  space:\n    method.alpha: {type: uniform, low: 0.1}\n")


@case("search-choice-bad-value")
def _():
    return sweep("search:\n  space:\n    method.top_k: {type: choice, values: [1000, all]}\n")


@case("search-empty-space")
def _():
    return sweep("search:\n  space: {}\n")


@case("search-and-grid")
def _():
    return sweep("grid:\n  seed: [0, 1]\n" + SPACE)


@case("search-metric-not-reported")
def _():
    return sweep("search:\n  metric: test_accuracy\n  space:\n    method.alpha: {type: uniform, low: 0.1, high: 10}\n")


@case("scheduler-metric-mismatch")
def _():
    return sweep(SPACE + "scheduler:\n  metric: dev_reward\n")


@case("scheduler-metric-not-reported")
def _():
    return sweep("base:\n  task: inversion\nscheduler:\n  grace_period: 2\n")


@case("scheduler-metric-not-a-name")
def _():
    return sweep("scheduler:\n  metric: 5\n")


@case("scheduler-null-grace-period")
def _():
    return sweep("base: {preset: pin}\nscheduler: {grace_period: null, max_t: 3}\n")


@case("scheduler-metric-method-quantity")
def _():
    return sweep("scheduler:\n  metric: rewrd_mean\n")


@case("scheduler-reduction-factor-one")
def _():
    return sweep("scheduler:\n  reduction_factor: 1\n")


@case("scheduler-grace-above-max-t")
def _():
    return sweep("scheduler:\n  grace_period: 3\n  max_t: 2\n")


@case("scheduler-unknown-type")
def _():
    return sweep("scheduler:\n  type: hyperband\n")


# ---- command-line values ----


@case("set-no-equals")
def _():
    return sweep("", "--set", "steps")


@case("set-empty-key")
def _():
    return ["train", "--set", "=0.5"]


@case("set-unknown-key")
def _():
    return ["train", "--set", "method.colour=red"]


@case("set-bad-value")
def _():
    return ["train", "--set", "run.steps=many"]


@case("set-bad-yaml")
def _():
    return sweep("", "--set", "method.alpha=[0.5")


@case("set-grid-axis")
def _():
    return sweep("grid:\n  run.seed: [1, 2]\n", "--set", "seed=3")


@case("set-bad-value-named")
def _():
    return sweep("base:\n  steps: 2\n", "--set", "steps=.inf")


@case("set-twice")
def _():
    return ["train", "--set", "steps=2", "--set", "steps=4"]


@case("set-and-flag")
def _():
    return ["train", "--steps", "2", "--set", "run.steps=4"]


@case("flag-out-of-range")
def _():
    return ["train", "--alpha", "-1"]


@case("flag-list-element")
def _():
    return ["train", "--task", "style_transfer", "--style-label-index", "1,x"]


@case("train-unknown-preset")
def _():
    return ["train", "--preset", "pinn"]


@case("train-missing-plugin")
def _():
    return ["train", "--plugin", "my_methods"]


@case("plugin-syntax-error")
def _(monkeypatch, tmp_path):
    write("my_methods.py", "from pinbench.registry import METHODS\n\nclass Broken(:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return ["train", "--plugin", "my_methods"]


@case("plugin-task-incomplete")
def _(monkeypatch, tmp_path):
    write("half_tasks.py", """\
        from pinbench.registry import TASKS
        from pinbench.tasks import Metric, Task

        @TASKS.register("half")
        class Half(Task):
            metrics = (Metric("reward"),)
        """)
    monkeypatch.syspath_prepend(str(tmp_path))
    return ["train", "--plugin", "half_tasks", "--task", "half"]


@case("plugin-method-incomplete")
def _(monkeypatch, tmp_path):
    write("lazy_methods.py", """\
        from dataclasses import dataclass

        from pinbench.methods import Method
        from pinbench.registry import METHODS

        @dataclass
        class LazyConfig:
            pass

        @METHODS.register("lazy")
        class Lazy(Method):
            config_class = LazyConfig
        """)
    monkeypatch.syspath_prepend(str(tmp_path))
    return ["train", "--plugin", "lazy_methods", "--method", "lazy"]


def toy_task(monkeypatch, module: str, score: str) -> str:
    """A plug-in module ``module`` with task ``module`` (``_`` as ``-``): the toy prompt-length task
    whose ``score`` returns ``score`` (an expression of ``prompts`` and ``torch``)."""
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    write(f"{module}.py", f"""\
        import torch
        from pinbench.registry import TASKS
        from toy_plugins import PromptLength

        @TASKS.register("{module.replace('_', '-')}")
        class BadScore(PromptLength):
            def score(self, prompts, split="train"):
                return {score}
        """)
    monkeypatch.syspath_prepend(".")
    return module


@case("plugin-score-no-reward")
def _(monkeypatch):
    module = toy_task(monkeypatch, "no_reward", '{"distance": torch.zeros(len(prompts))}')
    return ["eval", "--plugin", module, "--task", module.replace("_", "-"), "--prompt", "a", "--prompt", "bb"]


@case("plugin-score-wrong-count")
def _(monkeypatch):
    module = toy_task(monkeypatch, "short_scores", '{"distance": torch.zeros(1), "reward": torch.zeros(1)}')
    return ["eval", "--plugin", module, "--task", module.replace("_", "-"), "--prompt", "a", "--prompt", "bb"]


@case("score-not-finite", code=1, stream="out")
def _(monkeypatch):
    module = toy_task(monkeypatch, "nan_scores", '{"distance": torch.full((len(prompts),), float("nan")), '
                                                 '"reward": torch.full((len(prompts),), float("nan"))}')
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    return ["train", "--plugin", "toy_plugins", "--plugin", module, "--task", "nan-scores", "--method", "fixed-prompts",
            "--steps", "2", "--eval-every", "1"]


@case("plugin-replaces-builtin")
def _(monkeypatch, tmp_path):
    write("clash_tasks.py", """\
        from pinbench.registry import TASKS
        from pinbench.tasks.classification.task import FewShotClassification

        @TASKS.register("classification")
        class Mine(FewShotClassification):
            pass
        """)
    monkeypatch.syspath_prepend(str(tmp_path))
    return ["train", "--plugin", "clash_tasks", "--task", "classification"]


@case("plugin-import-raises")
def _(monkeypatch, tmp_path):
    write("raising_methods.py", "import os\nVALUE = os.environ['PINBENCH_NO_SUCH_VARIABLE']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return ["train", "--plugin", "raising_methods"]


@case("train-out-is-file")
def _():
    write("run.txt", "notes\n")
    return ["train", "--out", "run.txt"]


@case("train-out-holds-run")
def _(tiny_lm_dir):
    store("runs/x", tiny_lm_dir=tiny_lm_dir)
    return ["train", "--out", "runs/x"]


@case("train-out-holds-stores")
def _():
    store("results/s")
    return ["train", "--out", "results"]


@case("sweep-results-holds-run")
def _(no_ray_left):
    store("runs/x")
    return ["sweep", launchable(), "--results", "runs/x"]


@case("results-run-and-stores")
def _():
    store("results")
    store("results/s")
    return ["report", "results", "--out", "report"]


@case("train-out-holds-config")
def _():
    write("mine/config.json", '{"lr": 0.1}\n')
    return ["train", "--out", "mine"]


@case("train-out-below-file")
def _():
    write("afile", "notes\n")
    return ["train", "--out", "afile/run1"]


@case("flag-not-finite")
def _():
    return ["train", "--preset", "pin", "--steps", "2", "--alpha", "inf"]


@case("suite-not-finite")
def _():
    write("bad.yaml", "name: s\nbase: {method.lr: .inf}\n")
    return ["sweep", "bad.yaml", "--dry-run"]


@case("out-empty")
def _():
    return ["train", "--preset", "pin", "--steps", "2", "--out", ""]


@case("out-is-model-dir")
def _(tiny_setup):
    model_dir, spec = tiny_setup
    shutil.copytree(model_dir, "tiny")
    return ["train", "--dataset", "toy", "--dataset-file", spec, "--split-seed", "5", "--policy-lm", "tiny",
            "--task-lm", "tiny", "--steps", "1", "--out", "tiny"]


@case("results-empty")
def _():
    return ["sweep", "quickstart", "--results", ""]


@case("checkpoint-every-nan")
def _():
    return ["sweep", "quickstart", "--checkpoint-every", "nan"]


@case("download-timeout-bad")
def _():
    return ["data", "download", "mr", "--timeout", "-1"]


@case("sweep-num-cpus-negative")
def _():
    return ["sweep", "quickstart", "--num-cpus", "-1"]


@case("sweep-max-failures-negative")
def _():
    return ["sweep", "quickstart", "--max-failures", "-1"]


@case("sweep-data-dir-missing")
def _():
    return ["sweep", "quickstart", "--data-dir", "fewshot", "--dry-run"]


@case("suite-resources-not-finite")
def _():
    write("bad.yaml", "name: s\nbase: {dataset: sst-2}\nresources: {cpu: .nan}\n")
    return ["sweep", "bad.yaml", "--dry-run"]


@case("replay-smaller-than-batch")
def _():
    return ["train", "--preset", "pin", "--replay-size", "4", "--replay-batch", "8"]


@case("grad-clip-not-positive")
def _():
    return ["train", "--preset", "pin", "--grad-clip", "-1"]


@case("suite-huge-integer")
def _():
    write("bad.yaml", "name: s\nbase: {run.steps: 100000000000000000000}\n")
    return ["sweep", "bad.yaml", "--dry-run"]


@case("suite-nested-section")
def _():
    write("bad.yaml", "name: s\nbase: {method: {alpha: 0.5}, preset: pin}\n")
    return ["sweep", "bad.yaml", "--dry-run"]


@case("suite-field-twice")
def _():
    write("bad.yaml", "name: s\nbase:\n  run.steps: 2\n  steps: 500\n")
    return ["sweep", "bad.yaml", "--dry-run"]


@case("suite-name-unusable")
def _():
    write("bad.yaml", 'name: "results: v2?"\n')
    return ["sweep", "bad.yaml", "--dry-run"]


@case("suite-key-twice")
def _():
    write("bad.yaml", "name: s\nbase:\n  steps: 2\n  steps: 500\n")
    return ["sweep", "bad.yaml", "--dry-run"]


@case("suite-yaml-merge-key")
def _():
    write("bad.yaml", "name: s\nbase:\n  <<: {preset: pin}\n  steps: 2\n")
    return ["sweep", "bad.yaml", "--dry-run"]


@case("search-space-preset")
def _():
    return sweep("search:\n  space:\n    preset: {type: choice, values: [pin, rlprompt]}\n")


@case("suite-nested-too-deep")
def _():
    write("bad.yaml", "name: s\nbase: " + "[" * 400 + "]" * 400 + "\n")
    return ["sweep", "bad.yaml", "--dry-run"]


@case("out-name-too-long")
def _():
    store("results/s")
    return ["report", "results/s", "--out", "r" * 300]


@case("suite-yaml-bomb")
def _():
    lines = ["name: s", "a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, "
              f"*a{i - 1}, *a{i - 1}]" for i in range(1, 20)]
    write("bad.yaml", "\n".join(lines) + "\n")
    return ["sweep", "bad.yaml", "--dry-run"]


@case("suite-grid-too-large")
def _():
    write("bad.yaml", "name: s\ngrid:\n  seed: " + str(list(range(1000))) + "\n  top_k: " + str(list(range(1, 1001))) + "\n")
    return ["sweep", "bad.yaml", "--dry-run"]


@case("checkpoint-every-negative")
def _():
    return sweep("", "--checkpoint-every", "-1", dry_run=False)


@case("tracker-unknown", usage=True)
def _():
    return sweep("", "--tracker", "neptune")


@case("tracker-not-installed")
def _(monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # find_spec then says: not installed
    return sweep("", "--tracker", "mlflow", dry_run=False)


@case("predictions-suffix")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, "--predictions", "predictions.xlsx")


@case("predictions-is-input")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, "--split", "test", "--predictions", "data/reviews/16-5/test.tsv")


@case("predictions-in-data")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, "--predictions", "data/reviews/predictions.csv")


@case("predictions-into-store")
def _(tiny_lm_dir):
    reviews()
    store("results/s")
    return evaluate(tiny_lm_dir, "--predictions", "results/s/trials.parquet")


@case("manifest-into-store")
def _():
    store("results/s")
    write("data/few-shot/sst-2/16-13/train.tsv", "sentence\tlabel\ngood\t1\n")
    return ["data", "manifest", "data", "--out", "results/s/suite-trials.json"]


@case("eval-set-and-flag")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, "--set", "split_seed=6")


@case("eval-set-method")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, "--set", "method.lr=0.1")


@case("predictions-in-data-root")
def _(tiny_lm_dir, monkeypatch):
    reviews()
    write("reviews.yaml", Path("reviews.yaml").read_text() + "  data_dir: data\n")
    monkeypatch.setenv("PINBENCH_DATA_DIR", str(Path("data").resolve()))
    return ["eval", "--dataset", "reviews", "--dataset-file", "reviews.yaml", "--split-seed", "5", "--prompt", "it was",
            "--task-lm", tiny_lm_dir, "--predictions", "data/predictions.csv"]


@case("train-out-in-split-folder")
def _(tiny_lm_dir):
    reviews()
    write("reviews.yaml", Path("reviews.yaml").read_text() + "  data_dir: data\n")
    return ["train", "--dataset", "reviews", "--dataset-file", "reviews.yaml", "--split-seed", "5",
            "--policy-lm", tiny_lm_dir, "--task-lm", tiny_lm_dir, "--out", "data/reviews/16-5/run"]


@case("manifest-no-out", usage=True)
def _():
    Path("root").mkdir()
    return ["data", "manifest", "root"]


@case("download-manifest-directory")
def _():
    Path("manifests").mkdir()
    return ["data", "download", "--manifest", "manifests", "sst-2"]


@case("download-manifest-bad-entry")
def _():
    write("man.json", '{"format": 1, "datasets": {"sst-2": {"kind": "few-shot", "files": [{"path": '
                      '"few-shot/sst-2/16-13/x.tsv", "url": "http://127.0.0.1:1/x", "sha256": "ab", "size": -5}]}}}')
    return ["data", "download", "--manifest", "man.json", "sst-2"]


@case("download-manifest-bad-url")
def _():
    write("man.json", '{"format": 1, "datasets": {"sst-2": {"kind": "few-shot", "files": [{"path": '
                      '"few-shot/sst-2/16-13/x.tsv", "url": "gopher://x/y", "sha256": "' + "a" * 64 + '", "size": 5}]}}}')
    return ["data", "download", "--manifest", "man.json", "sst-2"]


@case("device-gpu")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, "--device", "gpu")


@case("predictions-unwritable-dir")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, "--predictions", "/proc/predictions.csv")


@case("step-times-not-an-object")
def _():
    write("times.json", "[1, 2]\n")
    return sweep("base:\n  preset: pin\n", "--step-times", "times.json")


@case("prompt-past-context")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, "--prompt", " ".join(["great"] * 200))


@case("prompt-length-past-context")
def _(tiny_setup):
    from conftest import train_argv

    return train_argv(tiny_setup, "out", steps=2)[:-2] + ["--prompt-length", "20000"]


@case("size-past-memory")
def _(tiny_setup):
    from conftest import train_argv

    return train_argv(tiny_setup, "out", steps=2)[:-2] + ["--mlp-hidden", str(10 ** 12)]


@case("argv-not-utf8")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, "--prompt", b"caf\xe9".decode("utf-8", "surrogateescape"))


@case("model-file-cut-short")
def _(tiny_lm_dir):
    import shutil

    shutil.copytree(tiny_lm_dir, "cut-model")
    weights = Path("cut-model") / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    reviews()
    return evaluate("cut-model")


@case("model-json-cut-short")
def _(tiny_lm_dir):
    reviews()
    shutil.copytree(tiny_lm_dir, "models")
    text = Path("models/tokenizer.json").read_text()
    Path("models/tokenizer.json").write_text(text[:200])
    return evaluate("models")


@case("model-config-mismatch")
def _(tiny_lm_dir):
    import json

    reviews()
    shutil.copytree(tiny_lm_dir, "models")
    config = json.loads(Path("models/config.json").read_text())
    config["n_embd"] = 2 * config["n_embd"]
    Path("models/config.json").write_text(json.dumps(config))
    return evaluate("models")


@case("eval-no-prompt")
def _():
    return ["eval", "--dataset", "sst-2"]


@case("eval-batch-tokens")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, "--batch-tokens", "0")


@case("report-out-is-file")
def _():
    write("report.txt", "notes\n")
    return ["report", "results", "--out", "report.txt"]


@case("report-top-prompts-negative")
def _():
    return ["report", "results", "--top-prompts", "-1"]


# ---- few-shot classification data ----


@case("dataset-unknown")
def _():
    return ["eval", "--dataset", "sst-3", "--prompt", "It was"]


@case("dataset-file-missing")
def _():
    return ["datasets", "--dataset-file", "reviews.yaml"]


@case("dataset-file-not-yaml")
def _():
    return ["datasets", "--dataset-file", write("reviews.yaml", 'reviews: {verbalizers: [" bad", " good"\n')]


@case("dataset-file-unknown-key")
def _():
    return ["datasets", "--dataset-file", write("reviews.yaml", """\
        reviews:
          verbalizers: [" bad", " good"]
          template: "{input} {prompt} {mask} ."
          labels: [negative, positive]
        """)]


@case("dataset-template-placeholder")
def _():
    return ["datasets", "--dataset-file", write("reviews.yaml", """\
        reviews:
          verbalizers: [" bad", " good"]
          template: "{input} It was {mask} ."
        """)]


@case("dataset-path-placeholder")
def _():
    return ["datasets", "--dataset-file", write("reviews.yaml", """\
        reviews:
          verbalizers: [" bad", " good"]
          template: "{input} {prompt} {mask} ."
          path: "{name}/{seed}/{split}.tsv"
        """)]


@case("dataset-path-format-spec")
def _():
    return ["datasets", "--dataset-file", write("reviews.yaml", """\
        reviews:
          verbalizers: [" bad", " good"]
          template: "{input} {prompt} {mask} ."
          path: "{name}/16-{split_seed:x}/{split}.tsv"
        """)]


@case("dataset-name-not-string")
def _():
    return ["datasets", "--dataset-file", write("reviews.yaml", """\
        yes:
          verbalizers: [" bad", " good"]
          template: "{input} {prompt} {mask} ."
        """)]


@case("dataset-name-empty")
def _():
    return ["datasets", "--dataset-file", write("reviews.yaml", """\
        "":
          verbalizers: [" bad", " good"]
          template: "{input} {prompt} {mask} ."
        """)]


@case("dataset-path-no-split")
def _():
    return ["datasets", "--dataset-file", write("reviews.yaml", """\
        reviews:
          verbalizers: [" bad", " good"]
          template: "{input} {prompt} {mask} ."
          path: "{name}/16-{split_seed}/test.tsv"
        """)]


@case("dataset-template-format-spec")
def _():
    return ["datasets", "--dataset-file", write("reviews.yaml", """\
        reviews:
          verbalizers: [" bad", " good"]
          template: "{input!r} {prompt} {mask} ."
        """)]


@case("dataset-verbalizer-empty")
def _():
    return ["datasets", "--dataset-file", write("reviews.yaml", """\
        reviews:
          verbalizers: ["", " good"]
          template: "{input} {prompt} {mask} ."
        """)]


@case("dataset-text-is-label-column")
def _():
    return ["datasets", "--dataset-file", write("reviews.yaml", """\
        reviews:
          verbalizers: [" bad", " good"]
          template: "{input} {prompt} {mask} ."
          text_column: label
        """)]


@case("dataset-file-is-directory")
def _():
    Path("reviews.yaml").mkdir()
    return ["datasets", "--dataset-file", "reviews.yaml"]


@case("dataset-defined-twice")
def _(tiny_lm_dir):
    reviews()
    write("more.yaml", """\
        reviews:
          verbalizers: [" bad", " good"]
          template: "{input} {prompt} {mask} ."
        """)
    return evaluate(tiny_lm_dir, "--dataset-file", "more.yaml")


@case("dataset-label-names-repeated")
def _():
    return ["datasets", "--dataset-file", write("reviews.yaml", """\
        reviews:
          verbalizers: [" bad", " good"]
          label_names: [same, same]
          template: "{input} {prompt} {mask} ."
        """)]


@case("dataset-redefines-builtin")
def _():
    return ["datasets", "--dataset-file", write("mine.yaml", """\
        sst-2:
          verbalizers: [" bad", " good"]
          template: "{input} {prompt} {mask} ."
        """)]


def no_data_anywhere(monkeypatch) -> None:
    """Every place of the data rule empty but the embedded demo split (SST-2 seed 13), whatever
    the machine has: PINBENCH_DATA_DIR unset, no ../shared/data, an empty cache."""
    from pinbench import data_locations

    monkeypatch.delenv("PINBENCH_DATA_DIR", raising=False)
    monkeypatch.setenv("PINBENCH_CACHE_DIR", str(Path("cache").resolve()))
    monkeypatch.setattr(data_locations, "SHARED_DATA", Path("shared/data").resolve())


@case("data-dir-not-given")
def _(tiny_lm_dir, monkeypatch):
    no_data_anywhere(monkeypatch)
    return ["eval", "--dataset", "sst-2", "--split-seed", "21", "--prompt", "It was", "--task-lm", tiny_lm_dir]


@case("data-dir-missing")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, data_dir="fewshot")


@case("datasets-data-dir-missing")
def _():
    return ["datasets", "--data-dir", "fewshot"]


@case("data-env-is-file")
def _(tiny_lm_dir, monkeypatch):
    reviews()
    write("data.txt", "not a directory\n")
    monkeypatch.setenv("PINBENCH_DATA_DIR", "data.txt")
    return ["eval", "--dataset", "sst-2", "--split-seed", "13", "--prompt", "it was", "--task-lm", tiny_lm_dir]


@case("split-file-missing")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, "--split-seed", "13")


@case("split-file-is-directory")
def _(tiny_lm_dir):
    reviews()
    Path("data/reviews/16-5/test.tsv").unlink()
    Path("data/reviews/16-5/test.tsv").mkdir()
    return evaluate(tiny_lm_dir)


@case("tsv-named-text-column-missing")
def _(tiny_lm_dir):
    reviews(extra="text_column: review")
    return evaluate(tiny_lm_dir)


@case("tsv-text-is-label-column")
def _(tiny_lm_dir):
    reviews(extra="label_column: sentence")
    return evaluate(tiny_lm_dir)


@case("tsv-broken-row")
def _(tiny_lm_dir):
    reviews(test="sentence\tlabel\nthe movie was great\t1\ni hated\tthe plot\t0\n")
    return evaluate(tiny_lm_dir)


@case("tsv-quote-glues-rows")
def _(tiny_lm_dir):
    reviews(test='sentence\tlabel\nthe movie was great\t1\n"i hated the plot\t0\nfun film\t1\n'
                 '"it is\tokay"\t2\nboring\t0\n')
    return evaluate(tiny_lm_dir)


@case("tsv-blank-lines")
def _(tiny_lm_dir):
    reviews(test="sentence\tlabel\n\nthe movie was great\t1\n\n   \nfun film\t1\nboring\t5\n")
    return evaluate(tiny_lm_dir)


@case("tsv-carriage-return")
def _(tiny_lm_dir):
    reviews(test="sentence\tlabel\nthe movie was great\t1\rboring\t0\n")
    return evaluate(tiny_lm_dir)


@case("tsv-nul-byte")
def _(tiny_lm_dir):
    reviews(test="sentence\tlabel\nthe movie was great\t1\nbad\x00\x00 film\t0\n")
    return evaluate(tiny_lm_dir)


@case("tsv-no-label-column")
def _(tiny_lm_dir):
    reviews(header="sentence\tsentiment")
    return evaluate(tiny_lm_dir)


@case("tsv-repeated-column")
def _(tiny_lm_dir):
    reviews(header="sentence\tlabel\tsentence", rows=[r + "\tmore" for r in ROWS])
    return evaluate(tiny_lm_dir)


@case("tsv-no-text-column")
def _(tiny_lm_dir):
    reviews(header="review\tlabel")
    return evaluate(tiny_lm_dir)


@case("tsv-label-not-integer")
def _(tiny_lm_dir):
    reviews(test="sentence\tlabel\nthe movie was great\tpositive\n")
    return evaluate(tiny_lm_dir)


@case("tsv-label-python-int")
def _(tiny_lm_dir):
    reviews(test="sentence\tlabel\nthe movie was great\t0_1\n")
    return evaluate(tiny_lm_dir)


@case("tsv-row-of-tabs")
def _(tiny_lm_dir):
    reviews(test=b"sentence\tlabel\nthe movie was great\t1\n\t\n")  # bytes: write() dedents text
    return evaluate(tiny_lm_dir)


@case("tsv-label-out-of-range")
def _(tiny_lm_dir):
    reviews(test="sentence\tlabel\nthe movie was great\t3\n")
    return evaluate(tiny_lm_dir)


@case("tsv-not-utf8")
def _(tiny_lm_dir):
    reviews(test=b"sentence\tlabel\nthe movie was caf\xe9\t1\n")
    return evaluate(tiny_lm_dir)


@case("split-empty")
def _(tiny_lm_dir):
    reviews(test="sentence\tlabel\n")
    return evaluate(tiny_lm_dir)


@case("split-empty-file")
def _(tiny_lm_dir):
    reviews(test="")
    return evaluate(tiny_lm_dir)


@case("verbalizer-multi-token")
def _(tiny_lm_dir):
    reviews(verbalizers='[" bad", " very good", " okay"]')
    return evaluate(tiny_lm_dir)


@case("verbalizer-same-token")
def _(tiny_lm_dir):
    reviews(verbalizers='[" bad", " good", "good"]')  # the tiny model's word-level tokenizer drops the space
    return evaluate(tiny_lm_dir)


@case("verbalizer-unknown-token")
def _(tiny_lm_dir):
    reviews(verbalizers='[" bad", " superb", " okay"]')
    return evaluate(tiny_lm_dir)


# ---- style transfer and inversion data ----


def shakespeare(test: str) -> None:
    for split in ("train", "dev"):
        write(f"st/shakespeare/100-shot/100-100/{split}.tsv", "text\tlabel\nthou art\t0\nyou are\t1\n")
    write("st/shakespeare/100-shot/100-100/test.tsv", test)


@case("style-unknown-dataset")
def _():
    return ["eval", "--task", "style_transfer", "--dataset", "shakespear", "--data-dir", "st", "--prompt", "x"]


@case("style-data-dir-missing")
def _():
    return ["eval", "--task", "style_transfer", "--dataset", "yelp", "--data-dir", "style", "--prompt", "x"]


@case("style-file-missing")
def _():
    Path("st").mkdir()
    return ["eval", "--task", "style_transfer", "--dataset", "yelp", "--data-dir", "st", "--prompt", "x"]


@case("style-label-not-integer")
def _(tiny_lm_dir):
    shakespeare("text\tlabel\nthou art\tzero\nyou are\t1\n")
    return ["eval", "--task", "style_transfer", "--dataset", "shakespeare", "--data-dir", "st", "--prompt", "x",
            "--task-lm", tiny_lm_dir]


@case("style-tsv-broken")
def _(tiny_lm_dir):
    shakespeare('text\tlabel\n"thou art\t0\nyou are\t1\n')
    return ["eval", "--task", "style_transfer", "--dataset", "shakespeare", "--data-dir", "st", "--prompt", "x",
            "--task-lm", tiny_lm_dir]


@case("style-direction")
def _():
    return ["eval", "--task", "style_transfer", "--dataset", "yelp", "--direction", "0-1", "--data-dir", "st",
            "--prompt", "x"]


@case("style-outputs-directory")
def _():
    Path("outputs").mkdir()
    return ["eval", "--task", "style_transfer", "--dataset", "yelp", "--direction", "0_to_1", "--data-dir", "st",
            "--split", "test", "--outputs", "outputs"]


@case("style-outputs-not-a-file")
def _():
    return ["eval", "--task", "style_transfer", "--dataset", "yelp", "--direction", "0_to_1", "--data-dir", "st",
            "--split", "test", "--outputs", "/dev/null"]


@case("style-template-format-spec")
def _():
    return ["eval", "--task", "style_transfer", "--dataset", "yelp", "--data-dir", "st", "--prompt", "x",
            "--set", 'task.template={prompt} "{input:.0}" "']


@case("eval-prompt-twice")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, "--prompt", "it was")


@case("style-outputs-not-utf8")
def _():
    write("outputs.txt", b"great food\nthe caf\xe9 was fine\n")
    return ["eval", "--task", "style_transfer", "--dataset", "yelp", "--direction", "0_to_1", "--data-dir", "st",
            "--split", "test", "--outputs", "outputs.txt"]


def inversion(*sets: str) -> list[str]:
    return ["eval", "--task", "inversion", "--prompt", "a red painting", "--set", "clip_model=clip",
            *[a for s in sets for a in ("--set", s)]]


@case("image-missing")
def _():
    Path("targets").mkdir()
    return inversion("image=blue") + ["--data-dir", "targets"]


@case("image-no-data-dir")
def _(monkeypatch):
    no_data_anywhere(monkeypatch)
    return inversion("image=red.png")


@case("image-path-missing")
def _():
    return inversion("image=/data/images/red.png")


@case("image-unreadable")
def _():
    write("targets/red.png", "not an image\n")
    return inversion("image=red") + ["--data-dir", "targets"]


@case("image-not-finite")
def _():
    import numpy as np
    from PIL import Image

    pixels = np.tile(np.linspace(0, 1, 16, dtype=np.float32), (16, 1))
    pixels[0, 0] = np.nan
    Path("targets").mkdir()
    Image.fromarray(pixels, "F").save("targets/grey.tiff")
    return inversion("image=grey.tiff") + ["--data-dir", "targets"]


@case("image-name-with-comma")
def _():
    write("targets/red,blue.png", "an image\n")
    return inversion("image=red,blue.png") + ["--data-dir", "targets"]


@case("image-only-commas")
def _():
    return inversion("image=, ,") + ["--data-dir", "targets"]


@case("image-named-twice")
def _():
    from PIL import Image

    Path("targets").mkdir()
    Image.new("RGB", (8, 8), (200, 0, 0)).save("targets/red.png")
    return inversion("image=red,red.png") + ["--data-dir", "targets"]


@case("image-named-twice-by-path")
def _():
    from PIL import Image

    Path("targets").mkdir()
    Image.new("RGB", (8, 8), (200, 0, 0)).save("targets/red.png")
    return inversion(f"image=red.png,{Path('targets/red.png').resolve()}") + ["--data-dir", "targets"]


@case("image-is-directory")
def _():
    Path("targets/red").mkdir(parents=True)
    return inversion(f"image={Path('targets').resolve()}")


@case("image-animated")
def _():
    from PIL import Image

    Path("targets").mkdir()
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((200, 0, 0), (0, 200, 0))]
    frames[0].save("targets/blink.gif", save_all=True, append_images=frames[1:])
    return inversion("image=blink.gif") + ["--data-dir", "targets"]


@case("image-stem-ambiguous")
def _():
    from PIL import Image

    Path("targets").mkdir()
    Image.new("RGB", (8, 8), (200, 0, 0)).save("targets/two.jpg")
    Image.new("RGB", (8, 8), (0, 0, 200)).save("targets/two.png")
    return inversion("image=two") + ["--data-dir", "targets"]


@case("inversion-unknown-key")
def _():
    return inversion("image=red", "images=red,blue")


# ---- before a sweep launches (storage, data and resources are checked on the driver) ----


@pytest.fixture
def no_ray_left():
    """The sweep's checks run before and just after Ray starts; none must leave a Ray running."""
    yield
    import ray

    assert not ray.is_initialized(), "the failed sweep left its Ray running"


def launchable(body: str = "") -> str:
    """A suite that would launch: dataset ``reviews`` from ``reviews.yaml`` (split seed 5) and
    ``body`` (more top-level keys)."""
    reviews()
    return write("bad.yaml", "name: s\nbase:\n  dataset: reviews\n  dataset_file: reviews.yaml\n"
                             "  data_dir: data\n  split_seed: 5\n" + textwrap.dedent(body))


@case("sweep-data-missing")
def _(no_ray_left):
    reviews()
    write("bad.yaml", "name: s\nbase:\n  dataset: reviews\n  dataset_file: reviews.yaml\n  data_dir: data\n"
                      "grid:\n  split_seed: [5, 6]\n")
    return ["sweep", "bad.yaml", "--results", "results"]


@case("sweep-too-many-cpus")
def _(no_ray_left):
    return ["sweep", launchable("resources: {cpu: 64}\n"), "--results", "results", "--num-cpus", "2"]


@case("sweep-no-gpu")
def _(no_ray_left):
    return ["sweep", launchable("resources: {cpu: 1, gpu: 1}\n"), "--results", "results", "--num-cpus", "2"]


@case("results-is-a-file")
def _(no_ray_left):
    write("results", "not a directory\n")
    return ["sweep", launchable(), "--results", "results"]


@case("results-lock-is-directory")
def _(no_ray_left):
    Path("results/s/.pinbench.lock").mkdir(parents=True)
    return ["sweep", launchable(), "--results", "results"]


@case("results-uri-lost-slash")
def _(no_ray_left):
    return ["sweep", launchable(), "--results", "s3:/my-bucket/pinbench"]


@case("results-unknown-scheme")
def _(no_ray_left):
    return ["sweep", launchable(), "--results", "ftp://host/pinbench"]


# ---- models ----


@case("model-dir-missing")
def _():
    reviews()
    return evaluate("./models/tiny")


@case("model-path-is-file")
def _():
    reviews()
    return evaluate(write("model.bin", "weights\n"))


@case("model-dir-not-a-model")
def _():
    reviews()
    Path("models").mkdir()
    return evaluate("models")


@case("model-dir-no-tokenizer")
def _(tiny_lm_dir):
    reviews()
    Path("models").mkdir()
    shutil.copy(Path(tiny_lm_dir) / "config.json", "models/config.json")
    return evaluate("models")


@case("model-tokenizer-larger-than-embeddings")
def _(tiny_lm_dir):
    import json

    reviews()
    shutil.copytree(tiny_lm_dir, "models")
    config = json.loads(Path("models/config.json").read_text())
    config["vocab_size"] = 8  # the weights shrink with it (ignore_mismatched_sizes below)
    Path("models/config.json").write_text(json.dumps(config))
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained("models", ignore_mismatched_sizes=True).save_pretrained("models")
    return evaluate("models")


@case("model-hub-unreachable")
def _(monkeypatch):
    from huggingface_hub import constants

    def offline(host, *args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)  # the machine is offline
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    reviews()
    return evaluate("nobody/no-such-model")


@case("model-alias-wrong-kind")
def _():
    reviews()
    return evaluate("minilm-l6")


@case("model-wrong-kind")
def _(tiny_lm_dir):
    reviews()
    return evaluate(tiny_lm_dir, "--task-lm-kind", "masked")


@case("model-no-cuda")
def _(tiny_lm_dir, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    reviews()
    return evaluate(tiny_lm_dir, "--device", "cuda")


# ---- results stores (pinbench report / transfer) ----


def store(path: str = "results/s", tiny_lm_dir: str = "tiny") -> Path:
    """A store with one completed trial, written by pinbench's own results writer."""
    from pinbench.results import frames, write_results
    from pinbench.run import RunResult, make_spec

    spec = make_spec({"preset": "pin", "dataset": "sst-2", "policy_lm": tiny_lm_dir, "task_lm": tiny_lm_dir})
    result = RunResult(spec, steps_done=20, wall_time_s=1.0, prompt_tokenizer=tiny_lm_dir,
                       history=[{"step": 20, "dev_accuracy": 0.9}],
                       best={"step": 20, "prompt": "the movie", "token_ids": None, "dev_accuracy": 0.9},
                       test={"test_accuracy": 0.9})
    write_results(path, frames(result, "t0", "s"))
    return Path(path)


@case("results-missing")
def _():
    return ["report", "results/s", "--out", "report"]


@case("results-not-a-directory")
def _():
    return ["report", write("results.csv", "a,b\n"), "--out", "report"]


@case("results-not-a-store")
def _():
    write("results/notes.txt", "nothing here\n")
    return ["report", "results", "--out", "report"]


@case("results-corrupt-parquet")
def _():
    write("results/s/trials.parquet", b"PAR1 truncated")
    return ["report", "results/s", "--out", "report"]


@case("results-future-schema")
def _():
    for table in ("trials", "history", "prompts"):
        Path("results/s").mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"schema_version": [99], "trial_id": ["t0"]}).to_parquet(f"results/s/{table}.parquet")
    return ["transfer", "results/s", "--task-lm", "smollm2-135m"]


@case("results-not-pinbench")
def _():
    Path("results/s").mkdir(parents=True)
    pd.DataFrame({"trial_id": ["t0"], "accuracy": [0.9]}).to_parquet("results/s/trials.parquet")
    return ["report", "results/s", "--out", "report"]


@case("results-missing-table")
def _():
    store()
    Path("results/s/history.parquet").unlink()
    return ["report", "results/s", "--out", "report"]


@case("sweep-store-damaged")
def _(no_ray_left):
    bad = launchable()
    store("results/s")
    Path("results/s/history.parquet").unlink()
    return ["sweep", bad, "--results", "results", "--resume"]


@case("sweep-storage-is-results")
def _(no_ray_left):
    return ["sweep", launchable(), "--results", "results", "--storage", "results"]


@case("sweep-storage-empty")
def _(no_ray_left):
    return ["sweep", launchable(), "--results", "results", "--storage", ""]


@case("sweep-tune-state-truncated")
def _(no_ray_left):
    bad = launchable("search:\n  num_samples: 2\n  space:\n    alpha: {type: loguniform, low: 0.1, high: 10.0}\n")
    write("results/_ray/s/tuner.pkl", pickle.dumps({"run_config": None}))
    write("results/_ray/s/experiment_state-2026-12-07_05-00-00.json", "{}")
    write("results/_ray/s/searcher-state-2026-12-07_05-00-00.pkl", b"")
    return ["sweep", bad, "--results", "results", "--resume"]


@case("results-trial-twice")
def _():
    trials = pd.read_parquet(store() / "trials.parquet")
    pd.concat([trials, trials]).to_parquet("results/s/trials.parquet", index=False)
    return ["report", "results/s", "--out", "report"]


@case("results-status-empty")
def _():
    trials = pd.read_parquet(store() / "trials.parquet")
    trials.assign(status=None).to_parquet("results/s/trials.parquet", index=False)
    return ["report", "results/s", "--out", "report"]


@case("results-accuracy-percent")
def _():
    trials = pd.read_parquet(store() / "trials.parquet")
    trials.assign(test_accuracy=90.0).to_parquet("results/s/trials.parquet", index=False)
    return ["report", "results/s", "--out", "report"]


@case("results-history-step-empty")
def _():
    history = pd.read_parquet(store() / "history.parquet")
    history.assign(step=float("nan")).to_parquet("results/s/history.parquet", index=False)
    return ["report", "results/s", "--out", "report"]


@case("results-history-text-metric")
def _():
    history = pd.read_parquet(store() / "history.parquet")
    history.assign(reward_mean="x").to_parquet("results/s/history.parquet", index=False)
    return ["report", "results/s", "--out", "report"]


@case("results-setting-two-types")
def _():
    store("results/a")
    trials = pd.read_parquet(store("results/b") / "trials.parquet")
    trials.assign(trial_id="t1", **{"method.alpha": "1.0"}).to_parquet("results/b/trials.parquet", index=False)
    history = pd.read_parquet("results/b/history.parquet")
    history.assign(trial_id="t1").to_parquet("results/b/history.parquet", index=False)
    prompts = pd.read_parquet("results/b/prompts.parquet")
    prompts.assign(trial_id="t1").to_parquet("results/b/prompts.parquet", index=False)
    return ["report", "results/a", "results/b", "--out", "report"]


@case("results-schema-version-text")
def _():
    trials = pd.read_parquet(store() / "trials.parquet")
    trials.assign(schema_version="3").to_parquet("results/s/trials.parquet", index=False)
    return ["report", "results/s", "--out", "report"]


@case("results-history-twice")
def _():
    history = pd.read_parquet(store() / "history.parquet")
    pd.concat([history, history]).to_parquet("results/s/history.parquet", index=False)
    return ["report", "results/s", "--out", "report"]


@case("results-accuracy-bool")
def _():
    trials = pd.read_parquet(store() / "trials.parquet")
    trials.assign(test_accuracy=True).to_parquet("results/s/trials.parquet", index=False)
    return ["report", "results/s", "--out", "report"]


@case("results-unknown-status")
def _():
    trials = pd.read_parquet(store() / "trials.parquet")
    trials.assign(status="COMPLETED").to_parquet("results/s/trials.parquet", index=False)
    return ["report", "results/s", "--out", "report"]


@case("results-prompt-not-text")
def _():
    trials = pd.read_parquet(store() / "trials.parquet")
    trials.assign(best_prompt=[b"the m\xe9vie"]).to_parquet("results/s/trials.parquet", index=False)
    return ["report", "results/s", "--out", "report"]


@case("report-unknown-metric")
def _(tiny_lm_dir):
    store(tiny_lm_dir=tiny_lm_dir)
    return ["report", "results/s", "--out", "report", "--metric", "test_acc", "--reference-lm", tiny_lm_dir]


@case("report-metric-not-a-number")
def _(tiny_lm_dir):
    store(tiny_lm_dir=tiny_lm_dir)
    return ["report", "results/s", "--out", "report", "--metric", "steps", "--reference-lm", tiny_lm_dir]


@case("report-device-gpu")
def _(tiny_lm_dir):
    store(tiny_lm_dir=tiny_lm_dir)
    return ["report", "results/s", "--out", "report", "--device", "gpu", "--reference-lm", tiny_lm_dir]


@case("report-method-by-empty")
def _(tiny_lm_dir):
    store(tiny_lm_dir=tiny_lm_dir)
    return ["report", "results/s", "--out", "report", "--method-by", "", "--reference-lm", tiny_lm_dir]


@case("transfer-file-damaged")
def _(tiny_lm_dir):
    store(tiny_lm_dir=tiny_lm_dir)
    write("results/s/transfer.parquet", b"PAR1 cut short")
    return ["transfer", "results/s", "--task-lm", "no-such-model-is-loaded-first"]


@case("report-unknown-baseline")
def _(tiny_lm_dir):
    store(tiny_lm_dir=tiny_lm_dir)
    return ["report", "results/s", "--out", "report", "--baseline", "rl-prompt", "--reference-lm", tiny_lm_dir]


# ---------------------------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------------------------

CATALOGUE_ROWS = catalogue_rows()


def test_the_catalogue_and_the_cases_are_the_same_set():
    ids = [r.id for r in CATALOGUE_ROWS]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    assert not repeated, f"ids repeated in {CATALOGUE.name} {SECTION}: {repeated}"
    assert not set(ids) - set(CASES), f"{CATALOGUE.name} rows without a case in {__file__}: {sorted(set(ids) - set(CASES))}"
    assert not set(CASES) - set(ids), f"cases without a row in {CATALOGUE.name}: {sorted(set(CASES) - set(ids))}"
    for row in CATALOGUE_ROWS:
        assert row.error and "\n" not in row.error and row.input and row.command, row


@pytest.mark.parametrize("row", CATALOGUE_ROWS, ids=[r.id for r in CATALOGUE_ROWS])
def test_bad_input_gives_the_catalogued_line(row: Row, request, tmp_path, monkeypatch, capsys):
    assert row.id in CASES, f"{CATALOGUE.name} row '{row.id}' has no case in {__file__} (add one with @case)"
    spec = CASES[row.id]
    monkeypatch.chdir(tmp_path)
    kwargs = {name: request.getfixturevalue(name) for name in inspect.signature(spec.build).parameters}
    action = spec.build(**kwargs)
    capsys.readouterr()  # what making the fixtures printed (a model's save progress bar)
    if callable(action):  # a library call: its exception's message is the row's error
        with pytest.raises(PinbenchError) as info:
            action()
        lines, code = [str(info.value)], spec.code
    else:
        try:
            code = main([str(a) for a in action])
        except SystemExit as exc:  # argparse
            code = exc.code
        out, err = capsys.readouterr()
        lines = (err if spec.stream == "err" else out).strip().splitlines()
        assert "Traceback" not in err
    assert code == spec.code, f"exit code {code}, expected {spec.code}: {lines}"
    assert lines, "nothing printed"
    if spec.stream == "err" and not spec.usage:
        assert len(lines) == 1, f"the error is {len(lines)} lines, not one:\n" + "\n".join(lines)
    assert re.fullmatch(pattern(row.error), lines[-1]), \
        f"{CATALOGUE.name} {SECTION} row '{row.id}' says\n  {row.error}\nbut the line is\n  {lines[-1]}"
