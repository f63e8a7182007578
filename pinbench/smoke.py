"""``pinbench sweep SUITE --smoke``: every model set-up of a suite, built with random weights, run
for two steps through the real trial code (Ray Tune, the results store) before a cluster is paid for.

A *model set-up* is a distinct (task, method, every model the trial loads): the task's and the
method's model-name fields (``task.task_lm`` and ``task.task_lm_kind``, ``method.policy_lm``,
``task.clip_model``, ``task.content_model``, ``task.fluency_classifier``, ...; :func:`model_fields`).
For each set-up one representative trial runs with ``run.steps`` 2 (fewer when its budget is
smaller), one evaluation at the last step and the test at the end, on a handful of examples (a
task's ``smoke_settings`` hook: tiny copies of the classification splits, two style-transfer dev
and test sentences, one target image), into a temporary results store, with Ray.

Models: with ``PINBENCH_SMOKE_MODELS=1`` in a process's environment (the smoke sets it for its
trials), ``pinbench.models.load_model`` builds every model that is not an offline alias from its
config with random weights instead of loading it (``pinbench.random_models``). The config is a local
directory's ``config.json``, else the Hugging Face cache's, else one shipped in
``pinbench/smoke_configs/`` (the paper suites' models, written from their public configs). The
tokenizer is the directory's or the cache's, else a stand-in built from the offline SmolLM2
tokenizer (:func:`standin_tokenizer`): byte-level BPE with the model's special tokens at their
ids and exactly its vocabulary size, every registered verbalizer word one token. Nothing is
downloaded; a model that cannot be built says which file it needs.

On CPU (no CUDA) the smoke runs the suite's ``cuda`` trials on CPU and caps the largest models'
depth (``PINBENCH_SMOKE_LAYERS``, :data:`CPU_LAYER_CAPS`); the table says so. The same command on a
GPU node runs the paper shapes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .errors import ModelLoadError
from .random_models import (BUILT, CONFIG_DIR, ENV, LAYERS_ENV, SHRINK_ENV, ModelSource, cap_layers,  # noqa: F401
                            enabled, find_model, layer_caps, needs_message, random_weights, shipped_config_file,
                            shipped_models, shrink, standin_tokenizer, tokenizer_for, verbalizer_words)

STATS_ENV = "PINBENCH_SMOKE_STATS"
"""A directory where each smoke trial writes its measurements (``<trial>.json``)."""

#: On CPU the smoke caps these models' depth (layers per stack): a two-step trial of the full OPT-1.3B
#: task LM generates for minutes on two cores. The code path is the same at any depth; the table
#: names each cap. Override with PINBENCH_SMOKE_LAYERS (``name=N``; ``name=0`` removes a cap).
CPU_LAYER_CAPS = {"facebook/opt-1.3b": 4, "tuner007/pegasus_paraphrase": 2}

#: On CPU the smoke also lowers method fields that multiply a step's work without changing its code
#: (AutoPrompt's 100 candidate tokens per position, each scored on the batch; GrIPS's candidates, each
#: edited and scored): {method: {field: at most}}. The table's notes name each.
CPU_METHOD_LIMITS = {"autoprompt": {"num_candidates": 8}, "grips": {"num_candidates": 2}}

#: Which fields of a task's or method's config name a model (besides ``*_lm``, ``*_model`` and
#: ``*_classifier``): how the task LM is loaded changes the model set-up.
EXTRA_MODEL_FIELDS = ("task_lm_kind",)


# ---------------------------------------------------------------------------------------------
# Model set-ups of a suite
# ---------------------------------------------------------------------------------------------


def is_model_field(name: str) -> bool:
    """Whether a task's or method's field names a model (or how one is loaded)."""
    return name.endswith(("_lm", "_model", "_classifier")) or name in EXTRA_MODEL_FIELDS


def model_fields(config: dict) -> dict[str, object]:
    """The model fields (dotted ``task.*`` / ``method.*`` keys) of a flat config (``RunSpec.to_dict``
    or a trials.parquet row) that are set."""
    out = {}
    for key, value in config.items():
        section, _, name = key.partition(".")
        if section in ("task", "method") and is_model_field(name) and value is not None and value == value:
            out[key] = value
    return dict(sorted(out.items()))


def setup_key(config: dict) -> tuple:
    """A model set-up's identity: (task, method, its model fields), from a flat config."""
    return (config.get("task") or "classification", config.get("method") or "rl",
            tuple(model_fields(config).items()))


