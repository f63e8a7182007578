"""Soft prompt tuning's configuration and its presets (Lester et al. 2021, arXiv 2104.08691; RLPrompt's
baseline script ``examples/few-shot-classification/baseline/5-prompt-tune/train.py``, branch
``cls_baseline`` of mingkaid/rl-prompt)."""

from __future__ import annotations

from dataclasses import dataclass

from ...fields import require
from ...presets import Preset, register_presets

OPTIMIZERS = ("adamw", "adafactor")
INITS = ("vocab", "text", "head")
LR_SCHEDULES = ("constant", "linear")
BATCH_ORDERS = ("random", "sequential")
LOSSES = ("verbalizer", "vocab")
TEMPLATES = ("rlprompt",)


@dataclass
class SoftPromptConfig:
    """Soft prompt tuning's fields (``method.<field>``)."""

    prompt_length: int = 5
    """L, soft prompt vectors placed where the template's prompt goes (the other methods' 5 tokens)."""
    optimizer: str = "adamw"
    """adamw, or adafactor: Lester et al.'s optimiser (constant lr 0.3, weight decay 1e-5, beta2
    decay 0.8, no parameter scaling; set ``weight_decay`` 1e-5 for theirs)."""
    lr: float | None = None
    """Learning rate; None: the optimiser's default, AdamW 1e-3 or Adafactor 0.3 (Lester et al., for
    T5, whose embeddings are large). AdamW moves each coordinate by about lr per step: 1e-3 is ~1%
    of a SmolLM2-135M embedding coordinate (std 0.14). On SmolLM2 SST-2 (16-shot, split seed 13,
    run seed 0) 0.01 fits the 32 training examples within 50 steps (batch loss 0.006), dev
    accuracy 0.63 at step 25 and 0.53 at step 50; 1e-3 takes ~80 steps (batch loss 0.56 at step 20,
    0.017 at 80) and reaches dev accuracy 0.72 at step 40, so dev checks every 20 steps see the
    descent. Both overfit long before 3,000 steps: the dev set picks the step."""
    lr_schedule: str = "constant"
    """constant, or linear: the learning rate of the k-th update is lr x max(0, 1 - (k - 1) /
    ``lr_decay_steps``), 0 from then on (transformers' ``get_linear_schedule_with_warmup`` without
    warm-up, as RLPrompt's soft prompt script; Adafactor takes the same multiplier)."""
    lr_decay_steps: int | None = None
    """Updates over which the linear schedule reaches 0; None: ``run.steps``. RLPrompt's script
    passes ``num_training_steps=epochs`` (100) while stepping its scheduler once per batch, so its
    learning rate is 0 after update 100 whatever the dataset."""
    weight_decay: float = 0.0
    """Decoupled weight decay on the prompt vectors (Lester et al.: 1e-5 with Adafactor)."""
    batch_size: int | None = 16
    """Training examples per step; None: all of them."""
    batch_order: str = "random"
    """random: each step's batch drawn without replacement (seeded); sequential: consecutive
    batches of the training split in file order, starting again after the last (a DataLoader with
    ``shuffle=False``, as RLPrompt's script; LM-BFF's 16-shot files list the examples class by class,
    so a batch of 16 then holds one class)."""
    init: str = "vocab"
    """Initialisation: vocab, the embeddings of tokens drawn uniformly (seeded, with replacement)
    from the task LM's non-special vocabulary (Lester et al.'s "sampled vocab"; they draw from T5's
    5,000 most common tokens, which a tokenizer does not say); text: the embeddings of
    ``init_text``'s tokens, the rest drawn as for vocab when the text is shorter than
    ``prompt_length``; head: ``prompt_length`` distinct ids drawn uniformly (seeded) from the first
    ``init_head`` ids of the vocabulary, special ids included (RLPrompt's script:
    ``np.random.permutation(range(5000))[:n_prefix]``, its reading of Lester et al.'s most common
    tokens: a BPE vocabulary's first ids are its earliest merges)."""
    init_text: str | None = None
    """The text whose token embeddings start the prompt (``init`` text), at most ``prompt_length``
    tokens as the template tokenises it (e.g. "It was")."""
    init_head: int = 5000
    """``init`` head: how many of the vocabulary's first ids the initial vectors are drawn from
    (RLPrompt's script: 5000); at least ``prompt_length``."""
    grad_clip: float | None = None
    """Clip the gradient's norm (None: no clipping, as Lester et al.)."""
    loss: str = "verbalizer"
    """The training loss: verbalizer, the cross-entropy of the classes' verbalizer words (the
    task's white-box loss); vocab, -log p(label word) over the task LM's whole vocabulary at the
    scored position (a masked LM's own loss with the label word at the mask, as RLPrompt's script).
    Dev and test are scored by the verbalizers either way."""
    template: str | None = None
    """The template the vectors are trained and scored in: None, the task's (``task.template``);
    rlprompt, the one RLPrompt's soft prompt script gives the dataset (``RLPROMPT_TEMPLATES``:
    sentiment and subj after the input, AG News and TREC after the mask, Yahoo and DBpedia first),
    for masked task LMs (the script's RoBERTa); a causal task LM, or a dataset the script does not
    run, keeps the task's template. Classification only."""

    def __post_init__(self):
        require([(self.prompt_length >= 1, "prompt_length", ">= 1"),
                 (self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}"),
                 (self.lr is None or self.lr > 0, "lr", "> 0 or None"),
                 (self.lr_schedule in LR_SCHEDULES, "lr_schedule", f"one of {LR_SCHEDULES}"),
                 (self.lr_decay_steps is None or self.lr_decay_steps >= 1, "lr_decay_steps", ">= 1 or None"),
                 (self.lr_decay_steps is None or self.lr_schedule == "linear", "lr_decay_steps",
                  "None unless lr_schedule is 'linear'"),
                 (self.weight_decay >= 0, "weight_decay", ">= 0"),
                 (self.batch_size is None or self.batch_size >= 1, "batch_size", ">= 1 or None"),
                 (self.batch_order in BATCH_ORDERS, "batch_order", f"one of {BATCH_ORDERS}"),
                 (self.init in INITS, "init", f"one of {INITS}"),
                 (self.init != "text" or bool(self.init_text), "init", "'vocab' unless init_text is set"),
                 (self.init_text is None or self.init == "text", "init_text", "None unless init is 'text'"),
                 (self.init_head >= self.prompt_length, "init_head", f">= prompt_length ({self.prompt_length})"),
                 (self.grad_clip is None or self.grad_clip > 0, "grad_clip", "> 0 or None"),
                 (self.loss in LOSSES, "loss", f"one of {LOSSES}"),
                 (self.template is None or self.template in TEMPLATES, "template", f"None or one of {TEMPLATES}")],
                self)

    @property
    def learning_rate(self) -> float:
        """``lr``, or the optimiser's default when it is None."""
        return self.lr if self.lr is not None else DEFAULT_LR[self.optimizer]


