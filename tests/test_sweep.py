"""Sweeps on a local Ray with tiny models (the models are saved as local directories)."""

import glob
import os
import importlib.util
import pickle
import re
import struct
import textwrap
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from pinbench.cli import main
from pinbench.errors import ConfigError
from pinbench.console import varying_axes
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
    ({**BASE, "base": {"alpah": 1.0}}, r"base: unknown key 'alpah'; run: seed, .*; task 'classification': "
                                        r"dataset, .*; method 'rl': policy_lm, "),
    ({**BASE, "base": {"method.alpah": 1.0}}, "base: unknown key 'method.alpah': the fields of method 'rl' are"),
    ({**BASE, "base": {"model.alpha": 1.0}}, "base: unknown key 'model.alpha': sections are run, task, method"),
    ({**BASE, "base": {"task": "poetry"}}, "unknown task 'poetry'; known: classification"),
    ({**BASE, "base": {"steps": "many"}}, r"base: run.steps: expected int, got 'many'"),
    ({**BASE, "grid": {"alpha": ["high"]}}, r"trial \{'alpha': 'high'\}: method.alpha: expected float, got 'high'"),
    ({**BASE, "grid": {"regularizer": ["shannon", "mode2"]}}, "method 'rl': 'regularizer' = 'mode2' is invalid"),
    ({**BASE, "plugins": ["no_such_plugin_module"]}, "plug-in module 'no_such_plugin_module' cannot be imported"),
    ({**BASE, "grid": {"seed": []}}, r"grid.seed: an empty list makes zero trials"),
    ({**BASE, "grid": {"seed": 3}}, r"grid.seed: expected a list of values"),
    ({**BASE, "grid": {"preset": ["pin", "pim"]}}, r"unknown preset 'pim'"),
    ({**BASE, "grid": []}, r"grid: an empty list of blocks makes zero trials"),
    ({**BASE, "grid": [{"seed": [0]}, {"seed": []}]}, r"grid\[1\].seed: an empty list makes zero trials"),
    ({**BASE, "grid": [{"seed": [0, 1]}, {"run.seed": [1]}]},
     r"grid points \{'seed': 1\} and \{'run.seed': 1\} make the same trial"),
    ({**BASE, "grid": [{"preset": ["pin"], "top_k": [5]}, {"preset": ["pez"], "top_k": [5]}]},
     r"trial \{'preset': 'pez', 'top_k': 5\}: unknown key 'top_k'"),
    ({**BASE, "resources": {"gpus": 1}}, r"resources: unknown key\(s\) \['gpus'\]"),
    ({**BASE, "max_concurrent": 0}, "max_concurrent: expected an integer >= 1"),
    ({**BASE, "search": {"space": {"alpha": {"type": "gaussian"}}}}, r"search.space.alpha.type"),
    ({**BASE, "search": {"space": {"method.alhpa": {"type": "uniform", "low": 0, "high": 1}}}},
     r"search.space: unknown key 'method.alhpa'"),
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
    by_point = {(t.point["preset"], t.point["seed"]): t.spec for t in trials}
    assert by_point[("rlprompt", 2)].method_config.regularizer == "shannon" and by_point[("rlprompt", 2)].run.seed == 2
    assert by_point[("pin", 0)].method_config.objective == "mc"
    # base settings override the preset; grid values override both
    assert all(t.spec.method_config.alpha == 3.0 and t.spec.run.steps == 50 and t.spec.task_config.dataset == "mr"
               for t in trials)
    # ids are stable across loads (resume relies on this)
    assert [t.trial_id for t in suite.trials()] == [t.trial_id for t in trials]


def test_a_list_of_grid_blocks_is_the_union_of_their_products():
    suite = parse_suite({"name": "u", "base": {"dataset": "mr"}, "grid": [
        {"preset": ["pin"], "top_k": [100, 1000], "seed": [0, 1]},
        {"preset": ["pez"], "seed": [0, 1, 2]}]})
    points = [t.point for t in suite.trials()]
    assert len(points) == 4 + 3
    assert points[:2] == [{"preset": "pin", "top_k": 100, "seed": 0}, {"preset": "pin", "top_k": 100, "seed": 1}]
    assert [t.spec.method for t in suite.trials()] == ["rl"] * 4 + ["pez"] * 3
    assert varying_axes(suite) == ["preset", "top_k", "seed"]  # top_k is absent from one block: it varies
    # one block is the single-mapping grid: same points, same ids
    one = parse_suite({"name": "u", "base": {"dataset": "mr"}, "grid": {"seed": [0, 1]}})
    listed = parse_suite({"name": "u", "base": {"dataset": "mr"}, "grid": [{"seed": [0, 1]}]})
    assert [t.trial_id for t in one.trials()] == [t.trial_id for t in listed.trials()]