def model_names(models: dict) -> list[str]:
    """The model names of a set-up's fields (not how they are loaded)."""
    return list(dict.fromkeys(str(v) for k, v in models.items() if k.rpartition(".")[2] not in EXTRA_MODEL_FIELDS))


@dataclass
class SetUp:
    """The trials of a suite that load the same models in the same task and method."""

    task: str
    method: str
    models: dict
    trials: list = field(default_factory=list)
    """The suite's ``TrialSpec``s with this set-up; the first is the smoke's representative."""

    @property
    def key(self) -> tuple:
        return (self.task, self.method, tuple(self.models.items()))

    @property
    def presets(self) -> list[str]:
        return list(dict.fromkeys(t.spec.preset or "-" for t in self.trials))

    @property
    def label(self) -> str:
        order = sorted(self.models.items(), key=lambda kv: (not kv[0].startswith("task."), kv[0]))
        names = [f"{k.rpartition('.')[2]}={_short(v)}" for k, v in order]
        return f"{self.task} / {self.method}" + (": " + ", ".join(names) if names else "")


def _short(value) -> str:
    text = str(value)
    return Path(text).name if os.sep in text and os.path.isdir(os.path.expanduser(text)) else text


def group_setups(suite) -> list[SetUp]:
    """The suite's model set-ups in the order their first trial appears (an Optuna suite: its base)."""
    groups: dict[tuple, SetUp] = {}
    for trial in suite.trials():
        config = trial.spec.to_dict()
        key = setup_key(config)
        if key not in groups:
            groups[key] = SetUp(key[0], key[1], dict(key[2]))
        groups[key].trials.append(trial)
    return list(groups.values())


def unbuildable(setup: SetUp) -> list[str]:
    """Why the set-up's models cannot be built offline (empty when all can): offline aliases load
    their real weights; every other name needs a config (``find_model``)."""
    from .models import ALIASES

    problems = []
    for name in model_names(setup.models):
        if name in ALIASES:
            continue
        try:
            find_model(name)
        except ModelLoadError as exc:
            problems.append(str(exc).removeprefix("smoke: "))
    return problems


def check_verbalizers(setup: SetUp) -> list[str]:
    """Classification set-ups: every dataset's verbalizer words are single tokens of the task
    LM's smoke tokenizer (what a real trial checks when it starts), for every trial's dataset."""
    from .models import ALIASES, guess_kind

    if setup.task != "classification":
        return []
    name = setup.models.get("task.task_lm")
    if name is None or name in ALIASES:
        return []
    from .tasks.classification.data import get_dataset, load_dataset_file

    tok = tokenizer_for(str(name))
    kind = setup.models.get("task.task_lm_kind") or guess_kind(str(name))
    problems, seen = [], set()
    for trial in setup.trials:
        cfg = trial.spec.task_config
        if cfg.dataset_file:
            load_dataset_file(cfg.dataset_file)
        if cfg.dataset in seen:
            continue
        seen.add(cfg.dataset)
        for word in get_dataset(cfg.dataset).verbalizers_for(kind):
            ids = tok(word, add_special_tokens=False).input_ids
            if len(ids) != 1 or ids[0] == tok.unk_token_id:
                problems.append(f"{cfg.dataset}: verbalizer {word!r} is {len(ids)} tokens of the stand-in tokenizer")
    return problems


# ---------------------------------------------------------------------------------------------
# The smoke run
# ---------------------------------------------------------------------------------------------


@dataclass
class SmokeRow:
    """One set-up's line of the smoke table."""

    setup: SetUp
    status: str = "pending"
    """pass, FAIL, cannot build"""
    error: str = ""
    notes: list[str] = field(default_factory=list)
    trial_id: str | None = None
    stats: dict = field(default_factory=dict)


