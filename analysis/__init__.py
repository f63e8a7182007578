"""pinbench's analysis package: results stores in, papers' tables, naturalness metrics and figures out.

    load_results     read results directories (local or s3://) into frames        (load.py)
    naturalness      perplexity and token-frequency statistics per prompt, cached  (naturalness.py)
    summarise        mean ± error tables with bold best and Welch daggers          (tables.py)
    plots            learning curves and ablation figures                          (plots.py)
    build_report     everything above as files plus report.md (`pinbench report`)  (report.py)
"""

from .load import Results, ResultsError, load_results
from .report import Report, ReportOptions, build_report

__all__ = ["Results", "ResultsError", "load_results", "Report", "ReportOptions", "build_report"]
