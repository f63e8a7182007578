"""Atomic file output: write to a temporary file beside the target, then rename over it.

A crash (or Ctrl-C) mid-write leaves the previous file intact and never a half-written one.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path
from typing import Iterator

import pandas as pd

from .errors import ConfigError


def _umask() -> int:
    mask = os.umask(0)  # the only way to read it is to set it
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success rename it onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    # mkstemp makes the file private (0600); the result gets the mode a plain open() would give it
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def stale_temp_files(target: str | os.PathLike) -> list[Path]:
    """The temporary files of ``atomic_path(target)`` that are still there: left by a writer that
    was killed mid-write (``os.replace`` never ran and neither did the clean-up)."""
    target = Path(target)
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))


def read_utf8(path: Path, what: str, error: type[Exception] = ConfigError) -> str:
    """A text file's contents; one that is not UTF-8 is an ``error`` naming it (``what``: "suite
    file", ...) and the first bad byte, not a decoder traceback."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} '{path}' is not UTF-8 text (byte {exc.start}: {exc.reason})") from None


_TABLE_WRITERS = {
    ".parquet": lambda df, p: df.to_parquet(p, index=False),
    ".csv": lambda df, p: df.to_csv(p, index=False),
    ".tsv": lambda df, p: df.to_csv(p, index=False, sep="\t"),
}


def check_table_path(target: str | os.PathLike) -> Path:
    """Validate an output table name up front, before any work is done for it."""
    target = Path(target)
    if target.suffix.lower() not in _TABLE_WRITERS:
        raise ConfigError(f"cannot write table to '{target}': use a .parquet, .csv or .tsv file name")
    return target


def write_table(df: pd.DataFrame, target: str | os.PathLike) -> Path:
    """Write ``df`` atomically as Parquet, CSV or TSV according to the target's extension."""
    target = check_table_path(target)
    with atomic_path(target) as tmp:
        _TABLE_WRITERS[target.suffix.lower()](df, tmp)
    return target


def write_text(text: str, target: str | os.PathLike) -> Path:
    """Write ``text`` atomically (UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)
