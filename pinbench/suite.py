"""Suites: declarative YAML files listing the trials of a sweep, validated into dataclasses.

    name: tsallis-ablation
    plugins: []              # optional: modules that register more tasks or methods
    base:                    # settings of every trial: task, method, preset and fields
      task: classification   # (the default); ``preset`` picks a method's recipe first
      preset: pin
      task.dataset: sst-2    # dotted keys name the section: run.*, task.*, method.*
      steps: 300             # a bare key is fine where one section has it (run.steps)
    grid:                    # axes over any key (or task, method, preset): the cartesian product
      method.alpha: [0.5, 1.0, 2.0]
      seed: [0, 1, 2]
                             # or a list of such blocks: the union of their products, for methods
                             # with different fields (see suites/paper-inversion.yaml)
    search:                  # optional: Optuna samples these instead of (or on top of) the grid
      method: optuna
      num_samples: 20
      seed: 0
      metric: best_dev_accuracy     # reported at every evaluation and at the end
      mode: max
      space:
        method.alpha: {type: loguniform, low: 0.1, high: 10}
        method.top_k: {type: choice, values: [1000, 10000, null]}
    scheduler:               # optional ASHA early stopping on a reported metric
      type: asha
      metric: dev_accuracy
      mode: max
      grace_period: 40
    resources: {cpu: 1, gpu: 0.5}
    max_concurrent: 4

Every mistake is reported with the file and the key before Ray starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .errors import ConfigError, yaml_error_line
from .fields import check_value, field_types, yaml_float_hint
from .io import load_yaml, read_utf8
from .registry import DEFAULT_METHOD, DEFAULT_TASK
from .run import NAMES, RunSpec, config_hash, make_spec, resolve_key, section_classes, with_absolute_paths

SUITE_KEYS = {"name", "description", "extends", "plugins", "base", "grid", "search", "scheduler", "resources",
              "max_concurrent"}
MAX_EXTENDS_DEPTH = 8  # a longer chain of ``extends`` is a loop in all but name
SEARCH_KEYS = {"method", "num_samples", "seed", "metric", "mode", "space"}
SCHEDULER_KEYS = {"type", "metric", "mode", "grace_period", "reduction_factor", "max_t"}
DISTRIBUTIONS = {"uniform": ("low", "high"), "loguniform": ("low", "high"), "int": ("low", "high"),
                 "choice": ("values",)}


@dataclass(frozen=True)
class Search:
    """Optuna search over ``space`` (field -> distribution) for ``num_samples`` trials."""

    space: dict
    num_samples: int = 10
    seed: int = 0
    metric: str = "best_dev_accuracy"
    mode: str = "max"
    method: str = "optuna"


@dataclass(frozen=True)
class Scheduler:
    """ASHA early stopping on a metric reported at each evaluation (training iterations)."""

    metric: str = "dev_accuracy"
    mode: str = "max"
    grace_period: int = 5
    reduction_factor: int = 3
    max_t: int | None = None
    type: str = "asha"


@dataclass(frozen=True)
class Suite:
    """A validated suite file."""

    name: str
    base: dict
    grid: list[dict] = field(default_factory=list)
    """Blocks of axes; the trials are the union of each block's cartesian product."""
    search: Search | None = None
    scheduler: Scheduler | None = None
    resources: dict = field(default_factory=lambda: {"cpu": 1, "gpu": 0})
    max_concurrent: int | None = None
    description: str = ""
    source: str = "<memory>"
    plugins: tuple[str, ...] = ()

    def points(self) -> list[dict]:
        """The grid points, block by block (one empty point, the base settings, without a grid)."""
        out = []
        for block in self.grid or [{}]:
            axes = list(block)
            out += [dict(zip(axes, values)) for values in itertools.product(*(block[a] for a in axes))]
        return out

    def trials(self) -> list["TrialSpec"]:
        """The grid's trials; two points that make the same trial are an error naming both. Built
        once per suite (validation, --dry-run and the cost projection all ask)."""
        if "_trials" not in self.__dict__:
            object.__setattr__(self, "_trials", self._make_trials())  # frozen: a cache, not a field
        return list(self.__dict__["_trials"])

    def _make_trials(self) -> list["TrialSpec"]:
        trials, seen = [], {}
        for point in self.points():
            trial = make_trial(self, point)
            # the same run twice: by id, or by its resolved settings (alpha 1 and 1.0, seed and run.seed)
            for key in (trial.trial_id, config_hash(trial.spec)):
                if key in seen:
                    raise ConfigError(f"{self.source}: grid points {seen[key]} and {point} make the same trial")
                seen[key] = point
            trials.append(trial)
        return trials


