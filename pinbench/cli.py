"""The `pinbench` command line.

    pinbench eval     score prompts on a task's split (any registered task)
    pinbench train    optimise a prompt (a method on a task: RL presets pin, rlprompt, ...)
    pinbench sweep    run a suite of trials on Ray Tune
    pinbench report   tables, naturalness metrics, figures and report.md from results
    pinbench models   list the built-in offline models
    pinbench datasets list the registered datasets, whether their files are present and where
    pinbench data     download the public data sets (with checksums) into pinbench's data cache
    pinbench list     the registered tasks, methods and presets

Errors the user can fix (a missing file, an unknown model, a bad key) print one line and exit 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import os
import sys
from pathlib import Path

from . import signals
from .errors import ConfigError, PinbenchError, allocation_failure, yaml_error_line
from .registry import DEFAULT_METHOD, DEFAULT_TASK


def _quiet_transformers(lazy: bool = False) -> None:
    """Transformers' warnings and progress bars off. ``lazy``: when transformers is not imported
    yet, through the environment it reads at import (a command that may never load a model, like a
    report whose metrics are cached, does not import it just to quiet it)."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if lazy and "transformers" not in sys.modules:
        os.environ["TRANSFORMERS_VERBOSITY"] = "error"
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"  # what disable_progress_bar() sets
        return
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--task-lm", default=None,
                   help="task model: an offline alias, a hub id or a local directory (default: the task's, "
                        "smollm2-135m for the built-in text tasks)")
    p.add_argument("--task-lm-kind", choices=("causal", "masked"), default=None,
                   help="load the task model as a causal or masked LM (default: masked if the name "
                        "contains 'bert', else causal)")
    p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="model weights dtype")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=False,
                   help="score with a bfloat16 copy of the task LM's weights: several times faster on CPU, "
                        "but probabilities move by up to ~0.05 and some predictions flip (default off: "
                        "exact scores in the loaded dtype, the numbers to report)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub")


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", default=None,
                   help="the task's dataset (see `pinbench datasets`)")
    p.add_argument("--dataset-file", action="append", default=[], metavar="YAML",
                   help="YAML file defining extra datasets (repeatable)")
    p.add_argument("--data-dir", default=None,
                   help="root of the task's data (its layout: docs/tasks/<task>.md), or a data root like "
                        "../shared/data; default: PINBENCH_DATA_DIR, ../shared/data, the download cache, the "
                        "embedded SST-2 split (README \"Data\")")
    p.add_argument("--split-seed", type=int, default=None,
                   help="the task's split seed (its task.split_seed; e.g. LM-BFF's 13, 21, 42, 87, 100)")


def _preset_names() -> list[str]:
    from .methods import PRESETS

    return list(PRESETS)


#: ``pinbench eval``'s own flags for task fields (``Task.eval_values`` maps them), not repeated
#: as field flags.
EVAL_SHARED_FLAGS = frozenset({"dataset", "data_dir", "split_seed", "dataset_file", "task_lm", "task_lm_kind",
                               "task_lm_dtype", "bf16", "exact_eval", "max_batch_tokens", "trust_remote_code"})


def _add_field_flags(parser: argparse.ArgumentParser, argv: list[str] | None,
                     sections: tuple[str, ...] = ("run", "task", "method"), skip: frozenset = frozenset()) -> None:
    """A flag per field of the run, the task and the method that ``argv`` chooses (their defaults
    if it chooses none), of ``sections`` and not in ``skip``; a name that two sections share is
    spelled ``--section.field``. The help is each field's docstring."""
    from .fields import field_docs, type_name
    from .registry import import_plugins
    from .run import section_classes

    pre = argparse.ArgumentParser(add_help=False)
    for flag in ("--task", "--method", "--preset"):
        pre.add_argument(flag, default=None)
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(argv or [])
    try:
        import_plugins(known.plugin)
        method = known.method
        if method is None and known.preset is not None:
            from .methods import get_preset

            method = get_preset(known.preset).method
        classes = section_classes(known.task or DEFAULT_TASK, method or DEFAULT_METHOD)
    except PinbenchError:  # reported when the command runs (make_spec gives the full message)
        classes = section_classes(DEFAULT_TASK, DEFAULT_METHOD)
    wanted = sections
    sections = classes
    sections = {name: cls for name, cls in sections.items() if name in wanted}
    counts: dict[str, int] = {}
    for cls in sections.values():
        for f in dataclasses.fields(cls):
            counts[f.name] = counts.get(f.name, 0) + 1
    for section, cls in sections.items():
        group = parser.add_argument_group(f"{section} fields ({section}.<field>)")
        docs = field_docs(cls)
        for name in (f.name for f in dataclasses.fields(cls) if f.name not in skip):
            flag = name.replace("_", "-") if counts[name] == 1 else f"{section}.{name}"
            group.add_argument(f"--{flag}", dest=f"cfg__{section}__{name}", default=None,
                               metavar=type_name(cls, name).upper().replace(" ", "_"),
                               help=docs.get(name, "").replace("%", "%%"))  # argparse formats help with %