DEFAULT_LR = {"adamw": 1e-3, "adafactor": 0.3}

# RLPrompt's 5-prompt-tune/run.sh (LM-BFF template syntax; `*soft*` is where the 20 vectors go),
# masked task LMs: dataset -> template. LM-BFF joins the parts without spaces (`_` is a space):
# `*cls**sent_0**soft**mask*.*sep+*` is "{input}{prompt}{mask}." (the period its own token, no
# space before it); `*cls**mask**soft**sent_0**sep+*` is "{mask}{prompt}{input}" and
# `*cls**soft**mask**sent_0**sep+*` "{prompt}{mask}{input}". Label words are the datasets' own
# (AG News and Yahoo without a leading space: the script's --skip_u0120).
_AFTER_INPUT, _AFTER_MASK, _FIRST = "{input}{prompt}{mask}.", "{mask}{prompt}{input}", "{prompt}{mask}{input}"
RLPROMPT_TEMPLATES: dict[str, str] = {
    "sst-2": _AFTER_INPUT, "mr": _AFTER_INPUT, "cr": _AFTER_INPUT, "yelp-2": _AFTER_INPUT,  # run.sh:6,14,22,30
    "sst-5": _AFTER_INPUT, "yelp-5": _AFTER_INPUT, "subj": _AFTER_INPUT,  # run.sh:38,46,88
    "agnews": _AFTER_MASK, "trec": _AFTER_MASK,  # run.sh:54,80
    "yahoo": _FIRST, "dbpedia": _FIRST,  # run.sh:63,72
}

