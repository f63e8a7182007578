"""Few-shot classification data: a declarative dataset registry and the LM-BFF TSV reader.

The built-in datasets live in ``datasets.yaml`` beside this module; a user adds one with a YAML file of the
same shape (``load_dataset_file``) without writing code.
"""

from __future__ import annotations

import dataclasses
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from ...data_locations import explicit_folder, locate
from ...errors import ConfigError, DataError, yaml_error_line
from ...io import load_yaml, parse_label, read_tsv_rows, read_utf8
from ..base import formatted_fields

PLACEHOLDERS = ("input", "prompt", "mask")
SPLITS = ("train", "dev", "test")
DEFAULT_PATH = "{name}/16-{split_seed}/{split}.tsv"


@dataclass(frozen=True)
class DatasetSpec:
    """One classification dataset: where its files are and how a task LM is asked about it."""

    name: str
    """Registry name, e.g. ``sst-2``."""
    verbalizers: tuple[str, ...]
    """One word per class (label i -> word i); each must be one token of the task LM."""
    template: str
    """Masked-LM template with ``{input}``, ``{prompt}`` and ``{mask}``."""
    causal_template: str | None = None
    """Causal-LM template; ``{mask}`` (the scored next token) must come last. Default: ``template``
    cut at ``{mask}``."""
    causal_verbalizers: tuple[str, ...] | None = None
    """Words for causal task LMs when they differ from ``verbalizers``."""
    text_column: str | None = None
    """TSV text column; default ``sentence``, else ``text``."""
    label_column: str = "label"
    """TSV integer label column (0..C-1)."""
    path: str = DEFAULT_PATH
    """File pattern with ``{name}``, ``{split_seed}``, ``{split}``; relative to the data directory
    (or, for a dataset defined in a YAML file, to that file's directory if ``data_dir`` is unset)."""
    data_dir: str | None = None
    """Default data directory for this dataset (user datasets); the caller's ``data_dir`` wins."""
    label_names: tuple[str, ...] | None = None
    """Human-readable class names for reports (default: the verbalizer words, stripped)."""
    manual_template: str | None = None
    """The hand-written template of the papers' "Manual prompt" row (RLPrompt's baseline scripts,
    from LM-BFF), with ``{prompt}`` at its start, where an instruction goes (empty for the manual
    row). For masked LMs; causal LMs use ``manual_causal_template`` or this one cut at ``{mask}``."""
    manual_causal_template: str | None = None
    """The manual template for causal LMs when ``{mask}`` is not last in ``manual_template``."""
    instruction: str | None = None
    """The task instruction of the papers' "Instructions" row, put in the manual template's
    ``{prompt}`` slot (RLPrompt's baseline scripts)."""
    source: str = "built-in registry"
    """Where the spec came from (for error messages)."""

    @property
    def num_classes(self) -> int:
        return len(self.verbalizers)

    def template_for(self, kind: str) -> str:
        if kind == "masked":
            return self.template
        if self.causal_template is not None:
            return self.causal_template
        return self.template[: self.template.index("{mask}") + len("{mask}")]

    def with_template(self, which: str, where: str = "task.template") -> "DatasetSpec":
        """This dataset with another template: ``dataset`` (its own), ``manual`` (its manual
        template) or a template string with ``{input}``, ``{prompt}`` and ``{mask}``."""
        if which == "dataset":
            return self
        if which == "manual":
            if self.manual_template is None:
                raise ConfigError(f"{where}: dataset '{self.name}' has no manual template (set 'manual_template' "
                                  "in its registry entry, or give a template string)")
            return dataclasses.replace(self, template=self.manual_template, causal_template=self.manual_causal_template)
        raw = {"verbalizers": list(self.verbalizers), "template": which}
        parse_spec(self.name, raw, where)  # the same checks as a registry entry's template
        return dataclasses.replace(self, template=which, causal_template=None)

    def verbalizers_for(self, kind: str) -> tuple[str, ...]:
        if kind == "causal" and self.causal_verbalizers is not None:
            return self.causal_verbalizers
        return self.verbalizers

    def file(self, data_dir: str | Path | None, split_seed: int, split: str) -> Path:
        if split not in SPLITS:
            raise ConfigError(f"unknown split '{split}' for dataset '{self.name}'; expected one of {SPLITS}")
        rel = self.path.format(name=self.name, split_seed=split_seed, split=split)
        if Path(rel).is_absolute():
            return Path(rel)
        if data_dir is None and self.data_dir is not None:  # a user dataset's own directory
            return Path(self.data_dir) / rel
        # --data-dir as given (or the few-shot folder of a data root), else the places of the rule
        return locate("few-shot", rel, self.name, data_dir) / rel


