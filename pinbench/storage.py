"""Where a results store lives: a local directory or a prefix in an object store (``s3://``,
``gs://``, ``file://`` URIs), through pyarrow's filesystems. The sweep's writer, ``pinbench
train --out`` and ``pinbench.analysis.load`` all resolve, read and write stores here.

Writes replace a file whole. On a local disk that takes a temporary file in the same directory
and ``os.replace`` (``io.atomic_path``): a reader, or a crash mid-write, never sees half a file.
An object store makes an object visible only when its upload completes (one PUT, or the
completion of a multipart upload), replacing the old object at once: there the file is written
directly, since a temporary object and a copy would only cost a second upload.

S3-compatible servers: ``s3://bucket/prefix?endpoint_override=host:port&scheme=http`` (pyarrow's
URI parameters), or the AWS SDK's ``AWS_ENDPOINT_URL``, which pyarrow honours as well.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from .errors import ConfigError
from .io import replace_with, stale_temp_files, temp_beside, write_table, write_text

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")

# What the probe of ``check_writable`` waits for. The AWS SDK's defaults are already short (1 s
# to connect, 3 s without progress, 3 attempts: a refused port fails in ~6 s, a server that never
# answers in ~10 s); they are set explicitly so that another SDK default cannot make the check
# hang. Google's client retries transient errors for up to 15 minutes unless told otherwise.
# Only the probe gives up this early: the store's own writes keep the clients' retries, so a
# long sweep survives a blip of its bucket.
PROBE_S3_TIMEOUTS = {"connect_timeout": 1.0, "request_timeout": 3.0}
PROBE_GCS_RETRY = datetime.timedelta(seconds=5)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


@dataclass(frozen=True)
class Location:
    """A file or directory: the URI as the user gave it (for messages), the filesystem, and the
    path inside that filesystem."""

    uri: str
    fs: pafs.FileSystem
    path: str

    def __str__(self) -> str:
        return self.uri

    @property
    def local(self) -> Path | None:
        """The path on this machine's disk, or None in an object store."""
        return Path(self.path) if isinstance(self.fs, pafs.LocalFileSystem) else None

    @property
    def name(self) -> str:
        return self.path.rstrip("/").rsplit("/", 1)[-1]

    def join(self, *names: str) -> Location:
        """A file or directory below this one; a URI's query (``?endpoint_override=...``) stays at its end."""
        base, sep, query = self.uri.partition("?")
        return Location("/".join([base.rstrip("/"), *names]) + sep + query, self.fs,
                        "/".join([self.path.rstrip("/"), *names]))

    def _type(self) -> pafs.FileType:
        return self.fs.get_file_info(self.path).type

    def exists(self) -> bool:
        return self._type() != pafs.FileType.NotFound

    def is_file(self) -> bool:
        return self._type() == pafs.FileType.File

    def is_dir(self) -> bool:
        return self._type() == pafs.FileType.Directory

    def subdirectories(self) -> list[Location]:
        """The directories directly below this one, by name."""
        found = self.fs.get_file_info(pafs.FileSelector(self.path))
        return [self.join(info.base_name) for info in sorted(found, key=lambda i: i.base_name)
                if info.type == pafs.FileType.Directory]

    def stores_below(self) -> list[str]:
        """The names of the results stores directly below this directory (sweep stores in a
        results root), not counting the rows a sweep set aside inside a store (``superseded-*``)."""
        if not self.is_dir():
            return []
        return [d.name for d in self.subdirectories()
                if not d.name.startswith("superseded-") and d.join("trials.parquet").is_file()]

    def read_parquet(self) -> pd.DataFrame:
        return pq.read_table(self.path, filesystem=self.fs).to_pandas()

    def write_parquet(self, frame: pd.DataFrame) -> Location:
        """Replace the file whole (see the module's docstring)."""
        if self.local is not None:
            write_table(frame, self.local)
        else:
            pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), self.path, filesystem=self.fs)
        return self

    def read_text(self) -> str:
        with self.fs.open_input_stream(self.path) as stream:
            return stream.read().decode("utf-8")

    def write_text(self, text: str) -> Location:
        if self.local is not None:
            write_text(text, self.local)
        else:
            with self.fs.open_output_stream(self.path) as out:
                out.write(text.encode("utf-8"))
        return self

    def remove_stale_temp(self, names: tuple[str, ...] | list[str]) -> list[Path]:
        """Delete the temporary files that a writer killed mid-write left beside ``names`` in this
        local directory (``io.atomic_path``'s ``.<name>.*.tmp``); an object store has none (an
        unfinished upload is not an object). Call only where no other process writes those names."""
        if self.local is None:
            return []
        stale = [p for name in names for p in stale_temp_files(self.local / name)]
        for p in stale:
            p.unlink(missing_ok=True)
        return stale


