"""Registries of tasks and methods (a name -> the class that implements it) and of presets (a
name -> a method's recipe: ``pinbench.presets.PRESETS``, re-exported here).

Built-in entries are ``"module:Class"`` strings, imported on first use (listing the tasks does not
load torch models). A plug-in is one module that registers its classes and recipes:

    from pinbench.registry import PRESETS, TASKS
    from pinbench.presets import Preset

    @TASKS.register("my-task")
    class MyTask(Task): ...

    PRESETS.register(Preset("my-recipe", "rl", "what it is", {"method.alpha": 0.5}))

and is named where it runs: ``plugins: [my_module]`` in a suite or ``--plugin my_module`` on the
command line. A sweep's workers import the same plug-in modules before they build a trial, so a
plug-in module must be importable on every node (installed, or on ``PYTHONPATH``).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path
from typing import Callable, Iterable

from .errors import ConfigError
from .presets import PRESETS  # noqa: F401 - the third registry, with TASKS and METHODS


class Registry:
    """Names of one kind (``task`` or ``method``) -> classes."""

    def __init__(self, kind: str, builtin: dict[str, str], base: str = "", needs: tuple[str, ...] = (),
                 implements: tuple[str, ...] = (), configs: dict[str, str] | None = None):
        self.kind = kind
        self._entries: dict[str, str | type] = dict(builtin)
        self._builtin = dict(builtin)
        # Where a built-in's ``config_class`` is defined ("module:Class"), when that module is
        # lighter than the class's own: commands that only read fields (`--help`, `sweep
        # --dry-run`) then load no torch (tests/test_import_graph.py checks both places agree).
        self._configs = dict(configs or {})
        # What a registered class must be: a subclass of ``base`` ("module:Class", imported when a
        # class registers), with the attributes ``needs`` and its own ``implements`` (the base's
        # raise NotImplementedError): an incomplete plug-in is named when it registers, not by a
        # bare AttributeError or NotImplementedError in the middle of a run.
        self._base, self._needs, self._implements = base, needs, implements

    def _check_contract(self, name: str, cls: type) -> None:
        if not self._base:
            return
        module, _, attr = self._base.partition(":")
        base = getattr(importlib.import_module(module), attr)
        where = f"plug-in {self.kind} '{name}' ({cls.__module__}.{cls.__qualname__})"
        if not isinstance(cls, type) or not issubclass(cls, base):
            raise ConfigError(f"{where} is not a subclass of {attr} ({module})")
        missing = [a for a in self._needs if not hasattr(cls, a)]
        missing += [f"{m}()" for m in self._implements  # defined by the base class only (raises)
                    if next((k for k in cls.__mro__ if m in vars(k)), base) is base]
        if missing:
            raise ConfigError(f"{where} does not define {', '.join(missing)}, which every {self.kind} needs "
                              f"(see {attr} in {module})")

    def register(self, name: str) -> Callable[[type], type]:
        """Class decorator: ``@TASKS.register("name")``. The class gets ``name`` as its ``name``."""
        def add(cls: type) -> type:
            known = self._entries.get(name)
            if name in self._builtin:  # only the built-in's own class may register it (on import)
                if self._builtin[name] != f"{cls.__module__}:{cls.__qualname__}":
                    raise ConfigError(f"{self.kind} '{name}' is a built-in {self.kind}; plug-in module "
                                      f"'{cls.__module__}' cannot replace it: register its class under another name")
            elif known is not None and known is not cls:
                raise ConfigError(f"{self.kind} '{name}' is registered twice ({known.__module__} and {cls.__module__})")
            if name not in self._builtin:
                self._check_contract(name, cls)
            cls.name = name
            self._entries[name] = cls
            return cls
        return add

    def get(self, name: str) -> type:
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} '{name}'; known: {', '.join(self.names())} "
                              f"(a plug-in module registers more: `plugins:` in a suite, --plugin on the CLI)")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            entry.name = name
            self._entries[name] = entry
        return entry

    def config_class(self, name: str) -> type:
        """The config dataclass of ``name`` (its ``config_class``); for a built-in not imported yet,
        from its config module, without importing the class itself."""
        if isinstance(self._entries.get(name), str) and name in self._configs:
            module, _, attr = self._configs[name].partition(":")
            return getattr(importlib.import_module(module), attr)
        return self.get(name).config_class

    def description(self, name: str) -> str:
        """The first paragraph of the class's docstring, on one line (``pinbench list``). A built-in
        not imported yet is read from its source file, not imported: listing loads no torch."""
        entry, doc = self._entries.get(name), None
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            spec = importlib.util.find_spec(module)
            source = Path(spec.origin) if spec is not None and spec.origin else None
            if source is not None and source.suffix == ".py" and source.is_file():
                tree = ast.parse(source.read_text(encoding="utf-8"))
                doc = next((ast.get_docstring(n) for n in tree.body
                            if isinstance(n, ast.ClassDef) and n.name == attr), None)
        if doc is None:  # imported already, or installed without its source
            doc = self.get(name).__doc__
        return " ".join((doc or "").strip().split("\n\n")[0].split())

    def names(self) -> list[str]:
        return list(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


def import_plugins(modules: Iterable[str]) -> None:
    """Import plug-in modules (each registers its tasks, methods and presets); a missing one is an error."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ConfigError as exc:  # e.g. it registers a name that is taken
            raise ConfigError(f"plug-in module '{module}': {exc}") from None
        except Exception as exc:  # noqa: BLE001 - any error at import; SyntaxError's names the file and line
            raise ConfigError(f"plug-in module '{module}' cannot be imported: {type(exc).__name__}: {exc}") from None


#: The task a command or a config runs when it names none.
DEFAULT_TASK = "classification"
#: The method a command or a config runs when it names neither a method nor a preset.
DEFAULT_METHOD = "rl"
TASKS = Registry("task", {
    "classification": "pinbench.tasks.classification.task:FewShotClassification",
    "style_transfer": "pinbench.tasks.style_transfer.task:StyleTransfer",
    "inversion": "pinbench.tasks.inversion.task:Inversion",
}, base="pinbench.tasks.base:Task", needs=("config_class", "metrics"), implements=("build", "score", "dataset_name"))
METHODS = Registry("method", {
    "rl": "pinbench.methods.rl.trainer:RLMethod",
    "pez": "pinbench.methods.pez.method:PEZ",
    # baselines (PIN Table 1)
    "fixed": "pinbench.methods.fixed.method:FixedPrompts",
    "random_search": "pinbench.methods.random_search.method:RandomSearch",
    "soft_prompt": "pinbench.methods.soft_prompt.method:SoftPrompt",
    "autoprompt": "pinbench.methods.autoprompt.method:AutoPrompt",
    "grips": "pinbench.methods.grips.method:GrIPS",
}, base="pinbench.methods.base:Method", needs=("config_class",), implements=("iterate", "current_prompt"), configs={
    "rl": "pinbench.methods.rl.config:RLConfig",
    "pez": "pinbench.methods.pez.config:PEZConfig",
    "fixed": "pinbench.methods.fixed.config:FixedPromptsConfig",
    "random_search": "pinbench.methods.random_search.config:RandomSearchConfig",
    "soft_prompt": "pinbench.methods.soft_prompt.config:SoftPromptConfig",
    "autoprompt": "pinbench.methods.autoprompt.config:AutoPromptConfig",
    "grips": "pinbench.methods.grips.config:GrIPSConfig",
})
