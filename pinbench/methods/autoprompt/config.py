"""AutoPrompt's configuration and its presets (Shin et al. 2020, arXiv 2010.15980; the authors'
``autoprompt/create_trigger.py``, and RLPrompt's copy of it on branch ``cls_baseline`` of
mingkaid/rl-prompt, ``examples/few-shot-classification/baseline/6-autoprompt/``)."""

from __future__ import annotations

from dataclasses import dataclass

from ...fields import require
from ...presets import Preset, register_presets

CANDIDATE_METRICS = ("loss", "accuracy")
SCORE_BY = ("text", "ids")
LOSSES = ("verbalizer", "vocab")
TEMPLATES = ("rlprompt",)


@dataclass
class AutoPromptConfig:
    """AutoPrompt's fields (``method.<field>``). Defaults are the ``autoprompt`` preset's
    classification values."""

    prompt_length: int = 5
    """L, trigger tokens (AutoPrompt's [T] slots; its sentiment example, the paper's Figure 1, has
    5, as the other methods here)."""
    num_candidates: int = 10
    """k, tokens with the best first-order score at the chosen position whose loss is computed each
    iteration (AutoPrompt's --num-cand: 10 in its README commands)."""
    batch_size: int | None = None
    """Training examples per iteration, drawn without replacement (seeded); None: all of them, which
    is what AutoPrompt's code does on a few-shot set (its --bsz 32 batches, accumulated, run out of a
    32-example training split)."""
    fresh_candidate_batch: bool = False
    """Score the candidates on a new draw of ``batch_size`` examples, not on the gradient's (the code
    starts its shuffled DataLoader again for the candidates, create_trigger.py:351); the same
    examples when the batch is the whole training split."""
    init_token: str | None = "the"
    """The prompt text of the one token every position starts as ("the": "the the the the the"),
    encoded as the task's template places a prompt; None: tokens drawn uniformly (seeded) from the
    allowed vocabulary (or the mask token, ``init_mask``). AutoPrompt's code starts from [MASK] x L,
    which a causal LM does not have and which text scoring would read as a second answer slot."""
    init_mask: bool = False
    """Start every position as the task LM's mask token, as the code does (masked task LMs only;
    needs ``score_by`` ids, which scores the trigger at the template's own mask, and ``init_token``
    None)."""
    candidate_metric: str = "loss"
    """What decides between the current trigger and its candidates on the batch: loss (the task's
    loss, lower is better) or accuracy (how many batch examples the verbalizer words classify
    right: the code's comparison when a label map is given, ``AccuracyFn``). A candidate replaces the
    token only when strictly better; among equal candidates the first by first-order score."""
    loss: str = "verbalizer"
    """The loss whose gradient ranks the candidates (and that compares them when
    ``candidate_metric`` is loss): verbalizer, the cross-entropy among the verbalizer words (the
    task's white-box loss); vocab, -log p(label word) over the whole vocabulary at the scored
    position (the code's ``get_loss``)."""
    score_by: str = "text"
    """How an evaluated trigger is scored on dev and test: text, its decoded text scored by the task
    like any other method's prompt; ids, its token ids scored as they are by the white box (the
    code's ``replace_trigger_tokens``: no re-tokenisation, special tokens allowed, the template's
    own mask scored)."""
    allow_special: bool = False
    """Let every row of the embedding matrix be a candidate, special tokens and tokens with no text
    included (the code without --filter); False leaves them out, as the other methods' vocabulary.
    Needs ``score_by`` ids (a special token's text would be read as that token)."""
    eval_on_replace: bool = False
    """Evaluate on the selection split only after an iteration that replaced a token (and at the
    last iteration when nothing has been evaluated, the code's fallback to its initial trigger):
    the code evaluates dev only then (create_trigger.py:406-415), so a trigger it never changed is
    not a candidate for the best. Combined with ``run.eval_every`` (both must hold)."""
    template: str | None = None
    """The template the trigger is searched and scored in: None, the task's (``task.template``);
    rlprompt, the one RLPrompt's AutoPrompt script gives the dataset (``RLPROMPT_TEMPLATES``: the
    topic datasets with the trigger first, before the mask and the input, and AG News' and Yahoo's
    label words with a leading space), for masked task LMs; a causal task LM, or a dataset whose
    script template is the task's own, keeps the task's. Needs ``score_by`` ids. Classification
    only."""

    def __post_init__(self):
        require([(self.prompt_length >= 1, "prompt_length", ">= 1"),
                 (self.num_candidates >= 1, "num_candidates", ">= 1"),
                 (self.batch_size is None or self.batch_size >= 1, "batch_size", ">= 1 or None"),
                 (self.init_token is None or self.init_token.strip() != "", "init_token",
                  "the text of one token, or None"),
                 (not self.init_mask or self.init_token is None, "init_mask", "False unless init_token is None"),
                 (not self.init_mask or self.score_by == "ids", "init_mask", "False unless score_by is 'ids'"),
                 (self.candidate_metric in CANDIDATE_METRICS, "candidate_metric", f"one of {CANDIDATE_METRICS}"),
                 (self.loss in LOSSES, "loss", f"one of {LOSSES}"),
                 (self.score_by in SCORE_BY, "score_by", f"one of {SCORE_BY}"),
                 (not self.allow_special or self.score_by == "ids", "allow_special",
                  "False unless score_by is 'ids'"),
                 (self.template is None or self.template in TEMPLATES, "template", f"None or one of {TEMPLATES}"),
                 (self.template is None or self.score_by == "ids", "template", "None unless score_by is 'ids'")],
                self)


