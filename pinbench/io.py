"""Atomic file output: write to a temporary file beside the target, then rename over it.

A crash (or Ctrl-C) mid-write leaves the previous file intact and never a half-written one.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .errors import ConfigError

if TYPE_CHECKING:  # tables are pandas frames; reading a config or a data file needs no pandas
    import pandas as pd


def process_umask() -> int:
    """The umask. Linux shows it in /proc; elsewhere reading it means setting it, which races with
    files that other threads create meanwhile (Tune copies files on several threads)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def temp_beside(target: str | os.PathLike) -> tuple[int, Path]:
    """An open descriptor and the path of a new ``.<name>.*.tmp`` in the target's directory (the
    name ``stale_temp_files`` looks for)."""
    target = Path(target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    return fd, Path(tmp)


def replace_with(tmp: str | os.PathLike, target: str | os.PathLike) -> None:
    """Rename the finished temporary file onto ``target``. mkstemp makes the file private (0600),
    and so do some writers (safetensors' save_file): the result gets the mode a plain open() would
    give it."""
    os.chmod(tmp, 0o666 & ~process_umask())
    os.replace(tmp, target)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's directory; on success rename it onto ``target``."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_path = temp_beside(target)
    os.close(fd)
    try:
        yield tmp_path
        replace_with(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def one_at_a_time(target: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``<target>.lock`` (waiting for it) for the block: processes
    that would all build the same cache entry (two trials starting together on a fresh machine)
    build it once; the others wait, then find it. The kernel releases the lock however the holder
    ends. On a file system without locks the block runs unlocked (each builds; the rename in
    ``atomic_path`` keeps the entry whole)."""
    import fcntl

    lock = Path(f"{target}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:
            pass
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """``values`` set in ``os.environ`` for the block (for libraries that read it, and the Ray
    workers started in it); the previous values, or their absence, restored after."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def stale_temp_files(target: str | os.PathLike) -> list[Path]:
    """The temporary files of ``atomic_path(target)`` that are still there: left by a writer that
    was killed mid-write (``os.replace`` never ran and neither did the clean-up)."""
    target = Path(target)
    return sorted(target.parent.glob(f".{glob.escape(target.name)}.*.tmp"))


def name_too_long(exc: OSError) -> str:
    """The message for ENAMETOOLONG: the path, shortened, and its over-long name."""
    import re

    path = exc.filename or next(iter(re.findall(r"'([^']{256,})'", str(exc))), "")
    long = max(re.split(r"[/\\]", path), key=lambda part: len(part.encode()), default="")
    shown = lambda text: text if len(text) <= 60 else f"{text[:28]}…{text[-28:]}"  # noqa: E731
    return (f"path '{shown(path)}' has a name of {len(long.encode())} bytes ('{shown(long)}'); "
            "this file system allows 255: choose a shorter name")


def read_utf8(path: Path, what: str, error: type[Exception] = ConfigError, newline: str | None = None) -> str:
    """A text file's contents; one that is not UTF-8 is an ``error`` naming it (``what``: "suite
    file", ...) and the first bad byte, not a decoder traceback. ``newline``: as ``open``'s ("": line
    ends as they are; None: \\r\\n and a lone \\r read as \\n)."""
    try:
        with open(path, encoding="utf-8", newline=newline) as f:
            return f.read()
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


# ---------------------------------------------------------------------------------------------
# Strict TSV: a file parses exactly, line by line, or fails naming the line
# ---------------------------------------------------------------------------------------------

MAX_TSV_BYTES = 1 << 30  # a data split larger than 1 GiB is refused before it is read


def _csv_fields(line: str) -> list[str] | None:
    """The tab-separated fields of one line read with CSV quoting, or None when the line is not
    exactly parseable that way (an unbalanced quote, text after a closing quote)."""
    import csv

    try:
        rows = list(csv.reader([line], delimiter="\t", quotechar='"', strict=True))
    except csv.Error:
        return None
    return rows[0] if len(rows) == 1 else None


def parse_label(text: str) -> int:
    """A label as written in a data file: ASCII digits with an optional minus sign, nothing else
    (``int`` also takes ``+1``, ``0_1`` and other scripts' digits); ValueError otherwise."""
    text = text.strip()
    if not (text.isascii() and (text[1:] if text.startswith("-") else text).isdigit()):
        raise ValueError(text)
    return int(text)


def read_tsv_rows(path: Path, what: str, quoting: str = "auto",
                  error: type[Exception] = ConfigError) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """The header and the (line number, fields) rows of a tab-separated file, parsed exactly.

    Every row is one physical line (``\\n``, or ``\\r\\n``); blank lines are skipped and line numbers
    count every line, so an error names the line an editor shows. ``quoting``: "none" (quotes are
    text), "csv" (a field may be CSV-quoted, e.g. to hold a tab or a quote; a quoted field never
    spans lines) or "auto" (as "none" when every line has the header's field count, else "csv":
    dbpedia quotes fields that hold a tab). A line that does not give exactly the header's number
    of fields, an unbalanced quote, a bare carriage return or bytes that are not UTF-8 are an
    ``error`` naming the file and the line: no fallback parse can merge or drop rows."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_TSV_BYTES:
        raise error(f"{what} '{path}' is {size:,} bytes, over the {MAX_TSV_BYTES:,}-byte limit for one split")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise error(f"{what} '{path}' line {line}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.endswith("\r"):
            line = line[:-1]
        if "\r" in line:
            raise error(f"{what} '{path}' line {number}: a carriage return inside the line "
                        "(only \\n or \\r\\n end a line)")
        if "\x00" in line:  # text never holds one: a binary file, or UTF-16 read as bytes
            raise error(f"{what} '{path}' line {number}: a NUL byte (a binary file, or text saved as UTF-16?)")
        if line.strip(" "):  # a line of tabs is a row of empty fields (an error below), not a blank line
            lines.append((number, line))
    if not lines:
        raise error(f"{what} '{path}' is empty")
    (_, header_line), body = lines[0], lines[1:]
    header = header_line.split("\t")
    repeated = sorted({c for c in header if header.count(c) > 1})
    if repeated:  # which of the two columns is the text (or the label) would be a guess
        raise error(f"{what} '{path}' line {lines[0][0]}: the header names column(s) {repeated} more than once")
    width = len(header)
    if quoting == "auto":
        quoting = "none" if all(len(line.split("\t")) == width for _, line in body) else "csv"
    rows = []
    for number, line in body:
        fields = line.split("\t") if quoting == "none" else _csv_fields(line)
        if fields is None:
            raise error(f"{what} '{path}' line {number}: unbalanced or misplaced quote (a quoted field "
                        "must end on its own line, right before a tab or the line's end)")
        if len(fields) != width:
            raise error(f"{what} '{path}' line {number}: {len(fields)} tab-separated field(s), the header "
                        f"has {width} ({', '.join(header)})")
        rows.append((number, fields))
    return header, rows


# ---------------------------------------------------------------------------------------------
# Output paths, checked before any work
# ---------------------------------------------------------------------------------------------


def _package_dir() -> Path:
    return Path(__file__).resolve().parent


def _installed(path: Path) -> bool:
    """Whether pinbench runs from an installed copy (site-packages), not from a source checkout."""
    return any(part in ("site-packages", "dist-packages") for part in path.parts)


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


# A results store's files (results.py writes them; a sweep adds the fingerprint of what it ran):
# check_output_path refuses to replace them. Here, below results.py, so that io imports nothing of it.
STORE_TABLES = ("trials", "history", "prompts")
STORE_FINGERPRINT = "suite-trials.json"
STORE_FILES = (*(f"{t}.parquet" for t in STORE_TABLES), STORE_FINGERPRINT)


def check_output_path(target: str | os.PathLike, option: str, *, inputs: tuple = (), data_dirs: tuple = (),
                      input_dirs: dict | None = None, directory: bool = False) -> Path:
    """Refuse, before any work, an output path that cannot be written or would destroy an input:
    below a regular file, in a directory that cannot be written, the same file as an input of the
    command, a table of a results store or run, inside a data directory, or inside the installed
    pinbench package. ``option`` names it in the error (``--out``, ``--predictions``);
    ``directory``: the output is a directory."""
    target = Path(target)
    resolved = target.resolve()
    if directory and resolved.is_file():
        raise ConfigError(f"{option} '{target}' is a file; give a directory")
    if not directory and resolved.is_dir():
        raise ConfigError(f"{option} '{target}' is a directory; give a file name")
    ancestor = resolved.parent if not directory else resolved
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ConfigError(f"{option} '{target}': '{ancestor}' is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} '{target}': directory '{ancestor}' is not writable")
    try:  # a file made and removed: os.access says yes to root on read-only mounts and /proc
        with tempfile.NamedTemporaryFile(dir=ancestor, prefix=".pinbench-write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"{option} '{target}': directory '{ancestor}' is not writable ({exc.strerror})") from None
    if not directory:
        if resolved.name in STORE_FILES and any((resolved.parent / name).is_file() for name in STORE_FILES):
            raise ConfigError(f"{option} '{target}' would replace a table of the results in '{target.parent}' "
                              "(a sweep's store or a run's --out); write it elsewhere")
    for file in inputs:
        if file is not None and Path(file).resolve() == resolved:
            raise ConfigError(f"{option} '{target}' is an input of this command ('{file}'); "
                              "choose another path, outside the data")
    for folder in data_dirs:
        if folder is not None and _inside(resolved, Path(folder).resolve()):
            raise ConfigError(f"{option} '{target}' is inside the data directory '{folder}'; "
                              "write results outside the data")
    for name, folder in (input_dirs or {}).items():  # a local model directory the command reads
        if os.path.isdir(folder) and _inside(resolved, Path(folder).resolve()):
            raise ConfigError(f"{option} '{target}' is inside the directory of {name} '{folder}'; "
                              "write the run elsewhere")
    package = _package_dir()
    if _installed(package) and _inside(resolved, package):
        raise ConfigError(f"{option} '{target}' is inside the installed pinbench package ('{package}'); "
                          "write it elsewhere")
    return target


# ---------------------------------------------------------------------------------------------
# YAML: safe, no key given twice, bounded expansion
# ---------------------------------------------------------------------------------------------

MAX_YAML_ALIASES = 100  # a suite needs none; a "billion laughs" document needs thousands
MAX_YAML_DEPTH = 50  # a suite nests ~5 levels (grid blocks of lists of mappings)


def load_yaml(text: str, source: str):
    """``yaml.safe_load`` that refuses a mapping key given twice (PyYAML keeps the last one
    silently) and documents with more than :data:`MAX_YAML_ALIASES` aliases (which can expand far
    beyond their size); errors name ``source`` and the line. YAML syntax errors propagate as
    ``yaml.YAMLError`` for the caller's message."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        aliases = 0
        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                StrictLoader.aliases += 1
                if StrictLoader.aliases > MAX_YAML_ALIASES:
                    mark = self.peek_event().start_mark
                    raise ConfigError(f"{source}: line {mark.line + 1}: more than {MAX_YAML_ALIASES} YAML aliases "
                                      "(*name); write the values out")
            StrictLoader.depth += 1
            try:
                if StrictLoader.depth > MAX_YAML_DEPTH:  # PyYAML recurses per level: a RecursionError at ~300
                    mark = self.peek_event().start_mark
                    raise ConfigError(f"{source}: line {mark.line + 1}, column {mark.column + 1}: values nested "
                                      f"more than {MAX_YAML_DEPTH} deep; a pinbench file needs a few levels")
                return super().compose_node(parent, index)
            finally:
                StrictLoader.depth -= 1

        def construct_mapping(self, node, deep=False):
            seen = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    raise ConfigError(f"{source}: line {key_node.start_mark.line + 1}: YAML merge keys (<<) are not "
                                      "read: write the keys out (a suite can extend another with 'extends:')")
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # PyYAML's own error follows
                if key in seen:
                    raise ConfigError(f"{source}: line {key_node.start_mark.line + 1}: key {key!r} is given twice "
                                      f"(first on line {seen[key] + 1}); keep one")
                seen[key] = key_node.start_mark.line
            return super().construct_mapping(node, deep)

    return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
