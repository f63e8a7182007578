"""A task's own part of ``pinbench report``: what ``Task.report_sections`` is given and returns.

The report is generic over tasks. It groups the completed trials by their ``task`` column and asks
each task's class (``pinbench.registry.TASKS``) for its sections with a ``ReportContext``: that
task's trials and evaluated prompts, the report's rows and options, and helpers that write tables
and figures where the rest of the report writes them. A ``ReportSection`` is a ``## title`` of
report.md with its Markdown, and the files, tables and figures it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .tables import SummaryTable, write_table_set


def files_line(name: str, latex: bool = True) -> str:
    """report.md's links to a table's files: ``tables/<name>.md``, ``.tex`` and ``.csv``."""
    links = [f"[Markdown](tables/{name}.md)", *([f"[LaTeX](tables/{name}.tex)"] if latex else []),
             f"[CSV](tables/{name}.csv)"]
    return "Files: " + " · ".join(links)


@dataclass
class ReportSection:
    """One ``## title`` section of report.md that a task adds (after the comparison table)."""

    title: str
    lines: list[str] = field(default_factory=list)
    """Markdown after the heading (one entry per line or block; joined with newlines)."""
    files: list[Path] = field(default_factory=list)
    """Files it wrote (``ReportContext.write_table`` and ``save_figure`` add theirs)."""
    tables: dict[str, SummaryTable] = field(default_factory=dict)
    """Its tables by file name (``tables/<name>.*``)."""
    figures: dict[str, Path] = field(default_factory=dict)
    """Its figures by file name (``figures/<name>.*``): the PNG."""

    def markdown(self) -> list[str]:
        return [f"## {self.title}", "", *self.lines]


@dataclass
class ReportContext:
    """What a task's ``report_sections`` is given: one task's share of a report."""

    task: str
    """The task's registry name (the trials' ``task`` value)."""
    trials: pd.DataFrame
    """This task's completed trials: ``method`` is the row label; the best prompt's naturalness
    (``perplexity``, ``zipf_mean``, ...), policy statistics and every recorded column joined."""
    prompts: pd.DataFrame
    """The evaluated prompts of these trials (prompts.parquet: ``source`` "best" is the chosen one)."""
    methods: list[str]
    """The report's rows that have trials of this task, in the report's order."""
    baseline: str | None
    """The row daggers test against (None: no daggers)."""
    error: str
    """``se`` or ``std``: the error bars and ± of the tables."""
    published: str
    """``none``, ``matching`` or ``all``: published rows to set beside ours (``--published``)."""
    metric: str
    """The comparison table's metric (``test_accuracy``, ``test_reward``...)."""
    reference_lm: str | None
    """The LM the naturalness perplexities are under."""
    out: Path
    """The report's directory: tables go to ``out/tables``, figures to ``out/figures``."""
    warnings: list[str] = field(default_factory=list)
    """The report's warnings (report.md's last section); ``warn`` adds one."""

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def write_table(self, section: ReportSection, table: SummaryTable, name: str, label: str) -> list[Path]:
        """``table`` as ``tables/<name>.{md,tex,csv}`` (LaTeX label ``label``), recorded in ``section``."""
        files = write_table_set(table, self.out / "tables" / name, label)
        section.files += files
        section.tables[name] = table
        return files

    def save_figure(self, section: ReportSection, fig, name: str) -> Path:
        """``fig`` as ``figures/<name>.{png,pdf}``, recorded in ``section``; returns the PNG."""
        from . import plots

        saved = plots.save(fig, self.out / "figures" / name)
        section.files += saved
        section.figures[name] = saved[0]
        return saved[0]