@dataclass(frozen=True)
class TrialSpec:
    """One trial: its id, the grid point that defines it and the resolved run."""

    trial_id: str
    point: dict
    spec: RunSpec


def canonical_point(point: dict, task: str, method: str) -> dict:
    """The point with each key written as its field's name (``seed``, not ``run.seed``) where one
    section has that field, so ``seed:`` and ``run.seed:`` name the same trial (and ids match those
    of suites written before sections existed). Keys resolve as ``make_spec`` resolves them
    (``run.resolve_key``); the names (``task``, ``method``, ``preset``) stay as they are."""
    sections = section_classes(task, method)
    names = {"task": task, "method": method}
    out = {}
    for key, value in point.items():
        if key in NAMES:
            out[key] = value
            continue
        section, name = resolve_key(key, sections, "grid point", names)
        owners = [s for s, cls in sections.items() if name in {f.name for f in dataclasses.fields(cls)}]
        out[name if owners == [section] else f"{section}.{name}"] = value
    return out


def trial_id(suite: str, point: dict) -> str:
    """Deterministic id from the (canonical) grid point, so a resumed or re-run suite names trials
    the same."""
    key = json.dumps(point, sort_keys=True, default=str)
    readable = "_".join(f"{k}={v}" for k, v in point.items())[:60]
    # the id shows in terminals, logs and Markdown: no control characters (the hash keeps the ids of
    # different values apart); trial_dirname makes it a directory name
    readable = "".join(c if c.isprintable() else "_" for c in readable)
    return f"{readable or suite}-{hashlib.sha1(key.encode()).hexdigest()[:8]}"


def suite_fingerprint(suite: Suite) -> dict:
    """What the suite runs: each grid trial's settings by id, or the search (space, samples, seed,
    metric) and its base settings. A resumed sweep compares it with the one its first run wrote."""
    if suite.search is not None:
        search = json.dumps(dataclasses.asdict(suite.search), sort_keys=True, default=str)
        return {"search": hashlib.sha1(search.encode()).hexdigest()[:16],
                "base": config_hash(make_spec({**suite.base, "plugins": list(suite.plugins)}, suite.source))}
    return {"trials": {t.trial_id: config_hash(t.spec) for t in suite.trials()}}


def make_trial(suite: Suite, point: dict) -> TrialSpec:
    values = {**suite.base, **point}
    if suite.plugins:
        values["plugins"] = list(suite.plugins)
    where = f"{suite.source}: trial {point or '(base)'}"
    spec = with_absolute_paths(make_spec(values, where))  # trials run in Tune's trial directories
    return TrialSpec(trial_id(suite.name, canonical_point(point, spec.task, spec.method)), point, spec)


def trial_params(trial: TrialSpec, suite: Suite) -> dict:
    """A grid trial's parameters as a sweep hands them to its workers (Tune's ``{"trial": ...}``
    config): what ``resolve_params`` returns."""
    return {"config": trial.spec.to_dict(), "trial_id": trial.trial_id, "suite": suite.name,
            "point": dict(trial.point)}


def resolve_params(params: dict) -> dict:
    """Tune's trial config -> {config, trial_id, suite, point}; ``config`` is a spec's dotted dict
    (``RunSpec.to_dict``). Grid trials carry them ready-made (``trial_params``); Optuna trials carry
    the base config and the sampled values (their point), and get an id from those values."""
    if "trial" in params:
        return params["trial"]
    point = dict(params["sampled"])
    base = params["base"]
    canonical = canonical_point(point, base.get("task") or DEFAULT_TASK, base.get("method") or DEFAULT_METHOD)
    return {"config": {**base, **point}, "trial_id": trial_id(params["suite"], canonical),
            "suite": params["suite"], "point": point}


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------