def _field_values(args: argparse.Namespace) -> dict[str, str]:
    """The field flags given (``_add_field_flags``) as dotted keys."""
    values = {}
    for key, value in vars(args).items():
        if key.startswith("cfg__") and value is not None:
            _, section, name = key.split("__", 2)
            values[f"{section}.{name}"] = value
    return values


def _key_values(items: list[str], flag: str = "--set") -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{flag} expects KEY=VALUE, got {item!r}")
        if key.strip() in out:  # the later one would win silently
            raise ConfigError(f"{flag} {key.strip()} is given twice ({out[key.strip()]!r} and {value.strip()!r}); keep one")
        out[key.strip()] = value.strip()
    return out


def _flags_and_sets(flags: dict[str, str], sets: dict[str, str]) -> dict[str, str]:
    """The field flags' values with ``--set``'s on top; a field given both ways (``--steps 2`` and
    ``--set run.steps=4``) is refused, as either one would silently lose."""
    for key in sets:
        for flag in flags:
            if key == flag or ("." not in key and flag.endswith(f".{key}")):
                raise ConfigError(f"--set {key}: the flag --{flag.split('.', 1)[1].replace('_', '-')} sets "
                                  f"{flag} too; give one")
    return {**flags, **sets}


def _task_settings(items: list[str]) -> dict[str, str]:
    """``pinbench eval --set``: KEY=VALUE pairs, a bare key naming a task field (``image`` is
    ``task.image``)."""
    return {k if "." in k else f"task.{k}": v for k, v in _key_values(items).items()}


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pinbench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    ev = sub.add_parser("eval", help="score prompts (or a task's files of outputs) on a task's split",
                        description="Score prompts on a task's split with its metrics. The task's fields are flags "
                                    "too (the group below, for the chosen --task); --set KEY=VALUE sets any of them.")
    ev.add_argument("--task", default=DEFAULT_TASK, help=f"task (default: {DEFAULT_TASK}; see `pinbench list`)")
    ev.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                    help="import a module that registers more tasks (repeatable)")
    _add_data_args(ev)
    ev.add_argument("--split", default="test", choices=("train", "dev", "test"))
    ev.add_argument("--prompt", action="append", default=[],
                    help="prompt text (repeatable: several prompts are scored in one batch)")
    ev.add_argument("--outputs", action="append", default=[], type=Path, metavar="FILE",
                    help="a file of another system's outputs, one per test input, for a task that scores them "
                         "(Task.scores_outputs); repeatable")
    ev.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="any task field, e.g. task.test_samples=8 task.test_size=100, "
                         "task.eval_clip_model=openai/clip-vit-large-patch14 (a bare key is a task field)")
    _add_model_args(ev)
    ev.add_argument("--predictions", type=Path, default=None,
                    help="write per-example predictions here (.parquet, .csv or .tsv)")
    ev.add_argument("--batch-tokens", type=int, default=None,
                    help="memory budget of one forward pass in tokens held (inputs and cached prefixes; "
                         "task.max_batch_tokens; default: the task's)")
    _add_field_flags(ev, argv, sections=("task",), skip=EVAL_SHARED_FLAGS)
    ev.set_defaults(func=cmd_eval)

    tr = sub.add_parser("train", help="optimise a prompt: a method (or preset) on a task",
                        description="Run a method on a task. Every field of the run, the task and the method "
                                    "is a flag (the groups below, for the chosen --task and --method); "
                                    "unset fields come from --preset, else from the defaults.")
    tr.add_argument("--task", default=None, help=f"task (default: {DEFAULT_TASK}; see `pinbench list`)")
    tr.add_argument("--method", default=None, help="method (default: the preset's, else rl)")
    tr.add_argument("--preset", default=None, help="a method's named recipe: " + ", ".join(_preset_names()))
    tr.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                    help="import a module that registers more tasks or methods (repeatable)")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="set any field by its dotted key (method.alpha=0.5; repeatable)")
    tr.add_argument("--out", default=None,
                    help="write config.json and trials/history/prompts.parquet here (a directory or "
                         "a URI: s3://bucket/prefix, gs://..., file://...)")
    tr.add_argument("--overwrite", action="store_true",
                    help="replace the run already in --out (its tables, config.json and transfer.parquet)")
    _add_field_flags(tr, argv)
    tr.set_defaults(func=cmd_train)

    sw = sub.add_parser("sweep", help="run a suite of trials on Ray Tune")
    sw.add_argument("suite", help="a shipped suite's name (pinbench list) or a suite YAML file")
    sw.add_argument("--data-dir", default=None, help="few-shot data root for every trial (overrides the suite)")
    sw.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a base setting of the suite for every trial (repeatable)")
    sw.add_argument("--results", default="results",
                    help="results root, a directory or a URI (s3://bucket/prefix, gs://..., file://...): "
                         "the store is <results>/<suite name>/ (default: results)")
    sw.add_argument("--address", default=None, help="join a running Ray cluster (default: start a local one)")
    sw.add_argument("--storage", default=None,
                    help="Tune storage for checkpoints and experiment state: a local path or s3://... "
                         "(default: <results>/_ray)")
    sw.add_argument("--resume", action="store_true",
                    help="continue an interrupted sweep: finished trials are not rerun, unfinished ones "
                         "continue from their last checkpoint")
    sw.add_argument("--max-failures", type=int, default=0, help="retry a crashed trial up to N times")
    sw.add_argument("--num-cpus", type=int, default=None, help="CPUs of a local Ray (default: all)")
    sw.add_argument("--dry-run", action="store_true",
                    help="print the trial table and the count, and the projected cost per model set-up when "
                         "measured step times exist (--step-times, or the suite's store under --results); run nothing")
    sw.add_argument("--smoke", action="store_true",
                    help="run one trial per model set-up (task, method, models) for two steps with random-weight "
                         "models built from configs (nothing downloaded), an evaluation and a test on a handful of "
                         "examples, into a temporary store; print pass/fail, peak memory and seconds per step")
    sw.add_argument("--step-times", action="append", default=[], metavar="PATH",
                    help="measured step times for --dry-run's cost projection: a JSON written by "
                         "bench/gpu_paper_shapes.py or a results store of earlier runs (repeatable)")
    sw.add_argument("--allow-large", action="store_true",
                    help="run a grid of more than 100,000 trials (refused otherwise: usually a list where a value was meant)")
    sw.add_argument("--tracker", action="append", default=[], choices=("tensorboard", "mlflow", "wandb"),
                    help="also log each trial as a run of this tracker, grouped by suite, with the grid "
                         "values as parameters (repeatable; needs tensorboardX, mlflow or wandb)")
    sw.add_argument("--checkpoint-every", type=float, default=None, metavar="SECONDS",
                    help="a trial checkpoints at most this often, and at the end (default: 60; under "
                         "~10, Tune forces extra experiment snapshots); --resume continues a trial from "
                         "its last checkpoint")
    sw.add_argument("--verbose", action="store_true",
                    help="Ray's full output (worker logs, Tune's progress reporter) instead of the "
                         "one-row-per-trial view")
    sw.add_argument("--wait-for-resources", action="store_true",
                    help="launch even if no node has the CPUs/GPUs a trial asks for (an autoscaling "
                         "cluster that adds such nodes later); by default that is an error")
    sw.add_argument("--no-data-check", action="store_true",
                    help="do not read every trial's data files on the driver before launching (data "
                         "that only the worker nodes have)")
    sw.set_defaults(func=cmd_sweep)

    rp = sub.add_parser("report", help="tables, naturalness metrics, figures and report.md from results",
                        description="Read results directories (local or s3://) and write comparison and "
                                    "naturalness tables (Markdown, LaTeX, CSV), figures (PNG, PDF) and report.md.")
    rp.add_argument("results", nargs="+", help="results directories: a store (with trials.parquet) or a root of stores")
    rp.add_argument("--out", type=Path, default=Path("report"), help="output directory (default: report)")
    rp.add_argument("--metric", default=None,
                    help="comparison metric, a test_* or dev_* column of trials.parquet (default: the metric the "
                         "trials' task selects by, on its report split, e.g. test_accuracy)")
    rp.add_argument("--error", choices=("se", "std"), default="se",
                    help="± and error bars: standard error or standard deviation over runs (default: se)")
    rp.add_argument("--baseline", default="auto",
                    help="method the daggers (Welch's t-test, p < 0.05) compare against; 'auto' is rlprompt "
                         "when present, 'none' turns them off")
    rp.add_argument("--published", choices=("none", "matching", "all"), default="none",
                    help="add PIN Table 1's published rows: those of the methods run (matching) or all")
    rp.add_argument("--method-by", default=None, metavar="FIELD[,FIELD...]",
                    help="config fields that define a table row (default: preset name plus what differs)")
    rp.add_argument("--reference-lm", default="smollm2-135m",
                    help="causal LM for prompt perplexity: alias, hub id (e.g. gpt2-xl) or directory")
    rp.add_argument("--device", default="cpu", help="device of the reference LM")
    rp.add_argument("--trust-remote-code", action="store_true", help="allow model code from the hub")
    rp.add_argument("--top-prompts", type=int, default=3, help="prompts per method listed in report.md")
    rp.add_argument("--no-cache", action="store_true", help="recompute naturalness metrics, ignoring naturalness.parquet")
    rp.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                    help="import MODULE first: a plug-in whose tasks' report sections the stores need (repeatable)")
    rp.set_defaults(func=cmd_report)

    from .transfer import add_transfer_parser

    add_transfer_parser(sub)  # pinbench transfer: stores' best prompts scored with other task LMs
    sub.add_parser("models", help="list the built-in offline models").set_defaults(func=cmd_models)
    ls = sub.add_parser("list", help="the registered tasks, methods and presets")
    ls.add_argument("--plugin", action="append", default=[], metavar="MODULE")
    ls.set_defaults(func=cmd_list)
    ds = sub.add_parser("datasets", help="list registered datasets, whether their files are present and where")
    ds.add_argument("--dataset-file", action="append", default=[], metavar="YAML")
    ds.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                    help="import a module that registers more tasks (repeatable)")
    ds.add_argument("--data-dir", default=None,
                    help="look only here (a data root like ../shared/data); default: pinbench's data rule")
    ds.set_defaults(func=cmd_datasets)
    _add_data_parser(sub)
    return parser


