"""Few-shot text classification (docs/tasks/classification.md): the task owns its data and its reward."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ...fields import require
from ...registry import TASKS
from ..base import DatasetInfo, EvalTable, Metric, Task
from ...errors import ConfigError
from .data import DatasetSpec, Split, get_dataset, load_dataset_file, load_dataset_files, read_split
from .published import DATASET_TITLES, SOURCE as PUBLISHED_SOURCE, published_rows

if TYPE_CHECKING:  # torch and the scorer are imported where they are used (tasks/base.py says why)
    import torch

    from ...models import LoadedModel
    from .scoring import Progress


@dataclass
class ClassificationConfig:
    """Few-shot classification's fields (``task.<field>``)."""

    dataset: str = "sst-2"
    """Dataset (registry name; `pinbench datasets` lists them)."""
    split_seed: int = 13
    """LM-BFF split seed: 13, 21, 42, 87 or 100."""
    data_dir: str | None = None
    """Root of the few-shot data (<data_dir>/<dataset>/16-<split_seed>/...); unset: pinbench's data
    rule (PINBENCH_DATA_DIR, ../shared/data, the download cache, the embedded SST-2 split)."""
    dataset_file: str | None = None
    """Optional YAML file that defines extra datasets."""
    template: str = "dataset"
    """The template the prompt is scored in: dataset (the dataset's own, the prompt in its slot),
    manual (the papers' manual template, the prompt, e.g. an instruction, before it; the baselines
    use it) or a template string with {input}, {prompt} and {mask}."""
    demonstrations: int = 0
    """In-context demonstrations per class: training examples drawn with the run's seed, each
    rendered in the template with an empty prompt and its label word, after the query for masked
    LMs (RLPrompt's in-context baseline, LM-BFF's format) and before it for causal LMs."""
    task_lm: str = "smollm2-135m"
    """Task model (black box scored through verbalizers); the papers use roberta-large."""
    task_lm_kind: str | None = None
    """causal or masked; default: masked for *bert* names, else causal."""
    task_lm_dtype: str = "float32"
    """The task LM's weights as loaded: float32 or bfloat16."""
    trust_remote_code: bool = False
    """Allow the task LM's own code from the hub (only for models you trust)."""
    max_batch_tokens: int = 4096
    """Scoring's memory budget per forward pass, in tokens held (padded input tokens plus the cached
    prefix tokens each row attends to): peak memory is the model plus this, whatever the split's
    size (smollm2-135m: ~46 KB of float32 keys and values per token, 0.2 GB at 4,096)."""
    max_cached_tokens: int = 16384
    """Prefix tokens kept across calls (a run's training and dev inputs, scored at every step and
    every evaluation); a split that needs more (a test set) is scored without keeping any."""
    bf16: bool = True
    """Score training rewards with a bfloat16 copy of the task LM's weights (several times faster
    on CPU; class probabilities move by up to ~0.05 against float32)."""
    exact_eval: bool = True
    """Score dev (which selects the best prompt) and test (the reported number) exactly, in float32,
    even when bf16 is on; False scores them like the training rewards."""

    def __post_init__(self):
        require([(self.task_lm_kind in (None, "causal", "masked"), "task_lm_kind", "causal, masked or None"),
                 (self.demonstrations >= 0, "demonstrations", ">= 0"),
                 (self.task_lm_dtype in ("float32", "bfloat16"), "task_lm_dtype", "float32 or bfloat16"),
                 (self.max_batch_tokens >= 1, "max_batch_tokens", ">= 1"),
                 (self.max_cached_tokens >= 0, "max_cached_tokens", ">= 0")], self)


@dataclass(frozen=True)
class Evaluation:
    """Scores of P prompts on E examples."""

    prompts: tuple[str, ...]
    probs: torch.Tensor  # [P, E, C] verbalizer probabilities
    labels: torch.Tensor  # [E]

    @property
    def example_rewards(self) -> torch.Tensor:
        """[P, E] gap reward per example."""
        from . import rewards

        return rewards.gap_reward_per_example(self.probs, self.labels)

    @property
    def reward(self) -> torch.Tensor:
        """[P] mean gap reward per prompt."""
        return self.example_rewards.mean(-1)

    @property
    def accuracy(self) -> torch.Tensor:
        """[P] accuracy per prompt."""
        from . import rewards

        return rewards.accuracy(self.probs, self.labels)

    @property
    def predictions(self) -> torch.Tensor:
        """[P, E] predicted class per example."""
        return self.probs.argmax(-1)


