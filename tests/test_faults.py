"""Faults injected into sweeps, and what survives them (docs/guarantees.md).

Each test breaks something on purpose: a NaN in a trial, a worker node removed mid-trial, the
driver killed with SIGKILL, an Optuna search interrupted, a store write cut off. Trials are tiny
(random GPT-2 saved as a directory, a toy dataset); the slow ones start their own Ray.
"""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from pinbench.suite import load_suite, resolve_params
from conftest import train_argv
from test_sweep import write_suite

TESTS = Path(__file__).parent


def _ray_fresh():
    import ray

    if ray.is_initialized():
        ray.shutdown()


def _register_by_value():
    """Ray pickles the test's trainables by value, so worker processes need not import this file."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _long_suite(tmp_path, tiny_setup, seeds="[0, 1]", steps=40, extra=""):
    model_dir, spec = tiny_setup
    path = write_suite(tmp_path / "tiny.yaml", model_dir, spec, grid=f"seed: {seeds}", extra=extra)
    path.write_text(path.read_text().replace("steps: 4", f"steps: {steps}"))
    return path


def _uninterrupted(trial) -> list[str]:
    """The evaluated prompts of the trial's run in this process, never stopped (one thread, as a
    1-CPU Ray worker computes)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        spec = trial.spec
        result = spec.method_class(spec).train()
    finally:
        torch.set_num_threads(threads)
    return [p["prompt"] for p in result.prompts]


def _prompts_of(results_dir, trial_id) -> list[str]:
    prompts = pd.read_parquet(Path(results_dir) / "prompts.parquet")
    return prompts[prompts["trial_id"] == trial_id]["prompt"].tolist()


def _wait_for_alive_nodes(n: int) -> None:
    """Until the connected cluster has ``n`` live nodes (the Cluster helper's own wait gives up
    after 30 s)."""
    import ray

    while sum(1 for node in ray.nodes() if node.get("Alive")) < n:
        time.sleep(0.1)


def _start_driver(args: list[str], env: dict, output: Path) -> subprocess.Popen:
    """A driver process in its own session (so ``_kill_group`` reaches its Ray), its stdout and
    stderr in ``output`` (``_printed`` shows them when it fails)."""
    with open(output, "wb") as out:
        return subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _printed(output: Path) -> str:
    """The end of what a driver started by ``_start_driver`` printed."""
    return output.read_text(errors="replace")[-4000:]


