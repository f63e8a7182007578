"""Text style transfer (docs/tasks/style-transfer.md): the task LM rewrites a sentence into the
other style, prompted with ``{prompt} "{input}" "``; the task owns the generation, the reward and
the evaluation (PIN Table 2; RLPrompt ``examples/text-style-transfer/``).

Reward of one sample y for input x (RLPrompt ``output_selector.py``):
    r(y) = (content + style) / 2,  content = 100 max(BERTScore-F1(y, x), 0),  style = 100 P(target | y)
Reward of a (prompt, input): k blocks of n samples, in generation order, and the mean of the k block
maxima (``tst_reward.py``: 4 x 32). In training each prompt is paired with one input (the step's
inputs are repeated over the prompts, [x1]*r + [x2]*r) and the prompts of one input are z-scored
together, pooling their block maxima into the std (``reward_draws``/``reward_group``; the method's
shaping does the z-score).

Evaluation of a prompt on test (RLPrompt ``evaluation/run_eval.py``): per test input, the best of
``test_samples`` non-empty samples by the training reward; then content, style accuracy under a
second classifier (not the one the policy was trained against), fluency, J, GM, BLEU against the
references and the outputs' perplexity.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ...errors import ConfigError
from ...fields import require
from ...io import read_utf8
from ...registry import TASKS
from ..base import DatasetInfo, EvalTable, Metric, Task
from .data import StyleSplit, get_dataset, parse_direction, read_split

if TYPE_CHECKING:  # torch is imported where it is used (tasks/base.py says why)
    import torch

# The paper's models by name for GPU runs (docs/tasks/style-transfer.md#5): PIN's task LMs, RoBERTa-
# large BERTScore (layer 17, bert_score's rescale baseline) and the CoLA classifier of the evaluation.
PAPER_TASK_LMS = ("facebook/opt-125m", "facebook/opt-350m", "facebook/opt-1.3b")
PAPER_FLUENCY_CLASSIFIER = "cointegrated/roberta-large-cola-krishna2020"


@dataclass
class StyleTransferConfig:
    """Text style transfer's fields (``task.<field>``). Sample counts default to the authors'
    (4 x 32 per (prompt, input), 32 at test); a laptop run sets fewer (suites/tst-quickstart.yaml)."""

    dataset: str = "yelp"
    """yelp or shakespeare."""
    direction: str = "0_to_1"
    """0_to_1 or 1_to_0 (Yelp: 0 negative, 1 positive; Shakespeare: 0 Shakespearean, 1 modern)."""
    split_seed: int = 100
    """Shakespeare's 100-shot split (100-<seed>: 100, 13, 21, 42, 87); Yelp has one split."""
    data_dir: str | None = None
    """Root holding yelp/ and shakespeare/ (e.g. ../shared/data/style-transfer); unset: pinbench's
    data rule (PINBENCH_DATA_DIR, ../shared/data, the download cache)."""
    task_lm: str = "smollm2-135m"
    """Generating task LM; PIN's Table 2 uses facebook/opt-125m, opt-350m and opt-1.3b."""
    task_lm_dtype: str = "float32"
    """The task LM's weights as loaded: float32 or bfloat16."""
    trust_remote_code: bool = False
    """Allow a hub model's own code (only for models you trust)."""
    bf16: bool = True
    """Generate training samples with a bfloat16 copy of the task LM (several times faster on CPU)."""
    exact_eval: bool = True
    """Generate dev and test samples (and compute the fluency proxy's and the outputs' perplexities)
    with the models' own weights even when bf16 is on; False runs them in bf16 too."""
    template: str = '{prompt} "{input}" "'
    """The task LM's input; generation is cut at the closing quote (RLPrompt's template)."""
    gen_top_k: int = 10
    """Top-k sampling of the task LM (RLPrompt: 10)."""
    lower_outputs: bool | None = None
    """Lowercase outputs (None: the dataset's rule, true for Yelp as in RLPrompt)."""
    num_samples: int = 32
    """n: samples per block; a (prompt, input)'s reward is the mean of the block maxima."""
    num_bootstraps: int = 4
    """k: blocks per (prompt, input) (RLPrompt: 4 x 32 = 128 samples)."""
    inputs_per_step: int = 2
    """Training inputs per step; the step's prompts are split evenly among them (RLPrompt: 2)."""
    dev_size: int | None = None
    """Dev sentences (None: the authors' rule, Yelp's first 16 dev lines, all of Shakespeare's)."""
    test_size: int | None = None
    """Only the first n test sentences (None: all; Yelp 500 per direction)."""
    test_samples: int = 32
    """Samples per test input; the best by the training reward is the output (RLPrompt: 32)."""
    content_model: str = "minilm-l6"
    """BERTScore's encoder: minilm-l6 offline; the papers' roberta-large (layer 17, rescaled)."""
    content_layer: int | None = None
    """BERTScore's hidden layer (None: the scorer's choice for the model)."""
    content_baseline: float | None = None
    """BERTScore's rescale baseline b, F' = (F - b) / (1 - b) (None: the known one for minilm-l6,
    0.2019, and roberta-large, 0.83122575; raw F1 for other models)."""
    style_classifier: str | None = None
    """The reward's style classifier: a hub id or directory of a sequence classifier (None: a
    logistic regression on minilm-l6 embeddings, trained once on the dataset and cached)."""
    style_label_index: tuple[int, int] | None = None
    """Output indices of style 0 and style 1 for hub classifiers (None: 0 and 1)."""
    eval_style_classifier: str | None = None
    """The judge of style accuracy (None: a second offline classifier trained on disjoint data)."""
    fluency_classifier: str | None = None
    """Fluency judge: a CoLA classifier by name (the paper: cointegrated/roberta-large-cola-
    krishna2020), None: a proxy, reference-LM perplexity under the threshold 90% of the dataset's
    human-written test sentences pass."""
    reference_lm: str = "smollm2-135m"
    """Causal LM of the fluency proxy and the outputs' perplexity."""
    max_batch_tokens: int = 8192
    """Tokens per generation batch (memory / speed trade-off)."""

    def __post_init__(self):
        from .template import check_template

        get_dataset(self.dataset)
        parse_direction(self.direction)
        check_template(self.template)
        require([(self.task_lm_dtype in ("float32", "bfloat16"), "task_lm_dtype", "float32 or bfloat16"),
                 (self.gen_top_k >= 1, "gen_top_k", ">= 1"),
                 (self.num_samples >= 1, "num_samples", ">= 1"),
                 (self.num_bootstraps >= 1, "num_bootstraps", ">= 1"),
                 (self.inputs_per_step >= 1, "inputs_per_step", ">= 1"),
                 (self.dev_size is None or self.dev_size >= 1, "dev_size", ">= 1 or None"),
                 (self.test_size is None or self.test_size >= 1, "test_size", ">= 1 or None"),
                 (self.test_samples >= 1, "test_samples", ">= 1"),
                 (self.max_batch_tokens >= 64, "max_batch_tokens", ">= 64")], self)
        if self.style_label_index is not None:
            self.style_label_index = tuple(self.style_label_index)