# Classification only: the white box scores a soft prompt (VerbalizerLoss.metrics); inversion's has
# no metrics of a prompt that is not text. `soft-prompt`: the budget matches PEZ's classification
# preset (3,000 gradient steps of 16 examples, dev every 20 steps), 5 vectors like every other
# method's 5 tokens. Lester et al. train 30,000 steps of 32 examples on full SuperGLUE sets; 16-shot
# sets have 32 (2 classes) to 224 (DBpedia) training examples, so 3,000 steps are 200-1,500 epochs
# and the dev set picks the step. AdamW lr 1e-3 rather than Adafactor 0.3: 0.3 is a step the size
# of T5's embeddings, far larger than a SmolLM2 embedding coordinate (std 0.14; the ``lr`` field's
# docstring has the SmolLM2 SST-2 measurements).
#
# `soft-prompt-rlprompt`: RLPrompt's 5-prompt-tune/train.py as its run.sh runs it. 20 vectors
# (n_prefix, train.py:31), AdamW lr 1e-2 (train.py:113; utils/model_util.py: eps 1e-8, weight decay
# 0) with a linear schedule without warm-up over num_training_steps = epochs = 100
# (train.py:109,122-127) stepped once per batch (train.py:150-151), gradient norm clipped at 1.0
# (train.py:112,147), batches of 16 in file order (train.py:119, shuffle=False), the MLM loss of the
# label word at the mask over the whole vocabulary (train.py:134-143), the initial vectors the
# embeddings of 20 distinct ids among the first 5,000 (train.py:69-71), dev every 100 updates
# (train.py:110,153). It runs 100 epochs (train.py:109,130): 200 (SST-2) to 1,400 (DBpedia)
# updates; the learning rate is 0 from update 101, so every later update leaves the vectors as they
# are and every later dev score equals update 100's, which the script keeps (it saves only on a
# strictly lower dev loss or higher dev accuracy, train.py:181). 100 steps with one dev evaluation at
# step 100 are the same training and the same kept vectors.
PRESETS: dict[str, Preset] = register_presets(
    Preset("soft-prompt", "soft_prompt", "Soft prompt tuning (Lester et al. 2021) at PEZ's classification budget: 5 "
                                         "continuous vectors, AdamW lr 1e-3 (constant), batches of 16, 3,000 steps, "
                                         "dev every 20 (our setting, not RLPrompt's script: see soft-prompt-rlprompt)",
           {"method.optimizer": "adamw", "method.lr": 1e-3, "method.weight_decay": 0.0, "method.init": "vocab",
            "method.grad_clip": None},
           {"classification": {"method.prompt_length": 5, "method.batch_size": 16, "run.steps": 3000,
                               "run.eval_every": 20}}, order=40),
    Preset("soft-prompt-rlprompt", "soft_prompt",
           "Soft prompt tuning as RLPrompt's baseline script (5-prompt-tune/train.py) runs it: 20 vectors from the "
           "first 5,000 ids, AdamW lr 1e-2 decayed linearly to 0 over 100 updates, clip 1.0, batches of 16 in file "
           "order, the whole-vocabulary MLM loss, its per-dataset templates (masked task LMs); 100 updates and one "
           "dev check at 100 (its later updates have lr 0). Not reproduced: its split-seed-as-training-seed and "
           "exact random draws",
           {"method.optimizer": "adamw", "method.lr": 1e-2, "method.lr_schedule": "linear",
            "method.lr_decay_steps": 100, "method.weight_decay": 0.0, "method.init": "head", "method.init_head": 5000,
            "method.grad_clip": 1.0, "method.batch_order": "sequential", "method.loss": "vocab",
            "method.template": "rlprompt", "run.selection": "metric"},
           {"classification": {"method.prompt_length": 20, "method.batch_size": 16, "run.steps": 100,
                               "run.eval_every": 100}}, order=41),
)
