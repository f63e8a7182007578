"""``pinbench data``: the data sets pinbench knows, fetched from their public sources with a
checksum per file into the data cache (``pinbench.data_locations``), and the manifest that lists them.

The manifest (``data_manifest.json`` beside this module) holds, per data set, each file's path in
the data layout (``few-shot/sst-2/16-13/train.tsv``), its public URL (pinned to a commit, so the
checksum stays valid), its sha256 and size. ``pinbench data manifest DIR`` rebuilds it from a
directory in the layout; ``SOURCES`` says where each data set comes from.

A download writes ``<file>.part``, resumes it with an HTTP Range request when the server honours
one (else starts over), checks size and sha256, then renames it into place: the cache never holds
a file that failed its checksum. A file that fails (its checksum, or missing from ``--from``) does
not stop the others: every data set is tried first, and the failures are reported together.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Callable
from urllib.parse import urlparse

from .data_locations import ENV_DATA_DIR, SUBFOLDERS, cache_home, data_cache, explicit_folder, find
from .errors import ConfigError, DataError
from .io import one_at_a_time, write_text

MANIFEST_FORMAT = 1
MIN_RATE = 20_000  # bytes per second a download must average (a trickling mirror is given up on)
CHUNK = 1 << 16

RLPROMPT_COMMIT = "30528c21e5eb6cbeefa3036d7c7e4ae7e98e597e"
PIN_COMMIT = "3357f09b2f4f66b087b090ac517bb235b323d191"
_RLPROMPT_RAW = f"https://raw.githubusercontent.com/mingkaid/rl-prompt/{RLPROMPT_COMMIT}/examples"
_MIT_RLPROMPT = "MIT (the RLPrompt repository, (c) 2022 Mingkai Deng and Jianyu Wang)"


@dataclass(frozen=True)
class DataSource:
    """Where one data set comes from: its layout folder and the URL folder that mirrors it."""

    kind: str
    """``few-shot``, ``style-transfer`` or ``inversion`` (``data_locations.SUBFOLDERS``)."""
    layout: str
    """Its folder in the data layout, e.g. ``few-shot/sst-2``."""
    url: str
    """The URL of that folder at the public source; a file's URL is this plus its path below ``layout``."""
    source: str
    license: str
    unavailable: tuple[str, ...] = ()
    """Files below ``layout`` that the source publishes but that pinbench has no checksum for."""
    note: str = ""


def _few_shot(name: str, corpus: str, unavailable: tuple[str, ...] = ()) -> DataSource:
    return DataSource(
        "few-shot", f"few-shot/{name}", f"{_RLPROMPT_RAW}/few-shot-classification/data/16-shot/{name}",
        f"LM-BFF 16-shot splits (Gao et al. 2021, seeds 13/21/42/87/100) as shipped by RLPrompt, "
        f"https://github.com/mingkaid/rl-prompt/tree/{RLPROMPT_COMMIT[:7]}/examples/few-shot-classification/data; "
        f"corpus: {corpus}",
        f"{_MIT_RLPROMPT}; the corpus' own terms apply to its text", unavailable,
        "test.tsv is in RLPrompt's repository, but pinbench had no copy of it to take a checksum from: "
        "not downloaded" if unavailable else "")


_NO_TEST = tuple(f"16-{seed}/test.tsv" for seed in (13, 21, 42, 87, 100))