def smoke_values(setup: SetUp, workdir: Path, cuda: bool) -> tuple[dict, list[str]]:
    """The representative trial's full config (dotted keys) with the smoke's overrides, and notes."""
    from .run import device_type, make_spec

    trial = setup.trials[0]
    spec = trial.spec
    names = {k: getattr(spec, k) for k in ("task", "method", "preset") if getattr(spec, k) is not None}
    # the trial as the fields that differ from its preset's (or the defaults'): a short trial id
    defaults = make_spec({**names, "plugins": list(spec.plugins)}, "smoke").to_dict()
    values = {k: v for k, v in spec.to_dict().items() if k in names or (k != "plugins" and defaults.get(k) != v)}
    notes = []
    steps = min(spec.run.steps, 2)
    values.update({"run.steps": steps, "run.eval_every": steps, "run.test": True})
    device = spec.run.device
    if device_type(device) == "cuda" and not cuda:
        values["run.device"] = device = "cpu"
        notes.append(f"run.device {spec.run.device} -> cpu (no CUDA here)")
    if not cuda:
        for name, limit in CPU_METHOD_LIMITS.get(spec.method, {}).items():
            current = getattr(spec.method_config, name, None)
            if isinstance(current, int) and current > limit:
                values[f"method.{name}"] = limit
                notes.append(f"CPU: method.{name} {current} -> {limit}")
    if getattr(spec.method_config, "replay_warmup", False) and getattr(spec.method_config, "replay_size", 0) > 0:
        values["method.replay_warmup"] = False
        notes.append("replay warm-up off (both steps update)")
    hook = getattr(spec.task_class, "smoke_settings", None)
    if hook is not None:
        run = dataclasses.replace(spec.run, device=device)
        folder = workdir / "data" / re.sub(r"[^A-Za-z0-9_.-]", "_", trial.trial_id)[:80]
        folder.mkdir(parents=True, exist_ok=True)
        more, task_notes = hook(spec.task_config, run, folder)
        values.update(more)
        notes += task_notes
    return values, notes


def _cache_dir_for_smoke(workdir: Path) -> Path:
    """A pinbench cache for the smoke's trials: what real models made (converted SmolLM2, the
    MiniLM style classifiers) and the data cache are linked from the user's cache; anything a
    random model would make (a fluency threshold keyed by the model's name) stays in the temp dir."""
    from .models import cache_dir

    real = cache_dir()
    smoke = workdir / "cache"
    smoke.mkdir(parents=True, exist_ok=True)
    for sub in ("models", "style-classifiers", "data", "smoke"):
        (real / sub).mkdir(parents=True, exist_ok=True)
        link = smoke / sub
        if not link.exists():
            link.symlink_to(real / sub, target_is_directory=True)
    return smoke


def _safe(trial_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]", "_", trial_id)[:150] + f"-{zlib.crc32(trial_id.encode()):08x}"


def _instrument(stats: dict, start: float) -> Callable[[], None]:
    """Time each step (its evaluation apart), the final test and the load (start to first step) of
    the method in this worker process; returns the undo."""
    from .methods.base import Method

    originals = {name: Method.__dict__[name] for name in ("step", "evaluate", "finish")}

    def step(self):
        t0 = time.perf_counter()
        stats.setdefault("load_s", t0 - start)
        evals_before = len(stats["evals"])
        row = originals["step"](self)
        stats["steps"].append({"s": time.perf_counter() - t0, "eval_s": sum(stats["evals"][evals_before:])})
        return row

    def evaluate(self):
        t0 = time.perf_counter()
        try:
            return originals["evaluate"](self)
        finally:
            stats["evals"].append(time.perf_counter() - t0)

    def finish(self):
        t0 = time.perf_counter()
        try:
            return originals["finish"](self)
        finally:
            stats["test_s"] = time.perf_counter() - t0

    Method.step, Method.evaluate, Method.finish = step, evaluate, finish

    def undo():
        for name, fn in originals.items():
            setattr(Method, name, fn)

    return undo