def resolve(where: str | os.PathLike | Location) -> Location:
    """A local path (relative to the working directory, ``~`` expanded) or a URI that pyarrow
    knows (``s3://``, ``gs://``, ``file://``, ``hdfs://``; query parameters such as
    ``?endpoint_override=host:port&scheme=http`` select S3-compatible servers). Only the URI is
    parsed here; nothing is read, except that an ``s3://`` URI without a region or endpoint asks
    AWS for its bucket's region."""
    if isinstance(where, Location):
        return where
    uri = os.fspath(where)
    if not _URI.match(uri):
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]+:/[^/]", uri):  # str(Path("s3://b/x")) is "s3:/b/x"
            raise ConfigError(f"'{uri}' looks like a URI that lost a slash; write it as '{uri.replace(':/', '://', 1)}'")
        return Location(uri, pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve()))
    try:
        fs, path = pafs.FileSystem.from_uri(uri)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError or ValueError for unusable URIs
        raise ConfigError(f"cannot open results location '{uri}': {_one_line(exc)}") from exc
    return Location(uri, fs, path)


class _ReplaceOnClose(io.FileIO):
    """A file written as ``.<name>.*.tmp`` beside its target and renamed onto it by ``close``; a
    failed write (a full disk) or a file dropped unclosed removes the temporary file instead."""

    def __init__(self, target: str):
        fd, self._tmp = temp_beside(target)
        super().__init__(fd, "wb", closefd=True)
        self._target, self._failed = target, False

    def write(self, data) -> int:
        # a raw write may take part of the data (at a file-size limit, on a nearly full disk), and
        # pyarrow's PythonFile ignores the count: write the rest, which raises if it cannot go on
        view, done = memoryview(data).cast("B"), 0
        try:
            while done < len(view):
                written = super().write(view[done:])
                if not written:
                    raise OSError(f"writing '{self._target}' made no progress")
                done += written
        except BaseException:
            self._discard()  # now, not when (or if) pyarrow closes or drops the stream
            raise
        return done

    def _discard(self) -> None:
        self._failed = True
        if not self.closed:
            super().close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._tmp)

    def close(self) -> None:
        if self.closed:
            return
        if self._failed:
            self._discard()
            return
        super().close()
        replace_with(self._tmp, self._target)

    def __del__(self) -> None:
        if not self.closed:
            self._failed = True  # garbage, not a finished copy
        super().__del__()


class AtomicLocalFiles(pafs.FileSystemHandler):
    """pyarrow's local filesystem, except that a file opened for writing replaces its target only
    when it is closed. Tune copies its experiment state (the trial table, the Optuna searcher's
    pickle) and trial checkpoints into local storage with ``pyarrow.fs.copy_files``, which
    truncates the target and then writes it: a driver killed mid-copy left an empty searcher
    state, and ``--resume`` failed on it. Through this handler a killed copy leaves the previous
    file whole and a ``.<name>.*.tmp`` beside it (Tune reads ``*.json`` and ``*.pkl`` only)."""

    def __init__(self):
        self._fs = pafs.LocalFileSystem()

    def __eq__(self, other) -> bool:
        return isinstance(other, AtomicLocalFiles)

    def __hash__(self) -> int:
        return hash(AtomicLocalFiles)

    def get_type_name(self) -> str:
        return "pinbench-local"

    def normalize_path(self, path):
        return self._fs.normalize_path(path)

    def get_file_info(self, paths):
        return self._fs.get_file_info(paths)

    def get_file_info_selector(self, selector):
        return self._fs.get_file_info(selector)

    def create_dir(self, path, recursive):
        self._fs.create_dir(path, recursive=recursive)

    def delete_dir(self, path):
        self._fs.delete_dir(path)

    def delete_dir_contents(self, path, missing_dir_ok=False):
        self._fs.delete_dir_contents(path, missing_dir_ok=missing_dir_ok)

    def delete_root_dir_contents(self):
        raise OSError("pinbench does not delete the contents of the root directory")

    def delete_file(self, path):
        self._fs.delete_file(path)

    def move(self, src, dest):
        self._fs.move(src, dest)

    def copy_file(self, src, dest):
        with self._fs.open_input_stream(src) as source, self.open_output_stream(dest, None) as out:
            while chunk := source.read(1 << 24):
                out.write(chunk)

    def open_input_stream(self, path):
        return self._fs.open_input_stream(path)

    def open_input_file(self, path):
        return self._fs.open_input_file(path)

    def open_output_stream(self, path, metadata):
        return pa.PythonFile(_ReplaceOnClose(path), mode="w")

    def open_append_stream(self, path, metadata):
        return self._fs.open_append_stream(path)