def test_dotted_and_bare_keys_address_the_same_fields_and_grids_may_vary_the_method():
    bare = parse_suite({"name": "d", "base": {"dataset": "mr", "alpha": 0.5, "seed": 3}}).trials()[0].spec
    dotted = parse_suite({"name": "d", "base": {"task.dataset": "mr", "method.alpha": 0.5, "run.seed": 3}}
                         ).trials()[0].spec
    assert bare == dotted and dotted.method_config.alpha == 0.5 and dotted.run.seed == 3
    # ... and name the same trials: a suite rewritten with sections resumes its old trials
    ids = [t.trial_id for t in parse_suite({"name": "d", "grid": {"preset": ["pin"], "seed": [0, 1]}}).trials()]
    assert ids == [t.trial_id for t in parse_suite({"name": "d", "grid": {"preset": ["pin"], "run.seed": [0, 1]}}
                                                   ).trials()]
    assert ids[1] == "preset=pin_seed=1-cbb7fb6e"  # the id this trial had before sections existed
    grid = parse_suite({"name": "d", "grid": {"method": ["rl"], "task": ["classification"], "run.seed": [0, 1]}})
    assert [t.spec.run.seed for t in grid.trials()] == [0, 1]
    with pytest.raises(ConfigError, match="preset 'pin' is a recipe of method 'rl', not 'other'"):
        from pinbench.run import make_spec

        make_spec({"preset": "pin", "method": "other"})


def test_missing_suite_file():
    with pytest.raises(ConfigError, match="suite 'nope.yaml' is neither a file nor a shipped suite"):
        load_suite("nope.yaml")


# The trial counts the suites' comments promise (e.g. paper-fsc: 420 RL + 70 + 525 + 105 baselines).
SHIPPED = {"quickstart": 2, "paper-fsc": 1120, "tsallis-ablation": 270, "tsallis-cpu": 18, "cpu-study": 12, "baselines-quickstart": 10,
           "paper-inversion": 120, "tst-quickstart": 4, "paper-tst": 48}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_suites_validate(name):
    from conftest import REPO

    suite = load_suite(REPO / "suites" / f"{name}.yaml", {"task.data_dir": "/data"})
    assert len(suite.trials()) == SHIPPED[name]
    assert sorted(p.stem for p in (REPO / "suites").glob("*.yaml")) == sorted(SHIPPED)  # every suite is here
    if name in PRESET_COUNTS:  # the parts the suites' comments promise, exactly
        counts: dict = {}
        for trial in suite.trials():
            counts[trial.spec.preset] = counts.get(trial.spec.preset, 0) + 1
        assert counts == PRESET_COUNTS[name]
    if name.startswith("paper-"):  # the header states the total: "1,120 trials"
        header = (REPO / "suites" / f"{name}.yaml").read_text().split("\nname:")[0]
        stated = {int(n.replace(",", "")) for n in re.findall(r"([\d,]+) trials", header)}
        assert len(suite.trials()) in stated, f"{name}'s header states {stated} trials"


# paper-fsc: PIN's three readings and RLPrompt 4 x 35 x 3 = 420; manual and instructions 2 x 35 = 70;
# RLPrompt's baseline scripts (in-context, soft prompt, GrIPS, AutoPrompt) and PEZ 5 x 35 x 3 = 525;
# random search 105.
PRESET_COUNTS = {
    "quickstart": {"pin": 1, "rlprompt": 1},
    "tsallis-ablation": {"pin": 270},
    "paper-fsc": {"pin": 105, "pin-td": 105, "pin-released": 105, "rlprompt": 105, "manual": 35, "instructions": 35,
                  "in-context-rlprompt": 105, "soft-prompt-rlprompt": 105, "grips-rlprompt": 105,
                  "autoprompt-rlprompt": 105, "pez": 105, "random-search": 105},
}


def test_cpu_study_runs_both_pin_readings_the_ablation_and_rlprompt_at_the_codes_scales():
    from conftest import REPO

    trials = load_suite(REPO / "suites" / "cpu-study.yaml", {"task.data_dir": "/data"}).trials()
    by_preset: dict = {}
    for t in trials:
        by_preset.setdefault(t.point["preset"], []).append(t.spec.method_config)
    assert set(by_preset) == {"pin", "pin-released", "pin-no-filter", "rlprompt"}
    assert all(len(configs) >= 3 for configs in by_preset.values())  # n >= 3 seeds per method
    assert {c.reward_scale for c in by_preset["rlprompt"]} == {5.0}
    assert {c.reward_scale for c in by_preset["pin-released"]} == {1.0}
    assert {(c.regularizer, c.top_k) for c in by_preset["pin-no-filter"]} == {("sparse_tsallis", None)}


# ---- console view (no Ray run) ---------------------------------------------------------------

GRID = {"name": "g", "base": {"dataset": "mr", "steps": 40},
        "grid": {"preset": ["pin", "rlprompt"], "seed": [0, 1], "alpha": [2.0]}}


def fake_trial(suite, index, tune_id, **attrs):
    """A stand-in for Tune's Trial: the attributes the console reads."""
    from pinbench.suite import trial_params

    return SimpleNamespace(trial_id=tune_id, config={"trial": trial_params(suite.trials()[index], suite)},
                           last_result={}, error_file=None, **attrs)


