"""Run a suite as Ray Tune trials and keep one Parquet results store up to date.

Each trial is a function trainable around the trial's method (``methods.base.Method``): it reports with ``ray.tune.report`` at
every evaluation, with a checkpoint (the method's state: for RL the MLP, target, optimiser, generator, compact replay
buffer) at
most every ``checkpoint_every_s`` seconds and at the end, so a failed or interrupted trial
continues from its last checkpoint. Each trial runs in a fresh worker process (``REUSE_ACTORS``).

The driver shows one row per trial (``console.SweepConsole``) instead of Tune's own output, and
optionally logs to TensorBoard, MLflow or W&B (``trackers``).

The driver rewrites ``<results>/<suite>/{trials,history,prompts}.parquet`` each time a trial
finishes or fails, so a long sweep can be analysed while it runs.
"""

from __future__ import annotations

import functools
import logging
import os
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import pandas as pd

from . import signals
from .errors import ConfigError, NonFiniteError, PinbenchError, first_few
from .io import STORE_FINGERPRINT
from .results import ResultsStore, frames
from .run import make_spec
from .suite import Suite, resolve_params, suite_fingerprint, trial_params

STATE_FILE = "state.pt"
log = logging.getLogger(__name__)

# Checkpoints: a trial checkpoints at most every CHECKPOINT_EVERY_S seconds (and always at the
# end); Tune keeps the last KEEP_CHECKPOINTS of each trial. Tune forces an experiment-state
# snapshot whenever a trial has checkpointed `num_to_keep` times since the last one (so the state
# never points at a deleted checkpoint): with num_to_keep=1 and a checkpoint at every evaluation,
# every report forced one ("Experiment state snapshotting has been triggered multiple times").
# With checkpoints >= 60 s apart and 2 kept, Tune's own periodic snapshot (every ~10 s) falls
# between two of a trial's periodic checkpoints, so none is forced (at most one, when a trial's
# final checkpoint comes within ~10 s of its last periodic one); an interrupted trial loses at
# most a minute of training. Keeping 2 costs one more checkpoint on disk per trial. Reports
# without a checkpoint still reach the console and the trackers.
CHECKPOINT_EVERY_S = 60.0
KEEP_CHECKPOINTS = 2

# A fresh worker process per trial. With reused actors a worker kept memory from trial to trial:
# in the CPU study a worker in its third PIN trial held 13 GB, Ray's memory monitor killed it and
# the sweep stopped. A fresh process costs one model load per trial (seconds, against minutes of
# training) and leaves nothing of a crashed trial behind.
REUSE_ACTORS = False


# ---------------------------------------------------------------------------------------------
# The trial (runs inside a Ray worker)
# ---------------------------------------------------------------------------------------------


def _report(trainer, metrics: dict, tables: dict[str, pd.DataFrame] | None = None,
            checkpoint: bool = True) -> None:
    """``tune.report`` the step's numeric metrics, the best selection-split metrics (``best_dev_*``)
    and prompt so far, and (if
    ``checkpoint``) a checkpoint. Tune persists the checkpoint during the call, so its temporary
    directory is removed after. ``best_prompt`` is the only text metric; the scheduler and the
    searcher read their numeric metric only; ``error`` (a trial that failed inside) is the other."""
    from ray import tune

    metrics = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) or k == "error"}
    best = trainer.result.best
    split = trainer.task.selection_split  # dev_*, or train_* for a task that selects on its reward
    metrics.update({f"best_{k}": v for k, v in best.items() if k.startswith(f"{split}_") and isinstance(v, (int, float))})
    if "prompt" in best:
        metrics["best_prompt"] = str(best["prompt"])
    if not checkpoint:
        tune.report(metrics)
        return
    import torch  # here, not at the top: `pinbench sweep --dry-run` reads this module without torch

    with tempfile.TemporaryDirectory(prefix="pinbench-ckpt-") as directory:
        torch.save(trainer.state_dict(compact=True), Path(directory) / STATE_FILE)
        for name, frame in (tables or {}).items():
            frame.to_parquet(Path(directory) / f"{name}.parquet", index=False)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(directory))


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id() if ray.is_initialized() else ""