def tune_storage(where: str | os.PathLike | Location) -> tuple[str, pafs.FileSystem | None]:
    """Tune's ``storage_path`` and ``storage_filesystem`` for ``where``: a local directory is
    written through ``AtomicLocalFiles``; an object store already replaces an object whole on
    upload, so a URI goes to Tune as it is (Tune builds its own filesystem from it)."""
    location = resolve(where)
    if location.local is None:
        return location.uri, None
    return str(location.local), pafs.PyFileSystem(AtomicLocalFiles())


def _fail_fast(fs: pafs.FileSystem) -> pafs.FileSystem:
    """The same filesystem with the short waits of ``PROBE_S3_TIMEOUTS`` / ``PROBE_GCS_RETRY``
    (rebuilt through its pickling arguments, which are its constructor's)."""
    if type(fs).__name__ not in ("S3FileSystem", "GcsFileSystem"):
        return fs
    rebuild, (kwargs,) = fs.__reduce__()
    if type(fs).__name__ == "S3FileSystem":
        return rebuild({**kwargs, **PROBE_S3_TIMEOUTS})
    return rebuild({**kwargs, "retry_time_limit": PROBE_GCS_RETRY})


def check_writable(where: str | os.PathLike | Location, what: str = "results") -> Location:
    """Write and delete a small probe object in the directory ``where``, giving up within seconds,
    so that storage that cannot be written (no such bucket, no route, refused connection, no
    permission, a file in the way) is one line naming the URI before any work starts, not a
    failure when the first trial ends. A local directory is created."""
    location = resolve(where)
    fs = _fail_fast(location.fs)
    probe = location.join(f".pinbench-probe-{uuid.uuid4().hex}")
    try:
        if fs.get_file_info(location.path).type == pafs.FileType.File:
            raise NotADirectoryError("it is a file, not a directory")
        if location.local is not None:
            fs.create_dir(location.path)
        with fs.open_output_stream(probe.path) as out:
            out.write(b"pinbench write check\n")
        fs.delete_file(probe.path)
    except Exception as exc:  # OSError, ArrowException: whatever the filesystem says
        raise ConfigError(f"cannot write {what} to '{location.uri}': {_one_line(exc)}") from exc
    return location


# ---------------------------------------------------------------------------------------------
# One writer per results directory
# ---------------------------------------------------------------------------------------------

LOCK_NAME = ".pinbench.lock"


@contextlib.contextmanager
def exclusive_writer(location: "str | Path | Location", what: str) -> Iterator[None]:
    """Hold ``<location>/.pinbench.lock`` (an ``flock``, released by the kernel when the process
    ends, however it ends) while a command writes there: a second process that would write the same
    store or ``--out`` is refused with an error naming the first (pid, host, command, start).
    Object stores have no lock: there the runs are not protected against each other (documented)."""
    loc = resolve(location) if not isinstance(location, Location) else location
    if loc.local is None:
        yield
        return
    import fcntl
    import json
    import socket
    import sys
    import time

    directory = loc.local
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # a directory or an unwritable file of that name
        raise ConfigError(f"{what} '{location}': its lock file '{path}' cannot be opened ({exc.strerror}); "
                          "remove it (pinbench makes it)") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
            except ValueError:
                holder = {}
            who = (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, `{holder.get('command', '?')}`, "
                   f"since {holder.get('since', '?')}")
            raise ConfigError(f"{what} '{location}' is being written by another pinbench process ({who}); "
                              "wait for it to finish or choose another directory") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(["pinbench", *sys.argv[1:]])[:300],
                "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock
