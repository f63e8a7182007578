"""`pinbench data download` against a local HTTP server, the data rule's order, `pinbench datasets`
and the embedded demo split.

The server (127.0.0.1, a thread) serves a temporary copy of part of the shared data; the manifest is
built from that copy, so its checksums are those files'. It can corrupt a file, drop the connection
halfway through one, and ignore Range requests.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import data_root, shared_data, sigterm_stops_with_one_line
from pinbench import data_locations
from pinbench.cli import main
from pinbench.data_download import build_manifest, download, load_manifest, write_manifest
from pinbench.errors import DataError
from pinbench.tasks.classification.data import builtin_datasets, read_split
from pinbench.tasks.inversion.task import image_paths
from pinbench.tasks.style_transfer.data import DATASETS as STYLE_DATASETS
from pinbench.tasks.style_transfer.data import dataset_dir

# A subset of the layout: every kind, small files (the big Yelp dev pools left out).
SUBSET = [
    "few-shot/sst-2/16-13/train.tsv", "few-shot/sst-2/16-13/dev.tsv", "few-shot/sst-2/16-13/test.tsv",
    "few-shot/mr/16-21/train.tsv", "few-shot/mr/16-21/dev.tsv",
    "style-transfer/yelp/clean/sentiment.ref.0.clean", "style-transfer/yelp/clean/sentiment.test.0.clean",
    "style-transfer/shakespeare/100-shot/100-13/train.tsv",
    "inversion/lexica/0.jpg", "inversion/lexica/1.jpg",
]
BIG = "few-shot/sst-2/16-13/test.tsv"  # ~200 KB: several reads, so a drop lands mid-file


@pytest.fixture(scope="module")
def source_root(tmp_path_factory) -> Path:
    # each file through shared_data: a data root without one skips here (fails in CI), naming it
    files = {rel: shared_data(*rel.split("/")) for rel in SUBSET}
    root = tmp_path_factory.mktemp("source")
    for rel, path in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, root / rel)
    return root


@pytest.fixture(scope="module")
def manifest_file(source_root, tmp_path_factory) -> Path:
    return write_manifest(build_manifest(source_root), tmp_path_factory.mktemp("manifest") / "manifest.json")


class DataServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), Handler)
        self.root = root
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.corrupt: set[str] = set()
        self.drop: dict[str, int] = {}  # path -> how many more responses to cut halfway
        self.ranges = True
        self.endless: set[str] = set()  # the body goes on past the file (no Content-Length)
        self.trickle: set[str] = set()  # one byte every 20 ms
        self.trickled: dict[str, int] = {}  # path -> bytes of it trickled so far
        self.error_page: set[str] = set()  # 200 with a short HTML page instead of the file
        self.html_page: set[str] = set()  # the same as text/html, without a Content-Length

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class Handler(BaseHTTPRequestHandler):
    server: DataServer

    def do_GET(self):
        srv, rel = self.server, urllib.parse.unquote(self.path.lstrip("/"))
        srv.requests.append((rel, self.headers.get("Range")))
        file = srv.root / rel
        if not file.is_file():
            self.send_error(404)
            return
        body = file.read_bytes()
        if rel in srv.error_page:
            page = b"<html><body>Mirror maintenance: try later</body></html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if rel in srv.html_page:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(b"<html><body>Rate limited</body></html>")
            self.close_connection = True
            return
        if rel in srv.endless or rel in srv.trickle:
            self.send_response(200)
            self.end_headers()
            try:
                if rel in srv.endless:
                    self.wfile.write(body)
                    for _ in range(10_000):  # ~650 MB: far past any file
                        self.wfile.write(b"x" * 65536)
                else:
                    for i in range(len(body)):
                        self.wfile.write(body[i:i + 1])
                        self.wfile.flush()
                        srv.trickled[rel] = i + 1
                        time.sleep(0.02)
            except (BrokenPipeError, ConnectionResetError):
                pass
            self.close_connection = True
            return
        if rel in srv.corrupt:
            body = body[:-1] + bytes([body[-1] ^ 0xFF])  # same size, one byte off
        start = 0
        if self.headers.get("Range") and srv.ranges:
            start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        payload = body[start:]
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if srv.drop.get(rel, 0) > 0:
            srv.drop[rel] -= 1
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)  # the connection drops mid-body
            self.close_connection = True
            return
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def server(source_root):
    srv = DataServer(source_root)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join()


@pytest.fixture
def places(tmp_path, monkeypatch):
    """No data anywhere but the embedded split: env unset, ../shared/data absent, an empty cache."""
    monkeypatch.delenv("PINBENCH_DATA_DIR", raising=False)
    monkeypatch.delenv("PINBENCH_DATA_MIRROR", raising=False)
    monkeypatch.setenv("PINBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(data_locations, "SHARED_DATA", tmp_path / "no-shared" / "data")
    return tmp_path


def cache_files(cache: Path) -> set[str]:
    return {p.relative_to(cache).as_posix() for p in cache.rglob("*") if p.is_file()}


def run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------------------------
# Downloads
# ---------------------------------------------------------------------------------------------


def test_download_fetches_every_file_verified_into_the_cache_layout(server, manifest_file, source_root, places,
                                                                   capsys):
    code, out, err = run_cli(capsys, "data", "download", "--manifest", str(manifest_file), "--mirror", server.url)
    assert code == 0, err
    cache = places / "cache" / "data"
    assert cache_files(cache) == set(SUBSET)
    for rel in SUBSET:
        assert (cache / rel).read_bytes() == (source_root / rel).read_bytes(), rel
    assert "sst-2: 3 file(s) verified" in out and "(3 fetched, 0 already there)" in out
    assert "lexica: 2 file(s) verified" in out
    # A second run finds verified copies and asks the server for nothing.
    server.requests.clear()
    code, out, _ = run_cli(capsys, "data", "download", "--manifest", str(manifest_file), "--mirror", server.url)
    assert code == 0 and server.requests == []
    assert "(0 fetched, 3 already there)" in out


def test_download_only_the_named_data_sets(server, manifest_file, places, capsys):
    code, _, err = run_cli(capsys, "data", "download", "mr", "shakespeare", "--manifest", str(manifest_file),
                           "--mirror", server.url)
    assert code == 0, err
    assert cache_files(places / "cache" / "data") == {r for r in SUBSET if r.startswith(
        ("few-shot/mr/", "style-transfer/shakespeare/"))}
    code, _, err = run_cli(capsys, "data", "download", "sst-3", "--manifest", str(manifest_file))
    assert code == 2 and "unknown data set 'sst-3'" in err and "sst-2" in err


def test_a_corrupted_file_is_an_error_naming_it_and_is_not_kept(server, manifest_file, places, capsys):
    bad = "few-shot/sst-2/16-13/dev.tsv"
    server.corrupt.add(bad)
    code, _, err = run_cli(capsys, "data", "download", "sst-2", "--manifest", str(manifest_file),
                           "--mirror", server.url)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"pinbench: error: checksum mismatch for '{bad}'"), err
    cache = places / "cache" / "data"
    assert not (cache / bad).exists() and not (cache / f"{bad}.part").exists()
    # the rule does not find the bad file either: the embedded split still serves dev
    assert read_split("sst-2", "dev", 13).file == data_locations.EMBEDDED_DATA / bad


def test_a_dropped_connection_is_resumed_with_a_range_request(server, manifest_file, source_root, places):
    server.drop[BIG] = 1
    manifest = load_manifest(manifest_file)
    download(["sst-2"], manifest=manifest, mirror=server.url, attempts=3)
    cache = places / "cache" / "data"
    assert (cache / BIG).read_bytes() == (source_root / BIG).read_bytes()
    asked = [r for p, r in server.requests if p == BIG]
    size = (source_root / BIG).stat().st_size
    assert asked == [None, f"bytes={size // 2}-"]  # the second request continued where the first stopped


def test_an_interrupted_run_keeps_its_part_file_and_the_next_run_resumes(server, manifest_file, source_root,
                                                                        places, capsys):
    server.drop[BIG] = 1
    code, _, err = run_cli(capsys, "data", "download", "sst-2", "--manifest", str(manifest_file),
                           "--mirror", server.url, "--attempts", "1")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"download of '{BIG}'" in err and "run the command again to resume" in err
    cache = places / "cache" / "data"
    size = (source_root / BIG).stat().st_size
    assert not (cache / BIG).exists() and (cache / f"{BIG}.part").stat().st_size == size // 2
    server.requests.clear()
    code, _, err = run_cli(capsys, "data", "download", "sst-2", "--manifest", str(manifest_file),
                           "--mirror", server.url)
    assert code == 0, err
    assert (cache / BIG).read_bytes() == (source_root / BIG).read_bytes()
    assert not (cache / f"{BIG}.part").exists()
    assert (BIG, f"bytes={size // 2}-") in server.requests


@pytest.mark.slow
def test_sigterm_mid_file_keeps_the_part_file_and_the_next_run_resumes(server, manifest_file, source_root,
                                                                       places, capsys):
    """A real SIGTERM to a `pinbench data download` child while a file arrives: exit 143 with one
    line and no traceback, the bytes received kept in the .part file, no file where the data rule
    reads; the next run asks for the rest with a Range request."""
    server.trickle.add(BIG)
    env = {**os.environ, "PINBENCH_CACHE_DIR": str(places / "cache")}
    env.pop("PINBENCH_DATA_DIR", None)
    child = subprocess.Popen([sys.executable, "-c", "import sys; from pinbench.cli import main; sys.exit(main(sys.argv[1:]))",
                              "data", "download", "sst-2", "--manifest", str(manifest_file), "--mirror", server.url],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while server.trickled.get(BIG, 0) < 200:  # some of the file has gone out
            assert child.poll() is None and time.monotonic() < deadline, child.communicate()
            time.sleep(0.05)
    except BaseException:
        child.kill()
        raise
    sigterm_stops_with_one_line(child)
    cache = places / "cache" / "data"
    part = cache / f"{BIG}.part"
    kept = part.stat().st_size
    assert not (cache / BIG).exists() and 0 < kept < (source_root / BIG).stat().st_size
    assert part.read_bytes() == (source_root / BIG).read_bytes()[:kept]  # what arrived, exactly
    server.trickle.clear()
    server.requests.clear()
    code, _, err = run_cli(capsys, "data", "download", "sst-2", "--manifest", str(manifest_file), "--mirror", server.url)
    assert code == 0, err
    assert (cache / BIG).read_bytes() == (source_root / BIG).read_bytes() and not part.exists()
    assert (BIG, f"bytes={kept}-") in server.requests


def test_a_server_without_range_support_restarts_the_file(server, manifest_file, source_root, places):
    server.ranges = False
    server.drop[BIG] = 1
    manifest = load_manifest(manifest_file)
    with pytest.raises(DataError, match="interrupted"):
        download(["sst-2"], manifest=manifest, mirror=server.url, attempts=1)
    download(["sst-2"], manifest=manifest, mirror=server.url, attempts=1)  # 200 again: written from byte 0
    assert (places / "cache" / "data" / BIG).read_bytes() == (source_root / BIG).read_bytes()


def test_no_network_is_one_line_naming_how_to_pass_a_local_directory(manifest_file, places, capsys,
                                                                     monkeypatch):
    with socket.socket() as s:  # a port nothing listens on: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = run_cli(capsys, "data", "download", "sst-2", "--manifest", str(manifest_file),
                           "--mirror", f"http://127.0.0.1:{port}/")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert f"no connection to 127.0.0.1:{port}" in lines[0]
    assert "--data-dir DIR" in lines[0] and "PINBENCH_DATA_DIR=DIR" in lines[0]
    assert "pinbench data download --from DIR" in lines[0]

    def offline(*args, **kwargs):
        raise socket.gaierror(-2, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", offline)  # DNS fails: the default public URLs
    code, _, err = run_cli(capsys, "data", "download", "sst-2")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "no connection to raw.githubusercontent.com (Name or service not known)" in lines[0]
    assert "pinbench data download --from DIR" in lines[0]
    assert not (places / "cache" / "data" / "few-shot").exists() or \
        not any(p.suffix == ".tsv" for p in (places / "cache" / "data").rglob("*"))


def test_download_from_a_local_directory(manifest_file, source_root, places, capsys, tmp_path):
    code, _, err = run_cli(capsys, "data", "download", "--manifest", str(manifest_file), "--from", str(source_root))
    assert code == 0, err
    assert cache_files(places / "cache" / "data") == set(SUBSET)
    partial = tmp_path / "partial"
    shutil.copytree(source_root / "few-shot", partial / "few-shot")
    (partial / "few-shot/mr/16-21/dev.tsv").unlink()
    shutil.rmtree(places / "cache")
    code, _, err = run_cli(capsys, "data", "download", "mr", "--manifest", str(manifest_file), "--from", str(partial))
    assert code == 2 and "'few-shot/mr/16-21/dev.tsv' is not in --from directory" in err


def test_download_from_a_partial_root_copies_what_it_holds_and_names_the_rest(manifest_file, source_root, places,
                                                                             capsys, tmp_path):
    """Without names, --from copies every data set the root holds and skips, in one line, those it
    holds no file of (../shared/data has no subj, trec or yahoo); named, a missing one is an error."""
    partial = tmp_path / "partial"
    shutil.copytree(source_root, partial)
    shutil.rmtree(partial / "style-transfer" / "shakespeare")
    shutil.rmtree(partial / "inversion")
    code, out, err = run_cli(capsys, "data", "download", "--manifest", str(manifest_file), "--from", str(partial))
    assert code == 0, err
    assert f"not in {partial}: shakespeare, lexica (skipped)" in out.splitlines()
    assert "sst-2: 3 file(s) verified" in out and "yelp: 2 file(s) verified" in out
    assert cache_files(places / "cache" / "data") == {r for r in SUBSET if not r.startswith(
        ("style-transfer/shakespeare/", "inversion/"))}
    # named: a data set the root lacks is an error naming it, before anything is copied
    shutil.rmtree(places / "cache")
    code, out, err = run_cli(capsys, "data", "download", "sst-2", "shakespeare", "lexica", "--manifest",
                             str(manifest_file), "--from", str(partial))
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        f"pinbench: error: data set(s) shakespeare, lexica not in --from directory '{partial}' (no file of them; "
        f"expected e.g. {partial / 'style-transfer/shakespeare/100-shot/100-13/train.tsv'})"]
    assert not (places / "cache").exists()


def test_a_checksum_mismatch_does_not_stop_the_other_data_sets(manifest_file, source_root, places, capsys, tmp_path):
    """Every data set is copied first; then each failed one is one line (its first file, how many
    more), and the exit status is 2. Failed files are not kept, not even as .part files."""
    partial = tmp_path / "partial"
    shutil.copytree(source_root, partial)
    bad = ["few-shot/sst-2/16-13/dev.tsv", "inversion/lexica/0.jpg", "inversion/lexica/1.jpg"]
    for rel in bad:
        data = (partial / rel).read_bytes()
        (partial / rel).write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    code, out, err = run_cli(capsys, "data", "download", "--manifest", str(manifest_file), "--from", str(partial))
    assert code == 2
    cache = places / "cache" / "data"
    assert cache_files(cache) == set(SUBSET) - set(bad)  # mr, yelp, shakespeare after sst-2's failure too
    assert "sst-2: 2 file(s) verified" in out and "1 failed, listed at the end" in out
    assert "lexica: 0 file(s) verified" in out and "2 failed, listed at the end" in out
    lines = err.strip().splitlines()
    assert len(lines) == 2, err
    assert lines[0].startswith(f"pinbench: error: checksum mismatch for '{bad[0]}' from {partial / bad[0]}")
    assert lines[0].endswith("the file was not kept")
    assert lines[1].startswith(f"pinbench: error: checksum mismatch for '{bad[1]}'")
    assert lines[1].endswith("the file was not kept; 1 more file(s) of lexica failed too")


# ---------------------------------------------------------------------------------------------
# The rule: --data-dir, PINBENCH_DATA_DIR, ../shared/data, the cache, the embedded split
# ---------------------------------------------------------------------------------------------


def _root(base: Path, name: str, seeds=(13,)) -> Path:
    """A data root whose sst-2 train files say which root they are."""
    root = base / name
    for seed in seeds:
        folder = root / "few-shot" / "sst-2" / f"16-{seed}"
        folder.mkdir(parents=True)
        (folder / "train.tsv").write_text(f"sentence\tlabel\n{name}\t1\n", encoding="utf-8")
    return root


def test_the_rule_order(places, monkeypatch):
    explicit = _root(places, "explicit")
    env = _root(places, "env")
    shared = _root(places, "shared", seeds=(13,))
    cache = _root(places / "cache", "data", seeds=(13, 21))

    def source(data_dir=None, seed=13):
        return read_split("sst-2", "train", seed, data_dir).texts[0]

    monkeypatch.setattr(data_locations, "SHARED_DATA", shared)
    monkeypatch.setenv("PINBENCH_DATA_DIR", str(env))
    assert source(explicit / "few-shot") == "explicit"  # as today: the task's folder
    assert source(explicit) == "explicit"  # a data root works too
    assert source() == "env"
    monkeypatch.delenv("PINBENCH_DATA_DIR")
    assert source() == "shared"
    assert source(seed=21) == "data"  # ../shared/data lacks seed 21: the cache has it
    monkeypatch.setattr(data_locations, "SHARED_DATA", places / "absent")
    assert source() == "data"
    shutil.rmtree(cache / "few-shot" / "sst-2" / "16-13")
    split = read_split("sst-2", "train", 13)  # nothing else: the embedded demo split
    assert split.file == data_locations.EMBEDDED_DATA / "few-shot" / "sst-2" / "16-13" / "train.tsv"
    assert len(split) == 32


def test_pinbench_data_dir_is_not_fallen_through(places, monkeypatch):
    env = _root(places, "env")
    _root(places / "cache", "data", seeds=(21,))
    monkeypatch.setenv("PINBENCH_DATA_DIR", str(env))
    with pytest.raises(DataError) as info:
        read_split("sst-2", "train", 21)
    assert f"tried PINBENCH_DATA_DIR ({env / 'few-shot'})" in str(info.value)
    assert "cache" not in str(info.value)


def test_missing_data_names_the_places_tried_and_the_download_command(places):
    with pytest.raises(DataError) as info:
        read_split("mr", "test", 21)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("dataset 'mr': 'few-shot/mr/16-21/test.tsv' not found; tried PINBENCH_DATA_DIR (unset), ")
    for place in (f"../shared/data ({data_locations.SHARED_DATA}: absent)",
                  f"cache ({places / 'cache' / 'data' / 'few-shot'})",
                  f"embedded ({data_locations.EMBEDDED_DATA / 'few-shot'})"):
        assert place in message
    assert message.endswith("run `pinbench data download mr`, or pass --data-dir DIR or set PINBENCH_DATA_DIR=DIR")
    with pytest.raises(DataError, match=r"run `pinbench data download shakespeare`"):
        dataset_dir("shakespeare", None, 13)
    with pytest.raises(DataError, match=r"target image '0.jpg' \(not in the working directory\).*download lexica"):
        image_paths("0.jpg", None)


def test_every_task_reads_downloaded_data_from_the_cache(server, manifest_file, source_root, places):
    download(None, manifest=load_manifest(manifest_file), mirror=server.url)
    cache = places / "cache" / "data"
    assert read_split("mr", "train", 21).file == cache / "few-shot/mr/16-21/train.tsv"
    assert dataset_dir("shakespeare", None, 13) == cache / "style-transfer/shakespeare/100-shot/100-13"
    assert image_paths("1", None) == [cache / "inversion/lexica/1.jpg"]
    # an explicit data root maps to each task's folder
    assert dataset_dir("yelp", source_root, 0) == source_root / "style-transfer/yelp/clean"
    assert image_paths("0.jpg", source_root) == [source_root / "inversion/lexica/0.jpg"]


# ---------------------------------------------------------------------------------------------
# pinbench datasets
# ---------------------------------------------------------------------------------------------


def _line_after(out: str, name: str) -> str:
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.split() and line.split()[0] == name)
    return lines[i + 1].strip()


def test_datasets_shows_presence_and_where(server, places, capsys, monkeypatch):
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0
    embedded = data_locations.EMBEDDED_DATA / "few-shot"
    assert _line_after(out, "sst-2") == (f"partial 3/15 files in embedded {embedded}; "
                                         "get them: pinbench data download sst-2")
    assert _line_after(out, "mr") == "missing 0/15 files; get them: pinbench data download mr"
    assert _line_after(out, "shakespeare").startswith("missing 0/15 files")
    assert _line_after(out, "lexica").startswith("missing 0/20 files")
    assert "yelp-2" in out and "(+5 published without a checksum here, not counted)" in _line_after(out, "yelp-2")
    # after copying mr into the cache it is found there
    (places / "cache" / "data" / "few-shot").mkdir(parents=True)
    shutil.copytree(data_root() / "few-shot" / "mr", places / "cache" / "data" / "few-shot" / "mr")
    _, out, _ = run_cli(capsys, "datasets")
    assert _line_after(out, "mr") == f"present 15/15 files in cache {places / 'cache' / 'data' / 'few-shot'}"
    monkeypatch.setenv("PINBENCH_DATA_DIR", str(data_root()))
    _, out, _ = run_cli(capsys, "datasets")
    assert _line_after(out, "sst-2") == f"present 15/15 files in PINBENCH_DATA_DIR {data_root() / 'few-shot'}"
    assert _line_after(out, "yelp").startswith(
        f"present 6/6 files in PINBENCH_DATA_DIR {data_root() / 'style-transfer'}")


# ---------------------------------------------------------------------------------------------
# The shipped manifest and the embedded split
# ---------------------------------------------------------------------------------------------


def test_the_embedded_split_matches_the_shipped_manifest():
    manifest = load_manifest()
    by_path = {f.path: f for f in manifest["sst-2"].files}
    embedded = sorted(p for p in data_locations.EMBEDDED_DATA.rglob("*.tsv"))
    assert [p.relative_to(data_locations.EMBEDDED_DATA).as_posix() for p in embedded] == [
        "few-shot/sst-2/16-13/dev.tsv", "few-shot/sst-2/16-13/test.tsv", "few-shot/sst-2/16-13/train.tsv"]
    for p in embedded:
        entry = by_path[p.relative_to(data_locations.EMBEDDED_DATA).as_posix()]
        assert hashlib.sha256(p.read_bytes()).hexdigest() == entry.sha256 and p.stat().st_size == entry.size


def test_the_shipped_manifest_covers_every_data_set_with_pinned_public_urls():
    manifest = load_manifest()
    # the built-in registry (other tests register datasets of their own files in this process)
    assert set(builtin_datasets()) | set(STYLE_DATASETS) | {"lexica"} <= set(manifest)
    for ds in manifest.values():
        assert ds.source and ds.license, ds.name
        for f in ds.files:
            assert f.url.startswith(("https://raw.githubusercontent.com/mingkaid/rl-prompt/30528c21e5eb6cbeefa3036d7c7e4ae7e98e597e/",
                                     "https://raw.githubusercontent.com/Youseob/PIN/3357f09b2f4f66b087b090ac517bb235b323d191/")), f
            assert len(f.sha256) == 64 and f.size > 0


def test_the_shipped_manifest_matches_the_shared_text_data():
    """The shared copies of the text data are the public files: their checksums are the manifest's.
    (The shared Lexica images are resized copies, so they differ; see the manifest's note.)"""
    root = data_root()
    if not (root / "few-shot").is_dir():
        pytest.skip(f"shared data not found at {root}")
    by_path = {f.path: f for ds in load_manifest().values() if ds.kind != "inversion" for f in ds.files}
    shared = [p for kind in ("few-shot", "style-transfer") for p in (root / kind).rglob("*") if p.is_file()]
    assert len(shared) >= 100
    for local in shared:
        rel = local.relative_to(root).as_posix()
        assert rel in by_path, f"{rel} is not in the shipped manifest"
        assert hashlib.sha256(local.read_bytes()).hexdigest() == by_path[rel].sha256, rel


def test_manifest_written_by_the_cli_lists_a_data_roots_files(source_root, tmp_path, capsys):
    out = tmp_path / "m.json"
    code, stdout, err = run_cli(capsys, "data", "manifest", str(source_root), "sst-2", "lexica", "--out", str(out))
    assert code == 0, err
    data = json.loads(out.read_text())
    assert sorted(data["datasets"]) == ["lexica", "sst-2"]
    entry = next(f for f in data["datasets"]["sst-2"]["files"] if f["path"] == BIG)
    assert entry["sha256"] == hashlib.sha256((source_root / BIG).read_bytes()).hexdigest()
    assert entry["url"].endswith("/16-shot/sst-2/16-13/test.tsv")


def test_a_mirror_that_misbehaves_is_an_error_naming_the_file_and_nothing_is_kept(server, manifest_file, places,
                                                                                 monkeypatch):
    """An error page answered with status 200, a body that never ends and a body that trickles in
    under the socket timeout: each ends with an error naming the file, in bounded time and memory."""
    from pinbench import data_download as D

    manifest = load_manifest(manifest_file)
    cache = places / "cache" / "data"
    server.error_page.add(BIG)
    with pytest.raises(DataError, match=rf"'{BIG}': .* answered 200 with a body of 55 bytes, but the file has .* "
                                        r"\(an error page\?\); nothing kept"):
        download(["sst-2"], manifest=manifest, mirror=server.url, attempts=3)
    assert not (cache / BIG).exists() and not (cache / f"{BIG}.part").exists()
    server.error_page.clear()
    server.endless.add(BIG)
    with pytest.raises(DataError, match=rf"'{BIG}': .* sent more than the manifest's .* bytes"):
        download(["sst-2"], manifest=manifest, mirror=server.url, attempts=3)
    assert not (cache / f"{BIG}.part").exists()
    server.endless.clear()
    server.trickle.add(BIG)
    monkeypatch.setattr(D, "MIN_RATE", 10 ** 9)  # the deadline is the timeout: 1 s
    with pytest.raises(DataError, match=rf"download of '{BIG}' .*slower than"):
        D.fetch_file(manifest["sst-2"].files[[f.path for f in manifest["sst-2"].files].index(BIG)], cache,
                     mirror=server.url, attempts=1, timeout=1.0)


def _own_server(root: Path, files: dict[str, bytes]):
    """A DataServer over ``root`` holding ``files`` (path -> bytes), and their manifest entries."""
    from pinbench.data_download import ManifestFile

    entries = []
    for rel, body in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
        entries.append(ManifestFile(rel, f"file:///nowhere/{rel}", hashlib.sha256(body).hexdigest(), len(body)))
    srv = DataServer(root)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, entries


def test_an_empty_file_an_html_page_and_too_little_disk(tmp_path, places, monkeypatch):
    """A zero-byte file (which `pinbench data manifest` writes for an empty file) was taken as
    complete before it was fetched, then a traceback; a 200 HTML page without a length was kept as
    a cut download to resume forever; a file larger than the free disk filled it."""
    from pinbench import data_download as D

    srv, (empty, page) = _own_server(tmp_path / "root", {"few-shot/x/16-1/empty.tsv": b"",
                                                        "few-shot/x/16-1/train.tsv": b"sentence\tlabel\n" * 50})
    cache = tmp_path / "cache"
    try:
        assert D.fetch_file(empty, cache, mirror=srv.url) and (cache / empty.path).read_bytes() == b""
        srv.html_page.add(page.path)
        with pytest.raises(DataError, match=rf"'{page.path}': .* answered 200 with an HTML page, not the file"):
            D.fetch_file(page, cache, mirror=srv.url, attempts=1)
        assert not (cache / f"{page.path}.part").exists()
        srv.html_page.clear()
        monkeypatch.setattr(D.shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 10, 10))
        with pytest.raises(DataError, match=rf"'{page.path}': it needs 750 more bytes and the disk of .* has 10 free"):
            D.fetch_file(page, cache, mirror=srv.url, attempts=1)
    finally:
        srv.shutdown()
        srv.server_close()


def test_two_downloads_of_one_file_at_once_fetch_it_once(tmp_path, places):
    """Two downloads of one data set at once shared its .part file: one blamed the mirror's
    checksum, the other crashed, nothing was kept. The second now waits, then finds it verified."""
    from pinbench import data_download as D

    srv, [entry] = _own_server(tmp_path / "root", {"few-shot/x/16-1/train.tsv": b"sentence\tlabel\nok\t1\n" * 3})
    srv.trickle.add(entry.path)  # a byte every 20 ms: the two overlap
    cache, results, errors = tmp_path / "cache", [], []

    def fetch():
        try:
            results.append(D.fetch_file(entry, cache, mirror=srv.url, attempts=1))
        except Exception as exc:  # noqa: BLE001 - the assertion below names it
            errors.append(exc)

    try:
        threads = [threading.Thread(target=fetch) for _ in range(2)]
        for t in threads:
            t.start()
            time.sleep(0.2)
        for t in threads:
            t.join()
    finally:
        srv.shutdown()
        srv.server_close()
    assert errors == [] and sorted(results) == [False, True]
    assert [path for path, _ in srv.requests] == [entry.path]  # fetched once
    assert hashlib.sha256((cache / entry.path).read_bytes()).hexdigest() == entry.sha256