@dataclass(frozen=True)
class Example:
    text: str
    label: int


@dataclass(frozen=True)
class Split:
    """The examples of one split file, with the file they came from."""

    spec: DatasetSpec
    name: str
    file: Path
    examples: tuple[Example, ...] = field(repr=False)

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    @property
    def labels(self) -> list[int]:
        return [e.label for e in self.examples]

    def __len__(self) -> int:
        return len(self.examples)


# ---------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------

_FIELDS = {f.name for f in dataclasses.fields(DatasetSpec)} - {"name", "source"}


def _template_fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]


PATH_FIELDS = ("name", "split_seed", "split")  # what a dataset's ``path`` pattern may hold


def parse_spec(name: str, raw: object, source: str) -> DatasetSpec:
    """Validate one registry entry into a ``DatasetSpec``; errors name the dataset, key and source."""
    where = f"dataset '{name}' in {source}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(raw).__name__}")
    unknown = sorted(set(raw) - _FIELDS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(_FIELDS)}")
    for key in ("verbalizers", "template"):
        if key not in raw:
            raise ConfigError(f"{where}: missing required key '{key}'")
    values = dict(raw)
    for key in ("verbalizers", "causal_verbalizers", "label_names"):
        if key in values and values[key] is not None:
            words = values[key]
            if not isinstance(words, list) or not words or not all(isinstance(w, str) for w in words):
                raise ConfigError(f"{where}: '{key}' must be a non-empty list of strings, got {words!r}")
            values[key] = tuple(words)
    for key in ("template", "causal_template", "text_column", "label_column", "path", "data_dir", "manual_template",
                "manual_causal_template", "instruction"):
        if key in values and values[key] is not None and not isinstance(values[key], str):
            raise ConfigError(f"{where}: '{key}' must be a string, got {values[key]!r}")
    if len(values["verbalizers"]) < 2:
        raise ConfigError(f"{where}: 'verbalizers' needs at least two classes")
    for key in ("verbalizers", "causal_verbalizers"):
        blank = [w for w in values.get(key) or () if not w.strip()]
        if blank:  # no token to score: found only once a model has loaded
            raise ConfigError(f"{where}: '{key}' has an empty word {blank[0]!r}; each class needs a word")
    for key in ("text_column", "label_column"):
        if key in values and values[key] is not None and not values[key].strip():
            raise ConfigError(f"{where}: '{key}' is empty; name a column of the split files, or leave it out")
    if values.get("text_column") is not None and values["text_column"] == values.get("label_column", "label"):
        raise ConfigError(f"{where}: 'text_column' and 'label_column' are both '{values['text_column']}': "
                          "the model would read the labels")
    for key in ("verbalizers", "label_names"):
        if values.get(key) is not None and len(set(values[key])) != len(values[key]):
            raise ConfigError(f"{where}: '{key}' has a repeated {'word' if key == 'verbalizers' else 'name'}: "
                              f"{list(values[key])}")
    for key in ("causal_verbalizers", "label_names"):
        if values.get(key) is not None and len(values[key]) != len(values["verbalizers"]):
            raise ConfigError(
                f"{where}: '{key}' has {len(values[key])} entries but 'verbalizers' has "
                f"{len(values['verbalizers'])}"
            )
    for key in ("template", "causal_template", "manual_template", "manual_causal_template"):
        if values.get(key) is None:
            continue
        try:
            fields = _template_fields(values[key])
        except ValueError as exc:
            raise ConfigError(f"{where}: '{key}' {values[key]!r} is not a valid template: {exc}") from None
        if sorted(fields) != sorted(PLACEHOLDERS):
            raise ConfigError(
                f"{where}: '{key}' {values[key]!r} must contain each of {{input}}, {{prompt}}, "
                f"{{mask}} exactly once and nothing else in braces (found {fields})"
            )
        specs = formatted_fields(values[key])
        if specs:  # rendering replaces the placeholders whole: a format or conversion would be ignored
            raise ConfigError(f"{where}: '{key}' {values[key]!r}: placeholders take no format or conversion "
                              f"({', '.join(specs)}); write them bare, as {{input}}")
    if values.get("path") is not None:
        try:
            unknown = sorted(set(_template_fields(values["path"])) - set(PATH_FIELDS))
        except ValueError as exc:
            raise ConfigError(f"{where}: 'path' {values['path']!r} is not a valid pattern: {exc}") from None
        if unknown:
            raise ConfigError(f"{where}: 'path' {values['path']!r} has unknown placeholder(s) {unknown}; "
                              f"it may use {', '.join('{' + f + '}' for f in PATH_FIELDS)}")
        specs = formatted_fields(values["path"])
        if specs:  # {split:d} fails when read, {split_seed:x} reads another folder
            raise ConfigError(f"{where}: 'path' {values['path']!r}: placeholders take no format or conversion "
                              f"({', '.join(specs)}); write them bare, as {{split_seed}}")
        if "split" not in _template_fields(values["path"]):
            raise ConfigError(f"{where}: 'path' {values['path']!r} has no {{split}}: train, dev and test would be "
                              "one file (the prompt chosen and reported on its own training data)")
    causal = values.get("causal_template")
    if causal is not None and _template_fields(causal)[-1] != "mask":
        raise ConfigError(f"{where}: 'causal_template' {causal!r} must end with {{mask}} (the next token)")
    if causal is None and _template_fields(values["template"])[-1] != "mask":
        # The default causal template is `template` cut at {mask}; input and prompt must precede it.
        cut = values["template"][: values["template"].index("{mask}")]
        if "{input}" not in cut or "{prompt}" not in cut:
            raise ConfigError(
                f"{where}: 'template' {values['template']!r} puts {{mask}} before the input or prompt; "
                "add a 'causal_template' ending in {mask} for causal task LMs"
            )
    return DatasetSpec(name=name, source=source, **values)