def _mapping(source: str, key: str, value, allowed: set[str] | None = None) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: '{key}' must be a mapping, got {type(value).__name__}")
    for name in value:  # YAML keys may be numbers, booleans (yes/no/on/off) or null
        if not isinstance(name, str):
            raise ConfigError(f"{source}: {key}: key {name!r} ({type(name).__name__}) must be a string"
                              + (" (YAML reads yes/no/on/off as booleans: quote it)" if isinstance(name, bool) else ""))
    if allowed is not None:
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ConfigError(f"{source}: {key}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    return value


def _parse_search(source: str, raw, base: RunSpec, max_trials: int = 100_000) -> Search:
    raw = _mapping(source, "search", raw, SEARCH_KEYS)
    if raw.get("method", "optuna") != "optuna":
        raise ConfigError(f"{source}: search.method: only 'optuna' is supported, got {raw['method']!r}")
    space = _mapping(source, "search.space", raw.get("space"))
    if not space:
        raise ConfigError(f"{source}: search.space: needs at least one field to search")
    sections = section_classes(base.task, base.method)
    names = {"task": base.task, "method": base.method}
    for name, dist in space.items():
        if name in NAMES:
            raise ConfigError(f"{source}: search.space.{name}: a {name} is not a value to sample; put the "
                              f"{name}s to compare in a grid, or run one search per {name}")
        section, field_name = resolve_key(name, sections, f"{source}: search.space", names)
        dist = _mapping(source, f"search.space.{name}", dist)
        kind = dist.get("type")
        if kind not in DISTRIBUTIONS:
            raise ConfigError(f"{source}: search.space.{name}.type: expected one of {sorted(DISTRIBUTIONS)}, got {kind!r}")
        needed = set(DISTRIBUTIONS[kind])
        if set(dist) - {"type"} != needed:
            raise ConfigError(f"{source}: search.space.{name}: a {kind} distribution takes {sorted(needed)}, "
                              f"got {sorted(set(dist) - {'type'})}")
        if kind == "choice":
            if not isinstance(dist["values"], list) or not dist["values"]:
                raise ConfigError(f"{source}: search.space.{name}.values: a non-empty list is required")
            made: dict[str, object] = {}
            for v in dist["values"]:
                check_value(sections[section], field_name, v, f"{source}: search.space.{name}")
                key = config_hash(base.with_values({f"{section}.{field_name}": v}, f"{source}: search.space.{name}"))
                if key in made:  # 0 twice, or 1 and 1.0: one trial under two ids, or one row for two samples
                    raise ConfigError(f"{source}: search.space.{name}.values: {made[key]!r} and {v!r} are the same "
                                      "setting; list each value once")
                made[key] = v
        else:
            for bound in ("low", "high"):
                value = dist[bound]
                if kind == "int" and (not isinstance(value, int) or isinstance(value, bool)) or \
                        not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                    hint = yaml_float_hint(value) if isinstance(value, str) else ""
                    raise ConfigError(f"{source}: search.space.{name}.{bound}: expected "
                                      f"{'an integer' if kind == 'int' else 'a finite number'}, got {value!r}{hint}")
                # both ends must be values the field takes, so every sampled value makes a valid trial:
                # its type, then its section's rules (alpha > 0, steps >= 1) with the base settings
                check_value(sections[section], field_name, value, f"{source}: search.space.{name}.{bound}")
                base.with_values({f"{section}.{field_name}": value}, f"{source}: search.space.{name}.{bound}")
            if kind != "int" and field_types(sections[section])[field_name][0] is int:
                raise ConfigError(f"{source}: search.space.{name}: a {kind} distribution samples floats and "
                                  f"{section}.{field_name} takes integers: use type: int")
            if not dist["low"] < dist["high"]:
                raise ConfigError(f"{source}: search.space.{name}: low must be below high")
            if kind == "loguniform" and dist["low"] <= 0:
                raise ConfigError(f"{source}: search.space.{name}.low: a loguniform distribution needs low > 0, "
                                  f"got {dist['low']!r}")
    n = raw.get("num_samples", 10)
    points = math.prod(len(d["values"]) if d["type"] == "choice" else d["high"] - d["low"] + 1
                       for d in space.values()) if all(d["type"] in ("choice", "int") for d in space.values()) else None
    if points is not None and isinstance(n, int) and not isinstance(n, bool) and n > points:
        # a repeated point is the same trial (its id comes from the values): fewer rows than samples
        raise ConfigError(f"{source}: search.num_samples: {n} samples of a space of {points} point(s) repeat "
                          f"points; ask for at most {points}, or list the points in a grid")
    if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= max_trials:
        raise ConfigError(f"{source}: search.num_samples: expected an integer in [1, {max_trials:,}], got {n!r}"
                          + (" (pass --allow-large for more)" if isinstance(n, int) and n > max_trials else ""))
    if raw.get("mode", "max") not in ("max", "min"):
        raise ConfigError(f"{source}: search.mode: expected max or min, got {raw['mode']!r}")
    seed = raw.get("seed", 0)
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2 ** 32:
        raise ConfigError(f"{source}: search.seed: expected an integer in [0, 2**32), got {seed!r}")
    metric = _metric_name(source, "search", raw.get("metric", "best_dev_accuracy"))
    return Search(space=space, num_samples=n, seed=seed, metric=metric, mode=raw.get("mode", "max"))


def _metric_name(source: str, part: str, metric) -> str:
    if not isinstance(metric, str) or not metric:
        raise ConfigError(f"{source}: {part}.metric: expected a metric's name, got {metric!r}")
    return metric


def _parse_scheduler(source: str, raw) -> Scheduler:
    raw = _mapping(source, "scheduler", raw, SCHEDULER_KEYS)
    if raw.get("type", "asha") != "asha":
        raise ConfigError(f"{source}: scheduler.type: only 'asha' is supported, got {raw['type']!r}")
    if raw.get("mode", "max") not in ("max", "min"):
        raise ConfigError(f"{source}: scheduler.mode: expected max or min, got {raw['mode']!r}")
    for key in ("grace_period", "reduction_factor", "max_t"):
        # max_t alone may be null (no cap); a null grace period or factor reached Ray's assertions
        if key in raw and (raw[key] is not None or key != "max_t") and \
                (not isinstance(raw[key], int) or isinstance(raw[key], bool) or raw[key] < 1):
            raise ConfigError(f"{source}: scheduler.{key}: expected an integer >= 1, got {raw[key]!r}")
    if "metric" in raw:
        _metric_name(source, "scheduler", raw["metric"])
    if raw.get("reduction_factor", 3) == 1:  # ASHA keeps 1/reduction_factor of the trials at each rung
        raise ConfigError(f"{source}: scheduler.reduction_factor: expected an integer >= 2, got 1")
    if raw.get("max_t") is not None and raw.get("grace_period", 5) > raw["max_t"]:
        raise ConfigError(f"{source}: scheduler.grace_period: {raw.get('grace_period', 5)} is above max_t "
                          f"{raw['max_t']} (no trial could be stopped early)")
    return Scheduler(**{k: v for k, v in raw.items()})


MAX_TRIALS = 100_000  # a larger grid is almost always a mistake (a list where a value was meant)


def parse_suite(raw, source: str = "<memory>", max_trials: int = MAX_TRIALS) -> Suite:
    """Validate a loaded YAML document into a ``Suite``."""
    raw = _mapping(source, "suite", raw, SUITE_KEYS)
    name = raw.get("name")
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(f"{source}: 'name' must be a non-empty string without '/', got {name!r}")
    if name.startswith(("_", ".")):  # <results>/_ray holds Tune's checkpoints; a dot hides the store
        raise ConfigError(f"{source}: 'name' {name!r} starts with '{name[0]}': the results directory keeps such "
                          "names for itself (Tune's checkpoints in _ray); give another name")
    # the name is a directory of the results store and a prefix of every trial id (Parquet, Tune's
    # experiment folder, bucket keys): nothing a filesystem or an object store refuses or reads otherwise
    if name in (".", "..") or len(name.encode("utf-8")) > 100 or any(c in name for c in '\\:*?"<>|') or \
            not name.isprintable():
        raise ConfigError(f"{source}: 'name' {name!r} cannot name a results directory: use at most 100 bytes of "
                          "printable characters, none of \\ : * ? \" < > |, and not . or ..")
    plugins = raw.get("plugins") or []
    if not isinstance(plugins, list) or not all(isinstance(p, str) for p in plugins):
        raise ConfigError(f"{source}: plugins: expected a list of module names, got {plugins!r}")
    base = dict(_mapping(source, "base", raw.get("base", {}) or {}))
    if "plugins" in base:
        raise ConfigError(f"{source}: base.plugins: list plug-in modules at the top level ('plugins:')")
    blocks = raw.get("grid")
    blocks = {} if blocks is None else blocks
    many = isinstance(blocks, list)
    if many and not blocks:
        raise ConfigError(f"{source}: grid: an empty list of blocks makes zero trials")
    grid = []
    for i, block in enumerate(blocks if many else [blocks]):
        where = f"grid[{i}]" if many else "grid"
        axes = {}
        for key, values in _mapping(source, where, block).items():
            if not isinstance(values, list):
                raise ConfigError(f"{source}: {where}.{key}: expected a list of values, got {values!r}")
            if not values:
                raise ConfigError(f"{source}: {where}.{key}: an empty list makes zero trials")
            axes[key] = list(values)  # each grid point is checked as a whole trial below
        if axes or many:
            grid.append(axes)
    resources = dict(_mapping(source, "resources", raw.get("resources", {"cpu": 1, "gpu": 0}), {"cpu", "gpu"}))
    for key in ("cpu", "gpu"):
        value = resources.setdefault(key, 1 if key == "cpu" else 0)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"{source}: resources.{key}: expected a finite number >= 0, got {value!r}"
                              + (yaml_float_hint(value) if isinstance(value, str) else ""))
    max_concurrent = raw.get("max_concurrent")
    if not isinstance(raw.get("description", ""), str):
        raise ConfigError(f"{source}: description: expected text, got {raw['description']!r}")
    if max_concurrent is not None and (not isinstance(max_concurrent, int) or isinstance(max_concurrent, bool)
                                       or max_concurrent < 1):
        raise ConfigError(f"{source}: max_concurrent: expected an integer >= 1, got {max_concurrent!r}")
    base_spec = make_spec({**base, "plugins": plugins}, f"{source}: base")
    sections = section_classes(base_spec.task, base_spec.method)
    names = {"task": base_spec.task, "method": base_spec.method}
    # a field given twice (run.steps: 2 and steps: 500) would silently keep one of them
    for where, keys in [("base", list(base)), *((f"grid block {i}", list(b)) for i, b in enumerate(grid))]:
        given: dict[tuple[str, str], str] = {}
        for key in keys:
            if key in ("task", "method", "preset", "plugins"):
                continue
            try:
                field_key = resolve_key(key, sections, f"{source}: {where}", names)
            except ConfigError:
                continue  # a grid that changes the task or method: its trials check their own keys
            if field_key in given:
                raise ConfigError(f"{source}: {where}: '{given[field_key]}' and '{key}' both set "
                                  f"{'.'.join(field_key)}; keep one")
            given[field_key] = key
    size = 1 if not grid else sum(math.prod(len(v) for v in block.values()) for block in grid)
    if size > max_trials:
        raise ConfigError(f"{source}: the grid makes {size:,} trials, over the limit of {max_trials:,}; "
                          "split the suite, or pass --allow-large to run it anyway")
    suite = Suite(
        name=name, base=base, grid=grid, plugins=tuple(plugins),
        search=_parse_search(source, raw["search"], base_spec, max_trials) if raw.get("search") is not None else None,
        scheduler=_parse_scheduler(source, raw["scheduler"]) if raw.get("scheduler") is not None else None,
        resources=resources, max_concurrent=max_concurrent,
        description=str(raw.get("description", "")), source=source,
    )
    if suite.search is not None and suite.grid:
        raise ConfigError(f"{source}: 'grid' and 'search' cannot be combined: put fixed values in 'base' "
                          "and searched ones in search.space")
    if suite.search is not None and suite.scheduler is not None and \
            (suite.search.metric, suite.search.mode) != (suite.scheduler.metric, suite.scheduler.mode):
        raise ConfigError(f"{source}: search and scheduler must use the same metric and mode "
                          f"({suite.search.metric}/{suite.search.mode} vs {suite.scheduler.metric}/{suite.scheduler.mode})")
    trials = suite.trials()  # every grid point must make a valid config
    for part, target in (("search", suite.search), ("scheduler", suite.scheduler)):
        if target is not None:
            specs = [base_spec] if suite.search is not None else [t.spec for t in trials]
            _check_reported_metric(source, f"{part}.metric", target.metric, specs)
    return suite


