"""Sweeps on a local Ray with tiny models (the models are saved as local directories)."""

import textwrap

import pandas as pd
import pytest

from pinbench.errors import ConfigError
from pinbench.suite import load_suite, parse_suite


def write_suite(path, model_dir, spec, grid="seed: [0, 1]", extra=""):
    path.write_text(textwrap.dedent(f"""\
        name: tiny
        base:
          preset: pin
          dataset: toy
          dataset_file: {spec}
          split_seed: 5
          policy_lm: {model_dir}
          task_lm: {model_dir}
          top_k: 20
          mlp_hidden: 16
          replay_batch: 8
          steps: 4
          eval_every: 2
        grid:
          {grid}
        resources: {{cpu: 1, gpu: 0}}
        """) + extra)
    return path


# ---- validation (no Ray) --------------------------------------------------------------------

BASE = {"name": "s", "base": {"dataset": "sst-2"}}


@pytest.mark.parametrize("raw, message", [
    ({**BASE, "gird": {}}, r"unknown key\(s\) \['gird'\]"),
    ({**BASE, "base": {"alpah": 1.0}}, "base: unknown key 'alpah'"),
    ({**BASE, "base": {"steps": "many"}}, r"base.steps: expected int, got 'many'"),
    ({**BASE, "grid": {"alpha": ["high"]}}, r"grid.alpha: expected float, got 'high'"),
    ({**BASE, "grid": {"regularizer": ["shannon", "mode2"]}}, "config 'regularizer' = 'mode2' is invalid"),
    ({**BASE, "grid": {"seed": []}}, r"grid.seed: an empty list makes zero trials"),
    ({**BASE, "grid": {"seed": 3}}, r"grid.seed: expected a list of values"),
    ({**BASE, "grid": {"preset": ["pin", "pim"]}}, r"unknown preset 'pim'"),
    ({**BASE, "resources": {"gpus": 1}}, r"resources: unknown key\(s\) \['gpus'\]"),
    ({**BASE, "max_concurrent": 0}, "max_concurrent: expected an integer >= 1"),
    ({**BASE, "search": {"space": {"alpha": {"type": "gaussian"}}}}, r"search.space.alpha.type"),
    ({**BASE, "scheduler": {"type": "pbt"}}, r"scheduler.type: only 'asha'"),
    ({"base": {}}, "'name' must be a non-empty string"),
])
def test_suite_errors_name_the_key_and_file(raw, message):
    with pytest.raises(ConfigError, match=message) as info:
        parse_suite(raw, "suites/broken.yaml")
    assert "suites/broken.yaml" in str(info.value)


def test_grid_expands_to_the_product_with_presets_first():
    suite = parse_suite({"name": "g", "base": {"dataset": "mr", "steps": 50, "alpha": 3.0},
                         "grid": {"preset": ["pin", "rlprompt"], "seed": [0, 1, 2]}})
    trials = suite.trials()
    assert len(trials) == 6
    assert len({t.trial_id for t in trials}) == 6
    by_point = {(t.point["preset"], t.point["seed"]): t.config for t in trials}
    assert by_point[("rlprompt", 2)].regularizer == "shannon" and by_point[("rlprompt", 2)].seed == 2
    assert by_point[("pin", 0)].objective == "mc"
    # base settings override the preset; grid values override both
    assert all(t.config.alpha == 3.0 and t.config.steps == 50 and t.config.dataset == "mr" for t in trials)
    # ids are stable across loads (resume relies on this)
    assert [t.trial_id for t in suite.trials()] == [t.trial_id for t in trials]


def test_missing_suite_file():
    with pytest.raises(ConfigError, match="suite file 'nope.yaml' does not exist"):
        load_suite("nope.yaml")


@pytest.mark.parametrize("name", ["quickstart", "paper-fsc", "tsallis-ablation"])
def test_shipped_suites_validate(name):
    from conftest import REPO

    suite = load_suite(REPO / "suites" / f"{name}.yaml", {"data_dir": "/data"})
    assert suite.trials()


# ---- Ray ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_two_trial_sweep_writes_the_store(ray_local, tiny_setup, tmp_path):
    from pinbench.sweep import run_sweep

    model_dir, spec = tiny_setup
    suite = load_suite(write_suite(tmp_path / "tiny.yaml", model_dir, spec))
    run_sweep(suite, results_dir=tmp_path / "results", verbose=0)
    store = tmp_path / "results" / "tiny"
    trials = pd.read_parquet(store / "trials.parquet")
    history = pd.read_parquet(store / "history.parquet")
    prompts = pd.read_parquet(store / "prompts.parquet")
    assert sorted(trials["trial_id"]) == sorted(t.trial_id for t in suite.trials())
    assert (trials["status"] == "completed").all()
    assert sorted(trials["config.seed"]) == [0, 1]
    assert {"best_prompt", "best_token_ids", "dev_accuracy", "test_accuracy", "wall_time_s"} <= set(trials.columns)
    assert (trials["suite"] == "tiny").all()
    assert (trials["wall_time_s"] > 0).all() and (trials["steps"] == 4).all()
    assert history.groupby("trial_id")["step"].apply(list).tolist() == [[1, 2, 3, 4]] * 2
    assert (prompts.groupby("trial_id")["source"].apply(lambda s: (s == "best").sum()) == 1).all()


