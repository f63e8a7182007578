"""What reports call a dataset, from the tasks' ``Task.dataset_titles`` (the papers' column headers).

A report's column, panel or row names a dataset by its registry name; a task may give its datasets
the names its papers print, in the papers' order (``Task.dataset_titles``). Names no task titles
are printed as they are, sorted, after the titled ones.
"""

from __future__ import annotations

from pinbench.errors import PinbenchError


def dataset_titles() -> dict[str, str]:
    """Dataset name -> title over every registered task (built-in and imported plug-ins), in the
    registry's order; a task that cannot be imported here titles nothing."""
    from pinbench.registry import TASKS

    titles: dict[str, str] = {}
    for name in TASKS.names():
        try:
            task_class = TASKS.get(name)
        except (PinbenchError, ImportError):
            continue
        for dataset, title in getattr(task_class, "dataset_titles", {}).items():
            titles.setdefault(dataset, title)
    return titles


def dataset_name(name: str) -> str:
    return dataset_titles().get(name, name)


def order_datasets(names) -> list[str]:
    titles, names = dataset_titles(), set(names)
    known = [d for d in titles if d in names]
    return known + sorted(names - set(known))