SOURCES: dict[str, DataSource] = {
    "sst-2": _few_shot("sst-2", "GLUE SST-2 / Stanford Sentiment Treebank (Socher et al. 2013)"),
    "sst-5": _few_shot("sst-5", "Stanford Sentiment Treebank, 5 classes (Socher et al. 2013)"),
    "mr": _few_shot("mr", "Movie Review sentence polarity (Pang and Lee 2005)"),
    "cr": _few_shot("cr", "Customer Reviews (Hu and Liu 2004)"),
    "subj": _few_shot("subj", "Subjectivity (Pang and Lee 2004)"),
    "trec": _few_shot("trec", "TREC question classification (Voorhees and Tice 2000)"),
    "agnews": _few_shot("agnews", "AG News (Zhang et al. 2015)"),
    "yahoo": _few_shot("yahoo", "Yahoo! Answers topics (Zhang et al. 2015)"),
    "dbpedia": _few_shot("dbpedia", "DBpedia ontology (Zhang et al. 2015; DBpedia: CC BY-SA 3.0)", _NO_TEST),
    "yelp-2": _few_shot("yelp-2", "Yelp review polarity (Zhang et al. 2015; the Yelp Dataset terms)", _NO_TEST),
    "yelp-5": _few_shot("yelp-5", "Yelp review full (Zhang et al. 2015; the Yelp Dataset terms)", _NO_TEST),
    "yelp": DataSource(
        "style-transfer", "style-transfer/yelp", f"{_RLPROMPT_RAW}/text-style-transfer/data/yelp",
        "Yelp sentiment transfer (Shen et al. 2017; references: Li et al. 2018) as shipped by RLPrompt, "
        f"https://github.com/mingkaid/rl-prompt/tree/{RLPROMPT_COMMIT[:7]}/examples/text-style-transfer/data/yelp",
        f"{_MIT_RLPROMPT}; the review text is under the Yelp Dataset terms (academic, non-commercial)",
        ("clean/sentiment.train.0.clean", "clean/sentiment.train.1.clean"),
        "the train files are published but pinbench does not use them (Yelp trains on the dev pool): not downloaded"),
    "shakespeare": DataSource(
        "style-transfer", "style-transfer/shakespeare", f"{_RLPROMPT_RAW}/text-style-transfer/data/shakespeare",
        "Shakespeare authorship transfer, 100-shot splits (Xu et al. 2012 corpus; RLPrompt's splits), "
        f"https://github.com/mingkaid/rl-prompt/tree/{RLPROMPT_COMMIT[:7]}/examples/text-style-transfer/data/shakespeare",
        f"{_MIT_RLPROMPT}; the corpus (Xu et al. 2012, https://github.com/cocoxu/Shakespeare) states no license"),
    "lexica": DataSource(
        "inversion", "inversion/lexica",
        f"https://raw.githubusercontent.com/Youseob/PIN/{PIN_COMMIT}/examples/prompt-inversion-with-clip/target_imgs/lexica",
        f"the 20 Lexica.art target images of PIN's textual-inversion code, "
        f"https://github.com/Youseob/PIN/tree/{PIN_COMMIT[:7]}/examples/prompt-inversion-with-clip/target_imgs/lexica",
        "MIT (the PIN repository, (c) 2024 Youseob); the images are Stable Diffusion outputs from lexica.art, "
        "no license stated for them",
        note="the published images at full size; ../shared/data's copies are resized (short side 448 px), so "
             "their checksums differ"),
}


@dataclass(frozen=True)
class ManifestFile:
    path: str
    """Its path in the data layout (``few-shot/sst-2/16-13/train.tsv``)."""
    url: str
    sha256: str
    size: int


@dataclass(frozen=True)
class ManifestDataset:
    name: str
    kind: str
    source: str
    license: str
    files: tuple[ManifestFile, ...]
    unavailable: tuple[str, ...] = ()
    note: str = ""

    def kind_path(self, file: ManifestFile) -> str:
        """The file's path inside its kind's folder (what the data rule looks up)."""
        return file.path[len(SUBFOLDERS[self.kind]) + 1:]