def run_smoke_trial(params: dict, env: dict) -> None:
    """A smoke trial in a Ray worker: the environment of the smoke, then ``sweep.run_trial`` (the
    real trial), measured: peak resident memory of the process (and CUDA's peak), model build
    times, load, step, evaluation and test seconds, written to ``$PINBENCH_SMOKE_STATS/<trial>.json``."""
    import resource

    import torch

    from .sweep import resolve_params, run_trial

    os.environ.update(env)
    start = time.perf_counter()
    trial_id = resolve_params(params)["trial_id"]
    stats: dict = {"trial_id": trial_id, "steps": [], "evals": [], "error": None}
    undo = _instrument(stats, start)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    try:
        run_trial(params)
    except BaseException as exc:
        stats["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        raise
    finally:
        undo()
        stats["total_s"] = time.perf_counter() - start
        stats["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if torch.cuda.is_available():
            stats["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        stats["models"] = list(BUILT)
        folder = Path(env[STATS_ENV])
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{_safe(trial_id)}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(stats, default=str))
        os.replace(tmp, folder / f"{_safe(trial_id)}.json")


def make_trainable(env: dict) -> Callable[[dict], None]:
    """The Tune trainable of a smoke sweep (its environment travels with it to every worker)."""
    def smoke_trial(params: dict) -> None:
        run_smoke_trial(params, env)

    return smoke_trial


def default_layer_caps(cuda: bool) -> dict[str, int]:
    """The depth caps of this machine's smoke: none on a GPU, :data:`CPU_LAYER_CAPS` on CPU; a
    ``PINBENCH_SMOKE_LAYERS`` in the environment adds to them (``name=0``: no cap)."""
    caps = {} if cuda else dict(CPU_LAYER_CAPS)
    caps.update(layer_caps())
    return {k: v for k, v in caps.items() if v > 0}


def run_smoke(suite, *, address: str | None = None, num_cpus: int | None = None, verbose: bool = False,
              console=None, keep: bool = False, workdir: str | Path | None = None) -> tuple[int, list[SmokeRow]]:
    """Smoke-test every model set-up of ``suite`` (see the module docstring); prints the table and
    returns (exit code: 0 when every set-up passed, the rows)."""
    import ray
    import torch

    from .suite import parse_suite

    if console is None:
        from rich.console import Console

        console = Console()
    cuda = torch.cuda.is_available()
    work = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="pinbench-smoke-"))
    work.mkdir(parents=True, exist_ok=True)
    setups = group_setups(suite)
    caps = default_layer_caps(cuda)
    rows = [SmokeRow(s) for s in setups]
    blocks, runnable = [], []
    for row in rows:
        problems = unbuildable(row.setup)
        if problems:
            row.status, row.error = "cannot build", "; ".join(problems)
            continue
        try:
            problems = check_verbalizers(row.setup)
            values, notes = smoke_values(row.setup, work, cuda)
        except Exception as exc:  # noqa: BLE001 - a set-up the smoke cannot prepare is its row's failure
            row.status, row.error = "FAIL", f"preparing the trial: {type(exc).__name__}: {exc}"
            continue
        if problems:
            row.status, row.error = "FAIL", "; ".join(problems)
            continue
        row.notes = notes + [f"{'CPU: ' if not cuda else ''}{n} built with at most {caps[n]} layers per stack"
                             for n in model_names(row.setup.models) if n in caps]
        blocks.append({k: [v] for k, v in values.items()})
        runnable.append(row)
    console.print(f"smoke of {suite.source}: {len(setups)} model set-up(s) in {len(suite.trials())} trial(s); "
                  f"{len(runnable)} to run, one trial each, random weights ({'CUDA' if cuda else 'CPU, no CUDA'})")
    if runnable:
        gpu = float(suite.resources.get("gpu") or 0) if cuda else 0.0
        cpus = float(suite.resources.get("cpu") or 1)
        if not cuda:
            cpus = min(cpus, float(os.cpu_count() or 1))
        raw = {"name": f"{suite.name}-smoke", "grid": blocks, "resources": {"cpu": cpus, "gpu": gpu},
               "max_concurrent": 1, "plugins": list(suite.plugins),
               "description": f"smoke test of {suite.name}"}
        derived = parse_suite(raw, f"{suite.source} (--smoke)")
        for row, trial in zip(runnable, derived.trials()):
            row.trial_id = trial.trial_id
        env = {ENV: "1", STATS_ENV: str(work / "stats"), "PINBENCH_CACHE_DIR": str(_cache_dir_for_smoke(work)),
               LAYERS_ENV: ",".join(f"{k}={v}" for k, v in caps.items()), "TOKENIZERS_PARALLELISM": "false"}
        if os.environ.get(SHRINK_ENV):  # tests and dry runs: tiny models in the workers too
            env[SHRINK_ENV] = os.environ[SHRINK_ENV]
        started = not ray.is_initialized()
        try:
            from .io import environment
            from .sweep import run_sweep

            with environment(env):
                store = run_sweep(derived, results_dir=str(work / "results"), address=address, num_cpus=num_cpus,
                                  verbose=verbose, trainable=make_trainable(env), check_data=True)
        finally:
            if started and ray.is_initialized():
                ray.shutdown()
        trials = store.table("trials")
        by_id = {r["trial_id"]: r for r in trials.to_dict("records")} if len(trials) else {}
        for row in runnable:
            record = by_id.get(row.trial_id)
            stats_file = work / "stats" / f"{_safe(row.trial_id)}.json"
            row.stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
            if record is None:
                row.status, row.error = "FAIL", row.stats.get("error") or "no result (the trial did not run)"
            elif record.get("status") == "completed":
                row.status = "pass"
            else:
                row.status = "FAIL"
                row.error = row.stats.get("error") or _last_line(str(record.get("error") or "failed"))
    print_table(rows, suite, console)
    failed = [r for r in rows if r.status != "pass"]
    if failed or keep:
        console.print(f"smoke trials' store, Tune logs and data: {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return (1 if failed else 0), rows


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if re.match(r"^[A-Za-z_.]*(Error|Exception)\b", ln)]
    return (errors or lines or [""])[-1][:400]