def _kill_group(proc) -> None:
    """SIGKILL a driver started with ``start_new_session`` and what its Ray left behind (its
    process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _checkpoints(experiment: Path, trial_id: str) -> list[Path]:
    return sorted(experiment.glob(f"{trial_id}_*/checkpoint_*"))


# ---- a trial whose reward becomes NaN ---------------------------------------------------------


def _poisoned(seed: int, after: int, log: str):
    """A trainable that logs each start and, for the trial with ``seed``, makes every training
    reward NaN after ``after`` scoring calls (inside the worker process)."""
    from pinbench.methods.rl.trainer import RLMethod
    from pinbench.sweep import resolve_params, run_trial

    def trainable(params):
        config = resolve_params(params)["config"]
        with open(log, "a") as f:
            f.write(f"{config['run.seed']}\n")
        if config["run.seed"] == seed:
            original, calls = RLMethod.train_rewards, []

            def train_rewards(self, texts):
                draws, groups = original(self, texts)
                calls.append(1)
                return (draws * float("nan") if len(calls) > after else draws), groups

            RLMethod.train_rewards = train_rewards
        run_trial(params)

    return trainable


@pytest.mark.slow
def test_a_nan_trial_fails_at_once_naming_step_and_quantity_and_the_others_complete(tiny_setup, tmp_path):
    import ray

    from pinbench.sweep import run_sweep

    _ray_fresh()
    _register_by_value()
    suite = load_suite(_long_suite(tmp_path, tiny_setup, steps=8))
    log = tmp_path / "starts.log"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        # max_failures=2: a crash would be retried; a NaN is not (the same seed fails the same way)
        run_sweep(suite, results_dir=tmp_path / "results", verbose=0, max_failures=2,
                  trainable=_poisoned(seed=1, after=3, log=str(log)))
    finally:
        ray.shutdown()
    trials = pd.read_parquet(tmp_path / "results" / "tiny" / "trials.parquet").set_index("run.seed")
    assert len(trials) == 2
    assert trials.loc[0, "status"] == "completed" and trials.loc[0, "steps"] == 8
    assert trials.loc[1, "status"] == "failed"
    assert trials.loc[1, "error"].startswith("step 4: reward_mean is nan")
    assert trials.loc[1, "steps"] == 4
    history = pd.read_parquet(tmp_path / "results" / "tiny" / "history.parquet")
    failed = history[history["trial_id"] == trials.loc[1, "trial_id"]]
    assert failed["step"].tolist() == [1, 2, 3, 4]  # what it computed before the NaN is kept
    assert sorted(log.read_text().split()) == ["0", "1"]  # each trial started once: no retry


def test_train_with_a_nan_reward_writes_what_it_computed_as_failed(tiny_setup, tmp_path, capsys, monkeypatch):
    from pinbench.cli import main
    from pinbench.methods.rl.trainer import RLMethod

    original, calls = RLMethod.train_rewards, []

    def train_rewards(self, texts):
        draws, groups = original(self, texts)
        calls.append(1)
        return (draws * float("nan") if len(calls) > 2 else draws), groups

    monkeypatch.setattr(RLMethod, "train_rewards", train_rewards)
    out = tmp_path / "run"
    code = main(train_argv(tiny_setup, out, steps=6))
    assert code == 1
    assert "error: step 3: reward_mean is nan" in capsys.readouterr().out
    trials = pd.read_parquet(out / "trials.parquet")
    assert trials.loc[0, "status"] == "failed" and trials.loc[0, "steps"] == 3
    assert trials.loc[0, "error"].startswith("step 3: reward_mean is nan")
    assert pd.read_parquet(out / "history.parquet")["step"].tolist() == [1, 2, 3]


def test_train_that_runs_out_of_memory_or_crashes_midway_writes_what_it_computed(tiny_setup, tmp_path, capsys,
                                                                                 monkeypatch):
    """An allocation that fails at step 3 (a size setting the machine cannot hold) and a bug that
    raises at step 3: either way --out holds steps 1-2 as a failed run. The first is one line
    naming the size; the second keeps its traceback, for the bug report."""
    from pinbench.cli import main
    from pinbench.methods.rl.trainer import RLMethod

    original, calls, error = RLMethod.train_rewards, [], []

    def train_rewards(self, texts):
        calls.append(1)
        if len(calls) == 3:
            raise error[0]
        return original(self, texts)

    monkeypatch.setattr(RLMethod, "train_rewards", train_rewards)
    error.append(RuntimeError("[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate "
                              "memory: you tried to allocate 4000000000000 bytes. Error code 12"))
    assert main(train_argv(tiny_setup, tmp_path / "oom", steps=6)) == 1
    assert "error: out of memory allocating 4,000,000,000,000 bytes: a size setting" in capsys.readouterr().out
    calls.clear()
    error[0] = ValueError("a bug at step 3")
    with pytest.raises(ValueError, match="a bug at step 3"):
        main(train_argv(tiny_setup, tmp_path / "bug", steps=6))
    for out, message in ((tmp_path / "oom", "out of memory allocating 4,000,000,000,000 bytes"),
                         (tmp_path / "bug", "a bug at step 3")):
        trials = pd.read_parquet(out / "trials.parquet")
        assert trials.loc[0, "status"] == "failed" and trials.loc[0, "steps"] == 2
        assert trials.loc[0, "error"].startswith(message)
        assert pd.read_parquet(out / "history.parquet")["step"].tolist() == [1, 2]


def test_a_diverged_q_network_fails_the_run_naming_the_cause_and_keeps_the_steps_done(tiny_setup, tmp_path, capsys,
                                                                                      monkeypatch):
    """Q values that become NaN while prompts are sampled (an lr or alpha too large for the run):
    the run stops with an error naming the Q values and the settings to lower, and --out holds the
    steps done (status failed), not a traceback from sparsemax."""
    from pinbench.cli import main
    from pinbench.methods.rl.policy import QPolicy as Policy

    original, calls = Policy.q_values, []

    def q_values(self, *args, **kwargs):
        q = original(self, *args, **kwargs)
        calls.append(1)
        return q * float("nan") if len(calls) > 3 * 5 else q  # from the 4th rollout of 5 tokens on

    monkeypatch.setattr(Policy, "q_values", q_values)
    out = tmp_path / "run"
    code = main(train_argv(tiny_setup, out, steps=6))
    printed = capsys.readouterr().out
    assert code == 1
    assert "Q values became non-finite" in printed and "lower method.lr or method.alpha" in printed
    trials = pd.read_parquet(out / "trials.parquet")
    assert trials.loc[0, "status"] == "failed" and "Q values became non-finite" in trials.loc[0, "error"]
    assert trials.loc[0, "steps"] >= 1 and len(pd.read_parquet(out / "history.parquet")) == trials.loc[0, "steps"]


# ---- a worker node lost while its trial runs ---------------------------------------------------


@pytest.mark.slow
def test_a_lost_worker_nodes_trial_continues_from_its_checkpoint_on_another_node(one_cluster_at_a_time, tiny_setup,
                                                                                 tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from pinbench.sweep import run_sweep

    _ray_fresh()
    # the head runs the driver only; trials need a worker node (one CPU: one trial at a time)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    first = cluster.add_node(num_cpus=1)
    suite = load_suite(_long_suite(tmp_path, tiny_setup, steps=40))
    experiment = tmp_path / "results" / "_ray" / "tiny"
    victim = suite.trials()[0].trial_id  # the grid's first trial runs first
    removed, outcome = {}, {}

    def sweep():  # in a thread: Ray's Cluster adds nodes from the main thread only (signals)
        try:
            run_sweep(suite, results_dir=tmp_path / "results", verbose=0, max_failures=1, checkpoint_every_s=0)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread below
            outcome["error"] = exc

    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        _wait_for_alive_nodes(2)
        runner = threading.Thread(target=sweep, daemon=True)
        runner.start()
        # a second checkpoint on disk: the driver has registered the first (the retry's start)
        while not any(p.name != "checkpoint_000000" for p in _checkpoints(experiment, victim)):
            if not runner.is_alive():
                break  # the trial ended first: the assertion below reports it
            time.sleep(0.05)
        else:
            removed["at"] = [p.name for p in _checkpoints(experiment, victim)]
            cluster.remove_node(first, allow_graceful=False)
            cluster.add_node(num_cpus=1)
        runner.join()
        if "error" in outcome:
            raise outcome["error"]
    finally:
        ray.shutdown()
        cluster.shutdown()
    assert removed.get("at"), "the node was never removed"
    store = tmp_path / "results" / "tiny"
    trials = pd.read_parquet(store / "trials.parquet").set_index("trial_id")
    assert sorted(trials.index) == sorted(t.trial_id for t in suite.trials())  # none lost, none twice
    assert (trials["status"] == "completed").all() and (trials["steps"] == 40).all()
    resumed = list(trials.loc[victim, "resumed_at"])
    assert len(resumed) == 1 and 0 < resumed[0] < 40, resumed  # continued, not started over
    assert trials.loc[victim, "node_id"] != first.node_id
    history = pd.read_parquet(store / "history.parquet")
    assert history[history["trial_id"] == victim]["step"].tolist() == list(range(1, 41))
    # the continued trial made the prompts an uninterrupted run makes
    trial = next(t for t in suite.trials() if t.trial_id == victim)
    assert _prompts_of(store, victim) == _uninterrupted(trial)


# ---- the driver killed with SIGKILL, then --resume -------------------------------------------

DRIVER = """\
import sys
from pinbench.suite import load_suite
from pinbench.sweep import resolve_params, run_sweep, run_trial