def _add_data_parser(sub) -> None:
    data = sub.add_parser("data", help="fetch the public data sets into pinbench's data cache (README \"Data\")")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    dl = data_sub.add_parser("download", help="fetch data sets from their public sources, a checksum per file",
                             description="Fetch data sets into the data cache ($PINBENCH_CACHE_DIR/data, default "
                                         "~/.cache/pinbench/data), verifying each file's sha256. Rerun to resume "
                                         "an interrupted download.")
    dl.add_argument("names", nargs="*", metavar="NAME",
                    help="data sets (default: all) by the names `pinbench datasets` lists (sst-2, yelp, lexica, ...)")
    dl.add_argument("--mirror", default=os.environ.get("PINBENCH_DATA_MIRROR"), metavar="URL",
                    help="fetch the same layout from this base URL instead (default: $PINBENCH_DATA_MIRROR, "
                         "else each file's public source)")
    dl.add_argument("--from", dest="from_dir", default=None, metavar="DIR",
                    help="copy from a local data root (the layout of ../shared/data) instead of the network")
    dl.add_argument("--manifest", default=None, help="another manifest file (default: the one pinbench ships)")
    dl.add_argument("--attempts", type=int, default=3, help="tries per file when a connection drops (default 3)")
    dl.add_argument("--timeout", type=float, default=60.0, help="seconds without data before a try fails")
    dl.set_defaults(func=cmd_data_download)
    mf = data_sub.add_parser("manifest", help="(maintainers) write the manifest of a data root's files")
    mf.add_argument("root", type=Path, help="a data root in pinbench's layout")
    mf.add_argument("names", nargs="*", metavar="NAME", help="only these data sets")
    mf.add_argument("--out", type=Path, required=True,
                    help="where to write it (maintainers, in a source checkout: pinbench/data_manifest.json; "
                         "never into an installed package)")
    mf.set_defaults(func=cmd_data_manifest)