def test_console_lines_show_the_varying_grid_values_step_accuracy_status_and_prompt(capsys):
    from pinbench.console import SweepConsole

    suite = parse_suite(GRID)
    console = SweepConsole(suite, live=False)
    assert console.axes == ["preset", "seed"]  # alpha has one value: not a column
    first, second = fake_trial(suite, 0, "t_00000"), fake_trial(suite, 3, "t_00001")
    console.setup()
    console.on_trial_start(0, [first, second], first)
    console.on_trial_result(1, [first, second], first, {"step": 20, "dev_accuracy": 0.5, "best_dev_accuracy": 0.5,
                                                        "best_prompt": "it was great"})
    console.on_trial_result(2, [first, second], first, {"step": 30, "reward_mean": 1.0})  # no evaluation
    first.last_result = {"step": 40, "done_training": True}
    console.on_trial_result(3, [first, second], first, {"step": 40, "dev_accuracy": 0.25, "best_dev_accuracy": 0.5,
                                                        "best_prompt": "it was great", "test_accuracy": 0.75,
                                                        "done_training": True})
    console.on_trial_complete(4, [first, second], first)
    console.on_trial_start(5, [first, second], second)
    console.on_trial_complete(6, [first, second], second)  # no final report: stopped early (ASHA)
    lines = capsys.readouterr().out.splitlines()
    tid = suite.trials()[0].trial_id
    assert len(lines) == 7 and all(line.split()[0].count(":") == 2 for line in lines)  # elapsed h:mm:ss
    assert lines[0].endswith(f"{tid} preset=pin seed=0 running")
    assert lines[1].endswith(f"{tid} preset=pin seed=0 running step 20/40 dev acc 50.0% best 50.0% "
                             "best prompt 'it was great'")
    assert "step 30/40 dev acc 50.0% best 50.0%" in lines[2]  # the last evaluation stays
    assert "alpha" not in lines[1].split(tid)[1]  # alpha has one value
    assert lines[4].split(tid)[1] == (" preset=pin seed=0 completed step 40/40 dev acc 25.0% best 50.0% "
                                      "test acc 75.0% best prompt 'it was great'")
    assert lines[6].endswith(f"{suite.trials()[3].trial_id} preset=rlprompt seed=1 stopped")


def test_console_error_line_names_the_exception(tmp_path, capsys):
    from pinbench.console import SweepConsole

    suite = parse_suite(GRID)
    error_file = tmp_path / "error.txt"
    error_file.write_text("Traceback (most recent call last):\n  ...\nRuntimeError: out of memory\n")
    trial = fake_trial(suite, 1, "t_00000")
    trial.error_file = str(error_file)
    console = SweepConsole(suite, live=False)
    console.on_trial_start(0, [trial], trial)
    console.on_trial_recover(1, [trial], trial)
    console.on_trial_error(2, [trial], trial)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].endswith("preset=pin seed=1 retrying RuntimeError: out of memory")
    assert lines[2].endswith("preset=pin seed=1 failed RuntimeError: out of memory")


def test_console_table_has_one_row_per_trial_and_pickles_without_its_display():
    from rich.console import Console

    from pinbench.console import SweepConsole

    suite = parse_suite(GRID)
    trials = [fake_trial(suite, i, f"t_0000{i}") for i in range(4)]
    screen = Console(record=True, width=200, file=open("/dev/null", "w"))
    console = SweepConsole(suite, live=True, console=screen)  # a Live table, on no terminal
    console.on_trial_start(0, trials, trials[0])
    console.on_trial_result(1, trials, trials[0], {"step": 20, "dev_accuracy": 0.5, "best_dev_accuracy": 0.625,
                                                   "best_prompt": "so fun"})
    console.on_step_end(2, trials)  # the others are pending
    restored = pickle.loads(pickle.dumps(console))  # Tune pickles callbacks with the experiment
    assert console._live is not None
    assert restored._console is None and restored._live is None and len(restored.view.rows) == 4
    console.close()  # the Live display prints its last table
    assert console._live is None
    rendered = screen.export_text()
    header = next(line for line in rendered.splitlines() if "trial" in line and "status" in line)
    assert [h.strip() for h in header.strip("┃│ ").split("┃" if "┃" in header else "│")] == \
        ["trial", "preset", "seed", "step", "dev acc", "best dev acc", "status", "best prompt"]
    assert "sweep g: 1 running, 3 pending" in rendered
    row = next(line for line in rendered.splitlines() if suite.trials()[0].trial_id in line)
    assert [c.strip() for c in row.strip("│ ").split("│")][1:] == \
        ["pin", "0", "20/40", "50.0%", "62.5%", "running", "'so fun'"]
    assert sum("│ pending " in line for line in rendered.splitlines()) == 3


def test_console_columns_of_an_optuna_suite_are_the_searched_fields():
    from pinbench.console import SweepView, varying_axes
    from pinbench.suite import resolve_params

    suite = parse_suite({"name": "o", "base": {"dataset": "mr"},
                         "search": {"space": {"alpha": {"type": "loguniform", "low": 0.1, "high": 10}}}})
    assert varying_axes(suite) == ["alpha"]
    view = SweepView("o", ["alpha"])
    params = resolve_params({"sampled": {"alpha": 0.123456789}, "base": {"run.steps": 9}, "suite": "o"})
    row = view.row("t_00000", params)
    assert view.point_text(row) == "alpha=0.1235" and row.steps == 9


# ---- trackers and --verbose (no Ray run) -------------------------------------------------------


@pytest.fixture
def missing(monkeypatch):
    """Make the named modules look uninstalled."""
    real = importlib.util.find_spec
    gone = set()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in gone else real(name, *a))
    return gone