def _fail_first_attempt_of(trial_seed, marker_dir):
    """A trainable that crashes the first attempt of the trial with ``seed == trial_seed``."""
    from pathlib import Path

    from pinbench.sweep import run_trial

    def trainable(params):
        config = params["trial"]["config"]
        marker = Path(marker_dir) / f"attempt-{config['seed']}"
        if config["seed"] == trial_seed and not marker.exists():
            marker.touch()
            raise RuntimeError("transient failure on the first attempt")
        run_trial(params)

    return trainable


def test_crashed_trial_is_retried_under_max_failures(ray_local, tiny_setup, tmp_path):
    import cloudpickle

    from pinbench.sweep import run_sweep

    cloudpickle.register_pickle_by_value(__import__(__name__))
    model_dir, spec = tiny_setup
    suite = load_suite(write_suite(tmp_path / "tiny.yaml", model_dir, spec))
    run_sweep(suite, results_dir=tmp_path / "results", verbose=0, max_failures=1,
              trainable=_fail_first_attempt_of(1, tmp_path))
    trials = pd.read_parquet(tmp_path / "results" / "tiny" / "trials.parquet")
    assert (tmp_path / "attempt-1").exists()  # the failure happened ...
    assert (trials["status"] == "completed").all() and len(trials) == 2  # ... and the retry finished


def test_a_trial_that_keeps_failing_is_recorded_while_others_complete(ray_local, tiny_setup, tmp_path):
    from pinbench.sweep import run_sweep

    model_dir, spec = tiny_setup
    # split seed 6 has no files: that trial raises on every attempt
    suite = load_suite(write_suite(tmp_path / "tiny.yaml", model_dir, spec, grid="split_seed: [5, 6]"))
    run_sweep(suite, results_dir=tmp_path / "results", verbose=0, max_failures=1)
    trials = pd.read_parquet(tmp_path / "results" / "tiny" / "trials.parquet").set_index("config.split_seed")
    assert trials.loc[5, "status"] == "completed"
    assert trials.loc[6, "status"] == "failed"
    assert "toy/16-6/train.tsv' does not exist" in trials.loc[6, "error"]


def test_optuna_search_runs_the_asked_number_of_samples(ray_local, tiny_setup, tmp_path):
    from pinbench.sweep import run_sweep

    model_dir, spec = tiny_setup
    path = write_suite(tmp_path / "tiny.yaml", model_dir, spec, grid="{}", extra=textwrap.dedent("""\
        search:
          num_samples: 3
          seed: 0
          space:
            alpha: {type: loguniform, low: 0.1, high: 10.0}
            top_k: {type: choice, values: [5, 20]}
        """))
    suite = load_suite(path)
    run_sweep(suite, results_dir=tmp_path / "results", verbose=0)
    trials = pd.read_parquet(tmp_path / "results" / "tiny" / "trials.parquet")
    assert len(trials) == 3 and (trials["status"] == "completed").all()
    assert trials["config.alpha"].between(0.1, 10.0).all() and set(trials["config.top_k"]) <= {5, 20}
    assert trials["config.alpha"].nunique() == 3


def test_interrupted_sweep_resumes_without_rerunning_finished_trials(tiny_setup, tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from pinbench.sweep import run_sweep

    model_dir, spec = tiny_setup
    suite_file = write_suite(tmp_path / "tiny.yaml", model_dir, spec, grid="seed: [0, 1, 2]",
                             extra="max_concurrent: 1\n")
    suite_file.write_text(suite_file.read_text().replace("steps: 4", "steps: 30"))
    results = tmp_path / "results"
    store = results / "tiny" / "trials.parquet"
    proc = subprocess.Popen([sys.executable, "-m", "pinbench.cli", "sweep", str(suite_file), "--results", str(results),
                             "--num-cpus", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not store.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.5)
    assert store.exists(), "no trial finished before the deadline"
    proc.send_signal(signal.SIGINT)  # Ctrl-C while the next trial runs
    proc.wait(timeout=120)
    before = pd.read_parquet(store)
    assert 1 <= len(before) < 3
    import ray

    if ray.is_initialized():
        ray.shutdown()
    run_sweep(load_suite(suite_file), results_dir=results, resume=True, verbose=0, num_cpus=2)
    ray.shutdown()
    after = pd.read_parquet(store)
    assert sorted(after["trial_id"]) == sorted(t.trial_id for t in load_suite(suite_file).trials())
    assert (after["status"] == "completed").all()
    kept = after.set_index("trial_id").loc[before["trial_id"]]
    # finished trials were not rerun: their rows (wall time included) are unchanged
    assert kept["wall_time_s"].tolist() == before["wall_time_s"].tolist()
    history = pd.read_parquet(results / "tiny" / "history.parquet")
    assert (history.groupby("trial_id")["step"].apply(list).map(lambda s: s == list(range(1, 31)))).all()