def _check_reported_metric(source: str, key: str, metric: str, specs: list[RunSpec]) -> None:
    """A search's or scheduler's metric must be in every report of every trial, or Tune stops the
    sweep at the first report. A trial reports, at each evaluation, its task's metrics on the
    selection split (``dev_accuracy``) and the best so far (``best_dev_accuracy``); test metrics
    come at the end only, and a method's own quantities (``reward_mean``, ``loss``) differ from
    method to method, so neither may be a search's or a scheduler's metric."""
    for spec in specs:
        task = spec.task_class
        reported = [f"{b}{task.selection_split}_{m.name}" for b in ("", "best_") for m in task.metrics]
        if metric not in reported:
            raise ConfigError(f"{source}: {key}: '{metric}' is not reported at each evaluation of task "
                              f"'{spec.task}'; it reports {', '.join(reported)}")


def shipped_suites_dir() -> Path | None:
    """The folder of the suites pinbench ships: ``pinbench/suites`` in an installed wheel (the
    checkout's top-level ``suites/`` installed as package data), ``suites/`` beside the package in a
    checkout."""
    here = Path(__file__).resolve().parent
    for folder in (here / "suites", here.parent / "suites"):
        if folder.is_dir() and any(folder.glob("*.yaml")):
            return folder
    return None


