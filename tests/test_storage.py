"""Results stores through pyarrow filesystems: local paths, ``file://`` URIs and an S3-compatible
server (moto, on 127.0.0.1), the write check before Ray starts, and stale temporary files."""

from __future__ import annotations

import logging
import os
import pickle
import socket
import stat
import uuid
from pathlib import Path

import pandas as pd
import pytest

from pinbench.analysis import load_results
from pinbench.cli import main
from pinbench.errors import ConfigError
from pinbench.results import TABLES, ResultsStore, frames, write_results, write_run
from pinbench.run import RunResult, make_spec
from pinbench.storage import Location, check_writable, resolve
from pinbench.suite import load_suite, parse_suite
from test_sweep import write_suite

pytest.importorskip("moto.server")
pytest.importorskip("boto3")


def free_port() -> int:
    """A port nothing listens on (bound, read, released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def moto_port():
    """An S3-compatible server for this module, with dummy credentials in the environment (Ray's
    workers, started after this, inherit them)."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one access-log line per request
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", "testing")
        env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        env.setenv("AWS_DEFAULT_REGION", "us-east-1")
        env.delenv("AWS_ENDPOINT_URL", raising=False)
        env.delenv("AWS_PROFILE", raising=False)
        yield port
    server.stop()


@pytest.fixture
def bucket(moto_port):
    """A fresh bucket: (name, boto3 client, the URI query that points pyarrow at the server)."""
    import boto3

    name = f"pinbench-{uuid.uuid4().hex[:12]}"
    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{moto_port}")
    client.create_bucket(Bucket=name)
    return name, client, f"?endpoint_override=127.0.0.1:{moto_port}&scheme=http"


def keys(client, bucket: str) -> list[str]:
    """The bucket's objects, without the empty directory markers (``results/``) that pyarrow puts
    where deleting a directory's last object (the write check's probe) would make it vanish."""
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", [])
                  if not o["Key"].endswith("/"))


def trial_tables(trial_id: str, seed: int, model: str = "tiny", acc: float = 0.75) -> dict[str, pd.DataFrame]:
    spec = make_spec({"preset": "pin", "dataset": "sst-2", "seed": seed, "policy_lm": model, "task_lm": model,
                      "steps": 2, "eval_every": 1})
    result = RunResult(spec, steps_done=2, wall_time_s=1.0, prompt_tokenizer=model,
                       history=[{"step": s, "reward_mean": 0.1 * s, "dev_accuracy": acc} for s in (1, 2)],
                       best={"step": 2, "prompt": "the movie", "token_ids": None, "dev_accuracy": acc},
                       test={"test_accuracy": acc},
                       prompts=[{"step": 2, "source": "best", "prompt": "the movie", "dev_accuracy": acc}])
    return frames(result, trial_id, "s")


def checkpoint_dir(tmp_path: Path, trial_id: str, seed: int) -> Path:
    """What a finished trial's checkpoint holds: its three tables, in a local directory."""
    directory = tmp_path / f"ckpt-{trial_id}"
    write_results(directory, trial_tables(trial_id, seed))
    return directory


def fill(store: ResultsStore, tmp_path: Path) -> None:
    """One completed and one failed trial."""
    store.add_completed(checkpoint_dir(tmp_path, "t0", 0))
    store.add_failed("t1", make_spec({"preset": "pin", "dataset": "sst-2", "seed": 1}), "RuntimeError: boom")


def assert_round_trip(root: str, tmp_path: Path) -> ResultsStore:
    """Fill a store under ``root``, load it again (a new driver) and through pinbench.analysis.load."""
    fill(ResultsStore(root, "s"), tmp_path)
    again = ResultsStore(root, "s")
    assert again.completed() == {"t0"}
    trials = again.table("trials").set_index("trial_id")
    assert trials.loc["t1", "status"] == "failed" and trials.loc["t1", "error"] == "RuntimeError: boom"
    assert again.table("history")["step"].tolist() == [1, 2]
    results = load_results(again.uri)
    assert sorted(results.trials["trial_id"]) == ["t0", "t1"]
    assert results.completed()["test_accuracy"].tolist() == [0.75]
    return again


