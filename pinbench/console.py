"""The console view of ``pinbench sweep``: one row per trial instead of Ray Tune's config dumps.

A row holds the trial id, the grid values that differ between the suite's trials, the step, the
latest and best dev accuracy, the status and the best prompt so far. On a terminal the rows are a
rich Live table; elsewhere (CI, cluster job logs) each report or status change prints one line:

    0:00:07 seed=0-db97b5c9 seed=0 running step 2/4 dev acc 33.3% best 33.3% best prompt 'it was fun'

``SweepView`` holds the rows and formats them (no Ray needed); ``SweepConsole`` is the Ray Tune
callback that feeds it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from ray.tune import Callback

from .errors import ConfigError
from .suite import Suite, resolve_params

STATUSES = ("running", "retrying", "completed", "stopped", "failed", "pending")
STATUS_STYLE = {"running": "cyan", "retrying": "yellow", "completed": "green", "stopped": "magenta",
                "failed": "bold red", "pending": "dim"}


def varying_axes(suite: Suite) -> list[str]:
    """The settings that tell the suite's trials apart: grid axes with more than one value, or the
    searched fields of an Optuna suite."""
    if suite.search is not None:
        return list(suite.search.space)
    points = suite.points()
    axes = dict.fromkeys(axis for point in points for axis in point)
    return [a for a in axes if len({repr(p.get(a, "(base)")) for p in points}) > 1]


def _value(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _percent(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def _metric_text(name: str, v) -> str:
    """Accuracies as percentages, other metrics with 3 significant digits."""
    if v is None:
        return "-"
    return _percent(v) if name.endswith("accuracy") else f"{v:.3g}"


def _short(name: str) -> str:
    return name.replace("accuracy", "acc").replace("_", " ")


def _metric_names(config: dict) -> tuple[str, str | None]:
    """The trial's selection metric (``dev_accuracy``) and report metric (``test_accuracy``), from
    its task's declaration."""
    from .registry import TASKS

    try:
        task = TASKS.get(config.get("task") or "classification")
    except (ConfigError, ImportError):  # a task the driver cannot import: the classification names
        return "dev_accuracy", "test_accuracy"
    report = f"{task.report_split}_{task.selection_metric}" if task.report_split else None
    return f"{task.selection_split}_{task.selection_metric}", report


@dataclass
class TrialRow:
    trial_id: str
    point: dict
    steps: int | None = None
    status: str = "pending"
    step: int | None = None
    selection_metric: str = "dev_accuracy"
    """The task's selection metric as reported (``dev_accuracy``); ``current`` and ``best`` are its values."""
    report_metric: str | None = "test_accuracy"
    """The chosen prompt's final metric (``test_accuracy``), the value ``final``."""
    current: float | None = None
    best: float | None = None
    best_prompt: str | None = None
    final: float | None = None
    error: str = ""


@dataclass
class SweepView:
    """The rows of a sweep, keyed by Tune's trial id, and their table and line formats."""

    suite: str
    axes: list[str]
    rows: dict[str, TrialRow] = field(default_factory=dict)
    start: float = field(default_factory=time.monotonic)

    def row(self, key: str, params: dict) -> TrialRow:
        """The row of Tune trial ``key`` (``params`` as ``suite.resolve_params`` returns them)."""
        if key not in self.rows:
            config = params.get("config", {})
            selection, report = _metric_names(config)
            self.rows[key] = TrialRow(params["trial_id"], dict(params.get("point", {})), config.get("run.steps"),
                                      selection_metric=selection, report_metric=report)
        return self.rows[key]

    def report(self, row: TrialRow, result: dict) -> None:
        """Take a trial report's metrics (the last selection metric stays when a report has none)."""
        row.step = result.get("step", row.step)
        for attr, name in (("current", row.selection_metric), ("best", f"best_{row.selection_metric}"),
                           ("best_prompt", "best_prompt"), ("final", row.report_metric)):
            if name is not None and result.get(name) is not None:
                setattr(row, attr, result[name])

    # -- formats ---------------------------------------------------------------------------

    def elapsed(self) -> str:
        seconds = int(time.monotonic() - self.start)
        return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"

    def point_text(self, row: TrialRow) -> str:
        return " ".join(f"{a}={_value(row.point[a])}" for a in self.axes if a in row.point)

    def step_text(self, row: TrialRow) -> str:
        if row.step is None:
            return "-"
        return f"{row.step}/{row.steps}" if row.steps else str(row.step)

    def line(self, row: TrialRow) -> str:
        """One log line for a report or a status change of ``row``."""
        parts = [self.elapsed(), row.trial_id, self.point_text(row), row.status]
        if row.step is not None:
            parts.append(f"step {self.step_text(row)}")
        metric = row.selection_metric
        if row.current is not None or row.best is not None:
            parts.append(f"{_short(metric)} {_metric_text(metric, row.current)} best {_metric_text(metric, row.best)}")
        if row.status == "completed" and row.final is not None:
            parts.append(f"{_short(row.report_metric)} {_metric_text(row.report_metric, row.final)}")
        if row.best_prompt is not None:
            parts.append(f"best prompt {row.best_prompt!r}")
        if row.error:
            parts.append(row.error)
        return " ".join(p for p in parts if p)

    def counts(self) -> str:
        counts = {s: sum(r.status == s for r in self.rows.values()) for s in STATUSES}
        return ", ".join(f"{n} {s}" for s, n in counts.items() if n)

    def table(self):
        from rich.table import Table
        from rich.text import Text

        table = Table(title=f"sweep {self.suite}: {self.counts() or 'starting'}  ({self.elapsed()})",
                      title_justify="left")
        table.add_column("trial", overflow="fold")
        for axis in self.axes:
            table.add_column(axis)
        table.add_column("step", justify="right")
        metrics = {r.selection_metric for r in self.rows.values()} or {"dev_accuracy"}
        metric = metrics.pop() if len(metrics) == 1 else "selection metric"
        table.add_column(_short(metric), justify="right")
        table.add_column(f"best {_short(metric)}", justify="right")
        table.add_column("status")
        table.add_column("best prompt", overflow="fold")
        for row in self.rows.values():
            style = STATUS_STYLE.get(row.status, "")
            table.add_row(row.trial_id, *[_value(row.point.get(a, "")) for a in self.axes], self.step_text(row),
                          _metric_text(row.selection_metric, row.current),
                          _metric_text(row.selection_metric, row.best),
                          f"[{style}]{row.status}[/]" if style else row.status,
                          "" if row.best_prompt is None else Text(repr(row.best_prompt)))  # not markup
        return table


