"""Faults injected into sweeps, and what survives them (README: "Guarantees").

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

from pinbench.suite import load_suite
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


def _checkpoints(experiment: Path, trial_id: str) -> list[Path]:
    return sorted(experiment.glob(f"{trial_id}_*/checkpoint_*"))


# ---- a trial whose reward becomes NaN ---------------------------------------------------------


def _poisoned(seed: int, after: int, log: str):
    """A trainable that logs each start and, for the trial with ``seed``, makes every training
    reward NaN after ``after`` scoring calls (inside the worker process)."""
    from pinbench.methods.rl.trainer import Trainer
    from pinbench.sweep import resolve_params, run_trial

    def trainable(params):
        config = resolve_params(params)["config"]
        with open(log, "a") as f:
            f.write(f"{config['run.seed']}\n")
        if config["run.seed"] == seed:
            original, calls = Trainer.train_rewards, []

            def train_rewards(self, texts):
                draws, groups = original(self, texts)
                calls.append(1)
                return (draws * float("nan") if len(calls) > after else draws), groups

            Trainer.train_rewards = train_rewards
        run_trial(params)

    return trainable


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


# ---- a worker node lost while its trial runs ---------------------------------------------------


@pytest.mark.slow
def test_a_lost_worker_nodes_trial_continues_from_its_checkpoint_on_another_node(tiny_setup, tmp_path):
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
    removed = {}

    def remove_the_node_mid_trial():
        deadline = time.time() + 300
        # a second checkpoint on disk: the driver has registered the first (the retry's start)
        while time.time() < deadline and not any(p.name != "checkpoint_000000" for p in _checkpoints(experiment, victim)):
            time.sleep(0.05)
        removed["at"] = [p.name for p in _checkpoints(experiment, victim)]
        cluster.remove_node(first, allow_graceful=False)
        cluster.add_node(num_cpus=1)

    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        cluster.wait_for_nodes()
        killer = threading.Thread(target=remove_the_node_mid_trial, daemon=True)
        killer.start()
        run_sweep(suite, results_dir=tmp_path / "results", verbose=0, max_failures=1, checkpoint_every_s=0,
                  check_data=True)
        killer.join(timeout=5)
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
    if resolve_params(params)["config"]["run.seed"] == 1:  # the trial to kill runs long enough
        step = Method.step                                  # for Tune to snapshot it meanwhile
        Method.step = lambda self: time.sleep(0.4) or step(self)
    run_trial(params)

run_sweep(load_suite(sys.argv[1]), results_dir=sys.argv[2], verbose=0, num_cpus=1, checkpoint_every_s=0,
          resume="--resume" in sys.argv, trainable=counted)
"""


def _state_after(experiment: Path, path: Path) -> bool:
    """Tune's experiment state was written after ``path`` appeared (so it knows that checkpoint)."""
    states = list(experiment.glob("experiment_state-*.json"))
    return bool(states) and max(s.stat().st_mtime for s in states) > path.stat().st_mtime


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
    t0 = time.time()
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline, running = time.time() + 300, None
        while time.time() < deadline and proc.poll() is None:
            if store.exists() and log.exists():
                started = log.read_text().split()
                running = started[-1] if len(started) >= 2 else None
                later = [p for p in _checkpoints(experiment, running) if p.name != "checkpoint_000000"] if running else []
                if later and _state_after(experiment, later[-1]):
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        proc.kill()  # SIGKILL: the driver only
        proc.wait(timeout=60)
    finally:  # what the killed driver's Ray left behind (its agents outlive it)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    print("killed at", time.time() - t0)
    before = pd.read_parquet(store)
    assert len(before) == 1 and running not in set(before["trial_id"])
    subprocess.run([*args, "--resume"], env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=600)
    print("resumed at", time.time() - t0)
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