@pytest.mark.parametrize("tracker, package", [("mlflow", "mlflow"), ("wandb", "wandb"),
                                              ("tensorboard", "tensorboardX")])
def test_tracker_without_its_package_is_one_line_before_ray_starts(tracker, package, missing, monkeypatch,
                                                                   tiny_setup, tmp_path, capsys):
    import pinbench.sweep

    def no_sweep(*args, **kwargs):
        raise AssertionError("the sweep started")

    monkeypatch.setattr(pinbench.sweep, "run_sweep", no_sweep)
    missing.add(package)
    model_dir, spec = tiny_setup
    suite_file = write_suite(tmp_path / "tiny.yaml", model_dir, spec)
    code = main(["sweep", str(suite_file), "--results", str(tmp_path / "r"), "--tracker", "tensorboard",
                 "--tracker", tracker])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [f"pinbench: error: --tracker {tracker} needs the '{package}' package, "
                                        f"which is not installed: pip install {package}"]


def test_run_sweep_checks_trackers_before_ray_init(missing, no_ray):
    from pinbench.sweep import run_sweep

    missing.add("wandb")
    with pytest.raises(ConfigError, match="pip install wandb"):
        run_sweep(parse_suite(GRID), trackers=["wandb"])
    with pytest.raises(ConfigError, match="unknown tracker 'neptune'"):
        run_sweep(parse_suite(GRID), trackers=["neptune"])


def test_resources_a_local_ray_would_lack_are_refused_before_it_starts(monkeypatch, no_ray, tiny_setup, tmp_path):
    """A local Ray to be started: its CPUs (--num-cpus) and GPUs (CUDA_VISIBLE_DEVICES, Ray's own
    detection) are known before its seconds of start-up, so a suite asking for more is refused
    without starting it. A cluster to join (RAY_ADDRESS, --address) is asked after connecting."""
    from pinbench.sweep import local_node_resources, local_ray_settings, run_sweep

    inits = no_ray
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    model_dir, spec = tiny_setup
    path = write_suite(tmp_path / "tiny.yaml", model_dir, spec)
    for resources, message in (("{cpu: 3, gpu: 0}", "resources.cpu = 3 per trial, but the largest node of the Ray "
                                                     "cluster has 2 CPU(s) (1 node(s))"),
                               ("{cpu: 1, gpu: 1}", "resources.gpu = 1 per trial, but the largest node of the Ray "
                                                     "cluster has 0 GPU(s) (1 node(s))")):
        path.write_text(path.read_text().split("resources:")[0] + f"resources: {resources}\n")
        with pytest.raises(ConfigError, match=re.escape(message)):
            run_sweep(load_suite(path), results_dir=tmp_path / "results", num_cpus=2)
    # what fits is not refused here: the sweep goes on to start Ray
    path.write_text(path.read_text().split("resources:")[0] + "resources: {cpu: 2, gpu: 0}\n")
    with pytest.raises(AssertionError, match="Ray started"):
        run_sweep(load_suite(path), results_dir=tmp_path / "results", num_cpus=2)
    # ... a local Ray without the idle workers Ray would prestart for it (no trial runs in one)
    assert inits[-1]["num_cpus"] == 2 and inits[-1]["_system_config"] == {"prestart_worker_first_driver": False}
    assert local_node_resources(None, 4) == {"CPU": 4.0, "GPU": 0.0}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert local_node_resources(None, 4)["GPU"] == 2.0
    assert local_node_resources("127.0.0.1:6379", None) == {}
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")
    assert local_node_resources(None, None) == {}
    # a cluster to join keeps its own settings (Ray refuses a _system_config when connecting)
    with pytest.raises(AssertionError, match="Ray started"):
        run_sweep(load_suite(path), results_dir=tmp_path / "results")
    assert "_system_config" not in inits[-1] and local_ray_settings(None) == {}


def test_a_local_ray_starts_with_a_relative_data_root_made_absolute(monkeypatch, tiny_setup, tmp_path):
    """Tune runs each trial in its trial directory: a relative PINBENCH_DATA_DIR reaches the
    workers of the local Ray the sweep starts (they inherit its environment) as the folder it
    named where the sweep started; the driver's own environment is left as it was."""
    import ray

    from pinbench.sweep import run_sweep

    seen = []

    def init(*args, **kwargs):
        seen.append(os.environ.get("PINBENCH_DATA_DIR"))
        raise AssertionError("Ray started")

    monkeypatch.setattr(ray, "init", init)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PINBENCH_DATA_DIR", "data")
    model_dir, spec = tiny_setup
    suite = load_suite(write_suite(tmp_path / "tiny.yaml", model_dir, spec))
    with pytest.raises(AssertionError, match="Ray started"):
        run_sweep(suite, results_dir=tmp_path / "results", num_cpus=2)
    assert seen == [str(tmp_path / "data")] and os.environ["PINBENCH_DATA_DIR"] == "data"


def test_tracker_params_are_the_grid_point_and_trial_id():
    from pinbench.trackers import tracker_params

    suite = parse_suite({**GRID, "grid": {"top_k": [5, None], "seed": [0]}})
    trial = fake_trial(suite, 1, "t_00001")
    assert tracker_params(trial.config) == {"top_k": "None", "seed": 0, "trial_id": suite.trials()[1].trial_id}


