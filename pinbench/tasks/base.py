"""What every task is: it owns its data, its reward, its metrics and how its best prompt is chosen.

A method asks a task for one thing: ``score(prompts, split)``, per-prompt metrics that include
``reward`` (the training signal). Everything a method or the analysis must not guess is declared
here as a class attribute, and recorded with each result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Sequence

from ..errors import ConfigError, PinbenchError

if TYPE_CHECKING:
    import torch
# torch is imported where it is used, not here: the light commands (`pinbench --help`, list,
# datasets, `sweep --dry-run`) read task classes and their configs and never load torch.



def formatted_fields(pattern: str) -> list[str]:
    """The placeholders of a task's template or path pattern written with a format or conversion
    (``{split:d}``, ``{input!r}``): rendering replaces a placeholder whole, so either would be
    ignored or read another value."""
    import string

    return [f"{{{f}{'!' + c if c else ''}{':' + spec if spec else ''}}}"
            for _, f, spec, c in string.Formatter().parse(pattern) if f is not None and (spec or c)]

@dataclass(frozen=True)
class Metric:
    """A per-prompt metric a task reports, and which way is better."""

    name: str
    higher_is_better: bool = True
    description: str = ""


class Task:
    """Base class of tasks (register a subclass with ``@TASKS.register(name)``).

    A subclass sets the class attributes, a ``config_class`` dataclass (its fields, with docstrings,
    are the task's keys ``task.<field>``) and implements ``build``, ``score`` and ``dataset_name``.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type]
    metrics: ClassVar[tuple[Metric, ...]] = (Metric("reward"),)
    """Per-prompt metrics ``score`` returns (``reward`` among them)."""
    splits: ClassVar[tuple[str, ...]] = ("train", "dev", "test")
    """The splits the task has; ("train",) when there is only the training signal (one target image)."""
    selection_split: ClassVar[str] = "dev"
    """Where the reported prompt is chosen: its best score on this split ("train": best reward seen)."""
    selection_metric: ClassVar[str] = "reward"
    """The metric that chooses it (ties: reward)."""
    report_split: ClassVar[str | None] = "test"
    """The split the chosen prompt is finally scored on (None: the selection scores are the result)."""
    cacheable: ClassVar[bool] = True
    """Scores are deterministic, so a method may score a (split, prompt) once and reuse it. False
    for sampled scores (style transfer's generations) and moving training inputs: the method then
    asks the task every time, and the task keeps its own state (``state_dict``)."""
    reward_kind: ClassVar[str] = "score"
    """What the training reward is, a fact methods that shape rewards read (the RL method's shaping
    is its own: ``methods/rl/config.py``): "score", a task score on a scale of the task's own (a
    probability gap, a content-plus-style percentage) that only means something relative to the
    other prompts of its step; "similarity", a raw cosine in [-1, 1] with no natural scale, whose
    absolute value is the signal (PIN's CLIP reward)."""

    @classmethod
    def build(cls, config, run) -> "Task":
        """The task for a config (``config_class``) and the run settings (device, seed)."""
        raise NotImplementedError

    @classmethod
    def load(cls, config, run, splits: Sequence[str] | None = None) -> "Task":
        """``build`` after ``check_data``: missing or broken data fails before any model loads
        (``pinbench eval`` on one split, training on the run's splits); so does a device this
        machine does not have."""
        from ..run import check_device_available

        check_device_available(run.device)
        cls.check_data(config, run, splits)
        return cls.build(config, run)

    @classmethod
    def dataset_name(cls, config) -> str:
        """What a config's task is solved on (a dataset, an image set): a report's column."""
        raise NotImplementedError

    def check_splits(self, splits: Sequence[str]) -> None:
        """Fail now, before any training, if a split a run will need is missing: an unknown name,
        or data that ``split`` cannot read."""
        unknown = [s for s in splits if s not in self.splits]
        if unknown:
            raise ConfigError(f"task '{self.name}' has no split(s) {unknown}; it has {list(self.splits)}")
        for name in splits:
            self.split(name)

    @classmethod
    def check_data(cls, config, run, splits: Sequence[str] | None = None) -> None:
        """Read the data files a run of this config needs (``splits``, default: the run's), loading
        no model: the error names the file. A sweep's driver calls it for every trial before Ray
        starts (a trial that cannot find its data would otherwise fail only after launch), and
        ``load`` before it builds. Tasks without data files need nothing."""

    def split(self, name: str):
        """A split's data, read (and kept) on first use; a task without data files returns None."""
        return None

    def split_size(self, name: str) -> int | None:
        """Examples a prompt is run on when scored on a split (the budget counts prompt x example
        pairs); None when the task cannot say."""
        data = self.split(name)
        return len(data) if data is not None and hasattr(data, "__len__") else None

    def reference_prompts(self, kind: str) -> list[str]:
        """Prompts the literature gives for this task's data: ``manual`` (a hand-written prompt)
        or ``instruction`` (a task instruction); [] when it has none (the baselines use them)."""
        return []

    def score(self, prompts: Sequence[str], split: str = "train") -> dict[str, torch.Tensor]:
        """Per-prompt metrics on a split: {name: tensor [P]}, ``reward`` among them. A value that is
        a list with one entry per prompt (e.g. the task's sampled outputs) is stored with each
        evaluated prompt as it is. On "train" a task may add how its rewards are z-scored:
        ``reward_draws`` [P, K] (``reward`` is their mean; the z-score's std pools them) and
        ``reward_group`` [P] (prompts z-scored together; default: all of them)."""
        raise NotImplementedError

    def state_dict(self) -> dict:
        """What a run must checkpoint to continue this task where it was (a position in a stream
        of training inputs, a sampling counter); plain Python values and tensors."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass

    def differentiable(self) -> "WhiteBox | None":
        """A white-box path (gradients with respect to prompt embeddings) for gradient methods, or
        None when the task has none."""
        return None

    @classmethod
    def metric(cls, name: str) -> Metric:
        for m in cls.metrics:
            if m.name == name:
                return m
        raise ConfigError(f"task '{cls.name}' has no metric '{name}'; it has {[m.name for m in cls.metrics]}")

    @classmethod
    def run_splits(cls, test: bool) -> list[str]:
        """The splits a run scores: training, selection and (if ``test``) the reported one."""
        wanted = ["train", cls.selection_split] + ([cls.report_split] if test and cls.report_split else [])
        return [s for s in dict.fromkeys(wanted) if s in cls.splits]


    # -- what the commands need beyond scoring (``pinbench eval``, ``datasets``) ---------------

    eval_required: ClassVar[tuple[str, ...]] = ()
    """Fields ``pinbench eval`` needs on its command line (``("dataset",)``: ``--dataset``)."""
    eval_dtype_field: ClassVar[str | None] = "task_lm_dtype"
    """The field ``pinbench eval --dtype`` sets (the dtype of the scored model's weights)."""
    scores_outputs: ClassVar[bool] = False
    """Whether ``eval_table`` scores files of another system's outputs (``pinbench eval --outputs``)."""
    title: ClassVar[str] = ""
    """What ``pinbench datasets`` and reports call the task ("few-shot classification"); default: its name."""

    @classmethod
    def local_path_values(cls, values: dict) -> dict:
        """Settings of this task (``values``: a spec's dotted keys, generic path fields already
        absolute) that name existing files relative to the working directory but are not plain
        ``*_dir``/``*_file``/``*_model`` fields (``pinbench.run.absolute_path_values``), made
        absolute; only the changed keys. Default: none."""
        return {}

    @classmethod
    def eval_flag_fields(cls) -> dict[str, str]:
        """``pinbench eval``'s shared flags whose task field has another name (flag -> field);
        every other flag sets the field of its own name."""
        return {"dtype": cls.eval_dtype_field, "batch_tokens": "max_batch_tokens"}

    @classmethod
    def eval_values(cls, flags: dict) -> dict:
        """``pinbench eval``'s shared flags as this task's dotted keys. ``flags``: ``dataset``,
        ``data_dir``, ``split_seed``, ``dataset_file`` (a list), ``task_lm``, ``task_lm_kind``,
        ``dtype``, ``bf16``, ``batch_tokens``, ``trust_remote_code``, ``device``; None = not given.
        A flag maps to the field of its name (``dtype`` to ``eval_dtype_field``, ``batch_tokens``
        to ``max_batch_tokens``, ``bf16`` also sets ``exact_eval`` to its negation: eval's
        numbers are exact unless the user opts into bf16); a flag the task has no field for is an
        error when given."""
        import dataclasses as dc

        fields = {f.name for f in dc.fields(cls.config_class)}
        rename = cls.eval_flag_fields()
        values = {"run.device": flags.get("device") or "cpu"}
        for flag, value in flags.items():
            if flag == "device" or value is None or value == [] or (flag == "trust_remote_code" and value is False):
                continue
            name = rename.get(flag, flag)
            if flag == "dataset_file":
                value = value[0]
            if name not in fields:
                if flag in ("dtype", "bf16") and value in ("float32", False):
                    continue  # eval's defaults, meaningless for a task without the field
                raise ConfigError(f"pinbench eval --task {cls.name}: --{flag.replace('_', '-')} is not a field of "
                                  f"this task; its fields are {', '.join(sorted(fields))}")
            values[f"task.{name}"] = value
            if flag == "bf16" and "exact_eval" in fields:
                values["task.exact_eval"] = not value
        return values

    @classmethod
    def check_eval_outputs(cls, config, outputs: Sequence, split: str) -> None:
        """``pinbench eval --outputs`` files against the task's data (``config``: its settings),
        after the settings are read and before any model loads. Default: nothing to check."""

    @classmethod
    def check_eval_request(cls, prompts: Sequence[str], outputs: Sequence, split: str) -> None:
        """Fail before any model loads when ``pinbench eval`` is asked for something the task cannot do."""
        if outputs and not cls.scores_outputs:
            raise ConfigError(f"pinbench eval --task {cls.name}: this task does not score files of outputs (--outputs)")
        if not prompts and not outputs:
            raise ConfigError("pinbench eval: give at least one --prompt"
                              + (" or --outputs FILE" if cls.scores_outputs else ""))
        for given, option in ((list(prompts), "--prompt"), ([str(o) for o in outputs], "--outputs")):
            twice = next((g for i, g in enumerate(given) if g in given[:i]), None)
            if twice is not None:  # two rows of one name in the table, and --predictions could not tell them apart
                raise ConfigError(f"pinbench eval: {option} {twice!r} is given twice; give each once")

    @classmethod
    def input_files(cls, config, splits: Sequence[str]) -> list:
        """The data files a run of ``config`` reads on ``splits`` (Paths): a command writing a file
        refuses to write over one of them."""
        return []

    @classmethod
    def data_folders(cls, config, splits: Sequence[str]) -> list:
        """The folders of a run's data (Paths): no output of a command goes inside one. The
        default: the folders of ``input_files``, but not the working directory or one above it
        (split files kept beside a project's own files; the files themselves are still refused)."""
        here = Path.cwd().resolve()
        folders = {Path(f).parent.resolve() for f in cls.input_files(config, splits)}
        return sorted(f for f in folders if not here.is_relative_to(f))

    def eval_table(self, prompts: Sequence[str], outputs: Sequence, split: str, progress=None) -> "EvalTable":
        """``pinbench eval``: one row per prompt (and per outputs file, when ``scores_outputs``)
        with the task's metrics on ``split``, and per-example predictions where the task has them.
        The default scores each prompt with ``score`` and reports its scalar metrics."""
        import torch

        scores = checked_scores(self, self.score(list(prompts), split), len(prompts)) if prompts else {}
        names = [m.name for m in self.metrics if m.name in scores and torch.is_tensor(scores[m.name])]
        rows = [(repr(p), {m: float(scores[m][i]) for m in names}) for i, p in enumerate(prompts)]
        import pandas as pd

        frame = pd.DataFrame({"prompt": list(prompts), **{m: [r[m] for _, r in rows] for m in names}})
        return EvalTable(title=f"{self.name} ({split})", rows=rows, formats={m: ".4f" for m in names},
                         predictions=frame, predictions_label="scores")

    @classmethod
    def list_datasets(cls, dataset_files: Sequence[str] = ()) -> list["DatasetInfo"]:
        """``pinbench datasets``: what this task can be solved on (registered datasets, image sets)."""
        return []

    # -- what ``pinbench report`` shows of this task (pinbench.analysis.report) ---------------
    # The report is generic: it groups the trials by task and asks each task's class these. The
    # context and sections are ``pinbench.analysis.sections``' ReportContext and ReportSection;
    # report code lives in ``report_module`` (importing a task class must stay light).

    dataset_titles: ClassVar[dict[str, str]] = {}
    """Dataset name -> what report tables and figures call it (its papers' column header), in the
    order report columns take; a name not here is printed as it is, after these."""
    report_runs: ClassVar[str | None] = None
    """What one run of the comparison table is, for its caption, when the report has only this
    task's trials ("images × seeds"); None: a split seed × a seed."""
    published_source: ClassVar[str] = ""
    """The paper whose numbers ``pinbench report --published`` sets beside this task's runs (in
    the comparison table, ``comparison_published``, or in its own sections); "": none."""
    report_module: ClassVar[str | None] = None
    """The module whose ``report_sections(context)`` gives this task's own sections (``".report"``:
    relative to the package of the class that sets it), imported only when a report runs: it may
    import pinbench.analysis and the task module; the task module never imports it."""

    @classmethod
    def comparison_published(cls, context) -> dict[str, dict[str, tuple[float, float | None]]]:
        """Published rows for the comparison table, {row: {dataset: (mean, error or None)}}, for
        ``context.published`` (matching: the rows of ``context.methods``; all) and in its metric
        (``context.metric``): none when they would not fit (``context.warn`` says why)."""
        return {}

    @classmethod
    def report_sections(cls, context) -> list:
        """This task's own sections of report.md (ReportSection), after the comparison table: its
        papers' tables and figures, written with ``context.write_table`` / ``save_figure``. The
        default asks ``report_module``; none without one."""
        if cls.report_module is None:
            return []
        import importlib

        owner = next(c for c in cls.__mro__ if "report_module" in vars(c))  # ".report" is relative to its package
        module = importlib.import_module(cls.report_module, package=owner.__module__.rpartition(".")[0])
        return module.report_sections(context)

    @classmethod
    def report_prompt_where(cls, row) -> str:
        """What report.md adds to where a top prompt was found, after its dataset and split seed
        (", image 0.png"); ``row`` is the prompt's trial (its recorded columns)."""
        return ""


@dataclass
class EvalTable:
    """What ``pinbench eval`` prints (a table) and writes (``--predictions``) for one task."""

    title: str
    rows: list[tuple[str, dict[str, float]]]
    """(prompt or outputs file, {metric: value}) per row."""
    formats: dict[str, str]
    """Metric -> format: a ``format()`` spec (".4f") or "%" (a fraction shown as a percentage)."""
    predictions: object = None
    """Per-example rows (a pandas DataFrame) for ``--predictions``; None when there are none."""
    predictions_label: str = "per-example predictions"
    warnings: list[str] = field(default_factory=list)
    """What the table alone would not tell (printed under it): empty outputs, for instance."""

    def cell(self, metric: str, value) -> str:
        if not isinstance(value, float):
            return ""
        spec = self.formats.get(metric, ".4f")
        return f"{100 * value:.2f}%" if spec == "%" else format(value, spec)


@dataclass(frozen=True)
class DatasetInfo:
    """One entry of ``pinbench datasets``."""

    name: str
    description: str
    files_hint: str | None = None
    """Where a dataset known to no download manifest keeps its files (a user dataset's directory)."""


class WhiteBox:
    """A task's differentiable path, for gradient methods (PEZ, soft prompts, AutoPrompt): the
    task's objective as a function of L prompt embeddings in the input-embedding space of the
    task's own model, whose vocabulary the hard prompt's tokens come from."""

    model_name: str
    """The model whose tokenizer and embeddings the prompt tokens belong to (results record it)."""

    @property
    def vocabulary(self) -> torch.Tensor:
        """The model's input embedding matrix [V, d]: what projections snap onto."""
        raise NotImplementedError

    def special_ids(self) -> list[int]:
        """Token ids that are not text (start, end, padding, mask): a method may leave them out."""
        raise NotImplementedError

    def decode(self, ids: Sequence[int]) -> str:
        """The prompt text of token ids, as ``Task.score`` takes it."""
        raise NotImplementedError

    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt text placed in the task's template (``decode``'s inverse where
        the tokenizer allows: a method can see when a prompt does not survive the round trip)."""
        raise NotImplementedError

    @property
    def num_items(self) -> int:
        """How many items (training examples, target images) the training objective has."""
        raise NotImplementedError

    def batch(self, size: int | None, generator: torch.Generator) -> list[int]:
        """Indices of ``size`` items drawn without replacement (None, or as many as there are:
        all of them, in order), for ``loss``."""
        import torch

        n = self.num_items
        if size is None or size >= n:
            return list(range(n))
        return torch.randperm(n, generator=generator)[:size].tolist()

    def loss(self, prompt: torch.Tensor, batch) -> torch.Tensor:
        """The objective to minimise for ``prompt`` [L, d] on ``batch``: a scalar with gradient."""
        raise NotImplementedError


def checked_scores(task: "Task", scores, n: int) -> dict:
    """A task's ``score`` result as every caller needs it: a mapping with ``reward``, and each
    value one entry per prompt (a tensor's first dimension, a list's length). A plug-in task that
    breaks this is named, instead of an IndexError or a KeyError in the method."""
    import torch

    name = f"task '{task.name}' ({type(task).__module__})"
    if not isinstance(scores, dict):
        raise PinbenchError(f"{name}: score() returned {type(scores).__name__}, not a mapping of metric -> values")
    if "reward" not in scores:
        raise PinbenchError(f"{name}: score() returned no 'reward' (it returned {sorted(map(str, scores))})")
    for metric, values in scores.items():
        count = values.shape[0] if torch.is_tensor(values) and values.dim() else len(values) \
            if isinstance(values, (list, tuple)) else None
        if count != n:
            raise PinbenchError(f"{name}: score() returned {count if count is not None else type(values).__name__} "
                                f"value(s) of '{metric}' for {n} prompt(s)")
    return scores