def with_demonstrations(spec: DatasetSpec, train: Split, per_class: int, seed: int, lm: LoadedModel) -> DatasetSpec:
    """``spec`` with ``per_class`` training examples of each class rendered into its template (an
    empty prompt, the label's word at the mask), class by class: after the query, separated by the
    task LM's separator token, for masked LMs (RLPrompt's in-context baseline: LM-BFF's
    ``*sep+*``); before it, newline-separated, for causal LMs (their scored token must be last)."""
    import torch

    from .scoring import parse_template

    kind = lm.kind
    template, words = spec.template_for(kind), spec.verbalizers_for(kind)
    generator = torch.Generator().manual_seed(seed)
    demos = []
    for label, word in enumerate(words):
        pool = [e for e in train.examples if e.label == label]
        if len(pool) < per_class:
            raise ConfigError(f"task.demonstrations = {per_class}: the training split of '{spec.name}' has "
                              f"{len(pool)} example(s) of class {label}")
        for i in torch.randperm(len(pool), generator=generator)[:per_class].tolist():
            text = ""
            for piece in parse_template(template):
                body = {"literal": piece.text, "input": pool[i].text, "prompt": "", "mask": word}[piece.kind]
                if body:  # a word with its own leading space keeps it; others take the template's
                    text += body if piece.kind == "mask" and word[:1].isspace() else piece.lead + body
            demos.append(text.strip().replace("{", "{{").replace("}", "}}"))
    tok = lm.tokenizer  # RoBERTa's separator is its end token, </s>
    sep = (tok.sep_token or tok.eos_token) if kind == "masked" else None
    if kind == "masked":
        joined = template + "".join(f" {sep} {d}" if sep else f" {d}" for d in demos)
    else:
        joined = "\n".join(demos) + "\n" + template
    return dataclasses.replace(spec, template=joined, causal_template=joined if kind != "masked" else spec.causal_template)