LOG = sys.argv[3]  # read here: in the worker process, sys.argv is the worker's


def counted(params):
    import time
    from pinbench.methods.base import Method

    with open(LOG, "a") as f:
        f.write(resolve_params(params)["trial_id"] + "\\n")
    # the trial to kill runs long enough for Tune to snapshot it meanwhile (after --resume it need not)
    if resolve_params(params)["config"]["run.seed"] == 1 and "--resume" not in sys.argv:
        step = Method.step
        Method.step = lambda self: time.sleep(0.4) or step(self)
    run_trial(params)

run_sweep(load_suite(sys.argv[1]), results_dir=sys.argv[2], verbose=0, num_cpus=1, checkpoint_every_s=0,
          resume="--resume" in sys.argv, trainable=counted)
"""


def _state_after(experiment: Path, path: Path, *files: str) -> bool:
    """Tune's experiment state (and each of ``files``, such as the searcher's state, which Tune
    copies into storage one file after another) was written after ``path`` appeared, so the
    snapshot knows that checkpoint."""
    for pattern in ("experiment_state-*.json", *files):
        written = [s.stat().st_mtime for s in experiment.glob(pattern)]
        if not written or max(written) <= path.stat().st_mtime:
            return False
    return True


@pytest.mark.slow
def test_a_sigkilled_driver_resumes_without_rerunning_finished_trials(tiny_setup, tmp_path):
    _ray_fresh()
    suite_file = _long_suite(tmp_path, tiny_setup, seeds="[0, 1]", steps=30, extra="max_concurrent: 1\n")
    suite = load_suite(suite_file)
    ids = [t.trial_id for t in suite.trials()]
    results, log = tmp_path / "results", tmp_path / "starts.log"
    store, experiment = results / "tiny" / "trials.parquet", results / "_ray" / "tiny"
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    args = [sys.executable, str(script), str(suite_file), str(results), str(log)]
    first, resumed = tmp_path / "driver.out", tmp_path / "resumed.out"
    proc = _start_driver(args, env, first)
    try:
        running = None
        # wait on files: the first trial in the store, the second past its first checkpoint, and
        # Tune's experiment state saved after that checkpoint (so the restore knows it)
        while True:
            assert proc.poll() is None, "the sweep ended before it could be killed:\n" + _printed(first)
            if store.exists() and log.exists():
                started = log.read_text().split()
                running = started[-1] if len(started) >= 2 else None
                later = [p for p in _checkpoints(experiment, running) if p.name != "checkpoint_000000"] if running else []
                if later and _state_after(experiment, later[-1]):
                    break
            time.sleep(0.05)
        proc.kill()  # SIGKILL: the driver only
        proc.wait()
    finally:  # what the killed driver's Ray left behind (its agents outlive it)
        _kill_group(proc)
    before = pd.read_parquet(store)
    assert len(before) == 1 and running not in set(before["trial_id"])
    proc = _start_driver([*args, "--resume"], env, resumed)
    try:
        assert proc.wait() == 0, _printed(resumed)
    finally:
        _kill_group(proc)
    after = pd.read_parquet(store).set_index("trial_id")
    assert sorted(after.index) == sorted(ids) and (after["status"] == "completed").all()  # one row each
    starts = log.read_text().split()
    assert {i: starts.count(i) for i in ids} == {i: 2 if i == running else 1 for i in ids}  # finished: not rerun
    finished = before["trial_id"].iloc[0]
    assert after.loc[finished, "wall_time_s"] == before["wall_time_s"].iloc[0]
    resumed = list(after.loc[running, "resumed_at"])
    assert len(resumed) == 1 and 0 < resumed[0] < 30
    history = pd.read_parquet(results / "tiny" / "history.parquet")
    assert history[history["trial_id"] == running]["step"].tolist() == list(range(1, 31))
    trial = next(t for t in suite.trials() if t.trial_id == running)
    assert _prompts_of(results / "tiny", running) == _uninterrupted(trial)


# ---- an Optuna search: the driver killed, then --resume ---------------------------------------

SEARCH_DRIVER = """\
import sys
import time
from pinbench.suite import load_suite
from pinbench.sweep import resolve_params, run_sweep, run_trial