def test_verbose_brings_back_rays_output(monkeypatch, tiny_setup, tmp_path):
    import os

    import ray

    import pinbench.sweep
    from pinbench.console import SweepConsole
    from pinbench.sweep import _quiet_tune, run_config_for, run_sweep

    suite = parse_suite(GRID)
    quiet, loud = run_config_for(suite), run_config_for(suite, verbose=True)
    assert quiet.verbose == 0 and any(isinstance(c, SweepConsole) for c in quiet.callbacks)
    assert loud.verbose == 2 and not any(isinstance(c, SweepConsole) for c in loud.callbacks)
    monkeypatch.delenv("RAY_AIR_NEW_OUTPUT", raising=False)
    with _quiet_tune(False):
        assert os.environ["RAY_AIR_NEW_OUTPUT"] == "0"  # the legacy engine: silent at verbose=0
    with _quiet_tune(True):
        assert "RAY_AIR_NEW_OUTPUT" not in os.environ  # Ray's default engine and reporter
    assert "RAY_AIR_NEW_OUTPUT" not in os.environ

    inits = []

    def fake_init(**kwargs):
        inits.append(kwargs)
        raise KeyboardInterrupt  # stop before Tune runs

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", fake_init)
    for verbose in (False, True):
        with pytest.raises(KeyboardInterrupt):
            # no data check: GRID's mr has no files here, and the check runs before ray.init
            run_sweep(suite, results_dir=tmp_path, verbose=verbose, check_data=False)
    assert [kw["log_to_driver"] for kw in inits] == [False, True]

    calls = []
    monkeypatch.setattr(pinbench.sweep, "run_sweep", lambda suite, **kw: calls.append(kw) or 1 / 0)
    model_dir, spec = tiny_setup
    suite_file = str(write_suite(tmp_path / "tiny.yaml", model_dir, spec))
    for argv in ([], ["--verbose"]):
        with pytest.raises(ZeroDivisionError):
            main(["sweep", suite_file, "--results", str(tmp_path / "r"), *argv])
    assert [kw["verbose"] for kw in calls] == [False, True]


# ---- Ray ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.mark.slow
def test_two_trial_sweep_writes_the_store_prints_one_line_per_report_and_logs_to_tensorboard(
        ray_local, tiny_setup, tmp_path, capfd, caplog, monkeypatch):
    """One sweep, every product of it: the console, Tune's checkpoints, the store, and (where
    tensorboardX is installed) a TensorBoard run per trial with the grid values as hparams, the
    one-valued ``alpha`` among them (it is not a console column: it does not vary). The suite
    names its model and dataset file relative to where the sweep starts: the trials, which run in
    Tune's trial directories, read them, and the store records them as absolute paths."""
    model_dir, spec = tiny_setup
    monkeypatch.chdir(tmp_path)
    suite_file = write_suite(tmp_path / "tiny.yaml", os.path.relpath(model_dir), os.path.relpath(spec),
                             grid="{seed: [0, 1], alpha: [0.5]}")
    suite = load_suite(suite_file)
    tensorboard = importlib.util.find_spec("tensorboardX") is not None
    capfd.readouterr()
    assert main(["sweep", str(suite_file), "--results", str(tmp_path / "results"),
                 *(["--tracker", "tensorboard"] if tensorboard else [])]) == 0
    out, err = capfd.readouterr()
    # the console: a line per trial start, report (steps 2 and 4) and end, with the grid value
    for trial in suite.trials():
        lines = [line.split(f" {trial.trial_id} ")[1] for line in out.splitlines()
                 if re.match(rf"\d+:\d\d:\d\d {re.escape(trial.trial_id)} ", line)]  # not the final table
        seed = f"seed={trial.point['seed']}"
        assert [line.split(" dev acc")[0] for line in lines] == [
            f"{seed} running", f"{seed} running step 2/4", f"{seed} running step 4/4", f"{seed} completed step 4/4"]
        assert "best prompt '" in lines[-1] and "test acc" in lines[-1]
    # ... and none of Tune's own output or its snapshot warnings (Ray's log handler holds the stderr
    # of the ray.init in ray_local, which capfd does not see: caplog has its records)
    for text in ("started with configuration", "Configuration for experiment", "Trial status",
                 "snapshotting has been triggered", "Wrote the latest version"):
        assert text not in out + err + caplog.text
    # a trial checkpoints at most every 60 s and at the end: one checkpoint for these short trials
    trial_dirs = sorted(Path(tmp_path / "results" / "_ray" / "tiny").glob("seed=*"))
    assert [d.name.rsplit("_", 2)[0] for d in trial_dirs] == sorted(t.trial_id for t in suite.trials())
    assert [len(list(d.glob("checkpoint_*"))) for d in trial_dirs] == [1, 1]
    store = tmp_path / "results" / "tiny"
    trials = pd.read_parquet(store / "trials.parquet")
    history = pd.read_parquet(store / "history.parquet")
    prompts = pd.read_parquet(store / "prompts.parquet")
    assert sorted(trials["trial_id"]) == sorted(t.trial_id for t in suite.trials())
    assert (trials["status"] == "completed").all()
    assert sorted(trials["run.seed"]) == [0, 1]
    assert {"best_prompt", "best_token_ids", "dev_accuracy", "test_accuracy", "wall_time_s"} <= set(trials.columns)
    assert (trials["suite"] == "tiny").all()
    assert set(trials["method.policy_lm"]) == set(trials["task.task_lm"]) == {str(model_dir)}
    assert set(trials["task.dataset_file"]) == {str(spec)}
    assert (trials["wall_time_s"] > 0).all() and (trials["steps"] == 4).all()
    assert history.groupby("trial_id")["step"].apply(list).tolist() == [[1, 2, 3, 4]] * 2
    assert (prompts.groupby("trial_id")["source"].apply(lambda s: (s == "best").sum()) == 1).all()
    if not tensorboard:  # pip install tensorboardX
        return
    experiment = tmp_path / "results" / "_ray" / "tiny"
    for trial in suite.trials():
        events = glob.glob(str(experiment / f"{glob.escape(trial.trial_id)}_*" / "events.out.tfevents.*"))
        assert len(events) == 1
        assert _hparams(events[0]) == {"seed": float(trial.point["seed"]), "alpha": 0.5, "trial_id": trial.trial_id}