# ---------------------------------------------------------------------------------------------
# The manifest
# ---------------------------------------------------------------------------------------------


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def build_manifest(root: str | Path, names: list[str] | None = None) -> dict:
    """The manifest of the files under ``root`` (a data root in the layout) that belong to a data
    set of ``SOURCES`` (all, or ``names``); checksums and sizes from those files."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"data directory '{root}' "
                        + ("is a file, not a directory" if root.exists() else "does not exist"))
    unknown = sorted(set(names or ()) - set(SOURCES))
    if unknown:
        raise ConfigError(f"unknown data set(s) {unknown}; known: {', '.join(SOURCES)}")
    datasets = {}
    for name, src in SOURCES.items():
        if names and name not in names:
            continue
        folder = root / src.layout
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".part")) \
            if folder.is_dir() else []
        if not files:
            continue
        datasets[name] = {
            "kind": src.kind, "source": src.source, "license": src.license,
            **({"note": src.note} if src.note else {}),
            "unavailable": [f"{src.layout}/{u}" for u in src.unavailable if not (folder / u).is_file()],
            "files": [{"path": p.relative_to(root).as_posix(),
                       "url": f"{src.url}/{p.relative_to(folder).as_posix()}",
                       "sha256": sha256_of(p), "size": p.stat().st_size} for p in files],
        }
    if not datasets:
        raise DataError(f"no files of a known data set under '{root}' (expected e.g. {root}/few-shot/sst-2/)")
    return {"format": MANIFEST_FORMAT, "datasets": datasets}


def write_manifest(manifest: dict, out: str | Path) -> Path:
    """Write atomically (``io.write_text``: a temporary file in the same folder, then rename)."""
    return write_text(json.dumps(manifest, indent=1) + "\n", out)


MAX_FILE_BYTES = 20 * 2 ** 30  # a data file of these benchmarks is kilobytes to megabytes


def load_manifest(path: str | Path | None = None) -> dict[str, ManifestDataset]:
    """The shipped manifest, or the one at ``path``."""
    where = str(path) if path is not None else "pinbench/data_manifest.json"
    try:
        text = Path(path).read_text(encoding="utf-8") if path is not None else \
            resources.files("pinbench").joinpath("data_manifest.json").read_text(encoding="utf-8")
        raw = json.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"data manifest '{where}' does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"data manifest '{where}' is a directory; give the manifest JSON file") from None
    except OSError as exc:
        raise ConfigError(f"data manifest '{where}' cannot be read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"data manifest '{where}' is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT or not isinstance(raw.get("datasets"), dict):
        raise ConfigError(f"data manifest '{where}': expected {{\"format\": {MANIFEST_FORMAT}, \"datasets\": {{...}}}}")
    out = {}
    for name, d in raw["datasets"].items():
        try:
            if d["kind"] not in SUBFOLDERS:
                raise ValueError(f"kind {d['kind']!r}")
            files = tuple(ManifestFile(f["path"], f["url"], f["sha256"], int(f["size"])) for f in d["files"])
            for f in files:  # a path leaving the cache (../ or absolute) is refused, not written
                if Path(f.path).is_absolute() or ".." in Path(f.path).parts \
                        or not f.path.startswith(SUBFOLDERS[d["kind"]] + "/"):
                    raise ValueError(f"file path {f.path!r}")
                if not isinstance(f.sha256, str) or len(f.sha256) != 64 or \
                        any(c not in "0123456789abcdef" for c in f.sha256):
                    raise ValueError(f"sha256 {f.sha256!r} of {f.path!r}: expected 64 lower-case hex digits")
                if f.size < 0 or isinstance(f.size, bool) or f.size > MAX_FILE_BYTES:
                    raise ValueError(f"size {f.size} of {f.path!r}: expected a byte count in [0, {MAX_FILE_BYTES:,}]")
                if urlparse(f.url).scheme not in ("http", "https", "file"):
                    raise ValueError(f"url {f.url!r} of {f.path!r}: expected http, https or file")
            out[name] = ManifestDataset(name, d["kind"], d.get("source", ""), d.get("license", ""), files,
                                        tuple(d.get("unavailable", ())), d.get("note", ""))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"data manifest '{where}': data set '{name}' is malformed ({exc})") from None
    return out


def select(manifest: dict[str, ManifestDataset], names: list[str] | None) -> list[ManifestDataset]:
    unknown = [n for n in names or () if n not in manifest]
    if unknown:
        raise ConfigError(f"unknown data set '{unknown[0]}' for `pinbench data download`; known: "
                          f"{', '.join(manifest)}")
    return [manifest[n] for n in (names or manifest)]


# ---------------------------------------------------------------------------------------------
# Downloading
# ---------------------------------------------------------------------------------------------


class _Interrupted(Exception):
    """The connection ended before the whole file arrived; the .part file is kept for a resume."""


class FileFailed(DataError):
    """One file could not be put in place verified (its checksum differs, or ``--from`` lacks it);
    the other files are still fetched."""


class DownloadFailed(DataError):
    """Some files failed; ``failures`` holds one line per data set with failures (its first failure,
    and how many more of its files failed). The files that verified are in the cache."""

    def __init__(self, failures: list[str]):
        super().__init__("\n".join(failures))
        self.failures = failures


OFFLINE_HINT = (f"pass a local copy of the data instead: --data-dir DIR or {ENV_DATA_DIR}=DIR (a data root "
                "like ../shared/data), or copy it into the cache with `pinbench data download --from DIR`")


def _offline(url: str, path: str, reason: object) -> DataError:
    host = urlparse(url).netloc or url
    reason = getattr(reason, "strerror", None) or reason
    if urlparse(url).scheme == "file":  # a local mirror: no network involved
        return DataError(f"cannot download '{path}': {url} cannot be read ({reason})")
    return DataError(f"cannot download '{path}': no connection to {host} ({reason}); {OFFLINE_HINT}")


def _http_to_part(url: str, part: Path, file: ManifestFile, timeout: float) -> None:
    """Fetch ``url`` into ``part``, continuing what is there with a Range request; a server that
    ignores Range (200) or refuses it (416) gets a fresh download."""
    have = part.stat().st_size if part.exists() else 0
    if part.exists() and have >= file.size:  # complete (verified by the caller) or overlong (fails its checksum)
        return
    room = shutil.disk_usage(part.parent).free
    if file.size - have > room:  # checked before a byte is fetched: a full disk stops more than this
        raise DataError(f"cannot download '{file.path}': it needs {file.size - have:,} more bytes and the disk of "
                        f"'{part.parent}' has {room:,} free")
    headers = {"User-Agent": "pinbench", **({"Range": f"bytes={have}-"} if have else {})}
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:
            part.unlink()
            raise _Interrupted("the server refused to resume") from None
        raise DataError(f"cannot download '{file.path}': HTTP {exc.code} {exc.reason} from {url}") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (ConnectionResetError, ConnectionAbortedError)):  # reached, then dropped
            raise _Interrupted(f"the server closed the connection ({exc.reason})") from None
        if isinstance(exc.reason, (socket.timeout, TimeoutError)):  # a stall: what --attempts are for
            raise _Interrupted(f"no answer within {timeout:g} s") from None
        raise _offline(url, file.path, exc.reason) from None
    except (ConnectionResetError, ConnectionAbortedError, http.client.HTTPException) as exc:
        raise _Interrupted(f"the server closed the connection ({exc or type(exc).__name__})") from None
    except (socket.timeout, TimeoutError):  # connected, then no answer: a stall, tried again
        raise _Interrupted(f"no answer within {timeout:g} s") from None
    except OSError as exc:  # refused, unreachable
        raise _offline(url, file.path, exc) from None
    with resp:
        kind = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if kind == "text/html" and not file.path.lower().endswith((".html", ".htm")):
            raise DataError(f"cannot download '{file.path}': {url} answered {resp.status} with an HTML page, not the "
                            "file (a login, rate-limit or error page?); nothing kept")
        resumed = have and resp.status == 206 and \
            resp.headers.get("Content-Range", "").startswith(f"bytes {have}-")
        start = have if resumed else 0
        # A body that never ends, or trickles in under the socket timeout, must not hold the
        # command forever: at most one byte past the manifest's size is read, and the whole file
        # gets until a deadline set by a minimum rate.
        began = time.monotonic()
        deadline = began + max(timeout, (file.size - start) / MIN_RATE)
        try:
            with open(part, "ab" if resumed else "wb") as out:
                written = start
                # read1: what has arrived (read(n) would wait for all n bytes of a trickle)
                while written <= file.size and (chunk := resp.read1(min(CHUNK, file.size + 1 - written))):
                    out.write(chunk)
                    written += len(chunk)
                    if time.monotonic() > deadline and written < file.size:
                        raise _Interrupted(f"the server sent {written:,} of {file.size:,} bytes in "
                                           f"{time.monotonic() - began:.0f} s, slower than {MIN_RATE // 1000} kB/s")
                out.flush()
                os.fsync(out.fileno())
        except (http.client.HTTPException, ConnectionError, socket.timeout) as exc:
            raise _Interrupted(str(exc) or type(exc).__name__) from None
        except OSError as exc:  # the disk: full (ENOSPC), a file-size limit (EFBIG), read-only
            kept = part.stat().st_size if part.exists() else 0
            raise DataError(f"cannot write '{part}' ({exc.strerror or exc}) after {kept:,} of {file.size:,} bytes of "
                            f"'{file.path}'; free space there and run the command again to resume") from None
        length = resp.headers.get("Content-Length")
        if written < file.size and length is not None and length.isdigit() and written - start == int(length):
            part.unlink()  # the whole response came, and it is not the file: not worth resuming
            raise DataError(f"cannot download '{file.path}': {url} answered {resp.status} with a body of {int(length):,} "
                            f"bytes, but the file has {file.size:,} (an error page?); nothing kept")
        if written > file.size:
            part.unlink()
            raise DataError(f"cannot download '{file.path}': {url} sent more than the manifest's {file.size:,} bytes "
                            "(an error page, or another file); nothing kept")
    got = part.stat().st_size
    if got < file.size:
        raise _Interrupted(f"the connection closed after {got} of {file.size} bytes")


def fetch_file(file: ManifestFile, dest_root: Path, *, mirror: str | None = None, from_dir: Path | None = None,
               attempts: int = 3, timeout: float = 60.0) -> bool:
    """Put ``file`` verified at ``dest_root/file.path``; True if it was fetched, False if a verified
    copy was there already. Raises FileFailed (a DataError) naming the file on a checksum mismatch
    (nothing kept) or when ``from_dir`` lacks it, and DataError on no connection or when every
    attempt was interrupted (the .part file stays for a resume)."""
    target = dest_root / file.path
    if target.is_file() and target.stat().st_size == file.size and sha256_of(target) == file.sha256:
        return False
    target.parent.mkdir(parents=True, exist_ok=True)
    # two downloads of one file at once (two terminals, two jobs) would share its .part file: the
    # second waits for the first, then finds the file verified
    lock = cache_home() / "locks" / hashlib.sha1(str(target.resolve()).encode()).hexdigest()[:20]  # not in the data
    with one_at_a_time(lock):
        return _fetch_locked(file, target, mirror=mirror, from_dir=from_dir, attempts=attempts, timeout=timeout)


def _fetch_locked(file: ManifestFile, target: Path, *, mirror: str | None, from_dir: Path | None, attempts: int,
                  timeout: float) -> bool:
    if target.is_file() and target.stat().st_size == file.size and sha256_of(target) == file.sha256:
        return False
    part = target.with_name(target.name + ".part")
    if from_dir is not None:
        source = from_dir / file.path
        if not source.is_file():
            raise FileFailed(f"'{file.path}' is not in --from directory '{from_dir}' (expected {source})")
        shutil.copyfile(source, part)
        origin = str(source)
    else:
        origin = f"{mirror.rstrip('/')}/{file.path}" if mirror else file.url
        for attempt in range(1, attempts + 1):
            try:
                _http_to_part(origin, part, file, timeout)
                break
            except _Interrupted as exc:
                if attempt == attempts:
                    done = part.stat().st_size if part.exists() else 0
                    raise DataError(f"download of '{file.path}' from {origin} was interrupted ({exc}) "
                                    f"after {attempts} attempt(s); {done} of {file.size} bytes are kept in "
                                    f"'{part}': run the command again to resume") from None
    digest = sha256_of(part)
    if digest != file.sha256:
        part.unlink()  # a bad file is never left where the data rule would read it
        raise FileFailed(f"checksum mismatch for '{file.path}' from {origin}: sha256 {digest[:16]}…, "
                         f"the manifest says {file.sha256[:16]}…; the file was not kept")
    os.replace(part, target)
    return True


@dataclass(frozen=True)
class DownloadSummary:
    dataset: str
    fetched: int
    present: int
    folder: Path
    unavailable: tuple[str, ...]
    failed: int = 0
    """Files that failed (checksum, or missing from ``--from``): not in the cache."""


def _held(ds: ManifestDataset, source_dir: Path) -> bool:
    """Whether a ``--from`` data root holds any file of the data set."""
    return any((source_dir / f.path).is_file() for f in ds.files)


def _failure_line(ds: ManifestDataset, errors: list[str]) -> str:
    """A data set's failures as one line: the first, and how many more."""
    more = f"; {len(errors) - 1} more file(s) of {ds.name} failed too" if len(errors) > 1 else ""
    return errors[0] + more