def run_trial(params: dict) -> None:
    """Ray Tune function trainable (see ``resolve_params`` for ``params``). Reports at every
    evaluation (with a checkpoint if ``params["checkpoint_every_s"]`` have passed since the last
    one) and once at the end with the result tables in the checkpoint."""
    import torch
    from ray import tune

    every = float(params.get("checkpoint_every_s", CHECKPOINT_EVERY_S))
    params = resolve_params(params)
    spec = make_spec(params["config"], f"trial {params['trial_id']}")
    trainer = spec.method_class(spec)
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as directory:
            trainer.load_state_dict(torch.load(Path(directory) / STATE_FILE, weights_only=True))

    last_checkpoint = time.monotonic()

    def on_step(row: dict) -> None:  # every evaluation but the last, which the final report covers
        nonlocal last_checkpoint
        if trainer.evaluated_prompt(row) is not None and trainer.step_count < spec.run.steps:
            due = time.monotonic() - last_checkpoint >= every
            _report(trainer, row, checkpoint=due)
            if due:
                last_checkpoint = time.monotonic()

    try:
        result = trainer.train(on_step)
        status, error, final = "completed", "", {**result.history[-1], **result.test}
    except NonFiniteError as exc:
        # Deterministic given the seed: a retry would fail at the same step. The trial ends here,
        # recorded as failed with its history so far, and is not retried.
        result, status, error = trainer.result, "failed", str(exc)
        final = {"step": trainer.step_count, "error": error}
    tables = frames(result, params["trial_id"], params.get("suite", ""), status=status, error=error)
    tables["trials"]["node_id"] = _node_id()
    _report(trainer, {**final, "done_training": True, "trial_failed": status == "failed"}, tables)


# ---------------------------------------------------------------------------------------------
# The results store (the driver)
# ---------------------------------------------------------------------------------------------


def trial_dirname(trial) -> str:
    """Tune trial directory (and TensorBoard run) name: the pinbench trial id and Tune's id."""
    return f"{resolve_params(trial.config)['trial_id']}_{trial.trial_id}".replace("/", "_")