def _error_line(trial) -> str:
    """The last line of a failed trial's error file (the exception), shortened."""
    path = getattr(trial, "error_file", None)
    if path and Path(path).is_file():
        lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()]
        if lines:
            return lines[-1][:200]
    return ""


class SweepConsole(Callback):
    """Ray Tune callback: a rich Live table on a terminal, one line per report and status change
    otherwise. It is pickled with the experiment (Tuner), so the console and the Live display are
    made in ``setup`` and left out of the pickled state."""

    def __init__(self, suite: Suite, live: bool | None = None, console=None):
        self.suite_name = suite.name
        self.axes = varying_axes(suite)
        self.live_mode = live  # None: a Live table if the console is a terminal
        self.view = SweepView(self.suite_name, self.axes)
        self._console = console  # None: a rich Console on stdout, made at the start
        self._started = False
        self._live = None
        self._last_refresh = 0.0

    def __getstate__(self):
        return {**self.__dict__, "_console": None, "_live": None, "_started": False}

    # -- output ----------------------------------------------------------------------------

    def _start(self) -> None:
        if self._started:
            return
        self._started = True
        if self._console is None:
            from rich.console import Console

            self._console = Console()
        live = self._console.is_terminal if self.live_mode is None else self.live_mode
        if live:
            from rich.live import Live

            self._live = Live(self.view.table(), console=self._console, auto_refresh=False,
                              redirect_stdout=False, redirect_stderr=False)
            self._live.start()

    def _refresh(self) -> None:
        self._live.update(self.view.table(), refresh=True)
        self._last_refresh = time.monotonic()

    def _changed(self, row: TrialRow) -> None:
        self._start()
        if self._live is not None:
            self._refresh()
        else:
            self._console.print(self.view.line(row), soft_wrap=True, markup=False, highlight=False)

    def close(self) -> None:
        """Stop the Live display (idempotent; the final table stays on screen)."""
        if self._live is not None:
            self._refresh()
            self._live.stop()
            self._live = None
        self._started = False

    # -- Tune hooks --------------------------------------------------------------------------

    def _row(self, trial) -> TrialRow:
        return self.view.row(trial.trial_id, resolve_params(trial.config))

    def setup(self, **info) -> None:
        self.view.start = time.monotonic()
        self._start()

    def on_step_end(self, iteration, trials, **info) -> None:
        if self._live is None:
            return
        for trial in trials:  # pending trials get a row too
            if trial.trial_id not in self.view.rows:
                self._row(trial)
        if time.monotonic() - self._last_refresh >= 1.0:  # keeps the clock in the title going
            self._refresh()

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        row = self._row(trial)
        row.status, row.error = "running", ""
        self._changed(row)

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        row = self._row(trial)
        row.status = "running"
        self.view.report(row, result)
        self._changed(row)

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        row = self._row(trial)
        # a trial that ends without its final report was stopped early (ASHA); one whose final
        # report says it failed (a NaN loss: not retried) is failed
        last = trial.last_result or {}
        row.status = "completed" if last.get("done_training") else "stopped"
        if last.get("trial_failed"):
            row.status, row.error = "failed", str(last.get("error", ""))
        self._changed(row)

    def on_trial_recover(self, iteration, trials, trial, **info) -> None:
        row = self._row(trial)
        row.status, row.error = "retrying", _error_line(trial)
        self._changed(row)

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        row = self._row(trial)
        row.status, row.error = "failed", _error_line(trial)
        self._changed(row)

    def on_experiment_end(self, trials, **info) -> None:
        self.close()