# RLPrompt's 6-autoprompt/run.sh, masked task LMs: the datasets whose template differs from the
# task's own ("{input} {prompt} {mask} ."; the sentiment datasets and Subj run
# '<s> {sentence} [T] [T] [T] [T] [T] [P] . </s>', the same). The topic datasets run
# '<s> [T] [T] [T] [T] [T] [P] {text} . </s>': the trigger first, then the mask, then the input; the
# label map gives every word with RoBERTa's leading-space mark (Ġ), where pinbench's AG News and
# Yahoo words have none.
_TRIGGER_FIRST = "{prompt} {mask} {input} ."
RLPROMPT_TEMPLATES: dict[str, dict] = {
    "agnews": {"template": _TRIGGER_FIRST, "verbalizers": (" World", " Sports", " Business", " Tech")},  # :72-73
    "yahoo": {"template": _TRIGGER_FIRST,  # run.sh:83-84
              "verbalizers": (" culture", " science", " health", " education", " computer", " sports", " business",
                              " music", " family", " politics")},
    "dbpedia": {"template": _TRIGGER_FIRST},  # run.sh:94
    "trec": {"template": _TRIGGER_FIRST},  # run.sh:105
}

# `autoprompt`: AutoPrompt's search (10 candidates, one random position per iteration) on the
# whole training split per iteration, as its code does on a few-shot set. The budget matches PIN's
# in forward passes: each iteration runs the prompt through the training split 12 times (the
# gradient's forward and backward, the current prompt and 10 candidates), so 8,000 iterations are
# 96,000 prompt x training-split passes = PIN's 6,000 steps x 16 prompts (plus 8,000 backward
# passes). The dev set picks the prompt every 20 iterations, as for the RL methods.
#
# `autoprompt-rlprompt`: RLPrompt's 6-autoprompt/run.sh (every dataset: --num-cand 100,
# --accumulation-steps 1, --bsz 32, --eval-size 16, --iters 5, no --filter, no --initial-trigger)
# with its create_trigger.py: [MASK] x 5 to start (:232), one shuffled batch of 32 for the gradient
# and a new one for the candidates (:251,317-318,350-351), the vocabulary loss (:168-173,335),
# candidates from every embedding row (:269, filter all zeros), training accuracy to compare them
# (:239-240,360-406), dev evaluated only after a replacement and the best dev accuracy kept
# (:406-439). --eval-size is the dev batch size, which changes nothing.
PRESETS: dict[str, Preset] = register_presets(
    Preset("autoprompt", "autoprompt", "AutoPrompt (Shin et al. 2020) at PIN's budget: gradient-guided token search, "
                                       "10 candidates per iteration on the whole training split, the verbalizer loss; "
                                       "8,000 iterations = PIN's 96,000 forward passes (our setting, not RLPrompt's "
                                       "script: see autoprompt-rlprompt)",
           {"method.num_candidates": 10, "method.batch_size": None, "method.init_token": "the"},
           {"classification": {"method.prompt_length": 5, "run.steps": 8000, "run.eval_every": 20}}, order=60),
    Preset("autoprompt-rlprompt", "autoprompt",
           "AutoPrompt as RLPrompt's baseline script (6-autoprompt/run.sh, create_trigger.py) runs it: 5 [MASK] "
           "tokens to start, 5 iterations of 100 candidates from the whole vocabulary, batches of 32 (a new draw for "
           "the candidates), the vocabulary loss, compared by training accuracy, dev only after a replacement, its "
           "trigger-first templates for the topic datasets (masked task LMs). Not reproduced: its exact random "
           "draws, and its test number, which also counts the last dev evaluation's examples",
           {"method.num_candidates": 100, "method.batch_size": 32, "method.fresh_candidate_batch": True,
            "method.init_token": None, "method.init_mask": True, "method.candidate_metric": "accuracy",
            "method.loss": "vocab", "method.score_by": "ids", "method.allow_special": True,
            "method.eval_on_replace": True, "method.template": "rlprompt", "run.selection": "metric"},
           {"classification": {"method.prompt_length": 5, "run.steps": 5, "run.eval_every": 1}}, order=61),
)