LOG, HANG = sys.argv[3], sys.argv[4]  # HANG: the start (1, 2, ...) that never ends ('': none)


def logged(params):
    p = resolve_params(params)
    with open(LOG, "a") as f:
        f.write(p["trial_id"] + " " + repr(sorted(p["point"].items())) + "\\n")
    with open(LOG) as f:
        starts = len(f.read().splitlines())
    if HANG and starts == int(HANG):
        open(LOG + ".hung", "w").close()
        time.sleep(10**6)  # the driver is killed while this trial runs
    run_trial(params)

run_sweep(load_suite(sys.argv[1]), results_dir=sys.argv[2], verbose=0, num_cpus=1,
          resume="--resume" in sys.argv, trainable=logged)
"""


def _uninterrupted_search(suite, results) -> list[str]:
    """The points the suite's search asks for when nothing stops it and its trials end, one after
    another, with ``results`` (their search metric, in order): the searcher a sweep of the suite
    builds (``tune_setup``), driven here as Tune drives it, one trial at a time, without Ray. Each
    point is written as the drivers log it."""
    from pinbench.sweep import tune_setup

    space, kwargs = tune_setup(suite)
    searcher = kwargs["search_alg"]
    assert searcher.set_search_properties(kwargs["metric"], kwargs["mode"], space)
    points = []
    for i, result in enumerate(results):
        config = {**space, **searcher.suggest(f"reference-{i}")}
        points.append(repr(sorted(resolve_params(config)["point"].items())))
        searcher.on_trial_complete(f"reference-{i}", {kwargs["metric"]: float(result)})
    return points


def _points(log: Path) -> list[str]:
    """The sampled points in the order they were first started."""
    seen = []
    for line in log.read_text().splitlines():
        point = line.split(" ", 1)[1]
        if point not in seen:
            seen.append(point)
    return seen


@pytest.mark.slow
def test_a_killed_optuna_search_resumes_the_same_study(tiny_setup, tmp_path):
    """Two samples finish, the third is running when the driver is SIGKILLed; --resume continues
    the study: the third is rerun, a fourth is asked of the restored sampler, and the points are
    exactly those of an uninterrupted search with the same seed (a new sampler would repeat the
    first ones; a sampler without its history would ask other ones)."""
    _ray_fresh()
    model_dir, spec = tiny_setup
    suite_file = write_suite(tmp_path / "tiny.yaml", model_dir, spec, grid="{}", extra=textwrap.dedent("""\
        max_concurrent: 1
        search:
          num_samples: 4
          seed: 3
          space:
            alpha: {type: loguniform, low: 0.1, high: 10.0}
            top_k: {type: choice, values: [5, 10, 20]}
        """))
    script = tmp_path / "driver.py"
    script.write_text(SEARCH_DRIVER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}

    def driver(results: Path, log: Path, hang: str, output: Path, *extra: str) -> subprocess.Popen:
        return _start_driver([sys.executable, str(script), str(suite_file), str(results), str(log), hang, *extra],
                             env, output)

    results, log = tmp_path / "results", tmp_path / "starts.log"
    store, experiment = results / "tiny" / "trials.parquet", results / "_ray" / "tiny"
    hung = Path(f"{log}.hung")
    outputs = {name: tmp_path / f"{name}.out" for name in ("interrupted", "resumed")}
    proc = driver(results, log, "3", outputs["interrupted"])
    try:
        # wait (on files, no deadline) until the third trial hangs and Tune's state, the searcher's
        # included, was saved after that: the snapshot knows two finished trials and a running one
        while not (hung.exists() and _state_after(experiment, hung, "searcher-state-*.pkl")):
            ended = "the sweep ended before it could be killed:\n"
            assert proc.poll() is None, ended + _printed(outputs["interrupted"])
            time.sleep(0.1)
    finally:
        _kill_group(proc)
    before = pd.read_parquet(store)
    assert len(before) == 2 and (before["status"] == "completed").all()

    proc = driver(results, log, "", outputs["resumed"], "--resume")
    try:
        assert proc.wait() == 0, _printed(outputs["resumed"])
    finally:
        _kill_group(proc)

    after = pd.read_parquet(store).set_index("trial_id")
    assert len(after) == 4 and (after["status"] == "completed").all()  # one row per sample
    starts = [line.split(" ", 1)[0] for line in log.read_text().splitlines()]
    third = starts[2]
    assert {i: starts.count(i) for i in after.index} == {i: 2 if i == third else 1 for i in after.index}
    assert after.loc[before["trial_id"], "wall_time_s"].tolist() == before["wall_time_s"].tolist()  # not rerun
    # the same study: no repeated or other samples than the uninterrupted search asks for
    finished = list(dict.fromkeys(starts))
    assert _points(log) == _uninterrupted_search(load_suite(suite_file), after.loc[finished, "dev_accuracy"])
    assert len(set(_points(log))) == 4


# ---- the driver killed while it rewrites the store --------------------------------------------

WRITER = """\
import os
import sys
import time
from pathlib import Path

