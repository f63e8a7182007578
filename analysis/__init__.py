"""pinbench's analysis package, installed as ``pinbench.analysis`` (the folder is ``analysis/`` at
the top of the checkout): results stores in, papers' tables, naturalness metrics and figures out.

    load_results     read results directories (local or s3://) into frames        (load.py)
    naturalness      perplexity and token-frequency statistics per prompt, cached  (naturalness.py)
    summarise        mean ± error tables with bold best and Welch daggers          (tables.py)
    plots            learning curves and ablation figures                          (plots.py)
    build_report     everything above as files plus report.md (`pinbench report`)  (report.py)
    ReportContext, ReportSection   what a task's own report sections get and give  (sections.py)

Nothing here names a task: each task's report code is in its package (``Task.report_sections``,
e.g. ``pinbench/tasks/<name>/report.py``).
"""

from .load import Results, ResultsError, load_results
from .report import Report, ReportOptions, build_report
from .sections import ReportContext, ReportSection

__all__ = ["Results", "ResultsError", "load_results", "Report", "ReportOptions", "build_report",
           "ReportContext", "ReportSection"]
