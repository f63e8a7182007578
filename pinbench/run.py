"""A run = run settings (seed, device, budget) + a task and its config + a method and its config.

Keys are dotted by section: ``run.seed``, ``task.dataset``, ``method.alpha``; ``task`` and
``method`` name registry entries and ``preset`` a named recipe of a method (``pin``, ``rlprompt``).
A bare key (``alpha``) is accepted where exactly one section has that field. The same resolution
serves suites, ``--set`` and ``pinbench train``:

    spec = make_spec({"preset": "pin", "task.dataset": "mr", "seed": 1})
    spec.method_config.alpha, spec.task_config.dataset, spec.run.seed
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from .errors import ConfigError
from .fields import build, check_value, parse_value, require
from .presets import get_preset
from .provenance import utc_now
from .registry import DEFAULT_METHOD, DEFAULT_TASK, METHODS, TASKS, import_plugins

SECTIONS = ("run", "task", "method")
NAMES = ("task", "method", "preset", "plugins")  # keys that are not fields of a section


@dataclass
class RunConfig:
    """What every run has, whatever its task and method."""

    seed: int = 0
    """Seeds everything random in the run (initialisation, sampling): same seed, same prompts."""
    device: str = "cpu"
    """cpu or cuda[:N], for every model of the run."""
    steps: int = 6000
    """The method's budget in iterations (training steps; candidates for a search)."""
    eval_every: int = 20
    """Score the method's current prompt on the selection split every N iterations (and at the last)."""
    test: bool = True
    """Score the chosen prompt on the task's report split (test) at the end."""
    selection: str = "metric"
    """Which evaluated prompt is the run's result: "metric", the best by the task's selection metric
    (dev accuracy for classification), its reward breaking ties; "reward", the best by its reward on
    the selection split (the RL authors' trainers keep the highest dev reward), the metric breaking
    ties. Tasks that select on their reward (style transfer, inversion) are the same under both."""

    def __post_init__(self):
        require([(self.steps >= 1, "steps", ">= 1"), (self.eval_every >= 1, "eval_every", ">= 1"),
                 (self.selection in SELECTIONS, "selection", f"one of {list(SELECTIONS)}"),
                 (device_type(self.device) in DEVICE_TYPES, "device", device_expected(self.device))], self)


DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu")
SELECTIONS = ("metric", "reward")


_PLAIN_DEVICE = re.compile(rf"({'|'.join(DEVICE_TYPES)})(:(0|[1-9][0-9]*))?")  # cuda, cuda:1


def device_type(name: str) -> str | None:
    """The device type torch reads in ``name`` (None: not a device). The plain names (``cuda``,
    ``cuda:1``) are read here, so that validating a config loads no torch; torch reads the rest."""
    match = _PLAIN_DEVICE.fullmatch(name) if isinstance(name, str) else None
    if match:
        return match.group(1)
    import torch

    try:
        return torch.device(name).type
    except (RuntimeError, TypeError, ValueError):
        return None


def device_expected(name) -> str:
    """What a device setting must be, with the likely fix for ``name`` ('gpu', 'CPU')."""
    hint = ""
    if isinstance(name, str) and name.strip().lower().startswith("gpu"):
        hint = "; 'gpu' is not a torch device name"
    elif isinstance(name, str) and device_type(name.strip().lower()) in DEVICE_TYPES:
        hint = f"; torch names it '{name.strip().lower()}'"
    return f"cpu, cuda or cuda:N, as torch names devices{hint}"


def check_device(device: str, key: str = "--device") -> None:
    """A device named as torch names it, and present on this machine: one line naming ``key``."""
    if device_type(device) not in DEVICE_TYPES:
        raise ConfigError(f"{key} '{device}': expected {device_expected(device)}")
    check_device_available(device, key)


