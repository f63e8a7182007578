"""Experiment trackers for ``pinbench sweep --tracker``: Ray Tune's logger callbacks, one run per
trial, grouped by suite, with the trial's grid values (plus its pinbench trial id) as parameters.

    tensorboard  event files in each trial's directory, <storage>/<suite>/<trial id>_<tune id>/
    mlflow       experiment = suite name (MLFLOW_TRACKING_URI picks the server)
    wandb        project = $WANDB_PROJECT or the suite name, group = suite name

Tune's callbacks log its nested trial config (``{"trial": {"config": ...}}``) as parameters and,
for MLflow and W&B, again with every result; the subclasses below swap in the flat grid point and
drop ``config`` from the results. The packages stay optional: ``check_trackers`` names a missing
one before Ray starts.
"""

from __future__ import annotations

import importlib.util

from .errors import ConfigError
from .suite import resolve_params

# tracker -> (module to import, pip package)
TRACKERS = {"tensorboard": ("tensorboardX", "tensorboardX"), "mlflow": ("mlflow", "mlflow"),
            "wandb": ("wandb", "wandb")}


def check_trackers(names) -> list[str]:
    """The trackers asked for, deduplicated; a ConfigError for an unknown name or a missing package."""
    names = list(dict.fromkeys(names or ()))
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(f"unknown tracker {name!r}; expected one of {sorted(TRACKERS)}")
        module, package = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(f"--tracker {name} needs the '{package}' package, which is not installed: "
                              f"pip install {package}")
    return names


def tracker_params(config: dict) -> dict:
    """A trial's parameters for a tracker: its grid point (or sampled values) and pinbench trial id,
    as scalars (None and other values as text; TensorBoard's hparams reject None)."""
    params = resolve_params(config)
    flat = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in params.get("point", {}).items()}
    return {**flat, "trial_id": params["trial_id"]}


def _without_config(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "config"}


def tracker_callbacks(names, suite) -> list:
    """Tune logger callbacks for ``names`` (checked with ``check_trackers`` first)."""
    callbacks = []
    for name in check_trackers(names):
        callbacks.append({"tensorboard": _tensorboard, "mlflow": _mlflow, "wandb": _wandb}[name](suite))
    return callbacks


def _tensorboard(suite):
    from ray.tune.logger import TBXLoggerCallback

    class TensorBoardCallback(TBXLoggerCallback):
        """Hparams are the grid point, not Tune's flattened trial config."""

        def _try_log_hparams(self, trial, result):
            from tensorboardX.summary import hparams

            writer = self._trial_writer[trial].file_writer
            for summary in hparams(hparam_dict=tracker_params(trial.config), metric_dict=result):
                writer.add_summary(summary)

    return TensorBoardCallback()


def _mlflow(suite):
    import os

    from ray.air.integrations.mlflow import MLflowLoggerCallback

    class MLflowCallback(MLflowLoggerCallback):
        """A run named after the pinbench trial id, with the grid point as its parameters."""

        def log_trial_start(self, trial):
            if trial not in self._trial_runs:  # a restarted trial keeps its run
                params = tracker_params(trial.config)
                run = self.mlflow_util.start_run(tags={**self.tags, "trial_name": str(trial)},
                                                 run_name=params["trial_id"])
                self._trial_runs[trial] = run.info.run_id
                self.mlflow_util.log_params(run_id=run.info.run_id, params_to_log=params)

        def log_trial_result(self, iteration, trial, result):
            super().log_trial_result(iteration, trial, _without_config(result))

    return MLflowCallback(tracking_uri=os.environ.get("MLFLOW_TRACKING_URI"), experiment_name=suite.name)


def _wandb(suite):
    import os

    from ray.air.integrations.wandb import WandbLoggerCallback

    class WandbCallback(WandbLoggerCallback):
        """A run named after the pinbench trial id, with the grid point as its config."""

        def _start_logging_actor(self, trial, exclude_results, **init_kwargs):
            params = tracker_params(trial.config)
            super()._start_logging_actor(trial, exclude_results,
                                         **{**init_kwargs, "config": params, "name": params["trial_id"]})

        def log_trial_result(self, iteration, trial, result):
            # results carry Tune's config and its trial id, which the logging actor copies into
            # the run's config at every step
            super().log_trial_result(iteration, trial, {k: v for k, v in _without_config(result).items()
                                                        if k != "trial_id"})

    return WandbCallback(project=os.environ.get("WANDB_PROJECT") or suite.name, group=suite.name)