# ---- locations ------------------------------------------------------------------------------


def test_resolve_paths_and_uris(tmp_path, monkeypatch):
    import pyarrow.fs as pafs

    monkeypatch.chdir(tmp_path)
    local = resolve("results")
    assert isinstance(local.fs, pafs.LocalFileSystem)
    assert (local.uri, local.path, local.local) == ("results", str(tmp_path / "results"), tmp_path / "results")
    uri = resolve(f"file://{tmp_path}/r")
    assert isinstance(uri.fs, pafs.LocalFileSystem) and uri.local == tmp_path / "r"
    assert uri.join("s", "trials.parquet").uri == f"file://{tmp_path}/r/s/trials.parquet"
    # a URI's query stays at its end; the filesystem path has none
    s3 = Location("s3://b/p?endpoint_override=h:1&scheme=http", local.fs, "b/p")
    joined = s3.join("s", "trials.parquet")
    assert (joined.uri, joined.path) == ("s3://b/p/s/trials.parquet?endpoint_override=h:1&scheme=http",
                                         "b/p/s/trials.parquet")
    with pytest.raises(ConfigError, match=r"'s3:/b/x' looks like a URI that lost a slash; write it as 's3://b/x'"):
        resolve(Path("s3://b/x"))
    with pytest.raises(ConfigError, match=r"^cannot open results location 'nosuch://b/x': "):
        resolve("nosuch://b/x")


def test_local_writes_are_atomic_object_store_writes_direct(tmp_path, monkeypatch):
    """A local file goes through io.atomic_path (temporary file + rename); trials is written last."""
    import pinbench.io

    renamed, written = [], []
    real_replace = pinbench.io.os.replace
    monkeypatch.setattr(pinbench.io.os, "replace", lambda a, b: renamed.append((Path(a).name, Path(b).name))
                        or real_replace(a, b))
    real_write = Location.write_parquet
    monkeypatch.setattr(Location, "write_parquet", lambda self, frame: written.append(self.name)
                        or real_write(self, frame))
    write_results(tmp_path / "out", trial_tables("t0", 0))
    assert written == ["history.parquet", "prompts.parquet", "trials.parquet"]
    assert [b for _, b in renamed] == written
    assert all(a.startswith(f".{b}.") and a.endswith(".tmp") for a, b in renamed)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(written)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_writes_get_the_mode_of_a_plain_write(tmp_path, umask):
    """The temporary file is private (mkstemp's 0600); the renamed result must not be: a report or
    a store shared with a group is readable as any file the user writes."""
    from pinbench.io import write_text

    old = os.umask(umask)
    try:
        write_text("x\n", tmp_path / "atomic.txt")
        (tmp_path / "plain.txt").write_text("x\n")
    finally:
        os.umask(old)
    mode = lambda name: stat.S_IMODE((tmp_path / name).stat().st_mode)  # noqa: E731
    assert mode("atomic.txt") == mode("plain.txt") == 0o666 & ~umask


# ---- Tune's local storage ---------------------------------------------------------------------

KILLED_COPY = """\
import sys, time
import pyarrow.fs as pafs
from pinbench.storage import tune_storage
_, fs = tune_storage(sys.argv[1])
out = fs.open_output_stream(sys.argv[1] + "/searcher-state-x.pkl")
out.write(b"new, half written")
out.flush()
print("written", flush=True)
time.sleep(60)
"""