def check_device_available(device: str, key: str = "run.device") -> None:
    """Before a model loads on this machine: the device exists here (a suite may name cuda for a
    cluster, so this is checked where a run starts, not when its config is read)."""
    if device_type(device) == "cpu":  # every machine has one; no torch needed to say so
        return
    import torch

    d = torch.device(device)
    if d.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"{key} '{device}': torch sees no CUDA device on this machine "
                              f"(torch {torch.__version__}, built {'with' if torch.version.cuda else 'without'} CUDA)")
        if d.index is not None and d.index >= torch.cuda.device_count():
            raise ConfigError(f"{key} '{device}': this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif d.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"{key} '{device}': MPS is not available on this machine")


@dataclass(frozen=True)
class RunSpec:
    """One fully resolved run: what ``make_spec`` returns, a trial's identity."""

    task: str
    method: str
    run: RunConfig
    task_config: Any
    method_config: Any
    preset: str | None = None
    plugins: tuple[str, ...] = ()

    @property
    def task_class(self):
        return TASKS.get(self.task)

    @property
    def method_class(self):
        return METHODS.get(self.method)

    def to_dict(self) -> dict:
        """Flat dotted keys (``run.seed``, ``task.dataset``, ``method.alpha``) plus the names;
        ``make_spec(spec.to_dict())`` gives the spec back."""
        out: dict = {"task": self.task, "method": self.method, "preset": self.preset}
        if self.plugins:
            out["plugins"] = list(self.plugins)
        for section, config in zip(SECTIONS, (self.run, self.task_config, self.method_config)):
            # field values are scalars, tuples and lists of scalars: a shallow copy is asdict's result
            # at a fraction of its cost (a 10,000-trial dry-run calls this for every trial)
            out.update({f"{section}.{f.name}": (list(v) if isinstance(v := getattr(config, f.name), list) else v)
                        for f in dataclasses.fields(config)})
        return out

    def with_values(self, values: dict, where: str) -> "RunSpec":
        """This run with ``values`` (dotted keys) set on top, checked as ``make_spec`` checks them."""
        return make_spec({**self.to_dict(), **values}, where)

    def nested(self) -> dict:
        """The same, one mapping per section (config.json)."""
        return {"task": self.task, "method": self.method, "preset": self.preset, "plugins": list(self.plugins),
                "run": dataclasses.asdict(self.run), "task_config": dataclasses.asdict(self.task_config),
                "method_config": dataclasses.asdict(self.method_config)}


def section_classes(task: str, method: str) -> dict[str, type]:
    return {"run": RunConfig, "task": TASKS.config_class(task), "method": METHODS.config_class(method)}


def _fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls)]


def resolve_key(key: str, sections: dict[str, type], where: str, names: dict[str, str]) -> tuple[str, str]:
    """``method.alpha`` -> (method, alpha); a bare ``alpha`` -> the one section that has it. The
    error for an unknown key names the section and lists its fields."""
    section, dot, name = key.partition(".")
    if dot:
        if section not in sections:
            raise ConfigError(f"{where}: unknown key '{key}': sections are {', '.join(SECTIONS)} "
                              f"(and the names {', '.join(NAMES)})")
        if name not in _fields(sections[section]):
            owner = f" of {section} '{names[section]}'" if section in names else ""
            raise ConfigError(f"{where}: unknown key '{key}': the fields{owner} are "
                              f"{', '.join(_fields(sections[section]))}")
        return section, name
    owners = [s for s, cls in sections.items() if key in _fields(cls)]
    if len(owners) == 1:
        return owners[0], key
    if owners:
        raise ConfigError(f"{where}: key '{key}' is a field of {' and '.join(owners)}: write "
                          f"{' or '.join(f'{s}.{key}' for s in owners)}")
    listing = "; ".join(f"{s}{' ' + repr(names[s]) if s in names else ''}: {', '.join(_fields(c))}"
                        for s, c in sections.items())
    raise ConfigError(f"{where}: unknown key '{key}'; {listing}; or {', '.join(NAMES)}")


def make_spec(values: dict, where: str = "config", *, from_strings: bool = False) -> RunSpec:
    """Resolve keys (dotted or bare) into a ``RunSpec``: the preset's values first, then ``values``.
    ``from_strings`` parses command-line strings by each field's type; otherwise values are
    type-checked as YAML gives them. Errors name ``where`` and the key."""
    values = dict(values)
    for name in ("task", "method", "preset"):
        value = values.get(name)
        if value is not None and not isinstance(value, str):
            kind = "a mapping" if isinstance(value, dict) else type(value).__name__
            raise ConfigError(f"{where}: {name}: expected a {name} name, got {kind} {value!r}"
                              + (f"; a section's fields are dotted keys ({name}.<field>: value)"
                                 if isinstance(value, dict) and name != "preset" else ""))
    plugins = tuple(values.pop("plugins", None) or ())
    preset_name = values.pop("preset", None)
    try:
        import_plugins(plugins)
        preset = get_preset(preset_name) if preset_name is not None else None
        task = values.pop("task", None) or DEFAULT_TASK
        method = values.pop("method", None) or (preset.method if preset else DEFAULT_METHOD)
        if preset is not None and preset.method != method:
            raise ConfigError(f"preset '{preset_name}' is a recipe of method '{preset.method}', not '{method}'")
        sections = section_classes(task, method)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {str(exc).removeprefix('config: ')}") from None
    names = {"task": task, "method": method}
    chosen: dict[str, dict] = {s: {} for s in SECTIONS}
    for key, value in (preset.values_for(task, where) if preset else {}).items():
        try:
            section, name = resolve_key(key, sections, f"preset '{preset_name}'", names)
        except ConfigError:  # the user never wrote the key: the recipe does not fit this task
            raise ConfigError(f"{where}: preset '{preset_name}' sets '{key}', which task '{task}' and method "
                              f"'{method}' do not have: the preset is not a recipe for task '{task}'; pick "
                              "another preset, or leave it out and set the fields") from None
        chosen[section][name] = value
    for key, value in values.items():
        section, name = resolve_key(key, sections, where, names)
        label = f"{where}: {section}.{name}"
        if from_strings and isinstance(value, str):
            value = parse_value(sections[section], name, value, label)
        else:
            value = check_value(sections[section], name, value, label)
        chosen[section][name] = value
    configs = {}
    for section, cls in sections.items():
        owner = f" '{names[section]}'" if section in names else ""
        try:
            configs[section] = build(cls, chosen[section], f"{where}: {section}{owner}")
        except (ConfigError, TypeError, ValueError) as exc:
            if isinstance(exc, ConfigError) and str(exc).startswith(f"{where}:"):
                raise
            raise ConfigError(f"{where}: {section}{owner}: {exc}") from None
    return RunSpec(task=task, method=method, run=configs["run"], task_config=configs["task"],
                   method_config=configs["method"], preset=preset_name, plugins=plugins)