class _EvalProgress:
    """A task's ``eval_table`` progress: ``start(total)`` then ``advance(n)`` (a rich bar)."""

    def __init__(self, bar):
        self.bar, self.job = bar, None

    def start(self, total: int) -> None:
        self.job = self.bar.add_task("score", total=total)

    def advance(self, n: int) -> None:
        if self.job is not None:
            self.bar.advance(self.job, n)


def _data_folders(task_class, config, splits=None) -> list:
    """Where a command's data are (the task's folders, the machine's data roots): outputs go elsewhere."""
    from .data_locations import data_roots

    try:
        folders = task_class.data_folders(config, list(splits or task_class.splits))
    except PinbenchError:
        folders = []  # data that cannot be located: the run's own data check names it
    return [*folders, *data_roots()]


def cmd_eval(args: argparse.Namespace) -> int:
    """Any task: its ``eval_values`` map the shared flags, its ``eval_table`` scores and tabulates."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table
    from rich.text import Text

    from .io import check_output_path, check_table_path, write_table
    from .registry import TASKS, import_plugins
    from .run import make_spec

    console = Console()
    if args.predictions is not None:
        check_table_path(args.predictions)  # fail before scoring, not after
    import_plugins(args.plugin)
    task_class = TASKS.get(args.task)
    flags = {"dataset": args.dataset, "data_dir": args.data_dir, "split_seed": args.split_seed,
             "dataset_file": args.dataset_file, "task_lm": args.task_lm, "task_lm_kind": args.task_lm_kind,
             "dtype": args.dtype, "bf16": args.bf16, "batch_tokens": args.batch_tokens,
             "trust_remote_code": args.trust_remote_code, "device": args.device}
    for name in task_class.eval_required:
        if flags.get(name) is None:
            raise ConfigError(f"pinbench eval --task {args.task}: give --{name.replace('_', '-')} "
                              f"(see `pinbench datasets`)")
    task_class.check_eval_request(args.prompt, args.outputs, args.split)
    _quiet_transformers()
    if not args.device.strip():
        raise ConfigError("--device is empty; give cpu, cuda or cuda:N (an unset shell variable?)")
    shared, sets = task_class.eval_values(flags), _task_settings(args.set)
    for key in sets:
        section, _, name = key.partition(".")
        if section not in ("task", "run") or (section == "run" and name not in ("device", "seed")):
            raise ConfigError(f"--set {key}: pinbench eval scores prompts with a task's settings (task.*, "
                              "run.device, run.seed); no method runs, so this would have no effect")
        if key in shared and (key != "run.device" or args.device != "cpu"):  # cpu: the default, not given
            flags_of = {field: flag for flag, field in task_class.eval_flag_fields().items()} | {"exact_eval": "bf16"}
            flag = flags_of.get(name, name).replace("_", "-")
            raise ConfigError(f"--set {key}: the flag --{flag} sets {key} too; give one")
    values = {"task": args.task, "plugins": args.plugin, **shared, **_flags_and_sets(_field_values(args), sets)}
    spec = make_spec(values, "pinbench eval", from_strings=True)
    task_class.check_eval_outputs(spec.task_config, args.outputs, args.split)
    if args.predictions is not None:  # never over a file this command reads, nor into the data
        inputs = task_class.input_files(spec.task_config, [args.split])
        check_output_path(args.predictions, "--predictions", inputs=(*inputs, *args.outputs),
                          data_dirs=(args.data_dir, *_data_folders(task_class, spec.task_config, [args.split])))
    task = spec.task_class.load(spec.task_config, spec.run, [args.split])
    with Progress(TextColumn("scoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        result = task.eval_table(args.prompt, args.outputs, args.split, _EvalProgress(bar))
    table = Table(title=result.title)
    metrics = list(dict.fromkeys(m for _, row in result.rows for m in row))
    table.add_column("prompt / outputs" if task_class.scores_outputs else "prompt")
    for m in metrics:
        table.add_column(m, justify="right")
    for name, row in result.rows:
        table.add_row(Text(name), *(result.cell(m, row.get(m)) for m in metrics))  # a prompt's brackets: not markup
    console.print(table)
    for warning in result.warnings:
        console.print(Text(f"warning: {warning}", style="yellow"), soft_wrap=True)  # one line: paths unbroken
    if args.predictions is not None and result.predictions is not None:
        write_table(result.predictions, args.predictions)
        console.print(f"{result.predictions_label} written to {args.predictions}")
    return 0


RUN_FILES = ("trials.parquet", "history.parquet", "prompts.parquet", "config.json")  # what train --out writes


def cmd_train(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import contextlib

    from .results import write_run
    from .run import make_spec, with_absolute_paths
    from .storage import exclusive_writer, resolve

    console = Console()
    values: dict = {"task": args.task, "method": args.method, "preset": args.preset, "plugins": args.plugin,
                    **_flags_and_sets(_field_values(args), _key_values(args.set))}
    spec = with_absolute_paths(make_spec(values, "pinbench train", from_strings=True))
    if args.out is not None and not str(args.out).strip():
        raise ConfigError("--out is empty; give a directory (an unset shell variable?)")
    out = resolve(args.out) if args.out is not None else None  # a path or a URI (s3://...)
    if out is not None and out.is_file():
        raise ConfigError(f"--out '{args.out}' is a file; give a directory (for config.json and the results tables)")
    below = out.stores_below() if out is not None else []
    if below:  # a report of the directory would then read the run and not the sweeps' stores
        raise ConfigError(f"--out '{args.out}' holds sweep results ({', '.join(below[:3])}); give the run a "
                          "directory of its own")
    if out is not None and out.local is not None:  # before the models load
        from .io import check_output_path

        data_dir = getattr(spec.task_config, "data_dir", None)
        # a local model directory (policy_lm, task_lm, ...) is an input too: a run written into it
        # would replace the model's config.json
        models = {f.name: getattr(section, f.name) for section in (spec.task_config, spec.method_config)
                  for f in dataclasses.fields(section)
                  if (f.name.endswith("_lm") or "model" in f.name) and isinstance(getattr(section, f.name), str)
                  and getattr(section, f.name)}
        check_output_path(args.out, "--out", data_dirs=(data_dir, *_data_folders(spec.task_class, spec.task_config)),
                          input_dirs=models, directory=True)
    # One process per --out: a second run into it is refused naming the first (not lost).
    with exclusive_writer(args.out, "--out") if args.out is not None else contextlib.nullcontext():
        # checked under the lock: a run finished by another process a moment ago counts
        there = [name for name in RUN_FILES if out is not None and out.join(name).is_file()]
        if there and not args.overwrite:
            what = "a run" if "trials.parquet" in there else "files a run writes"
            raise ConfigError(f"--out '{args.out}' already holds {what} ({', '.join(there)}); give another "
                              "directory, or --overwrite to replace them")
        config = spec.run
        _quiet_transformers()
        trainer = spec.method_class(spec)
        status = "completed"
        with Progress(TextColumn("[bold]{task.fields[name]}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      # the prompt repr-style (control characters escaped) and as text, not markup
                      TextColumn("{task.fields[signal]}  best {task.fields[best]}  {task.fields[source]} {task.fields[prompt]!r}",
                                 markup=False),
                      console=console) as bar:
            task = spec.task_class
            metric = f"{task.selection_split}_{task.selection_metric}"
            source = trainer.evaluation_source
            job = bar.add_task("train", total=config.steps, name=args.preset or spec.method, signal="",
                               best="-", source=source, prompt="")

            def on_step(row: dict) -> None:
                best = trainer.result.best
                # the step's training signal: the sampled prompts' mean reward (RL) or the loss (PEZ)
                key = next((k for k in ("reward_mean", "loss") if row.get(k) is not None), None)
                fields = {"signal": f"{key.removesuffix('_mean')} {row[key]:.3g}" if key else ""}
                if best and metric in best:
                    fields["best"] = f"{best[metric]:.4g}"
                prompt = trainer.evaluated_prompt(row)
                if prompt is not None:
                    fields["prompt"] = prompt
                    if not console.is_terminal:  # logs (cluster jobs, CI): a line per evaluation
                        _print_line(console, f"step {row['step']}/{config.steps} {fields['signal']} "
                                             f"{metric} {row.get(metric, float('nan')):.4f} {source} {prompt!r}")
                bar.update(job, advance=1, **fields)

            error, crash = "", None
            try:
                result = trainer.train(on_step)
            except (KeyboardInterrupt, Exception) as exc:  # keep what was computed
                out_of_memory = allocation_failure(exc)
                status, error = ("interrupted", "") if isinstance(exc, KeyboardInterrupt) else \
                    ("failed", out_of_memory or str(exc) or type(exc).__name__)
                if not isinstance(exc, (KeyboardInterrupt, PinbenchError)) and out_of_memory is None:
                    crash = exc  # a bug: its traceback follows, once the run is written
                result = trainer.result
                result.steps_done = trainer.step_count
        best, test = result.best, result.test
        if best:
            split = spec.task_class.selection_split
            _print_line(console, f"best {split} prompt (step {best['step']}): {best['prompt']!r}  "
                        + metrics_line({k: v for k, v in best.items() if k.startswith(f"{split}_")}))
        if test:
            console.print("test: " + metrics_line(test))
        console.print(f"{result.steps_done} steps in {result.wall_time_s:.0f} s ({status})")
        if args.out is not None:
            with signals.deferred(f"the run to {args.out}"):
                from .transfer import TRANSFER_FILE

                stale = out.join(TRANSFER_FILE)  # scores of the replaced run's prompts (--overwrite)
                if stale.is_file():
                    stale.fs.delete_file(stale.path)
                write_run(args.out, result, status=status, error=error)
            console.print(f"results written to {args.out}/")
        if crash is not None:
            raise crash
        if error:
            _print_line(console, f"error: {error}")  # one line in a log, however long
        return {"completed": 0, "interrupted": signals.exit_code()}.get(status, 1)


def _print_line(console, text: str) -> None:
    """One log line as it is: a prompt in it (repr-style, its control characters escaped) is not
    read as rich markup, and the line is not wrapped at the console's width."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def metrics_line(metrics: dict) -> str:
    """``name value`` pairs of a run's scalar metrics; per-example lists (a style-transfer split's
    outputs and scores) and other non-numbers are left to the results tables."""
    import numbers

    return "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                     if isinstance(v, numbers.Real) and not isinstance(v, bool))