def shipped_suites() -> dict[str, Path]:
    """Shipped suite name (the file's stem, which is also its ``name:``) -> its file."""
    folder = shipped_suites_dir()
    return {} if folder is None else {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def find_suite(ref: str | Path, relative_to: Path | None = None) -> Path:
    """A suite given by path or by a shipped suite's name. A file that exists wins, so a user's
    ``quickstart.yaml`` beside them is not shadowed; a bare name (no folder, no ``.yaml``) is then
    looked up among the shipped suites; ``relative_to`` is the folder of an extending suite."""
    path = Path(ref)
    if relative_to is not None and not path.is_absolute():
        path = relative_to / path
    if path.is_file():
        return path
    text = str(ref)
    shipped = shipped_suites()
    if text in shipped and "/" not in text and "\\" not in text:
        return shipped[text]
    if path.is_dir():
        raise ConfigError(f"suite file '{path}' is a directory; give a suite YAML file or a shipped suite's name "
                          f"({', '.join(shipped) or 'none shipped'})")
    raise ConfigError(f"suite '{text}' is neither a file nor a shipped suite; shipped suites: "
                      f"{', '.join(shipped) or 'none'} (pinbench list)")


def _read_suite_file(path: Path):
    text = read_utf8(path, "suite file")
    try:
        return load_yaml(text, str(path))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {yaml_error_line(exc)}") from None


def _field_resolver(base: dict, source: str):
    """key -> the (section, field) it sets under ``base``'s task, method and preset (None for a
    key that is no field there), so two spellings of one field (``steps``, ``run.steps``) compare
    equal; None when ``base`` names a bad task, method or preset (parse_suite reports it)."""
    try:
        spec = make_spec({k: v for k, v in base.items() if k in ("task", "method", "preset")}, f"{source}: base")
    except ConfigError:
        return None
    sections, names = section_classes(spec.task, spec.method), {"task": spec.task, "method": spec.method}

    def field_of(key):
        try:
            return resolve_key(key, sections, source, names)
        except ConfigError:
            return None

    return field_of


def _merge_base(parent: dict, child: dict, source: str) -> dict:
    """The parent's base settings with the child's on top; a child key replaces the parent's key
    for the same field even when spelled differently (``steps`` vs ``run.steps``)."""
    merged = {**parent, **child}
    field_of = _field_resolver(merged, source)
    if field_of is None:
        return merged
    overridden = {field_of(k) for k in child} - {None}
    return {k: v for k, v in merged.items() if k in child or field_of(k) not in overridden}


def _apply_extends(raw, path: Path, chain: tuple[Path, ...] = ()):
    """``extends: NAME-OR-PATH``: the named suite (a shipped suite's name, or a file relative to
    this one) with this file's keys on top. ``base``, ``resources``, ``search`` and ``scheduler``
    merge key by key (``search.space`` too); every other key, ``grid`` included, replaces the
    parent's. The extending suite needs its own ``name``, so its results never mix with the
    parent's in one store."""
    if not isinstance(raw, dict) or "extends" not in raw:
        return raw
    ref = raw["extends"]
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"{path}: extends: expected a shipped suite's name or a suite file, got {ref!r}")
    if raw.get("name") is not None and not isinstance(raw["name"], str):
        raise ConfigError(f"{path}: 'name' must be a non-empty string without '/', got {raw['name']!r}"
                          + (" (quote it: name: \"123\")" if isinstance(raw["name"], (int, float)) else ""))
    if not isinstance(raw.get("name"), str) or not raw.get("name"):
        raise ConfigError(f"{path}: a suite that extends '{ref}' needs its own 'name' (results are stored "
                          "under the suite's name, and must not mix with the parent's)")
    try:
        parent_path = find_suite(ref, relative_to=path.parent)
    except ConfigError as exc:
        raise ConfigError(f"{path}: extends: {exc}") from None
    chain = (*chain, path.resolve())
    if parent_path.resolve() in chain:
        raise ConfigError(f"{path}: extends: '{ref}' extends this file again (a loop: "
                          f"{' -> '.join(str(p) for p in (*chain, parent_path.resolve()))})")
    if len(chain) > MAX_EXTENDS_DEPTH:
        raise ConfigError(f"{path}: extends: more than {MAX_EXTENDS_DEPTH} suites in the chain")
    parent = _apply_extends(_read_suite_file(parent_path), parent_path, chain)
    parent = _mapping(str(parent_path), "suite", parent, SUITE_KEYS)
    if raw["name"] == parent.get("name"):
        raise ConfigError(f"{path}: name: '{raw['name']}' is the name of the suite it extends ({parent_path}); "
                          "give it its own (results are stored under the suite's name)")
    merged = {k: v for k, v in parent.items() if k != "extends"}
    for key, value in raw.items():
        if key == "extends":
            continue
        if key in ("base", "resources", "search", "scheduler") and value is None and parent.get(key) is not None:
            # 'base:' with every line commented out: merging nothing would have dropped the parent's
            raise ConfigError(f"{path}: {key}: is empty (null); it would replace the whole {key} of "
                              f"'{ref}': leave the key out to keep it, or give the settings to change")
        if key == "base" and isinstance(value, dict) and isinstance(parent.get("base"), dict):
            merged["base"] = _merge_base(parent["base"], value, str(path))
        elif key in ("resources", "search", "scheduler") and isinstance(value, dict) and \
                isinstance(parent.get(key), dict):
            merged[key] = {**parent[key], **value}
            if key == "search" and isinstance(value.get("space"), dict) and isinstance(parent[key].get("space"), dict):
                merged[key]["space"] = {**parent[key]["space"], **value["space"]}
        else:
            merged[key] = value
    return merged


