"""What produced a result: the code, the libraries, the machine and the time, recorded in every
trials row (``PROVENANCE_COLUMNS``) so that two stores made months apart on different machines can
be told apart, and a report can say which code made its numbers."""

from __future__ import annotations

import datetime as _dt
import functools
import importlib.metadata
import os
import platform
import socket
import subprocess
from pathlib import Path

#: The provenance columns of a trials row, in order (docs/results.md "Results").
PROVENANCE_COLUMNS = ("pinbench_version", "pinbench_commit", "pinbench_dirty", "python_version", "torch_version",
                      "transformers_version", "ray_version", "pyarrow_version", "device_name", "dtype", "threads",
                      "host", "started_at", "ended_at")
#: Of these, what makes two rows' numbers come from different code (a report warns when they differ).
CODE_COLUMNS = ("pinbench_version", "pinbench_commit", "pinbench_dirty", "torch_version", "transformers_version")


def utc_now() -> str:
    """Now, UTC, ISO 8601 to the second (``2026-12-05T06:01:02Z``)."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def git_state() -> tuple[str | None, bool | None]:
    """(commit, dirty) of the git checkout pinbench runs from; (None, None) for an installed wheel
    or when git is not there. The checkout is the one holding this file, not the working directory."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return None, None
    try:
        run = functools.partial(subprocess.run, cwd=root, capture_output=True, text=True, timeout=10, check=True)
        commit = run(["git", "rev-parse", "HEAD"]).stdout.strip()
        dirty = bool(run(["git", "status", "--porcelain", "--untracked-files=no"]).stdout.strip())
        return commit or None, dirty
    except (OSError, subprocess.SubprocessError):
        return None, None


@functools.lru_cache(maxsize=None)
def device_name(device: str) -> str:
    """The GPU's name for a CUDA device; the CPU model otherwise."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return torch.cuda.get_device_name(torch.device(device))
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def compute_dtype(task_config) -> str:
    """The dtype of the scored model's weights (``task_lm_dtype`` or ``clip_dtype``), and whether
    training scores use a bf16 copy (``task.bf16``)."""
    dtype = getattr(task_config, "task_lm_dtype", None) or getattr(task_config, "clip_dtype", None) or "float32"
    return f"{dtype}, bf16 training scores" if getattr(task_config, "bf16", False) else dtype


def environment(spec) -> dict:
    """Every provenance column but the times, for a run of ``spec`` (a ``RunSpec``) in this process."""
    import torch

    from . import __version__

    commit, dirty = git_state()
    return {"pinbench_version": __version__, "pinbench_commit": commit, "pinbench_dirty": dirty,
            "python_version": platform.python_version(), "torch_version": torch.__version__,
            "transformers_version": _version("transformers"), "ray_version": _version("ray"),
            "pyarrow_version": _version("pyarrow"), "device_name": device_name(spec.run.device),
            "dtype": compute_dtype(spec.task_config), "threads": torch.get_num_threads(),
            "host": os.environ.get("PINBENCH_HOST") or socket.gethostname()}