def download(names: list[str] | None = None, *, manifest: dict[str, ManifestDataset] | None = None,
             dest_root: Path | None = None, mirror: str | None = None, from_dir: str | Path | None = None,
             attempts: int = 3, timeout: float = 60.0,
             progress: Callable[[DownloadSummary], None] | None = None,
             notice: Callable[[str], None] | None = None) -> list[DownloadSummary]:
    """Fetch the named data sets (all when none) into ``dest_root`` (the data cache), verified.

    With ``from_dir`` and no names, the data sets the directory holds no file of are skipped and
    named in one ``notice`` line; a named data set it holds no file of is an error before anything
    is copied. A file that fails (its checksum, or missing from ``from_dir``) does not stop the
    others: once every data set has been tried, DownloadFailed lists the failures, one line per data
    set. Other errors (no connection, a download interrupted on every attempt) stop at once, with
    the failures before them."""
    manifest = load_manifest() if manifest is None else manifest
    dest_root = data_cache() if dest_root is None else Path(dest_root)
    source_dir = None
    if from_dir is not None:
        source_dir = Path(from_dir).expanduser()
        if not source_dir.is_dir():
            raise DataError(f"--from directory '{from_dir}' "
                            + ("is a file, not a directory" if source_dir.exists() else "does not exist"))
    if mirror is not None and urlparse(mirror).scheme not in ("http", "https", "file"):
        raise ConfigError(f"--mirror '{mirror}' is not an http(s):// or file:// URL")
    datasets = select(manifest, names)
    if source_dir is not None:
        absent = [ds for ds in datasets if not _held(ds, source_dir)]
        example = f"expected e.g. {source_dir / absent[0].files[0].path}" if absent else ""
        if absent and names:
            raise DataError(f"data set(s) {', '.join(ds.name for ds in absent)} not in --from directory "
                            f"'{from_dir}' (no file of them; {example})")
        if absent and len(absent) == len(datasets):
            raise DataError(f"--from directory '{from_dir}' holds no file of any data set pinbench knows "
                            f"({example}; a data root has the layout of ../shared/data)")
        if absent and notice is not None:
            notice(f"not in {from_dir}: {', '.join(ds.name for ds in absent)} (skipped)")
        datasets = [ds for ds in datasets if ds not in absent]
    summaries, failures = [], []
    for ds in datasets:
        fetched, errors = 0, []
        for f in ds.files:
            try:
                fetched += fetch_file(f, dest_root, mirror=mirror, from_dir=source_dir, attempts=attempts,
                                      timeout=timeout)
            except FileFailed as exc:
                errors.append(str(exc))
            except DataError as exc:  # no connection, interrupted: the next file would fare no better
                done = [*failures, *([_failure_line(ds, errors)] if errors else [])]
                if done:
                    raise DownloadFailed([*done, str(exc)]) from None
                raise
        summary = DownloadSummary(ds.name, fetched, len(ds.files) - fetched - len(errors),
                                  dest_root / SUBFOLDERS[ds.kind], ds.unavailable, len(errors))
        summaries.append(summary)
        if errors:
            failures.append(_failure_line(ds, errors))
        if progress is not None:
            progress(summary)
    if failures:
        raise DownloadFailed(failures)
    return summaries


# ---------------------------------------------------------------------------------------------
# Where each data set's files are (`pinbench datasets`)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Presence:
    dataset: ManifestDataset
    found: int
    places: dict[str, Path]
    """Place label -> the kind folder the found files are in (in the rule's order)."""

    @property
    def status(self) -> str:
        total = len(self.dataset.files)
        return "present" if self.found == total else "missing" if self.found == 0 else "partial"


def presence(ds: ManifestDataset, data_dir: str | Path | None = None) -> Presence:
    """Which of a data set's manifest files the data rule finds, and where."""
    found, places = 0, {}
    for f in ds.files:
        rel = ds.kind_path(f)
        if data_dir is not None:
            folder = explicit_folder(ds.kind, data_dir, rel)
            hit = ("--data-dir", folder) if (folder / rel).is_file() else None
        else:
            located = find(ds.kind, rel)
            hit = (located[0].label, located[1]) if located else None
        if hit is not None:
            found += 1
            places.setdefault(*hit)
    return Presence(ds, found, places)