def cmd_sweep(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    import yaml

    from .suite import load_suite

    console = Console()
    if not console.is_terminal:  # job logs: tables at full width, not squeezed into 80 columns
        console = Console(width=max(console.width, 160))
    # --set values are YAML scalars (0.5, none, true), type-checked by the suite like its own values
    overrides = {}
    for k, v in _key_values(args.set).items():
        try:
            overrides[k] = (None if v.lower() in ("none", "null") else yaml.safe_load(v)) if v else v
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {k}={v}: the value is not valid YAML ({yaml_error_line(exc)})") from None
    if args.data_dir is not None:
        overrides["task.data_dir"] = str(Path(args.data_dir).resolve())
    from .suite import MAX_TRIALS

    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise ConfigError(f"--data-dir '{args.data_dir}' is not a directory")
    if args.num_cpus is not None and args.num_cpus < 1:
        raise ConfigError(f"--num-cpus must be >= 1, got {args.num_cpus}")
    if args.max_failures < 0:  # Tune reads -1 as "retry forever": a trial that always fails never ends
        raise ConfigError(f"--max-failures must be >= 0, got {args.max_failures}")
    suite = load_suite(args.suite, overrides, max_trials=10 ** 18 if args.allow_large else MAX_TRIALS)
    if args.smoke and not args.dry_run:  # pinbench/smoke.py
        _quiet_transformers()
        from .smoke import run_smoke

        return run_smoke(suite, address=args.address, num_cpus=args.num_cpus, verbose=args.verbose, console=console)[0]
    if args.dry_run:
        import pandas as pd

        from .sweep import check_trial_devices, describe

        check_trial_devices(suite)  # as the sweep itself would, before its table
        frame = describe(suite)
        table = Table(title=f"suite {suite.name}: {len(frame)} trial(s)"
                            + (f", Optuna search of {suite.search.num_samples} samples" if suite.search else ""))
        for col in frame.columns:
            table.add_column(str(col))
        for row in frame.itertuples(index=False):
            table.add_row(*[Text("" if v is pd.NA else str(v)) for v in row])  # NA: the trial's block lacks the axis
        console.print(table)
        console.print(f"{len(frame) if suite.search is None else suite.search.num_samples} trial(s)")
        from .cost import print_projection  # measured step times, when there are some

        print_projection(suite, console, args.step_times, results=args.results)
        return 0
    from .trackers import check_trackers

    check_trackers(args.tracker)  # before the sweep module, Ray or any model is loaded
    if args.checkpoint_every is not None and not (args.checkpoint_every >= 0 and args.checkpoint_every != float("inf")):
        raise ConfigError(f"--checkpoint-every must be a finite number >= 0, got {args.checkpoint_every}")
    if args.results is not None and not str(args.results).strip():
        raise ConfigError("--results is empty; give a directory (an unset shell variable?)")
    if args.storage is not None and not str(args.storage).strip():  # it meant the default, silently
        raise ConfigError("--storage is empty; give a directory or a bucket URI, or leave it out for <results>/_ray")
    _quiet_transformers()
    from .sweep import CHECKPOINT_EVERY_S, run_sweep

    resume_hint = f"continue with `pinbench sweep {args.suite} --results {args.results} --resume`"
    try:
        store = run_sweep(suite, results_dir=args.results, storage=args.storage, address=args.address,
                          resume=args.resume, max_failures=args.max_failures, num_cpus=args.num_cpus,
                          verbose=args.verbose, trackers=args.tracker, wait_for_resources=args.wait_for_resources,
                          check_data=not args.no_data_check,
                          checkpoint_every_s=CHECKPOINT_EVERY_S if args.checkpoint_every is None else args.checkpoint_every)
    except KeyboardInterrupt:  # a second signal: stopped at once; the store holds the trials that ended
        console.print(f"interrupted ({signals.signal_name()}), stopped at once: the store holds the trials that "
                      f"ended; {resume_hint} (running trials continue from their last checkpoint)")
        return signals.exit_code()
    import pandas as pd

    trials = store.table("trials")
    if "status" not in trials.columns:  # no trial ended: an empty store
        trials = pd.DataFrame({"trial_id": pd.Series(dtype=str), "status": pd.Series(dtype=str)})
    table = Table(title=f"{suite.name}: results in {store.uri}")
    metrics = [c for c in trials.columns if c.startswith(("dev_", "test_", "train_")) and c.endswith(
        tuple(trials["selection_metric"].dropna().unique()) or ("accuracy",))]
    cols = [c for c in ("trial_id", "status", *metrics, "wall_time_s", "best_prompt") if c in trials.columns]
    for col in cols:
        table.add_column(col, no_wrap=col != "best_prompt")
    for _, row in trials.iterrows():
        table.add_row(*[f"{row[c]:.4f}" if isinstance(row[c], float) else Text(repr(row[c])) if c == "best_prompt"
                        else str(row[c]) for c in cols])  # a prompt as text (its brackets are not markup)
    console.print(table)
    if signals.received():  # Tune stopped the sweep gracefully on the signal; the store holds what finished
        console.print(f"interrupted ({signals.signal_name()}): {resume_hint}")
        return signals.exit_code()
    if suite.search is not None and 0 < len(trials) < suite.search.num_samples and not signals.received():
        console.print(f"note: Optuna's {suite.search.num_samples} samples hit {len(trials)} distinct point(s); a "
                      "repeated point is the same trial, stored once")
    failed = int((~trials["status"].isin(["completed", "stopped"])).sum())  # stopped: by the scheduler
    return 0 if failed == 0 else 1


def cmd_report(args: argparse.Namespace) -> int:
    from rich.console import Console

    from pinbench.analysis import ReportOptions, build_report
    from pinbench.analysis.naturalness import NaturalnessOptions

    console = Console()
    if args.out.exists() and not args.out.is_dir():
        raise ConfigError(f"--out '{args.out}' is a file; give a directory for the report")
    if args.top_prompts < 0:
        raise ConfigError(f"--top-prompts must be >= 0, got {args.top_prompts}")
    from .registry import import_plugins

    if args.method_by is not None and not [f for f in args.method_by.split(",") if f.strip()]:
        raise ConfigError("--method-by is empty; name the fields that tell methods apart (method.alpha,...), "
                          "or leave it out for the default")
    import_plugins(args.plugin)  # before any store is read: a bad module name costs nothing
    from .run import check_device

    check_device(args.device)  # the reference LM's, before any store is read
    _quiet_transformers(lazy=True)
    options = ReportOptions(
        metric=args.metric, error=args.error, published=args.published, top_prompts=args.top_prompts,
        baseline=None if args.baseline.lower() == "none" else args.baseline,
        method_by=[f.strip() for f in args.method_by.split(",") if f.strip()] if args.method_by else None,
        use_cache=not args.no_cache,
        naturalness=NaturalnessOptions(reference_lm=args.reference_lm, device=args.device,
                                       trust_remote_code=args.trust_remote_code))
    from .storage import exclusive_writer

    with exclusive_writer(args.out, "--out"):  # two reports into one directory would mix their files
        report = build_report(args.results, args.out, options)
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")
    console.print(f"naturalness: {report.computed_prompts} prompt(s) scored now, {report.cached_prompts} from the cache")
    console.print(f"{len(report.files)} files written; the report is {args.out / 'report.md'}")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from .models import ALIASES

    for name, alias in ALIASES.items():
        print(f"{name:16s} {'/'.join(alias.kinds):8s} {alias.description}")
    print("Any other name is loaded with Hugging Face from_pretrained (hub id or local directory).")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .methods import PRESETS
    from .registry import METHODS, TASKS, import_plugins

    import_plugins(args.plugin)
    width = max(16, *(len(n) for r in (TASKS, METHODS) for n in r.names()), *(len(n) for n in PRESETS))
    for registry in (TASKS, METHODS):
        print(f"{registry.kind}s:")
        for name in registry.names():
            print(f"  {name:{width}s} {registry.description(name)}")
    print("presets:")
    for name, preset in PRESETS.items():
        print(f"  {name:{width}s} ({preset.method}) {preset.description}")
    from .suite import load_suite, shipped_suites, suite_size

    print("suites (shipped; run one by name: pinbench sweep NAME --dry-run):")
    for name, path in shipped_suites().items():
        try:
            suite = load_suite(path, max_trials=10 ** 18)
            size = f"{suite_size(suite):,} trial(s)" + (" (Optuna search)" if suite.search else "")
            print(f"  {name:20s} {size:>14s}  {suite.description}")
        except ConfigError as exc:  # e.g. a plug-in it names is not installed: the rest still list
            print(f"  {name:20s} {'cannot load':>14s}  {exc}")
    return 0


def cmd_datasets(args: argparse.Namespace) -> int:
    """Every registered task's datasets (``Task.list_datasets``) and where their files are."""
    from .data_download import load_manifest, presence
    from .registry import TASKS, import_plugins

    import_plugins(args.plugin)
    if args.data_dir is not None and not Path(args.data_dir).is_dir():
        raise ConfigError(f"--data-dir '{args.data_dir}' is not a directory")
    manifest = load_manifest()

    def where(info) -> str:
        if info.name not in manifest:
            return info.files_hint or "no public source known to pinbench"
        p = presence(manifest[info.name], args.data_dir)
        places = ", ".join(f"{label} {folder}" for label, folder in p.places.items())
        line = f"{p.status} {p.found}/{len(p.dataset.files)} files" + (f" in {places}" if places else "")
        if p.dataset.unavailable:
            line += f" (+{len(p.dataset.unavailable)} published without a checksum here, not counted)"
        return line + (f"; get them: pinbench data download {info.name}" if p.status != "present" else "")

    for name in TASKS.names():
        task_class = TASKS.get(name)
        print(f"{task_class.title or name}:")
        for info in task_class.list_datasets(args.dataset_file):
            width = max(10, len(info.name))
            print(f"  {info.name:{width}s} {info.description}\n  {'':{width}s} {where(info)}")
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    from .data_download import DownloadFailed, download, load_manifest

    if args.attempts < 1:
        raise ConfigError(f"--attempts must be >= 1, got {args.attempts}")
    if not (0 < args.timeout < 1e6):  # nan and inf fail too; socket.settimeout refuses them with a traceback
        raise ConfigError(f"--timeout must be a number of seconds > 0 (under 1e6), got {args.timeout}")
    manifest = load_manifest(args.manifest)

    def report(s) -> None:
        note = f"; not downloaded (no checksum): {', '.join(s.unavailable)}" if s.unavailable else ""
        failed = f", {s.failed} failed, listed at the end" if s.failed else ""
        print(f"{s.dataset}: {s.fetched + s.present} file(s) verified in {s.folder} "
              f"({s.fetched} fetched, {s.present} already there{failed}){note}", flush=True)

    try:
        download(args.names, manifest=manifest, mirror=args.mirror or None, from_dir=args.from_dir,
                 attempts=args.attempts, timeout=args.timeout, progress=report,
                 notice=lambda line: print(line, flush=True))
    except DownloadFailed as exc:  # every data set was tried: each failed one on its own line, at the end
        for line in exc.failures:
            print(f"pinbench: error: {line}", file=sys.stderr)
        return 2
    return 0


def cmd_data_manifest(args: argparse.Namespace) -> int:
    from .data_download import build_manifest, write_manifest

    from .io import check_output_path

    check_output_path(args.out, "--out", data_dirs=(args.root,))
    manifest = build_manifest(args.root, args.names or None)
    write_manifest(manifest, args.out)
    n = sum(len(d["files"]) for d in manifest["datasets"].values())
    print(f"{args.out}: {len(manifest['datasets'])} data set(s), {n} file(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    for i, arg in enumerate(argv, start=1):  # bytes that are not UTF-8 arrive as lone surrogates
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = arg.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
            print(f"pinbench: error: command-line argument {i} '{shown}' is not UTF-8 text", file=sys.stderr)
            return 2
    args = build_parser(argv).parse_args(argv)
    with signals.handled():
        try:
            return args.func(args)
        except PinbenchError as exc:
            print(f"pinbench: error: {exc}", file=sys.stderr)
            return 2
        except (MemoryError, RuntimeError) as exc:  # a size setting the machine cannot hold
            message = allocation_failure(exc)
            if message is None:
                raise
            print(f"pinbench: error: {message}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"pinbench: interrupted ({signals.signal_name()})", file=sys.stderr)
            return signals.exit_code()
        except BrokenPipeError:  # `pinbench list | head`: the reader has what it wanted
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
            return 141  # 128 + SIGPIPE, as a shell reports a command killed by it
        except OSError as exc:
            if exc.errno != errno.ENAMETOOLONG:
                raise
            # a path the user gave (--out, --results, --predictions, a data file): the first
            # check that touches it fails, before any work, wherever in pinbench or pyarrow it is
            from .io import name_too_long

            print(f"pinbench: error: {name_too_long(exc)}", file=sys.stderr)
            return 2


if __name__ == "__main__":
    sys.exit(main())
