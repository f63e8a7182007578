"""Tasks: each owns its data, its reward, its metrics and its selection rule (``base.Task``); the
registry is ``pinbench.registry.TASKS``."""

from .base import DatasetInfo, EvalTable, Metric, Task, WhiteBox

__all__ = ["DatasetInfo", "EvalTable", "Metric", "Task", "WhiteBox"]