def test_tune_storage_replaces_a_local_file_only_when_its_copy_is_complete(tmp_path):
    """Tune copies its state into local storage with pyarrow (truncate, then write): through
    tune_storage's filesystem a driver killed mid-copy leaves the previous file whole (a killed
    Optuna driver left an empty searcher state that --resume could not load)."""
    import signal
    import subprocess
    import sys

    state = tmp_path / "searcher-state-x.pkl"
    state.write_bytes(b"old, whole")
    proc = subprocess.Popen([sys.executable, "-c", KILLED_COPY, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "written\n"
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert state.read_bytes() == b"old, whole"
    (left,) = [p.name for p in tmp_path.iterdir() if p != state]
    # what Tune downloads to restore: *.json and *.pkl; the killed copy is neither
    assert left.startswith(".searcher-state-x.pkl.") and left.endswith(".tmp")


def test_tune_storage_writes_what_tune_copies_with_a_plain_files_mode(tmp_path):
    """The copy Tune makes (pyarrow's copy_files, the call Ray's upload uses) arrives whole, with the
    mode a plain write gives; the filesystem survives pickling (Tune sends it to every trial); an
    object store is Tune's own URI."""
    import pickle

    import pyarrow.fs as pafs

    from pinbench.storage import tune_storage

    source = tmp_path / "staging"
    (source / "trial").mkdir(parents=True)
    (source / "experiment_state-x.json").write_text('{"trials": 3}')
    (source / "trial" / "state.pt").write_bytes(b"\0" * 100_000)
    path, fs = tune_storage(tmp_path / "ray")
    assert path == str(tmp_path / "ray")
    fs = pickle.loads(pickle.dumps(fs))
    pafs.copy_files(str(source), path, destination_filesystem=fs)
    copied = tmp_path / "ray"
    assert (copied / "experiment_state-x.json").read_text() == '{"trials": 3}'
    assert (copied / "trial" / "state.pt").read_bytes() == b"\0" * 100_000
    assert sorted(p.name for p in copied.rglob("*")) == ["experiment_state-x.json", "state.pt", "trial"]
    plain = tmp_path / "plain"
    plain.write_text("x")
    assert stat.S_IMODE((copied / "experiment_state-x.json").stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    fs.copy_file(f"{path}/experiment_state-x.json", f"{path}/copy.json")
    assert (copied / "copy.json").read_text() == '{"trials": 3}'
    bucket = "s3://bucket/prefix?endpoint_override=127.0.0.1:1&scheme=http"
    assert tune_storage(bucket) == (bucket, None)


def test_a_sweeps_tune_storage_on_a_local_disk_replaces_files_whole(tmp_path, monkeypatch):
    """The sweep's RunConfig: Tune's state under <results>/_ray (or --storage) on a local disk goes
    through AtomicLocalFiles; a bucket is Tune's own URI."""
    from pinbench.storage import AtomicLocalFiles
    from pinbench.sweep import run_config_for

    monkeypatch.chdir(tmp_path)
    suite = parse_suite({"name": "s", "base": {"dataset": "mr", "steps": 1}, "grid": {"seed": [0]}})
    for config, where in ((run_config_for(suite, results_dir="out"), tmp_path / "out" / "_ray"),
                          (run_config_for(suite, storage="ckpt"), tmp_path / "ckpt")):
        assert config.storage_path == str(where)
        assert isinstance(config.storage_filesystem.handler, AtomicLocalFiles)
    bucket = "s3://bucket/prefix?endpoint_override=127.0.0.1:1&scheme=http"
    config = run_config_for(suite, storage=bucket)
    assert (config.storage_path, config.storage_filesystem) == (bucket, None)


# ---- stores on a local disk -----------------------------------------------------------------


def test_results_store_round_trip_through_a_file_uri(tmp_path):
    store = assert_round_trip(f"file://{tmp_path}/results", tmp_path)
    assert store.uri == f"file://{tmp_path}/results/s"
    assert store.dir == tmp_path / "results" / "s"
    assert sorted(p.name for p in store.dir.iterdir()) == [f"{t}.parquet" for t in sorted(TABLES)]


def test_stale_temp_files_are_ignored_on_load_and_removed_by_the_next_flush(tmp_path):
    root = tmp_path / "results"
    fill(ResultsStore(root, "s"), tmp_path)
    directory = root / "s"
    # a writer killed mid-write left half a file behind, and so did someone else's writer
    stale = directory / ".trials.parquet.k1ll3d.tmp"
    stale.write_bytes((directory / "trials.parquet").read_bytes()[:100])
    other = directory / ".naturalness.parquet.r3p0rt.tmp"
    other.write_bytes(b"not ours")
    store = ResultsStore(root, "s")
    assert store.completed() == {"t0"} and sorted(store.table("trials")["trial_id"]) == ["t0", "t1"]
    assert sorted(load_results(directory).trials["trial_id"]) == ["t0", "t1"]
    store.add_completed(checkpoint_dir(tmp_path, "t2", 2))
    assert not stale.exists()
    assert other.exists()  # the store removes its own tables' leftovers only
    assert ResultsStore(root, "s").completed() == {"t0", "t2"}


# ---- an S3-compatible server ----------------------------------------------------------------


def test_results_store_report_and_train_out_in_s3(bucket, tmp_path, tiny_lm_dir, monkeypatch):
    from huggingface_hub import constants

    # the store's prompt tokenizer is a made-up name ("tiny"): offline mode makes its lookup fail at
    # once (a warning in the report) instead of after the hub client's retries
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    name, client, query = bucket
    root = f"s3://{name}/results{query}"
    store = assert_round_trip(root, tmp_path)
    assert store.dir is None and store.uri == f"s3://{name}/results/s{query}"
    assert keys(client, name) == [f"results/s/{t}.parquet" for t in sorted(TABLES)]  # no probe or temp objects
    # pinbench report reads the store and writes its naturalness cache back into the bucket
    out = tmp_path / "report"
    assert main(["report", store.uri, "--out", str(out), "--reference-lm", tiny_lm_dir]) == 0
    assert (out / "report.md").is_file()
    assert "results/s/naturalness.parquet" in keys(client, name)
    # pinbench train --out: the same writer, to a URI
    paths = write_run(f"s3://{name}/run{query}", store_result())
    assert paths["config"].uri == f"s3://{name}/run/config.json{query}"
    assert {f"run/{f}" for f in ("config.json", "trials.parquet", "history.parquet", "prompts.parquet")} \
        <= set(keys(client, name))
    assert load_results(f"s3://{name}/run{query}").trials["trial_id"].tolist() == ["run"]


def store_result() -> RunResult:
    spec = make_spec({"preset": "pin", "dataset": "sst-2", "policy_lm": "tiny", "task_lm": "tiny"})
    return RunResult(spec, steps_done=1, wall_time_s=1.0, history=[{"step": 1, "reward_mean": 0.0}],
                     best={"step": 1, "prompt": "a", "token_ids": None, "dev_accuracy": 0.5})


def test_aws_endpoint_url_points_pyarrow_at_the_server(bucket, moto_port, monkeypatch, tmp_path):
    """pyarrow (26) honours the AWS SDK's AWS_ENDPOINT_URL: plain s3:// URIs reach the server."""
    name, client, _ = bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{moto_port}")
    assert check_writable(f"s3://{name}/results").uri == f"s3://{name}/results"
    assert_round_trip(f"s3://{name}/results", tmp_path)
    assert keys(client, name) == [f"results/s/{t}.parquet" for t in sorted(TABLES)]


# ---- unreachable storage: one line, before Ray starts ---------------------------------------


SUITE = {"name": "s", "base": {"dataset": "sst-2"}}


@pytest.mark.parametrize("where", ["no-such-bucket", "refused-port", "a-file"])
def test_unwritable_results_fail_before_ray_starts(where, bucket, tmp_path, no_ray):
    from pinbench.sweep import run_sweep

    name, client, query = bucket
    uri, cause = {
        "no-such-bucket": (f"s3://no-such-bucket-{name}/results{query}", "bucket does not exist"),
        "refused-port": (f"s3://{name}/results?endpoint_override=127.0.0.1:{free_port()}&scheme=http",
                         "Could not connect to server"),
        "a-file": (str(tmp_path / "results.txt"), "it is a file, not a directory"),
    }[where]
    (tmp_path / "results.txt").write_text("notes\n")
    with pytest.raises(ConfigError) as info:
        run_sweep(parse_suite(SUITE), results_dir=uri)
    message = str(info.value)
    assert message.startswith(f"cannot write results to '{uri}': ") and cause in message
    assert "\n" not in message
    assert keys(client, name) == []  # nothing was written anywhere
    assert (tmp_path / "results.txt").read_text() == "notes\n"


def test_unwritable_tune_storage_fails_before_ray_starts(bucket, tmp_path, no_ray):
    from pinbench.sweep import run_sweep

    uri = f"s3://{bucket[0]}/ray?endpoint_override=127.0.0.1:{free_port()}&scheme=http"
    with pytest.raises(ConfigError, match=rf"^cannot write Tune's checkpoints to '{uri.replace('?', '[?]')}': "):
        run_sweep(parse_suite(SUITE), results_dir=tmp_path / "results", storage=uri)


def test_sweep_cli_with_unreachable_results_is_one_line(tmp_path, capsys, no_ray, moto_port):
    suite_file = tmp_path / "s.yaml"
    suite_file.write_text("name: s\nbase: {dataset: sst-2}\n")
    uri = f"s3://nowhere/results?endpoint_override=127.0.0.1:{free_port()}&scheme=http"
    assert main(["sweep", str(suite_file), "--results", uri]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"pinbench: error: cannot write results to '{uri}': ")


# ---- real sweeps (Ray, tiny models) ----------------------------------------------------------


@pytest.fixture(scope="module")
def ray_s3(moto_port):
    """A local Ray started after the S3 credentials are in the environment (its workers inherit
    them). ``address="local"``: never a Ray cluster another process left running."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def assert_sweep_store(uri: str, suite) -> None:
    results = load_results(uri)
    assert sorted(results.trials["trial_id"]) == sorted(t.trial_id for t in suite.trials())
    assert (results.trials["status"] == "completed").all()
    assert results.history.groupby("trial_id")["step"].apply(list).tolist() == [[1, 2, 3, 4]] * 2


@pytest.mark.slow
def test_sweep_with_file_uri_results(ray_s3, tiny_setup, tmp_path):
    suite_file = write_suite(tmp_path / "tiny.yaml", *tiny_setup)
    suite = load_suite(suite_file)
    assert main(["sweep", str(suite_file), "--results", f"file://{tmp_path}/results"]) == 0
    assert_sweep_store(f"file://{tmp_path}/results/tiny", suite)
    # Tune's checkpoints: <results>/_ray, one directory per trial
    trial_dirs = sorted((tmp_path / "results" / "_ray" / "tiny").glob("seed=*"))
    assert [len(list(d.glob("checkpoint_*/state.pt"))) for d in trial_dirs] == [1, 1]


@pytest.mark.slow
def test_sweep_with_s3_results_keeps_store_and_checkpoints_in_the_bucket(ray_s3, bucket, tiny_setup, tmp_path):
    name, client, query = bucket
    suite_file = write_suite(tmp_path / "tiny.yaml", *tiny_setup)
    suite = load_suite(suite_file)
    assert main(["sweep", str(suite_file), "--results", f"s3://{name}/sweep{query}"]) == 0
    assert_sweep_store(f"s3://{name}/sweep/tiny{query}", suite)
    found = keys(client, name)
    assert {f"sweep/tiny/{t}.parquet" for t in TABLES} <= set(found)
    for trial in suite.trials():  # Tune's trial directories, each with its final checkpoint
        assert [k for k in found if k.startswith(f"sweep/_ray/tiny/{trial.trial_id}_")
                and k.endswith("/state.pt")], f"no checkpoint of {trial.trial_id} in {found}"
    assert not [k for k in found if ".pinbench-probe-" in k]
    assert not (tmp_path / "sweep").exists()  # nothing went to a local directory of that name
    # --resume restores Tune's experiment from the bucket (the URI's query stays at its end)
    before = load_results(f"s3://{name}/sweep/tiny{query}").trials
    assert main(["sweep", str(suite_file), "--results", f"s3://{name}/sweep{query}", "--resume"]) == 0
    after = load_results(f"s3://{name}/sweep/tiny{query}").trials
    assert after.set_index("trial_id")["wall_time_s"].to_dict() == before.set_index("trial_id")["wall_time_s"].to_dict()


def test_a_rerun_that_fails_keeps_the_completed_row_of_an_earlier_run(tmp_path):
    """A sweep run again into its store (no --resume) whose trial now fails: the completed row
    (computed work) stays; a trial never completed is recorded as failed."""
    root = str(tmp_path / "results")
    fill(ResultsStore(root, "s"), tmp_path)
    again = ResultsStore(root, "s")
    spec = make_spec({"preset": "pin", "dataset": "sst-2", "seed": 0})
    again.add_failed("t0", spec, "RuntimeError: out of memory")
    again.add_failed("t1", spec, "RuntimeError: boom again")
    trials = ResultsStore(root, "s").table("trials").set_index("trial_id")
    assert trials.loc["t0", "status"] == "completed"
    assert trials.loc["t1", "status"] == "failed" and "boom again" in trials.loc["t1", "error"]


def test_a_search_trial_whose_sampled_values_are_refused_is_recorded_failed_not_a_driver_crash(tmp_path):
    """The store callback rebuilt a failed trial's spec from its sampled values; values the trial
    had refused (replay_batch above replay_size) raised again in the driver and stopped the sweep.
    The trial is recorded as failed, with the base settings and the refusal as its error."""
    from types import SimpleNamespace

    from pinbench.run import make_spec
    from pinbench.suite import parse_suite
    from pinbench.sweep import make_callback

    suite = parse_suite({"name": "s", "base": {"preset": "pin", "dataset": "sst-2", "replay_size": 64, "replay_batch": 8},
                         "search": {"space": {"replay_batch": {"type": "int", "low": 8, "high": 64}}}})
    base = make_spec({**suite.base}).to_dict()  # a value the run refuses (past replay_size), as sampled
    trial = SimpleNamespace(config={"sampled": {"replay_batch": 100}, "base": base, "suite": "s"}, error_file=None)
    make_callback(tmp_path, suite).on_trial_error(0, [], trial)
    row = pd.read_parquet(tmp_path / "s" / "trials.parquet").iloc[0]
    assert row["status"] == "failed" and row["method.replay_size"] == 64
    assert "replay" in row["error"]


# ---- Tune's state, read before --resume restores it -------------------------------------------

SEARCH = {"name": "s", "base": {"dataset": "mr", "steps": 1},
          "search": {"num_samples": 2, "seed": 3, "space": {"alpha": {"type": "loguniform", "low": 0.1, "high": 10.0}}}}


def _tune_state(tmp_path, state: bytes, searcher: bytes) -> Path:
    experiment = tmp_path / "results" / "_ray" / "s"
    experiment.mkdir(parents=True)
    (experiment / "experiment_state-2026-12-07_05-00-00.json").write_bytes(state)
    (experiment / "searcher-state-2026-12-07_05-00-00.pkl").write_bytes(searcher)
    (experiment / "tuner.pkl").write_bytes(pickle.dumps({"run_config": None}))  # what can_restore looks for
    return experiment


@pytest.mark.parametrize("state, searcher, why", [
    (b'{"trial_data": []}', b"", r"searcher-state-2026-12-07_05-00-00.pkl' is empty"),
    (b'{"trial_data": []}', pickle.dumps({"trials": list(range(50))})[:-9],
     r"searcher-state-2026-12-07_05-00-00.pkl' cannot be read \(.*STOP"),
    (b'{"trial_data": [', pickle.dumps({}), r"experiment_state-2026-12-07_05-00-00.json' cannot be read"),
])
def test_resume_from_a_truncated_tune_state_is_one_line_before_ray_starts(tmp_path, no_ray, state, searcher, why):
    """A searcher state or trial table cut short (a driver killed mid-copy by a pinbench before
    AtomicLocalFiles) made Tune's restore fail with an IndexError traceback after Ray started."""
    from pinbench.sweep import run_sweep

    experiment = _tune_state(tmp_path, state, searcher)
    with pytest.raises(ConfigError, match=rf"^--resume: Tune's saved state '{experiment}/.*{why}.*"
                                          "run without --resume to start the search again$"):
        run_sweep(parse_suite(SEARCH), results_dir=tmp_path / "results", resume=True, check_data=False)
    assert no_ray == []


def test_a_grid_resumes_from_its_store_when_tunes_state_is_truncated(tmp_path, no_ray, caplog):
    """A grid needs no searcher: with Tune's state unreadable, --resume says so and goes on from
    the results store (Ray starts); whole state files are not flagged."""
    from pinbench.sweep import _broken_tune_state, run_sweep

    experiment = _tune_state(tmp_path, b'{"trial_data": []}', pickle.dumps({"trials": list(range(50))}))
    (experiment / "experiment_state-2026-12-06_05-00-00.json").write_bytes(b'{"trial_')  # older: Tune reads the newest
    assert _broken_tune_state(str(experiment), None) is None
    grid_state = experiment / "basic-variant-state-2026-12-07_05-00-00.json"  # a pickle, whatever its name says
    grid_state.write_bytes(pickle.dumps({"iterations": list(range(20))}))
    assert _broken_tune_state(str(experiment), None) is None
    grid_state.write_bytes(pickle.dumps({"iterations": list(range(20))})[:-5])
    assert "basic-variant-state-2026-12-07_05-00-00.json' cannot be read" in _broken_tune_state(str(experiment), None)
    grid_state.write_bytes(pickle.dumps({}))
    (experiment / "experiment_state-2026-12-07_05-00-00.json").write_bytes(b'{"trial_data": [{"')
    grid = {"name": "s", "base": {"dataset": "mr", "steps": 1}, "grid": {"seed": [0]}}
    with pytest.raises(AssertionError, match="Ray started"):
        run_sweep(parse_suite(grid), results_dir=tmp_path / "results", resume=True, check_data=False)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "--resume" in r.getMessage()]
    assert warning.startswith(f"--resume: Tune's saved state '{experiment}/experiment_state-2026-12-07_05-00-00.json' "
                              "cannot be read") and "goes on from the results store" in warning


DISK_FULL_COPY = """\
import resource, signal, sys
import pyarrow.fs as pafs
from pinbench.storage import tune_storage
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
path, fs = tune_storage(sys.argv[1])
try:
    pafs.copy_files(sys.argv[2], path + "/searcher-state-x.pkl", destination_filesystem=fs)
except OSError as exc:
    print("failed:", exc)
"""


def test_tune_storage_keeps_the_previous_file_when_a_copy_fails(tmp_path):
    """A write that fails (a full disk, here a file-size limit) leaves the previous file and no
    temporary one: the half-written copy is not renamed onto the target when pyarrow closes it."""
    import subprocess
    import sys

    storage, source = tmp_path / "ray", tmp_path / "new.pkl"
    storage.mkdir()
    (storage / "searcher-state-x.pkl").write_bytes(b"old, whole")
    source.write_bytes(b"n" * 100_000)
    done = subprocess.run([sys.executable, "-c", DISK_FULL_COPY, str(storage), str(source)],
                          capture_output=True, text=True, timeout=60)
    assert done.stdout.startswith("failed:"), done.stdout + done.stderr
    assert [p.name for p in storage.iterdir()] == ["searcher-state-x.pkl"]
    assert (storage / "searcher-state-x.pkl").read_bytes() == b"old, whole"


def test_a_restored_sweep_skips_only_trials_completed_with_the_suites_settings(tmp_path):
    """An edited suite's --resume, interrupted, then resumed again: the second resume restores
    Tune's state (the suite is no longer 'edited') and skipped every trial the store held as
    completed, a row computed with the old settings among them. Only rows whose recorded
    settings hash is the suite's count as done."""
    from pinbench.sweep import _stored_metrics

    store = ResultsStore(tmp_path / "results", "s")
    store.add_completed(checkpoint_dir(tmp_path / "a", "t0", 0))
    store.add_completed(checkpoint_dir(tmp_path / "b", "t2", 2))
    recorded = store.table("trials").set_index("trial_id")["config_hash"].to_dict()
    assert set(_stored_metrics(store)) == {"t0", "t2"}  # a search suite: no per-trial hashes
    current = {"t0": recorded["t0"], "t2": "0" * 16, "t3": "1" * 16}  # t2's settings edited since
    done = _stored_metrics(store, current)
    assert set(done) == {"t0"} and done["t0"]["best_dev_accuracy"] == done["t0"]["dev_accuracy"]