from pinbench import io
from pinbench.results import ResultsStore

root, finished, cut, marker = sys.argv[1:5]  # finished: a trial's checkpoint, written before the fault
parquet = io._TABLE_WRITERS[".parquet"]


def write_half_then_hang(frame, path):
    parquet(frame, path)
    if os.path.basename(str(path)).startswith(f".{cut}.parquet."):
        data = open(path, "rb").read()
        with open(path, "wb") as f:  # half of the new file is on disk when the kill comes
            f.write(data[: len(data) // 2])
            f.flush()
            os.fsync(f.fileno())
        open(marker, "w").close()
        time.sleep(10**6)


io._TABLE_WRITERS[".parquet"] = write_half_then_hang
ResultsStore(root, "s").add_completed(Path(finished))
"""


@pytest.mark.slow
@pytest.mark.parametrize("cut", ["history", "trials"])  # the first table written, and the last
def test_a_driver_killed_mid_write_leaves_the_previous_store_intact(cut, tmp_path):
    from pinbench.analysis import load_results
    from pinbench.results import ResultsStore
    from test_storage import checkpoint_dir, fill

    root = tmp_path / "results"
    fill(ResultsStore(root, "s"), tmp_path)  # t0 completed, t1 failed
    files = {p.name: p.read_bytes() for p in (root / "s").glob("*.parquet")}
    script, marker = tmp_path / "writer.py", tmp_path / "cut"
    script.write_text(WRITER)
    finished = checkpoint_dir(tmp_path / "finished", "t2", 2)  # here: the writer imports no test module
    proc = subprocess.Popen([sys.executable, str(script), str(root), str(finished), cut, str(marker)],
                            start_new_session=True)
    try:
        while not marker.exists():  # the writer is inside its write of `cut`
            assert proc.poll() is None, "the writer ended before it could be killed"
            time.sleep(0.05)
    finally:
        _kill_group(proc)
    assert proc.returncode == -signal.SIGKILL
    directory = root / "s"
    stale = list(directory.glob(f".{cut}.parquet.*.tmp"))
    assert len(stale) == 1  # the half-written file never replaced the table
    assert (directory / f"{cut}.parquet").read_bytes() == files[f"{cut}.parquet"]
    # readers start from trials.parquet, written last: they see exactly the previous trials
    assert sorted(load_results(directory).trials["trial_id"]) == ["t0", "t1"]
    store = ResultsStore(root, "s")
    assert store.completed() == {"t0"} and sorted(store.table("trials")["trial_id"]) == ["t0", "t1"]
    # the next writer removes the leftover and completes the store
    store.add_completed(checkpoint_dir(tmp_path / "again", "t2", 2))
    assert not stale[0].exists()
    assert sorted(load_results(directory).trials["trial_id"]) == ["t0", "t1", "t2"]


def test_every_guarantee_names_tests_that_exist():
    """The "Guarantees" table (docs/guarantees.md, linked from the README) ties each line to tests:
    those tests must exist (a renamed or deleted test would leave a guarantee that nothing checks)."""
    import ast
    import re

    page = (TESTS.parent / "docs" / "guarantees.md").read_text(encoding="utf-8")
    section = page[page.index("\n## Guarantees\n"):]
    end = section.find("\n## ", 1)
    section = section if end < 0 else section[:end]
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| fault")]
    assert len(rows) >= 10
    named = 0
    for row in rows:
        module = None
        refs = re.findall(r"`(tests/[\w/]+\.py)?(?:::)?(test_\w+)`", row.split("|")[3]) or []
        assert refs or "Bad input" in row, row
        for path, name in refs:
            module = path or module
            tree = ast.parse((TESTS.parent / module).read_text(encoding="utf-8"))
            assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, f"{module}::{name}"
            named += 1
    assert named >= 15