def _gb(mb) -> str:
    return f"{mb / 1024:.1f} GB" if isinstance(mb, (int, float)) else "-"


def _s(value) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "-"


def summary(row: SmokeRow) -> dict:
    """A row's numbers: peak memory (MB), load, seconds per step (training only, the mean of the
    steps), evaluation and test seconds."""
    stats = row.stats
    steps = stats.get("steps") or []
    train = [s["s"] - s["eval_s"] for s in steps]
    return {"peak_rss_mb": stats.get("peak_rss_mb"), "cuda_peak_mb": stats.get("cuda_peak_mb"),
            "load_s": stats.get("load_s"), "step_s": sum(train) / len(train) if train else None,
            "eval_s": sum(stats.get("evals") or []) or None, "test_s": stats.get("test_s"),
            "steps": len(steps)}


def print_table(rows: list[SmokeRow], suite, console) -> None:
    from rich.table import Table

    table = Table(title=f"{suite.name}: smoke test, one trial per model set-up (random weights)")
    for col in ("set-up", "presets", "result", "peak RSS", "CUDA peak", "load s", "s/step", "eval s", "test s"):
        table.add_column(col, no_wrap=col not in ("set-up", "presets"), justify="left" if col in
                         ("set-up", "presets", "result") else "right")
    for row in rows:
        n = summary(row)
        style = {"pass": "green", "FAIL": "red"}.get(row.status, "yellow")
        presets = [f"{p}*" if i == 0 and row.trial_id else p for i, p in enumerate(row.setup.presets)]
        table.add_row(row.setup.label, ", ".join(presets) + f" ({len(row.setup.trials)} trials)",
                      f"[{style}]{row.status}[/{style}]", _gb(n["peak_rss_mb"]), _gb(n["cuda_peak_mb"]),
                      _s(n["load_s"]), _s(n["step_s"]), _s(n["eval_s"]), _s(n["test_s"]))
    console.print(table)
    for i, row in enumerate(rows, 1):
        built = [m for m in row.stats.get("models", [])]
        models = ", ".join(f"{m['name'].rpartition('/')[2] if os.path.isdir(m['name']) else m['name']} "
                           f"{m['params_m']:.0f}M ({m['config']}{'; ' + m['note'] if m.get('note') else ''})"
                           for m in built)
        lines = row.notes + ([f"built: {models}"] if models else []) + ([f"error: {row.error}"] if row.error else [])
        if lines:
            console.print(f"[bold]{row.setup.label}[/bold]", markup=True)
            for line in lines:
                console.print(f"    {line}", markup=False, highlight=False)
    passed = sum(r.status == "pass" for r in rows)
    console.print(f"{passed}/{len(rows)} set-up(s) passed. *: the preset of the trial that ran (the set-up's first). "
                  "peak RSS: the trial process's (Ray worker's) maximum resident memory; s/step: mean of the "
                  "training steps, their evaluations apart (eval s '-': the method evaluates inside its step).")