def _parse_registry(text: str, source: str) -> dict[str, DatasetSpec]:
    try:
        raw = load_yaml(text, str(source))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {yaml_error_line(exc)}") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{source}: expected a mapping of dataset name -> settings")
    for name in raw:
        if not isinstance(name, str):  # yes/no/on/off, ~ and numbers are YAML's booleans, null and numbers
            raise ConfigError(f"{source}: dataset name {name!r} ({type(name).__name__}) must be a string; quote it")
        if not name.strip() or name in (".", "..") or any(c in name for c in "/\\") \
                or not name.isprintable():
            raise ConfigError(f"{source}: dataset name {name!r} must be a non-empty name without '/', '\\' or "
                              "control characters (it is a folder of the data layout and a column of results)")
    return {name: parse_spec(name, entry, source) for name, entry in raw.items()}


def builtin_datasets() -> dict[str, DatasetSpec]:
    text = resources.files("pinbench.tasks.classification").joinpath("datasets.yaml").read_text(encoding="utf-8")
    return _parse_registry(text, "pinbench/tasks/classification/datasets.yaml")


_REGISTRY: dict[str, DatasetSpec] = {}


def registry() -> dict[str, DatasetSpec]:
    if not _REGISTRY:
        _REGISTRY.update(builtin_datasets())
    return _REGISTRY