@TASKS.register("classification")
class FewShotClassification(Task):
    """Few-shot classification: a dataset split scored by a frozen task LM through its verbalizers.

    Args:
        dataset: registry name or a ``DatasetSpec``.
        task_lm: the frozen task LM (causal or masked).
        data_dir: root of the LM-BFF layout (e.g. ``../shared/data/few-shot``).
        split_seed: which ``16-<seed>`` split.
        bf16: score training rewards with a bfloat16 copy of the task LM's weights (see
            ``VerbalizerScorer``).
        exact_eval: score every split but train (dev, which selects the best prompt, and test, the
            reported number) exactly, in the task LM's own dtype, even when ``bf16`` is on.
    """

    config_class = ClassificationConfig
    metrics = (Metric("accuracy", True, "share of examples whose top verbalizer is the label"),
               Metric("reward", True, "mean gap reward (RLPrompt's 200/180 x probability gap)"))
    selection_split, selection_metric, report_split = "dev", "accuracy", "test"

    def __init__(self, dataset: str | DatasetSpec, task_lm: LoadedModel, data_dir: str | Path | None,
                 split_seed: int = 13, *, bf16: bool = False, exact_eval: bool = True,
                 max_batch_tokens: int = 4096, max_cached_tokens: int = 16384):
        from .scoring import VerbalizerScorer

        self.spec = get_dataset(dataset) if isinstance(dataset, str) else dataset
        self.task_lm = task_lm
        self.data_dir = data_dir
        self.split_seed = split_seed
        budget = dict(max_batch_tokens=max_batch_tokens, max_cached_tokens=max_cached_tokens)
        self.scorer = VerbalizerScorer(task_lm, self.spec, bf16=bf16, **budget)
        # bf16 moves class probabilities by up to ~0.05 and flips predictions (docs/performance.md):
        # fast enough for a training signal, not for the numbers a user reports.
        self.exact_scorer = self.scorer if not (bf16 and exact_eval) else \
            VerbalizerScorer(task_lm, self.spec, bf16=False, **budget)
        self._splits: dict[str, Split] = {}

    @classmethod
    def build(cls, config: ClassificationConfig, run) -> "FewShotClassification":
        """The task a config names, with its task LM (``pinbench eval`` and training build it so)."""
        from ...models import guess_kind, load_model

        if config.dataset_file:
            load_dataset_file(config.dataset_file)
        kind = config.task_lm_kind or guess_kind(config.task_lm)
        spec = get_dataset(config.dataset).with_template(config.template)
        if config.demonstrations:  # read before the model loads: a missing file fails first
            train = read_split(spec, "train", config.split_seed, config.data_dir)
        task_lm = load_model(config.task_lm, kind, dtype=config.task_lm_dtype, device=run.device,
                             trust_remote_code=config.trust_remote_code)
        if config.demonstrations:
            spec = with_demonstrations(spec, train, config.demonstrations, run.seed, task_lm)
        return cls(spec, task_lm, config.data_dir, config.split_seed, bf16=config.bf16,
                   exact_eval=config.exact_eval, max_batch_tokens=config.max_batch_tokens,
                   max_cached_tokens=config.max_cached_tokens)

    @classmethod
    def check_data(cls, config: ClassificationConfig, run, splits: Sequence[str] | None = None) -> None:
        if config.dataset_file:
            load_dataset_file(config.dataset_file)
        spec = get_dataset(config.dataset)
        for split in cls.run_splits(run.test) if splits is None else splits:
            read_split(spec, split, config.split_seed, config.data_dir)

    @classmethod
    def dataset_name(cls, config: ClassificationConfig) -> str:
        return config.dataset

    # -- pinbench report: the papers' dataset names and PIN Table 1 beside the comparison table ---

    dataset_titles = DATASET_TITLES
    published_source = PUBLISHED_SOURCE

    @classmethod
    def comparison_published(cls, context) -> dict:
        """PIN Table 1 rows (published.py): test accuracies, so only beside test accuracy."""
        if context.published == "none":
            return {}
        if context.metric != "test_accuracy":
            context.warn(f"published rows left out: they are test accuracies, the table shows {context.metric}")
            return {}
        return published_rows(context.methods, context.published)

    # -- pinbench eval and datasets --------------------------------------------------------------

    eval_required = ("dataset",)
    title = "few-shot classification"

    @classmethod
    def eval_values(cls, flags: dict) -> dict:
        """The shared flags; every ``--dataset-file`` is registered (the first is the task's own)."""
        load_dataset_files(flags.get("dataset_file") or ())
        return super().eval_values(flags)

    @classmethod
    def input_files(cls, config: ClassificationConfig, splits: Sequence[str]) -> list[Path]:
        if config.dataset_file:
            load_dataset_file(config.dataset_file)
        spec = get_dataset(config.dataset)
        return [spec.file(config.data_dir, config.split_seed, split) for split in splits]

    def eval_table(self, prompts, outputs, split: str, progress=None) -> EvalTable:
        data = self.split(split)
        if progress is not None:
            progress.start(len(prompts) * len(data))
        result = self.evaluate(prompts, split, progress=progress.advance if progress is not None else None)
        rows = [(repr(p), {"accuracy": a, "mean reward": r})
                for p, a, r in zip(prompts, result.accuracy.tolist(), result.reward.tolist())]
        return EvalTable(title=f"{self.spec.name} (split seed {self.split_seed}, {split}, n={len(data)}) "
                                     f"with task LM {self.task_lm.name}",
                         rows=rows, formats={"accuracy": "%", "mean reward": ".2f"},
                         predictions=self.predictions_frame(result, split))

    def predictions_frame(self, result: Evaluation, split: str):
        """One row per (prompt, example): text, label, prediction, reward and class probabilities."""
        import pandas as pd

        data = self.split(split)
        names = self.spec.label_names or tuple(w.strip() for w in self.spec.verbalizers)
        if len(set(names)) < len(names):  # " great" and "great": distinct tokens, one name once stripped
            names = self.spec.verbalizers
        frames = []
        for i, prompt in enumerate(result.prompts):
            frame = pd.DataFrame({"prompt": prompt, "example": range(len(data)), "text": data.texts,
                                  "label": data.labels, "prediction": result.predictions[i].tolist(),
                                  "reward": result.example_rewards[i].tolist()})
            frame["correct"] = frame["label"] == frame["prediction"]
            for c, name in enumerate(names):
                frame[f"p_{name}"] = result.probs[i, :, c].tolist()
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    @classmethod
    def list_datasets(cls, dataset_files=()) -> list[DatasetInfo]:
        from .data import registry

        load_dataset_files(dataset_files)
        return [DatasetInfo(name, f"{spec.num_classes:2d} classes  {spec.template!r:32s} {list(spec.verbalizers)}",
                            f"user dataset, files under {spec.data_dir}" if spec.data_dir else None)
                for name, spec in sorted(registry().items())]

    def reference_prompts(self, kind: str) -> list[str]:
        """manual: the empty prompt (the manual template holds the papers' words; ``task.template``
        must be ``manual``); instruction: the dataset's task instruction."""
        if kind == "manual":
            return [""] if self.spec.manual_template is not None else []
        if kind == "instruction":
            return [self.spec.instruction] if self.spec.instruction else []
        return []

    def split(self, name: str) -> Split:
        if name not in self._splits:
            self._splits[name] = read_split(self.spec, name, self.split_seed, self.data_dir)
        return self._splits[name]

    # -- the task interface ------------------------------------------------------------------

    def differentiable(self):
        """The verbalizer cross-entropy on the training split as a function of prompt embeddings
        (exact weights), for gradient methods."""
        from .gradients import VerbalizerLoss

        return VerbalizerLoss(self.exact_scorer, self.split("train"))

    def score(self, prompts: Sequence[str], split: str = "train") -> dict[str, torch.Tensor]:
        """Per-prompt metrics on a split: ``reward`` (mean gap reward, the training signal) and
        ``accuracy``."""
        result = self.evaluate(prompts, split)
        return {"reward": result.reward, "accuracy": result.accuracy}

    def evaluate(self, prompts: Sequence[str], split: str = "train", *,
                 progress: Progress | None = None) -> Evaluation:
        import torch

        data = self.split(split)
        scorer = self.scorer if split == "train" else self.exact_scorer
        probs = scorer.score(list(prompts), data.texts, progress=progress)
        return Evaluation(tuple(prompts), probs, torch.tensor(data.labels))

    # -- pinbench sweep --smoke (pinbench/smoke.py) ----------------------------------------------

    @classmethod
    def smoke_settings(cls, config: ClassificationConfig, run, workdir: Path) -> tuple[dict, list[str]]:
        """A smoke trial's data: the first examples of each class of each split (enough for the
        demonstrations), copied into ``workdir`` in the dataset's layout (made-up sentences where a
        split's file is missing); returns the overrides and a note."""
        from ...errors import DataError
        from .data import SPLITS

        if config.dataset_file:
            load_dataset_file(config.dataset_file)
        spec = get_dataset(config.dataset)
        if Path(spec.path).is_absolute():
            return {}, [f"{spec.name}: full splits (its path pattern is absolute)"]
        root, per_class, made_up = workdir / "few-shot", max(2, config.demonstrations + 1), []
        files = {split: root / spec.path.format(name=spec.name, split_seed=config.split_seed, split=split)
                 for split in SPLITS}
        if not all(f.resolve().is_relative_to(root.resolve()) for f in files.values()):
            # '../../..' in the pattern reaches the same files from the work folder as from the
            # data folder: the copies would overwrite the user's own splits
            return {}, [f"{spec.name}: full splits (its path pattern leaves the data folder)"]
        for split in SPLITS:
            try:
                examples = read_split(spec, split, config.split_seed, config.data_dir).examples
            except DataError:
                examples, _ = (), made_up.append(split)
            rows = []
            for label in range(spec.num_classes):
                texts = [e.text for e in examples if e.label == label][:per_class]
                texts += [f"made-up example {i} of class {label} ." for i in range(per_class - len(texts))]
                rows += [f"{t.replace(chr(9), ' ')}\t{label}" for t in texts]
            file = files[split]
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(f"{spec.text_column or 'sentence'}\t{spec.label_column}\n" + "\n".join(rows) + "\n",
                            encoding="utf-8")
        note = f"{spec.name}: {per_class} examples per class per split"
        return {"task.data_dir": str(root)}, [note + (f" (made up: {', '.join(made_up)})" if made_up else "")]