def content_baseline(model: str, given: float | None) -> float | None:
    """BERTScore's rescale baseline: the one given, else the known one for the model (bert_score's
    for roberta-large, pinbench's measured one for minilm-l6), else None (raw F1)."""
    from .scorers import MINILM_BASELINE, PAPER_CONTENT

    known = {"minilm-l6": MINILM_BASELINE, PAPER_CONTENT["model"]: PAPER_CONTENT["baseline"]}
    return given if given is not None else known.get(model)


def block_max_mean(rewards: torch.Tensor, blocks: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RLPrompt's bootstrapped max: rewards [..., k * n] in generation order -> (block maxima
    [..., k], their mean [...])."""
    maxima = rewards.unflatten(-1, (blocks, -1)).amax(-1)
    return maxima, maxima.mean(-1)


def pair_inputs(n_prompts: int, n_inputs: int) -> list[int]:
    """Which input each prompt is paired with: [0]*r + [1]*r + ... (RLPrompt's _repeat_texts), as
    evenly as P / n_inputs allows."""
    return [i * n_inputs // n_prompts for i in range(n_prompts)]


@TASKS.register("style_transfer")
class StyleTransfer(Task):
    """Rewrite sentences into the other style with a prompted task LM (PIN Table 2).

    Args:
        config: the task's fields (``StyleTransferConfig``).
        generator: the prompted task LM (``StyleGenerator``) for training samples; ``exact`` for
            dev and test (the same object unless bf16 training samples with exact evaluation).
        content, reward_style: the reward's BERTScore and style classifier.
        seed: the run's seed (fixes every sample drawn).
        eval_style, fluency, reference_lm: the evaluation's judges, built on first use when None.
    """

    config_class = StyleTransferConfig
    metrics = (
        Metric("reward", True, "mean over inputs of the mean of the k block maxima of (content + style) / 2"),
        Metric("content", True, "100 x BERTScore-F1(output, input), clipped at 0"),
        Metric("style", True, "dev/train: 100 x P(target style) under the reward classifier; "
                              "test: accuracy (%) of the evaluation classifier"),
        Metric("fluency", True, "share (%) of outputs judged fluent"),
        Metric("joint", True, "J: mean over sentences of content x style-correct x fluent (%)"),
        Metric("gm", True, "geometric mean of content, style and fluency"),
        Metric("bleu", True, "mean sentence BLEU against the references (sacrebleu)"),
        Metric("ppl", False, "perplexity of the outputs under the reference LM"),
    )
    selection_split, selection_metric, report_split = "dev", "reward", "test"
    cacheable = False  # sampled generations, and a stream of training inputs

    def __init__(self, config: StyleTransferConfig, generator, content, reward_style, *, seed: int = 0,
                 exact=None, eval_style=None, fluency=None, reference_lm=None, device: str = "cpu"):
        self.config, self.seed, self.device = config, seed, device
        self.source, self.target = parse_direction(config.direction)
        self.generator, self.exact = generator, exact or generator
        self.content, self.reward_style = content, reward_style
        self._eval_style, self._fluency, self._reference_lm = eval_style, fluency, reference_lm
        self._splits: dict[str, StyleSplit] = {}
        self.cursor = 0  # next training input in the stream
        self.calls: dict[str, int] = {}  # scoring calls per split: each draws from its own seed

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def build(cls, config: StyleTransferConfig, run) -> "StyleTransfer":
        from ...models import load_model
        from .generation import StyleGenerator
        from .scorers import BertScorer, HubStyleClassifier, offline_style_classifier

        lower = get_dataset(config.dataset).lower_outputs if config.lower_outputs is None else config.lower_outputs
        lm = load_model(config.task_lm, "causal", dtype=config.task_lm_dtype, device=run.device,
                        trust_remote_code=config.trust_remote_code)
        make = lambda bf16: StyleGenerator(lm, template=config.template, top_k=config.gen_top_k, lower=lower,
                                           bf16=bf16, max_batch_tokens=config.max_batch_tokens)
        generator = make(config.bf16)
        exact = make(False) if config.bf16 and config.exact_eval else generator
        content = BertScorer(config.content_model, layer=config.content_layer, device=run.device,
                             baseline=content_baseline(config.content_model, config.content_baseline))
        if config.style_classifier:
            style = HubStyleClassifier(config.style_classifier, config.style_label_index, device=run.device)
        else:
            style = offline_style_classifier(config.dataset, "reward", config.data_dir, config.split_seed)
        return cls(config, generator, content, style, seed=run.seed, exact=exact, device=run.device)

    @classmethod
    def check_data(cls, config: StyleTransferConfig, run, splits: Sequence[str] | None = None) -> None:
        for split in cls.run_splits(run.test) if splits is None else splits:
            read_split(config.dataset, config.direction, split, config.data_dir, split_seed=config.split_seed,
                       dev_size=config.dev_size, test_size=config.test_size)

    @classmethod
    def dataset_name(cls, config: StyleTransferConfig) -> str:
        return config.dataset

    # -- pinbench report: PIN Table 2 and example outputs (report.py) ---------------------------

    published_source = "PIN (Choi et al., ACL 2024), Table 2 (Yelp, mean of 4 runs)"
    report_module = ".report"  # report_sections(context), imported when a report runs

    # -- pinbench eval and datasets --------------------------------------------------------------

    eval_required = ("dataset",)
    scores_outputs = True
    title = "style transfer"

    @classmethod
    def check_eval_request(cls, prompts, outputs, split: str) -> None:
        super().check_eval_request(prompts, outputs, split)
        if outputs and split != "test":
            raise ConfigError("pinbench eval --outputs: outputs are scored against the test split only")

    @classmethod
    def check_eval_outputs(cls, config: StyleTransferConfig, outputs, split: str) -> None:
        """Each file readable text with one output per test input: checked before the models load
        (seconds on a CPU, minutes at the papers' sizes)."""
        if not outputs:
            return
        counts = {file: len(read_outputs(file)) for file in outputs}  # the files' own errors first
        inputs = len(read_split(config.dataset, config.direction, split, config.data_dir, split_seed=config.split_seed,
                                dev_size=config.dev_size, test_size=config.test_size).inputs)
        for file, lines in counts.items():
            _check_output_count(file, lines, inputs, config)

    def eval_table(self, prompts, outputs, split: str, progress=None) -> EvalTable:
        """Each prompt's best-of-n outputs, or each outputs file (another system's, one line per
        test input), with the paper's metrics; per-example outputs and judgements on test."""
        import pandas as pd

        data = self.split(split)
        given = {Path(f): read_outputs(f) for f in outputs}
        for file, lines in given.items():  # before the prompts' sampling, minutes on a CPU
            _check_output_count(file, len(lines), len(data.inputs), self.config)
        rows, frames = [], []
        for source in [*prompts, *outputs]:
            if isinstance(source, Path):
                metrics, name = self.evaluate_outputs(given[Path(source)], data), str(source)
            else:
                metrics, name = self.score([source], split), repr(source)
                metrics = {k: (v[0] if isinstance(v, list) else float(v[0])) for k, v in metrics.items()}
            rows.append((name, metrics))
            if "outputs" in metrics and split == "test":
                frames.append(pd.DataFrame({
                    "source": name, "example": range(len(data.inputs)), "input": data.inputs,
                    "output": metrics["outputs"], "reference": list(data.references) if data.references else None,
                    "content": metrics["content_each"], "style_correct": metrics["style_correct_each"],
                    "fluent": metrics["fluent_each"]}))
        warnings = []
        for file, lines in given.items():
            empty = sum(not line for line in lines)
            if empty:  # a system that returned nothing for an input, or lines lost from the file
                warnings.append(f"outputs file '{file}': {empty} of {len(lines)} output(s) are empty; each is judged "
                                "as an output (the style classifier reads empty text) and has no perplexity")
        c = self.config
        names = [m.name for m in self.metrics if any(isinstance(r.get(m.name), float) for _, r in rows)]
        return EvalTable(title=f"style transfer {c.dataset} {c.direction} ({split}, n={len(data.inputs)}) "
                               f"with task LM {c.task_lm}",
                         rows=[(n, {m: r.get(m) for m in names}) for n, r in rows], formats={m: ".1f" for m in names},
                         predictions=pd.concat(frames, ignore_index=True) if frames else None,
                         predictions_label="per-example outputs", warnings=warnings)

    @classmethod
    def list_datasets(cls, dataset_files=()) -> list[DatasetInfo]:
        from .data import DATASETS

        return [DatasetInfo(name, style.description) for name, style in DATASETS.items()]

    def split(self, name: str) -> StyleSplit:
        if name not in self._splits:
            c = self.config
            self._splits[name] = read_split(c.dataset, c.direction, name, c.data_dir, split_seed=c.split_seed,
                                            dev_size=c.dev_size, test_size=c.test_size)
        return self._splits[name]

    def split_size(self, name: str) -> int | None:
        """Dev and test inputs a prompt rewrites; None for training (a stream: one input each)."""
        return None if name == "train" else len(self.split(name).inputs)

    # -- randomness and checkpoints ----------------------------------------------------------

    def _rng(self, split: str) -> torch.Generator:
        """A generator for the next scoring call on ``split``: seeded by (run seed, split, call
        number), so a run and a resumed run draw the same samples. Test is scored from one seed."""
        import torch

        n = self.calls.get(split, 0)
        if split != "test":
            self.calls[split] = n + 1
        return torch.Generator().manual_seed(zlib.crc32(f"{self.seed}:{split}:{n}".encode()))

    def state_dict(self) -> dict:
        return {"cursor": self.cursor, "calls": dict(self.calls)}

    def load_state_dict(self, state: dict) -> None:
        self.cursor = state.get("cursor", 0)
        self.calls = dict(state.get("calls", {}))

    # -- rewards -------------------------------------------------------------------------------

    def sample_rewards(self, outputs: Sequence[str], inputs: Sequence[str]) -> dict[str, torch.Tensor]:
        """Per sample: content, style (P(target) x 100) and reward = (content + style) / 2."""
        content = self.content.f1(list(outputs), list(inputs)).clamp(min=0) * 100
        style = self.reward_style.probs(list(outputs))[:, self.target].float() * 100
        return {"content": content, "style": style, "reward": (content + style) / 2}

    def _sampled(self, pairs: list[tuple[str, str]], split: str) -> tuple[list[list[str]], dict]:
        """k * n samples per (prompt, input) and their rewards [pairs, k * n]."""
        c = self.config
        per_pair = c.num_samples * c.num_bootstraps
        generator = self.generator if split == "train" else self.exact
        outputs = generator.sample_pairs(pairs, per_pair, self._rng(split))
        flat_out = [o for outs in outputs for o in outs]
        flat_in = [x for (_, x), outs in zip(pairs, outputs) for _ in outs]
        rewards = self.sample_rewards(flat_out, flat_in)
        return outputs, {k: v.view(len(pairs), per_pair) for k, v in rewards.items()}

    def training_inputs(self, n: int) -> list[str]:
        """The next n training inputs, in file order, cycling (the authors read train in order)."""
        pool = self.split("train").inputs
        taken = [pool[(self.cursor + i) % len(pool)] for i in range(n)]
        self.cursor = (self.cursor + n) % len(pool)
        return taken

    def score(self, prompts: Sequence[str], split: str = "train") -> dict:
        prompts = list(prompts)
        if split == "train":
            return self._score_train(prompts)
        if split == "dev":
            return self._score_dev(prompts)
        if split == "test":
            return self._score_test(prompts)
        raise ConfigError(f"task 'style_transfer' has no split '{split}'; it has {list(self.splits)}")

    def _score_train(self, prompts: list[str]) -> dict:
        import torch

        inputs = self.training_inputs(min(self.config.inputs_per_step, len(prompts)))
        groups = pair_inputs(len(prompts), len(inputs))
        _, r = self._sampled([(p, inputs[g]) for p, g in zip(prompts, groups)], "train")
        maxima, reward = block_max_mean(r["reward"], self.config.num_bootstraps)
        return {"reward": reward, "reward_draws": maxima, "reward_group": torch.tensor(groups),
                "content": r["content"].mean(-1), "style": r["style"].mean(-1)}

    def _score_dev(self, prompts: list[str]) -> dict:
        """Every prompt on every dev input: reward = mean over inputs of the block-max mean (the
        authors' eval/score); content and style are sample means; the best sample per input is kept."""
        inputs = self.split("dev").inputs
        pairs = [(p, x) for p in prompts for x in inputs]
        outputs, r = self._sampled(pairs, "dev")
        _, reward = block_max_mean(r["reward"], self.config.num_bootstraps)
        shape = (len(prompts), len(inputs))
        best = r["reward"].argmax(-1).tolist()
        chosen = [outs[i] for outs, i in zip(outputs, best)]
        return {"reward": reward.view(shape).mean(-1), "content": r["content"].view(*shape, -1).mean((1, 2)),
                "style": r["style"].view(*shape, -1).mean((1, 2)),
                "outputs": [chosen[i * len(inputs):(i + 1) * len(inputs)] for i in range(len(prompts))]}

    def _score_test(self, prompts: list[str]) -> dict:
        """Per prompt: best-of-``test_samples`` outputs by the training reward, then ``evaluate_outputs``."""
        import torch

        data = self.split("test")
        n = self.config.test_samples
        rows: dict[str, list] = {}
        for prompt in prompts:
            samples = self.exact.sample_pairs([(prompt, x) for x in data.inputs], n, self._rng("test"))
            chosen, rewards = self.select_outputs(samples, data.inputs)
            metrics = self.evaluate_outputs(chosen, data)
            metrics["reward"] = float(rewards.mean())
            for k, v in metrics.items():
                rows.setdefault(k, []).append(v)
        return {k: (torch.tensor(v, dtype=torch.float64) if not isinstance(v[0], list) else v)
                for k, v in rows.items()}

    def select_outputs(self, samples: list[list[str]], inputs: Sequence[str]) -> tuple[list[str], torch.Tensor]:
        """Per input, the non-empty sample with the highest training reward (RLPrompt's
        ``select_outputs_batch``); an input whose samples are all empty gets ""."""
        import torch

        flat_out, flat_in, owner = [], [], []
        for i, (outs, x) in enumerate(zip(samples, inputs)):
            kept = [o for o in outs if o] or [""]
            flat_out += kept
            flat_in += [x] * len(kept)
            owner += [i] * len(kept)
        reward = self.sample_rewards(flat_out, flat_in)["reward"]
        best = torch.full((len(inputs),), -1.0)
        chosen = [""] * len(inputs)
        for j, i in enumerate(owner):
            if reward[j] > best[i]:
                best[i], chosen[i] = reward[j], flat_out[j]
        return chosen, best

    # -- evaluation ----------------------------------------------------------------------------

    def _judges(self):
        import torch

        from ...models import cast_model, load_model
        from .scorers import (HubFluency, HubStyleClassifier, PerplexityFluency, calibrate_threshold,
                              offline_style_classifier)

        c = self.config
        if self._eval_style is None:
            self._eval_style = HubStyleClassifier(c.eval_style_classifier, c.style_label_index, device=self.device) \
                if c.eval_style_classifier else offline_style_classifier(c.dataset, "eval", c.data_dir, c.split_seed)
        if self._reference_lm is None:  # exact unless evaluation runs in bf16 like training
            lm = load_model(c.reference_lm, "causal", device=self.device)
            self._reference_lm = lm if c.exact_eval or not c.bf16 else cast_model(lm, torch.bfloat16)
        if self._fluency is None:
            if c.fluency_classifier:
                self._fluency = HubFluency(c.fluency_classifier, device=self.device)
            else:
                human = [s for d in ("0_to_1", "1_to_0") for s in
                         read_split(c.dataset, d, "test", c.data_dir, split_seed=c.split_seed).inputs]
                self._fluency = PerplexityFluency(self._reference_lm, calibrate_threshold(self._reference_lm, human))
        return self._eval_style, self._fluency, self._reference_lm

    def evaluate_outputs(self, outputs: Sequence[str], data: StyleSplit | None = None) -> dict:
        """The paper's evaluation of one output per test input (also for other systems' outputs):
        content, style accuracy (%), fluency (%), J, GM, BLEU (with references), perplexity, and
        per-sentence lists (content, style-correct, fluent) so that two directions can be pooled."""
        from .scorers import geometric_mean, joint, perplexity, sentence_bleu_mean

        data = data or self.split("test")
        outputs = list(outputs)
        if len(outputs) != len(data.inputs):
            raise ConfigError(f"{len(outputs)} outputs for {len(data.inputs)} test inputs of style transfer "
                              f"{self.config.dataset} {self.config.direction}: give one output per input")
        eval_style, fluency, reference_lm = self._judges()
        content = self.content.f1(outputs, list(data.inputs)).clamp(min=0) * 100
        correct = (eval_style.probs(outputs).argmax(-1) == self.target).float()
        fluent = fluency.fluent(outputs).float()
        style, fluency_pct = float(correct.mean() * 100), float(fluent.mean() * 100)
        metrics = {"content": float(content.mean()), "style": style, "fluency": fluency_pct,
                   "joint": joint(content, correct, fluent),
                   "gm": geometric_mean(float(content.mean()), style, fluency_pct),
                   "bleu": sentence_bleu_mean(outputs, list(data.references)) if data.references else float("nan"),
                   "ppl": perplexity(reference_lm, outputs)}
        return {**metrics, "inputs": list(data.inputs), "outputs": outputs, "content_each": content.tolist(),
                "style_correct_each": correct.tolist(), "fluent_each": fluent.tolist()}


MAX_OUTPUTS_BYTES = 64 * 2 ** 20  # a test split's outputs are kilobytes


def _check_output_count(file, lines: int, inputs: int, config: StyleTransferConfig) -> None:
    if lines != inputs:
        raise ConfigError(f"outputs file '{file}' has {lines} line(s) for {inputs} test inputs of style transfer "
                          f"{config.dataset} {config.direction}: give one output per input, one per line")


def read_outputs(path: str | Path) -> list[str]:
    """A file of outputs, one per line (``pinbench eval --outputs``); blank lines are empty outputs."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"outputs file '{file}' " + ("is a directory; give a file, one output per line"
                                                        if file.is_dir() else "is not a regular file (a pipe or a "
                                                        "device: it is read more than once); give a file"
                                                        if file.exists() else "does not exist"))
    size = file.stat().st_size
    if size > MAX_OUTPUTS_BYTES:
        raise ConfigError(f"outputs file '{file}' is {size:,} bytes, over the {MAX_OUTPUTS_BYTES:,}-byte limit")
    text = read_utf8(file, "outputs file", newline="").removeprefix("\ufeff")  # an editor's byte-order mark
    # lines end at \n (or \r\n) only: str.splitlines would also split at U+2028, \x0b or \x1c inside
    # an output, and a lone \r (read as a line end by default) would, and shift every later output
    # against its input
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    lines = [line.removesuffix("\r") for line in lines]
    for number, line in enumerate(lines, start=1):
        if "\r" in line:
            raise ConfigError(f"outputs file '{file}' line {number}: a carriage return inside the line (only \\n "
                              "or \\r\\n end a line)")
    return [line.strip() for line in lines]


def _smoke_settings(cls, config: StyleTransferConfig, run, workdir: Path) -> tuple[dict, list[str]]:
    """``pinbench sweep --smoke`` (pinbench/smoke.py): two dev and two test sentences; on CPU also
    2 x 2 samples per (prompt, input) and the best of 2 at test (a GPU keeps the trial's counts)."""
    values = {"task.dev_size": 2, "task.test_size": 2}
    notes = ["2 dev and 2 test sentences"]
    if not str(run.device).startswith("cuda"):
        values.update({"task.num_samples": 2, "task.num_bootstraps": 2, "task.test_samples": 2})
        notes.append(f"CPU: 2 x 2 samples per (prompt, input) (the trial's {config.num_bootstraps} x "
                     f"{config.num_samples}), best of 2 at test (the trial's {config.test_samples})")
    return values, notes


StyleTransfer.smoke_settings = classmethod(_smoke_settings)