@pytest.mark.slow
def test_an_inversion_suite_grids_pin_and_pez_over_images(ray_local, tiny_setup, tiny_clip_dir, image_dir, tmp_path,
                                                          monkeypatch):
    """Grid blocks with different methods' fields, a grid over target images, through Ray. PIN's
    image is a name in ``task.data_dir``; PEZ's are files of the folder the sweep starts in, which
    the trials (in Tune's trial directories) read and the store records as absolute paths."""
    from pinbench.sweep import run_sweep

    model_dir, _ = tiny_setup
    monkeypatch.chdir(image_dir)
    suite_file = tmp_path / "inv.yaml"
    suite_file.write_text(textwrap.dedent(f"""\
        name: inv
        base: {{task: inversion, task.clip_model: "{tiny_clip_dir}", run.steps: 3, run.eval_every: 1}}
        grid:
          - preset: [pin]
            method.policy_lm: ["{model_dir}"]
            method.top_k: [20]
            method.mlp_hidden: [16]
            method.replay_batch: [32]
            task.image: [red.png]
            task.data_dir: ["{image_dir}"]
          - preset: [pez]
            method.prompt_length: [3]
            task.image: [red.png, stripes.png]
        """))
    suite = load_suite(suite_file)
    run_sweep(suite, results_dir=tmp_path / "results", verbose=0)
    trials = pd.read_parquet(tmp_path / "results" / "inv" / "trials.parquet")
    assert (trials["status"] == "completed").all() and len(trials) == 3
    assert sorted(zip(trials["preset"], trials["task.image"])) == [
        ("pez", str(image_dir / "red.png")), ("pez", str(image_dir / "stripes.png")), ("pin", "red.png")]
    assert set(trials["dataset"]) == {"targets"} and trials["test_reward"].notna().all()
    # the same targets, re-scored from text (in another batch: float rounding only)
    assert np.allclose(trials["train_reward"], trials["test_reward"], atol=1e-5)
    pez_rows = trials[trials["preset"] == "pez"]
    assert (pez_rows["prompt_tokenizer"] == str(tiny_clip_dir)).all()


def _fail_first_attempt_of(trial_seed, marker_dir):
    """A trainable that crashes the first attempt of the trial with ``seed == trial_seed``."""
    from pathlib import Path

    from pinbench.sweep import run_trial

    def trainable(params):
        config = params["trial"]["config"]
        marker = Path(marker_dir) / f"attempt-{config['run.seed']}"
        if config["run.seed"] == trial_seed and not marker.exists():
            marker.touch()
            raise RuntimeError("transient failure on the first attempt")
        run_trial(params)

    return trainable


@pytest.mark.slow
def test_max_failures_retries_a_crashed_trial_and_records_one_that_keeps_failing(ray_local, tiny_setup, tmp_path):
    """Under max_failures 1: a trial that crashes once is retried and completes; a trial that
    raises on every attempt is recorded as failed, with its error, while the others complete."""
    from ray import cloudpickle  # the copy Ray serialises the trainable with

    from pinbench.sweep import run_sweep

    cloudpickle.register_pickle_by_value(__import__(__name__))
    model_dir, spec = tiny_setup
    # split seed 6 has no files: that trial raises on every attempt (the driver's check before
    # launching would stop the sweep instead: it is off here, as for data only the workers have)
    suite = load_suite(write_suite(tmp_path / "tiny.yaml", model_dir, spec,
                                   grid="[{seed: [0, 1]}, {seed: [2], split_seed: [6]}]"))
    run_sweep(suite, results_dir=tmp_path / "results", verbose=0, max_failures=1, check_data=False,
              trainable=_fail_first_attempt_of(1, tmp_path))
    trials = pd.read_parquet(tmp_path / "results" / "tiny" / "trials.parquet").set_index("run.seed")
    assert (tmp_path / "attempt-1").exists()  # the failure happened ...
    assert sorted(trials.index) == [0, 1, 2]
    assert trials.loc[1, "status"] == "completed"  # ... and the retry finished
    assert trials.loc[0, "status"] == "completed" and trials.loc[0, "task.split_seed"] == 5
    assert trials.loc[2, "status"] == "failed" and trials.loc[2, "task.split_seed"] == 6
    assert "toy/16-6/train.tsv' does not exist" in trials.loc[2, "error"]