def load_dataset_file(path: str | Path, register: bool = True) -> dict[str, DatasetSpec]:
    """Read user dataset definitions from YAML (same shape as the built-in registry).

    Relative ``path`` patterns resolve against ``data_dir`` if given, else the YAML file's folder.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise ConfigError(f"dataset file '{path}' " + ("is a directory; give a dataset YAML file" if path.is_dir()
                          else "is not a regular file" if path.exists() else "does not exist"))
    specs = _parse_registry(read_utf8(path, "dataset file"), str(path))
    resolved = {}
    for name, spec in specs.items():
        data_dir = spec.data_dir
        if data_dir is None or not Path(data_dir).is_absolute():
            data_dir = str((path.parent / (data_dir or ".")).resolve())
        resolved[name] = dataclasses.replace(spec, data_dir=data_dir)
    if register:
        builtin = builtin_datasets()
        for name in resolved:
            if name in builtin:
                raise ConfigError(f"{path}: dataset '{name}' is a built-in dataset; give yours another name "
                                  "(a run's results name the dataset, and must not mix with the built-in's)")
        registry().update(resolved)
    return resolved


def load_dataset_files(paths) -> None:
    """Register the datasets of every file (``--dataset-file`` given more than once); a name that
    two of the files define is an error naming both, not the one that happens to be read last."""
    defined: dict[str, Path] = {}
    for path in paths:
        here = Path(path).expanduser().resolve()
        for name in load_dataset_file(path):
            if name in defined and defined[name] != here:
                raise ConfigError(f"dataset '{name}' is defined in both '{defined[name]}' and '{here}'; "
                                  "give each definition its own name")
            defined[name] = here


def get_dataset(name: str) -> DatasetSpec:
    reg = registry()
    if name not in reg:
        raise ConfigError(f"unknown dataset '{name}'; known datasets: {', '.join(sorted(reg))} "
                          "(define your own with a dataset YAML file)")
    return reg[name]


# ---------------------------------------------------------------------------------------------
# Reading splits
# ---------------------------------------------------------------------------------------------


def read_split(spec: DatasetSpec | str, split: str, split_seed: int = 13,
               data_dir: str | Path | None = None) -> Split:
    """Read ``<data_dir>/<dataset>/16-<split_seed>/<split>.tsv`` (or the spec's own pattern)."""
    if isinstance(spec, str):
        spec = get_dataset(spec)
    file = spec.file(data_dir, split_seed, split)
    if not file.is_file():
        root = explicit_folder("few-shot", data_dir) if data_dir is not None else spec.data_dir
        if root is not None and not Path(spec.path).is_absolute() and not Path(root).is_dir():
            raise DataError(f"dataset '{spec.name}': data directory '{root}' does not exist")
        what = "is a directory" if file.is_dir() else "is not a regular file" if file.exists() else "does not exist"
        raise DataError(f"dataset '{spec.name}': split file '{file}' {what}")
    # Quotes are text (SST has unbalanced ones); a file whose lines only parse with CSV quoting (a
    # quoted field holding a tab, as in dbpedia) is read with quoting, line by line, exactly.
    columns, rows = read_tsv_rows(file, f"dataset '{spec.name}': split file", "auto", DataError)
    # The preferred column first, then the LM-BFF names (agnews train says `text`, test `sentence`).
    # A column the dataset names is the only one read: a typo must not read another column.
    candidates = [spec.text_column] if spec.text_column else ["sentence", "text"]
    text_col = next((c for c in candidates if c in columns), None)
    if text_col is None:
        raise DataError(f"dataset '{spec.name}': '{file}' has no text column "
                        f"'{spec.text_column or 'sentence/text'}' (columns: {columns})")
    if spec.label_column not in columns:
        raise DataError(f"dataset '{spec.name}': '{file}' has no label column "
                        f"'{spec.label_column}' (columns: {columns})")
    if text_col == spec.label_column:  # label_column 'sentence' with the text read from 'sentence'
        raise DataError(f"dataset '{spec.name}': '{file}': the text column '{text_col}' is the label column; "
                        "set text_column to the column of the texts")
    if not rows:
        raise DataError(f"dataset '{spec.name}': split file '{file}' has a header but no examples")
    t, y_at = columns.index(text_col), columns.index(spec.label_column)
    examples = []
    for line, fields in rows:
        text, label = fields[t], fields[y_at]
        try:
            y = parse_label(label)
        except ValueError:
            raise DataError(f"dataset '{spec.name}': '{file}' line {line}: label {label!r} "
                            "is not an integer") from None
        if not 0 <= y < spec.num_classes:
            raise DataError(f"dataset '{spec.name}': '{file}' line {line}: unknown label {y} "
                            f"(the dataset has {spec.num_classes} classes, labels 0..{spec.num_classes - 1})")
        examples.append(Example(text=text.strip(), label=y))
    return Split(spec=spec, name=split, file=file, examples=tuple(examples))