MODEL_FIELD_SUFFIXES = ("_lm", "_model", "_classifier")  # fields that name a model (task.task_lm, ...)
PATH_FIELD_SUFFIXES = ("_dir", "_file", *MODEL_FIELD_SUFFIXES)  # fields that may name a local path


def absolute_path_values(values: dict, task_class) -> dict:
    """The task and method settings in ``values`` (a spec's dotted keys) that name an existing
    relative path (a data directory, a dataset file, a local model directory, and what the task's
    ``local_path_values`` names), made absolute; only the changed keys."""
    import os

    from .models import ALIASES

    # a built-in model name stays a name even where a folder of that name is beside the user (the
    # loader reads the alias); any other existing path is read as a path, so it is recorded as one
    changed = {k: os.path.abspath(os.path.expanduser(v)) for k, v in values.items()
               if k.startswith(("task.", "method.")) and k.endswith(PATH_FIELD_SUFFIXES)
               and isinstance(v, str) and v and v not in ALIASES and "://" not in v
               and (v.startswith("~") or not os.path.isabs(v)) and os.path.exists(os.path.expanduser(v))}
    return changed | task_class.local_path_values({**values, **changed})


def with_absolute_paths(spec: RunSpec) -> RunSpec:
    """The spec with each setting that names an existing relative path made absolute
    (``absolute_path_values``): what a run records must read the same files from any working
    directory (``pinbench transfer`` elsewhere, a report), and a sweep's trials run in Tune's trial
    directories, not where the suite was started."""
    changed = absolute_path_values(spec.to_dict(), spec.task_class)
    if not changed:
        return spec
    return spec.with_values(changed, "run")


def config_hash(spec: RunSpec) -> str:
    """A run's settings, every field resolved, as a short hash: a trials row records it, so a
    resumed sweep can tell a completed trial from one whose settings the suite has since changed."""
    import hashlib
    import json

    return hashlib.sha1(json.dumps(spec.to_dict(), sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class RunResult:
    """What a run produced, whatever its method (``pinbench.results`` writes it as Parquet)."""

    spec: RunSpec
    history: list[dict] = field(default_factory=list)
    """One row per iteration (the method's own metrics; selection-split metrics where evaluated)."""
    prompts: list[dict] = field(default_factory=list)
    """Every evaluated prompt (source, step, metrics), and the chosen one (source ``best``)."""
    best: dict = field(default_factory=dict)
    """The chosen prompt: step, prompt, token ids and its selection-split metrics."""
    test: dict = field(default_factory=dict)
    """The chosen prompt's report-split metrics (``test_<metric>``)."""
    wall_time_s: float = 0.0
    steps_done: int = 0
    prompt_tokenizer: str | None = None
    """The model whose tokenizer produced ``token_ids`` (naturalness statistics use it)."""
    budget: dict = field(default_factory=dict)
    """What the run spent, so methods compare at equal cost: ``scored_<split>`` prompts the task
    scored, ``examples_<split>`` (prompt, example) pairs it ran through its model, and
    ``gradient_steps`` / ``gradient_examples`` of white-box methods (``PromptBook``)."""
    started_at: str = field(default_factory=utc_now)
    """When the run started (UTC, ISO 8601); a resumed run keeps its first start."""
    resumed_at: list[int] = field(default_factory=list)
    """The steps the run continued from after a checkpoint was loaded (one per resume; empty for a
    run that never stopped), so a results row shows that a resumed trial did not start over."""