def make_callback(results_dir: str | Path, suite: Suite):
    """A Tune callback that refreshes the store whenever a trial completes or fails for good.
    It holds paths only (Tune pickles it with the experiment for --resume)."""
    from ray import tune

    class StoreCallback(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            checkpoint = trial.checkpoint
            if checkpoint is not None:
                with checkpoint.as_directory() as directory:
                    if (Path(directory) / "trials.parquet").is_file():
                        ResultsStore(results_dir, suite.name).add_completed(directory)
                        return
            last = trial.last_result or {}
            if last.get("done_training"):
                return  # a trial the store already holds (--resume)
            # ended before its final report: stopped by the scheduler (ASHA) or at its max_t
            params = resolve_params(trial.config)
            spec = make_spec(params["config"], f"trial {params['trial_id']}")
            ResultsStore(results_dir, suite.name).add_stopped(params["trial_id"], spec, last,
                                                              history=_reported_rows(trial))

        def on_trial_error(self, iteration, trials, trial, **info):
            params = resolve_params(trial.config)
            error = ""
            if trial.error_file and Path(trial.error_file).is_file():
                error = Path(trial.error_file).read_text(errors="replace")[-4000:]
            try:
                spec = make_spec(params["config"], f"trial {params['trial_id']}")
            except PinbenchError as exc:  # sampled values the trial refused: recorded with the base settings
                spec = make_spec(trial.config.get("base") or {}, f"trial {params['trial_id']}")
                error = error or str(exc)
            ResultsStore(results_dir, suite.name).add_failed(params["trial_id"], spec, error or "trial failed")

    return StoreCallback()


def _reported_rows(trial) -> list[dict]:
    """The history rows a trial reported at its evaluations (Tune's ``result.json`` in its trial
    directory; [] where that is not on this disk): what a stopped trial keeps of its history."""
    import json

    from ray.tune.result import AUTO_RESULT_KEYS

    path = getattr(trial, "local_path", None)
    file = Path(path) / "result.json" if path else None
    if file is None or not file.is_file():
        return []
    rows = []
    for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            reported = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        row = {k: v for k, v in reported.items() if k not in AUTO_RESULT_KEYS and not k.startswith(("config", "best_"))
               and k not in ("done", "trial_id", "checkpoint_dir_name", "should_checkpoint", "done_training",
                             "trial_failed", "experiment_tag")}
        if isinstance(row.get("step"), int):
            rows.append(row)
    return rows


def _distribution(spec: dict):
    from ray import tune

    kind = spec["type"]
    if kind == "choice":
        return tune.choice(spec["values"])
    if kind == "int":
        return tune.randint(spec["low"], spec["high"] + 1)  # inclusive high, as written in the suite
    return (tune.loguniform if kind == "loguniform" else tune.uniform)(spec["low"], spec["high"])


def _absolute_choices(key: str, dist: dict, base: dict, task_class) -> dict:
    """A ``choice`` over paths relative to the working directory, as absolute paths (the trials
    run in Tune's trial directories; see ``run.absolute_path_values``)."""
    from .run import absolute_path_values

    if dist["type"] != "choice":
        return dist
    values = [absolute_path_values({**base, key: v}, task_class).get(key, v) for v in dist["values"]]
    return {**dist, "values": values}


def tune_setup(suite: Suite, skip: set[str] = frozenset(),
               checkpoint_every_s: float = CHECKPOINT_EVERY_S) -> tuple[dict, dict]:
    """Tune's param space and TuneConfig arguments for the suite (grid or Optuna search); the
    space is empty when every trial is in ``skip``."""
    from ray import tune

    kwargs: dict = {"max_concurrent_trials": suite.max_concurrent, "reuse_actors": REUSE_ACTORS,
                    "trial_dirname_creator": trial_dirname}
    # Tune takes one metric and mode; the suite parser checks that search and scheduler agree.
    target = suite.search or suite.scheduler
    if target is not None:
        kwargs.update(metric=target.metric, mode=target.mode)
    if suite.scheduler is not None:
        from ray.tune.schedulers import ASHAScheduler

        sch = suite.scheduler
        kwargs["scheduler"] = ASHAScheduler(grace_period=sch.grace_period, reduction_factor=sch.reduction_factor,
                                            max_t=sch.max_t or 10**9)
    if suite.search is not None:
        from optuna.samplers import TPESampler
        from ray.tune.search.optuna import OptunaSearch

        search = suite.search
        base_spec = suite.trials()[0].spec  # search suites have no grid: one base config
        base = base_spec.to_dict()
        space = {"sampled": {k: _distribution(_absolute_choices(k, v, base, base_spec.task_class))
                             for k, v in search.space.items()}, "base": base, "suite": suite.name,
                 "checkpoint_every_s": checkpoint_every_s}
        kwargs.update(search_alg=OptunaSearch(sampler=TPESampler(seed=search.seed)), num_samples=search.num_samples)
        return space, kwargs
    trials = [trial_params(t, suite) for t in suite.trials() if t.trial_id not in skip]
    space = {"trial": tune.grid_search(trials), "checkpoint_every_s": checkpoint_every_s} if trials else {}
    return space, kwargs


@contextmanager
def _quiet_tune(verbose: bool):
    """Without ``verbose``, Tune prints nothing of its own: its new output engine (Ray 2.x) prints
    an experiment box and paths even at verbose=0, so the legacy engine is picked
    (RAY_AIR_NEW_OUTPUT=0), which is silent at verbose=0; and Tune's INFO log lines go."""
    from .io import environment

    tune_logger = logging.getLogger("ray.tune")
    level = tune_logger.level
    if not verbose:
        # ERROR: Tune's warnings on a stop ("Resume experiment with: Tuner.restore(...)", a trial
        # directory not found for a trial that never started) contradict pinbench's own --resume line
        tune_logger.setLevel(logging.ERROR)
    try:
        with environment({} if verbose else {"RAY_AIR_NEW_OUTPUT": "0"}):
            yield
    finally:
        tune_logger.setLevel(level)


def run_config_for(suite: Suite, *, results_dir: str | Path = "results", storage: str | None = None,
                   max_failures: int = 0, verbose: bool = False, trackers=(), progress: bool = True):
    """Tune's RunConfig: the results-store callback, the trackers' callbacks, and either the
    pinbench console (``progress``, Tune silent: verbose=0) or, with ``verbose``, Tune's own
    progress reporter (verbose=2) instead. Tune's storage defaults to ``<results>/_ray``: a local
    directory written through ``storage.AtomicLocalFiles``, a bucket's as its URI (Tune writes
    through pyarrow, query included)."""
    from ray import tune

    from .storage import resolve, tune_storage
    from .trackers import tracker_callbacks

    callbacks = [make_callback(results_dir, suite), *tracker_callbacks(trackers, suite)]
    if progress and not verbose:
        from .console import SweepConsole

        callbacks.append(SweepConsole(suite))
    storage_path, storage_filesystem = tune_storage(storage or resolve(results_dir).join("_ray"))
    return tune.RunConfig(
        name=suite.name, storage_path=storage_path, storage_filesystem=storage_filesystem,
        verbose=2 if verbose else 0,
        failure_config=tune.FailureConfig(max_failures=max_failures),
        checkpoint_config=tune.CheckpointConfig(num_to_keep=KEEP_CHECKPOINTS),
        callbacks=callbacks,
    )


def check_trial_data(suite: Suite) -> None:
    """Read every trial's data files on the driver before Ray starts (no model loads): a missing or
    broken file is one error naming the trial and the file, not N trials failing after launch. An
    Optuna suite is checked at its base and at each value of a ``choice`` over a task field."""
    configs = [(t.trial_id, t.spec) for t in suite.trials()]
    if suite.search is not None:
        base = configs[0][1].to_dict()
        for key, dist in suite.search.space.items():
            if key.startswith("task.") and dist["type"] == "choice":
                configs += [(f"{key}={v}", make_spec({**base, key: v}, suite.source)) for v in dist["values"]]
    seen: set[str] = set()
    for name, spec in configs:
        key = repr((spec.task, spec.task_config, spec.run.test))
        if key in seen:  # trials that differ only in method or seed read the same files
            continue
        seen.add(key)
        try:
            spec.task_class.check_data(spec.task_config, spec.run)
        except PinbenchError as exc:
            raise type(exc)(f"{suite.source}: trial {name}: {exc}") from exc


def check_trial_devices(suite: Suite) -> None:
    """A trial on a CUDA device needs a GPU share in ``resources``: Ray hides the GPUs from a
    trial that reserved none (every trial would fail on its device), and were they visible, the
    trials would crowd GPUs that Ray counts as free."""
    if suite.resources["gpu"] > 0:
        return
    for trial in suite.trials():
        if trial.spec.run.device.startswith("cuda"):
            raise ConfigError(f"{suite.source}: trial {trial.trial_id}: run.device is '{trial.spec.run.device}' but "
                              "resources.gpu is 0; give each trial a GPU share (resources: {gpu: 1}, or 0.5 for two "
                              "per GPU), or run on cpu")


def _joins_cluster(address: str | None) -> bool | None:
    """Whether ``ray.init(address)`` joins a running cluster (``address``, ``RAY_ADDRESS``, or one
    started on this machine with ``ray start``) rather than starting a local Ray; None when Ray's
    helper for it (not public API) fails."""
    try:
        from ray._private.services import canonicalize_bootstrap_address

        return canonicalize_bootstrap_address(address) is not None
    except Exception:  # noqa: BLE001 - see the docstring
        return None


def local_node_resources(address: str | None, num_cpus: int | None) -> dict[str, float]:
    """What the one node of the local Ray that ``ray.init(address)`` would start here will have,
    as far as it is known before starting it: CPUs (``num_cpus``, else this machine's count, which
    Ray's own count does not exceed) and GPUs (Ray's own detection: NVIDIA devices, limited to
    ``CUDA_VISIBLE_DEVICES``). Empty when ``address`` (or ``RAY_ADDRESS``, or a cluster started
    on this machine with ``ray start``) names a cluster to join; a count that cannot be known
    here is left out. Ray's helpers for both are not public API: if they fail, the checks wait
    until Ray has started."""
    if _joins_cluster(address) is not False:
        return {}
    known = {"CPU": float(num_cpus if num_cpus is not None else os.cpu_count() or 0)}
    try:
        from ray._private.accelerators import get_accelerator_manager_for_resource

        manager = get_accelerator_manager_for_resource("GPU")
        visible = manager.get_current_process_visible_accelerator_ids()
        known["GPU"] = float(len(visible) if visible is not None else manager.get_current_node_num_accelerators())
    except Exception:  # noqa: BLE001 - any failure only defers the check until Ray has started
        pass
    return known


def local_ray_settings(address: str | None) -> dict:
    """``ray.init`` settings for a local Ray that a sweep starts (none when ``address`` names a
    cluster to join: its settings are its own). Ray prestarts idle workers for the first driver
    (two on a 2-core machine, with ``num_cpus`` 2 or 4), but no trial ever runs in one: Tune gives
    every trainable a ``runtime_env`` of its own (``PL_DISABLE_FORK``), so each trial starts a
    worker for it. The prestarted ones only cost CPU (a Ray start took 5.9 CPU-seconds with them,
    4.5 without) and memory."""
    if _joins_cluster(address) is not False:
        return {}
    return {"_system_config": {"prestart_worker_first_driver": False}}


def check_resources(suite: Suite, nodes: list[dict[str, float]] | None = None,
                    names: tuple[str, ...] = ("CPU", "GPU")) -> None:
    """A trial that asks for more CPUs or GPUs than any node of the connected cluster has would
    wait forever: fail now, naming the suite's ``resources`` and what the cluster has. ``nodes``:
    each node's resources (default: the alive nodes of the connected Ray, where a resource a node
    lacks counts 0); ``names``: the resources checked."""
    import ray

    if nodes is None:
        nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    for key, name in (("cpu", "CPU"), ("gpu", "GPU")):
        if name not in names:
            continue
        asked = float(suite.resources.get(key) or 0)
        largest = max((float(n.get(name, 0)) for n in nodes), default=0.0)
        if asked > largest:
            raise ConfigError(
                f"{suite.source}: resources.{key} = {asked:g} per trial, but the largest node of the Ray cluster "
                f"has {largest:g} {name}(s) ({len(nodes)} node(s)); no trial could start. Lower resources.{key}, "
                f"add a node with more, or pass --wait-for-resources (an autoscaling cluster adds it later)")


def _suite_changed(store: ResultsStore, fingerprint: dict) -> bool:
    """Whether the suite differs from the one whose sweep wrote the store (added, removed or
    changed trials; another search). A store without the record (older pinbench) is taken as the
    same suite, as before."""
    import json

    location = store.location.join(STORE_FINGERPRINT)
    if not location.is_file():
        return False
    try:
        recorded = json.loads(location.read_text())
    except (OSError, ValueError):
        return True  # unreadable: assume changed, so nothing is skipped on a guess
    return recorded != fingerprint


def _write_fingerprint(store: ResultsStore, fingerprint: dict) -> None:
    import json

    store.location.join(STORE_FINGERPRINT).write_text(json.dumps(fingerprint, sort_keys=True, indent=1) + "\n")


def _stored_metrics(store: ResultsStore, hashes: dict[str, str] | None = None) -> dict[str, dict]:
    """Per completed trial in the store, the metrics its final report gave a searcher: the best
    prompt's selection-split values, under their own names and as ``best_<name>``. With ``hashes``
    (the suite's trial id -> settings hash), only trials completed with those settings: a row of
    a trial whose settings were edited since is not a result of this suite (an edited suite's
    resume, interrupted and resumed again, kept such rows)."""
    out = {}
    trials = store.table("trials")
    current = store.completed_as(hashes) if hashes else None
    for row in trials[trials["status"] == "completed"].to_dict("records") if len(trials) else []:
        if current is not None and row["trial_id"] not in current:
            continue
        split = f"{row.get('selection_split') or 'dev'}_"
        values = {k: float(v) for k, v in row.items()
                  if k.startswith(split) and isinstance(v, (int, float)) and not isinstance(v, bool)}
        out[row["trial_id"]] = {**values, **{f"best_{k}": v for k, v in values.items()}}
    return out


def _skip_completed(trainable: Callable[[dict], None], completed: dict[str, dict]) -> Callable[[dict], None]:
    """For a restored experiment: a trial the store already holds as completed (Tune's snapshot,
    taken every few seconds, may predate its end) reports done at once, with the metrics it ended
    with (a searcher records them as that trial's value), instead of training again."""
    from ray import tune

    @functools.wraps(trainable)  # Tune's restore checks that the trainable's name is unchanged
    def trainable_or_skip(params: dict) -> None:
        trial_id = resolve_params(params)["trial_id"]
        if trial_id in completed:
            tune.report({**completed[trial_id], "done_training": True, "already_in_store": True})
            return
        trainable(params)

    return trainable_or_skip


def _broken_tune_state(experiment_path: str, filesystem) -> str | None:
    """What makes Tune's saved state unusable, or None: the newest ``experiment_state-*.json`` must
    parse, and ``tuner.pkl`` and the search's state (``searcher-state-*.pkl``,
    ``search_gen_state-*.json``, ``basic-variant-state-*.json``) must be whole pickles (their
    opcodes are scanned, not run). Before ``AtomicLocalFiles`` (or in a copy made by hand), a
    driver killed mid-copy left such files truncated, and Tune's restore failed on them with a
    traceback."""
    import json
    import pickletools
    import re

    import pyarrow.fs as pafs

    fs, path = (filesystem, experiment_path) if filesystem is not None else pafs.FileSystem.from_uri(experiment_path)
    found = fs.get_file_info(pafs.FileSelector(path))
    # what Tune's restore reads: the newest trial table (JSON), tuner.pkl and the search's state,
    # pickles all of them, though two of Tune's names end in .json
    files = sorted((i for i in found if i.type == pafs.FileType.File), key=lambda i: i.base_name)
    states = [i for i in files if i.base_name.startswith("experiment_state-") and i.base_name.endswith(".json")]
    pickles = [i for i in files if i.base_name == "tuner.pkl" or re.fullmatch(
        r"(searcher-state-.*\.pkl|search_gen_state-.*\.json|basic-variant-state-.*\.json)", i.base_name)]
    for info in states[-1:] + pickles:
        with fs.open_input_stream(info.path) as stream:
            data = stream.read()
        try:
            if info in states:
                json.loads(data)
            else:
                for _ in pickletools.genops(data):
                    pass
        except Exception as exc:  # JSONDecodeError, ValueError("pickle exhausted before seeing STOP"), ...
            why = "is empty" if not data else f"cannot be read ({' '.join(str(exc).split())})"
            return f"Tune's saved state '{info.path}' {why}"
    return None


def run_sweep(suite: Suite, *, results_dir: str | Path = "results", storage: str | None = None,
              address: str | None = None, resume: bool = False, max_failures: int = 0,
              num_cpus: int | None = None, verbose: bool = False, trackers=(), progress: bool = True,
              checkpoint_every_s: float = CHECKPOINT_EVERY_S, trainable: Callable[[dict], None] = run_trial,
              wait_for_resources: bool = False, check_data: bool = True):
    """Run (or resume) every trial of ``suite``; returns the ResultsStore. ``verbose`` brings back
    Ray's own output (worker logs, Tune's progress reporter) in place of the pinbench console;
    ``trackers`` names loggers (tensorboard, mlflow, wandb); ``trainable`` wraps ``run_trial``
    (tests inject failures through it). Before any trial launches, every trial's data files are read
    (``check_data``) and the suite's per-trial resources are compared with the cluster's nodes
    (unless ``wait_for_resources``)."""
    import ray
    from ray import tune

    from .storage import check_writable, exclusive_writer, resolve

    # The trackers' callbacks are built here, before Ray starts: a missing package fails now.
    run_config = run_config_for(suite, results_dir=results_dir, storage=storage, max_failures=max_failures,
                                verbose=verbose, trackers=trackers, progress=progress)
    # Storage that cannot be written is one line now, not an error when the first trial ends.
    check_writable(results_dir)
    if resolve(results_dir).join("trials.parquet").is_file():  # a report of it would read the run only
        raise ConfigError(f"--results '{results_dir}' is itself a store (a run's --out, or a sweep's store: it has "
                          "trials.parquet); give the directory that holds the sweeps' stores")
    if storage:
        check_writable(storage, "Tune's checkpoints")
    experiment_path = resolve(run_config.storage_path).join(suite.name).uri  # a bucket's query stays at the end
    if resolve(experiment_path).path == resolve(results_dir).join(suite.name).path:
        raise ConfigError(f"--storage '{storage}' is the results directory: Tune's checkpoints and the results "
                          f"store would share '{experiment_path}'; give --storage another directory")
    # One driver per store and per Tune experiment: a second sweep into either is refused naming
    # the first (a lock file on disks; a bucket is not locked). Two stores can share one --storage,
    # where two drivers of one suite would interleave Tune's state, and --resume would read both.
    with exclusive_writer(resolve(results_dir).join(suite.name), "results store"), \
            exclusive_writer(experiment_path, "Tune's checkpoints"):
        store = ResultsStore(results_dir, suite.name)
        fingerprint = suite_fingerprint(suite)
        edited = _suite_changed(store, fingerprint)
        changed = resume and edited
        if changed and suite.search is not None:
            raise ConfigError(f"--resume: the search of suite '{suite.name}' changed since its sweep started "
                              f"in {store.uri} (the Optuna study belongs to the old one); run it under another "
                              "name, or without --resume to start the search again")
        filesystem = run_config.storage_filesystem
        restorable = resume and not changed and tune.Tuner.can_restore(experiment_path, storage_filesystem=filesystem)
        broken = _broken_tune_state(experiment_path, filesystem) if restorable else None
        if broken and suite.search is not None:
            raise ConfigError(f"--resume: {broken}; the Optuna study cannot go on from it: run without --resume "
                              "to start the search again")
        if broken:
            log.warning("--resume: %s; the sweep goes on from the results store instead: its completed trials "
                        "are kept, unfinished trials start from their first step", broken)
            restorable = False
        if check_data:
            check_trial_data(suite)
        check_trial_devices(suite)
        started = not ray.is_initialized()
        if started and not wait_for_resources:
            # a local Ray to start: what it will have is known now, before seconds of start-up
            known = local_node_resources(address, num_cpus)
            if known:
                check_resources(suite, [known], names=tuple(known))
        if started and not verbose:
            # a local Ray says at each start whether token auth is on: one line of noise on every
            # sweep, and the line above a pre-launch error (the README covers auth for clusters)
            logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
        if started:
            # a local Ray's workers inherit this environment, but run in Tune's trial directories:
            # a relative PINBENCH_DATA_DIR would name another folder there
            from .data_locations import absolute_data_root_env
            from .io import environment

            with environment(absolute_data_root_env()):
                ray.init(address=address, num_cpus=None if address else num_cpus, include_dashboard=False,
                         log_to_driver=bool(verbose), logging_level=logging.INFO if verbose else logging.WARNING,
                         **local_ray_settings(address))
            signals.reinstall()  # Ray's own SIGTERM handler aborts the driver: SIGTERM stops the sweep as Ctrl-C does
        if not wait_for_resources:
            try:
                check_resources(suite)
            except ConfigError:
                if started:  # leave no Ray of ours behind (a test, a notebook goes on in this process)
                    ray.shutdown()
                raise
        resources = {"cpu": suite.resources["cpu"], "gpu": suite.resources["gpu"]}
        gone = store.trial_ids() - set(fingerprint["trials"]) if edited and "trials" in fingerprint else set()
        if gone:  # rows of trials the suite no longer has: not averaged with the suite's own
            aside = store.set_aside(gone, f"suite '{suite.name}' was edited and no longer has them")
            log.warning("suite '%s' no longer has %d trial(s) of its store (%s): their rows moved to %s",
                        suite.name, len(gone), first_few(sorted(gone)),
                        aside.uri)
        _write_fingerprint(store, fingerprint)
        if restorable:
            completed = _stored_metrics(store, fingerprint.get("trials"))
            trainable = tune.with_resources(_skip_completed(trainable, completed), resources)
            tuner = tune.Tuner.restore(experiment_path, trainable, resume_unfinished=True, resume_errored=True,
                                       param_space=None, storage_filesystem=filesystem)
            # The restored run config is the one pickled when the sweep started: this run's console,
            # trackers and verbosity replace its own (its checkpoint settings stay, as its trials have them).
            restored = getattr(tuner, "_local_tuner", None)
            if restored is not None:
                restored.get_run_config().callbacks = run_config.callbacks
                restored.get_run_config().verbose = run_config.verbose
        else:
            skip = store.completed_as(fingerprint.get("trials", {})) if resume else set()
            if changed:
                stale = sorted((store.completed() & set(fingerprint.get("trials", {}))) - skip)
                log.warning("suite '%s' changed since its sweep started: its new trials run, %d completed trial(s) "
                            "with unchanged settings are kept, %d whose settings changed run again%s; unfinished "
                            "trials start from their first step", suite.name, len(skip), len(stale),
                            f" ({first_few(stale)})" if stale else "")
            space, tune_kwargs = tune_setup(suite, skip=skip, checkpoint_every_s=checkpoint_every_s)
            if not space:
                return store
            tuner = tune.Tuner(tune.with_resources(trainable, resources), param_space=space, run_config=run_config,
                               tune_config=tune.TuneConfig(**tune_kwargs))
        try:
            with _quiet_tune(bool(verbose)), signals.tune_stops_gracefully():
                tuner.fit()
        finally:
            from .console import SweepConsole

            for callback in run_config.callbacks:
                if isinstance(callback, SweepConsole):
                    callback.close()  # a Live table stops even when fit() raises
        return ResultsStore(results_dir, suite.name)


def describe(suite: Suite) -> pd.DataFrame:
    """The trial table for ``--dry-run``: id and grid values per trial, each value as the suite
    gives it (object columns: an int stays an int, a null stays None) and ``pd.NA`` where a trial's
    grid block lacks the axis (pandas would make such a column float, 0 -> 0.0, with NaN in the gaps)."""
    trials = suite.trials()
    columns = ["trial_id", *dict.fromkeys(axis for t in trials for axis in t.point)]
    rows = [[t.trial_id, *(t.point.get(axis, pd.NA) for axis in columns[1:])] for t in trials]
    return pd.DataFrame(rows, columns=columns, dtype=object)