def load_suite(ref: str | Path, overrides: dict | None = None, max_trials: int = MAX_TRIALS) -> Suite:
    """Read and validate a suite given by file or shipped name (``extends`` resolved);
    ``overrides`` replace base settings (e.g. data_dir)."""
    path = find_suite(ref)
    raw = _apply_extends(_read_suite_file(path), path)
    if isinstance(raw, dict) and overrides:
        _check_overrides(raw, overrides, str(path))
        raw = {**raw, "base": _merge_base(raw.get("base") or {}, overrides, str(path))}
    return parse_suite(raw, str(path), max_trials)


def _check_overrides(raw: dict, overrides: dict, source: str) -> None:
    """A ``--set`` key that a grid axis or the search space also sets would be silently replaced
    by the axis's values in every trial: refused, naming the axis."""
    base = raw.get("base") if isinstance(raw.get("base"), dict) else {}
    resolve = _field_resolver(base, source)
    if resolve is None:
        return

    def field_of(key):  # a name (task, preset) or a key that is no field here compares as written
        return key if key in NAMES else resolve(key) or key

    blocks = raw.get("grid") if isinstance(raw.get("grid"), list) else [raw.get("grid")]
    axes = {field_of(k): f"grid axis '{k}'" for b in blocks if isinstance(b, dict) for k in b if isinstance(k, str)}
    search = raw.get("search") if isinstance(raw.get("search"), dict) else {}
    space = search.get("space") if isinstance(search.get("space"), dict) else {}
    axes.update({field_of(k): f"search.space key '{k}'" for k in space if isinstance(k, str)})
    recipe = {k: v for k, v in base.items() if k in ("task", "method", "preset")}
    for key, value in overrides.items():
        if key not in NAMES:  # a bad value is the flag's, not the suite's
            make_spec({**recipe, key: value}, f"--set {key}={value}")
        if field_of(key) in axes:
            raise ConfigError(f"--set {key}: {source} has a {axes[field_of(key)]}, whose values replace this "
                              "setting in every trial; change the axis in the suite (or a suite that extends it)")


def suite_size(suite: Suite) -> int:
    """Trials the suite runs: the grid's, or the search's samples."""
    return suite.search.num_samples if suite.search is not None else len(suite.points())