@pytest.mark.slow
def test_resume_after_the_suite_was_edited_runs_the_suite_as_it_is_now(ray_local, tiny_setup, tmp_path, caplog):
    """--resume used to restore Tune's pickled experiment: seeds added to the grid never ran, a
    completed trial whose settings had changed was kept, and a trial the suite no longer had stayed
    in the store, averaged with the rest. Now: a new trial runs, a completed one with unchanged
    settings is kept (its row untouched), one whose recorded settings differ runs again, one the
    suite dropped is moved aside (not deleted), and the log says which."""
    from pinbench.sweep import run_sweep

    model_dir, spec = tiny_setup
    suite_file = write_suite(tmp_path / "tiny.yaml", model_dir, spec, grid="seed: [0, 1, 2]")
    results = tmp_path / "results"
    run_sweep(load_suite(suite_file), results_dir=results, verbose=0)
    store = results / "tiny" / "trials.parquet"
    before = pd.read_parquet(store).set_index("run.seed")
    # seed 1's recorded settings differ from the suite's (as after an edit of a setting it uses)
    rows = pd.read_parquet(store)
    rows.loc[rows["run.seed"] == 1, "config_hash"] = "0000000000000000"
    rows.to_parquet(store, index=False)
    write_suite(suite_file, model_dir, spec, grid="seed: [0, 1, 3]")
    with caplog.at_level("WARNING", logger="pinbench.sweep"):
        run_sweep(load_suite(suite_file), results_dir=results, verbose=0, resume=True)
    after = pd.read_parquet(store).set_index("run.seed")
    assert sorted(after.index) == [0, 1, 3] and (after["status"] == "completed").all()
    assert after.loc[0, "started_at"] == before.loc[0, "started_at"]  # kept
    assert after.loc[1, "started_at"] != before.loc[1, "started_at"]  # ran again
    assert after.loc[1, "config_hash"] != "0000000000000000"  # rewritten by its new run
    [aside] = (results / "tiny").glob("superseded-*")
    moved = pd.read_parquet(aside / "trials.parquet")
    assert moved["run.seed"].tolist() == [2] and moved["started_at"].iloc[0] == before.loc[2, "started_at"]
    assert "changed since its sweep started" in caplog.text and "no longer has 1 trial(s)" in caplog.text
    assert "1 completed trial(s) with unchanged settings are kept, 1 whose settings changed run again" in caplog.text
    # an edited search cannot continue its Optuna study: refused before Ray is asked for anything
    search = suite_file.read_text().split("grid:")[0] + "search:\n  num_samples: 2\n  space:\n" \
        "    method.alpha: {type: uniform, low: 0.5, high: 2.0}\n"
    suite_file.write_text(search)
    from pinbench.results import ResultsStore
    from pinbench.sweep import _write_fingerprint
    from pinbench.suite import suite_fingerprint

    _write_fingerprint(ResultsStore(tmp_path / "searched", "tiny"), suite_fingerprint(load_suite(suite_file)))
    suite_file.write_text(search.replace("high: 2.0", "high: 3.0"))
    with pytest.raises(ConfigError, match="the search of suite 'tiny' changed since its sweep started"):
        run_sweep(load_suite(suite_file), results_dir=tmp_path / "searched", verbose=0, resume=True)


@pytest.mark.slow
def test_trials_the_scheduler_stops_are_recorded_as_stopped(ray_local, tiny_setup, tmp_path, capsys):
    """ASHA stops both trials at step 1 of 4 (max_t 1): each used to vanish from the store (only
    a trial's final report carried its tables) and the command ended on a KeyError. Each is now a
    row with status stopped, the step it reached and its best prompt so far; the sweep exits 0."""
    model_dir, spec = tiny_setup
    suite_file = write_suite(tmp_path / "tiny.yaml", model_dir, spec, extra=textwrap.dedent("""\
        scheduler: {metric: best_dev_accuracy, mode: max, grace_period: 1, max_t: 1}
        """))
    suite_file.write_text(suite_file.read_text().replace("eval_every: 2", "eval_every: 1"))
    assert main(["sweep", str(suite_file), "--results", str(tmp_path / "results")]) == 0
    trials = pd.read_parquet(tmp_path / "results" / "tiny" / "trials.parquet")
    assert sorted(trials["status"]) == ["stopped", "stopped"] and (trials["steps"] == 1).all()
    assert trials["best_prompt"].notna().all() and trials["dev_accuracy"].notna().all()
    assert (trials["error"] == "stopped by the scheduler at step 1").all()
    history = pd.read_parquet(tmp_path / "results" / "tiny" / "history.parquet")  # the rows they reported
    assert sorted(history["trial_id"]) == sorted(trials["trial_id"]) and (history["step"] == 1).all()
    assert history["dev_accuracy"].notna().all() and "training_iteration" not in history.columns
    assert "Traceback" not in capsys.readouterr().err


@pytest.mark.slow
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
    assert trials["method.alpha"].between(0.1, 10.0).all() and set(trials["method.top_k"]) <= {5, 20}
    assert trials["method.alpha"].nunique() == 3


def _hparams(event_file):
    """The hparams of a TensorBoard event file (TFRecord framing: length, crc, data, crc)."""
    from tensorboardX.proto import event_pb2, plugin_hparams_pb2

    data, i, params = Path(event_file).read_bytes(), 0, None
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i:i + 8])
        event = event_pb2.Event.FromString(data[i + 12:i + 12 + n])
        i += n + 16
        for value in event.summary.value:
            if value.metadata.plugin_data.plugin_name == "hparams":
                info = plugin_hparams_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
                if info.HasField("session_start_info"):
                    params = {k: getattr(v, v.WhichOneof("kind")) for k, v in info.session_start_info.hparams.items()}
    return params


@pytest.mark.slow
def test_interrupted_sweep_resumes_without_rerunning_finished_trials(ray_local, tiny_setup, tmp_path):
    import os
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
    log = tmp_path / "sweep.log"
    # --checkpoint-every 0: a checkpoint at every evaluation, so the interrupted trial continues from one.
    # Its own session: the sweep and the local Ray it starts are killed together if the test fails.
    with open(log, "wb") as output:
        proc = subprocess.Popen([sys.executable, "-m", "pinbench.cli", "sweep", str(suite_file), "--results",
                                 str(results), "--num-cpus", "2", "--checkpoint-every", "0"],
                                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # The event: the store's first row, written by the driver when the first trial finishes.
        # No deadline; a sweep that exits first fails the test at once, with its output.
        while not store.exists():
            if proc.poll() is not None:
                pytest.fail(f"the sweep exited with {proc.returncode} before a trial finished:\n"
                            f"{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.2)
        # Ctrl-C while the next trial runs (Tune's own SIGINT handler used to hide it: exit 0, no
        # hint); SIGTERM and SIGHUP take the same handler (tests/test_signals.py)
        proc.send_signal(signal.SIGINT)
        assert proc.wait() == 128 + signal.SIGINT
        printed = log.read_text(errors="replace")
        assert "interrupted (SIGINT)" in printed and "--resume" in printed and "Traceback" not in printed
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    before = pd.read_parquet(store)
    assert 1 <= len(before) < 3
    run_sweep(load_suite(suite_file), results_dir=results, resume=True, verbose=0)  # on this module's Ray
    after = pd.read_parquet(store)
    assert sorted(after["trial_id"]) == sorted(t.trial_id for t in load_suite(suite_file).trials())
    assert (after["status"] == "completed").all()
    kept = after.set_index("trial_id").loc[before["trial_id"]]
    # finished trials were not rerun: their rows (wall time included) are unchanged
    assert kept["wall_time_s"].tolist() == before["wall_time_s"].tolist()
    history = pd.read_parquet(results / "tiny" / "history.parquet")
    assert (history.groupby("trial_id")["step"].apply(list).map(lambda s: s == list(range(1, 31)))).all()


def test_console_table_shows_a_prompt_escaped_with_its_brackets():
    """The Live table's best-prompt cell: control characters escaped, brackets kept (not read as
    rich markup)."""
    from rich.console import Console

    from pinbench.console import SweepConsole

    suite = parse_suite(GRID)
    trials = [fake_trial(suite, 0, "t_00000")]
    screen = Console(record=True, width=200, file=open("/dev/null", "w"))
    console = SweepConsole(suite, live=True, console=screen)
    console.on_trial_start(0, trials, trials[0])
    console.on_trial_result(1, trials, trials[0], {"step": 20, "dev_accuracy": 0.5, "best_dev_accuracy": 0.5,
                                                   "best_prompt": "so\n[bold]fun[/bold]\t!"})
    console.close()
    assert "'so\\n[bold]fun[/bold]\\t!'" in screen.export_text()


def test_dry_run_shows_integers_as_integers_and_missing_values_empty(tmp_path, capsys):
    """Two grid blocks, one with seed and top_k axes and one without: the trial table's run.seed
    column holds 0 and 1 (not 0.0, 1.0: pandas makes a column with gaps float), a null top_k is
    None, and a block that lacks an axis shows nothing there (not nan)."""
    from pinbench.sweep import describe

    suite_file = tmp_path / "mixed.yaml"
    suite_file.write_text(textwrap.dedent("""\
        name: mixed
        grid:
          - preset: [pin]
            run.seed: [0, 1]
            method.top_k: [null]
          - preset: [manual]
        """), encoding="utf-8")
    frame = describe(load_suite(suite_file))
    assert frame["run.seed"].tolist()[:2] == [0, 1] and all(type(v) is int for v in frame["run.seed"][:2])
    assert frame["run.seed"][2] is pd.NA and frame["method.top_k"].tolist()[:2] == [None, None]
    assert main(["sweep", str(suite_file), "--dry-run"]) == 0
    rows = [[c.strip() for c in line.strip()[1:-1].split("│")] for line in capsys.readouterr().out.splitlines()
            if line.startswith("│")]
    assert [r[1:] for r in rows] == [["pin", "0", "None"], ["pin", "1", "None"], ["manual", "", ""]]
