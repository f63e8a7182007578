"""GrIPS (Prasad et al., EACL 2023; the authors' ``run_search.py``): gradient-free, edit-based search
over an instruction.

Each iteration:
  1. make m candidates from the current instruction, each by composing l random edits of its
     phrases: delete a phrase, swap two phrases, add back a phrase deleted earlier, or (with a
     paraphrase model) replace a phrase by a paraphrase;
  2. score them on the training split (GrIPS's score set; here the task's reward, for
     classification the mean gap reward, where GrIPS uses balanced accuracy + label entropy; or,
     ``score`` metric, the task's selection metric, for classification the training accuracy, as
     RLPrompt's copy of GrIPS);
  3. keep the best candidate if it strictly beats the current instruction's score; its deleted
     phrases join the pool that "add" draws from, its added ones leave it (as GrIPS's
     ``delete_tracker``). Else one more iteration without improvement; after ``patience`` in a row
     the search stops (``exhausted``: the run ends before ``run.steps``, its last row ``stopped``).
The prompt is evaluated on the selection split every ``run.eval_every`` iterations and the best
kept; with ``select_final`` only the prompt the search ends with is evaluated, and is the result
(RLPrompt's search.py tests its final instruction and has no dev set).

Where we substitute:
  * phrases: GrIPS splits an instruction with a CRF constituency parser (supar ``crf-con-en``) into
    disjoint constituents. We have no parser: ``split_phrases`` cuts at punctuation and starts a
    new chunk at a function word (preposition, conjunction, determiner, ...) that follows a content
    word, which gives roughly the same NP/PP-sized pieces ("Classify | the sentiment | of the review
    | as positive | or negative."). ``level: word`` edits single words (GrIPS's ``--level word``).
  * the prompt is kept as its list of phrases and edited as a list (GrIPS edits the string with
    ``str.replace``, which touches every occurrence of a repeated phrase, and re-parses the text
    each iteration); the text is the phrases joined by spaces.
  * GrIPS may delete the last phrase (an empty instruction) and swaps a phrase with itself when there
    is one; we offer delete and swap only with two phrases or more.
  * GrIPS's optional simulated annealing (``--simulated-anneal``, off by default) is not implemented.
"""

from __future__ import annotations

import os
import random
import re
from dataclasses import dataclass
from typing import Callable

from ...errors import ConfigError
from ...models import _hub_unreachable_reason
from ...registry import METHODS
from ..base import Method
from .config import GrIPSConfig

# Words that open a constituent (PP, NP, SBAR, coordination): our stand-in for the parser's brackets.
FUNCTION_WORDS = frozenset("""
a an the this that these those each every any some all no its it their his her your our my
of in on at by for with from into onto over under about as than to through between after before
during without within against among per via like
and or but nor so yet either neither both whether if because while although though when where
which who whom whose what how
is are was were be been being do does did has have had can could will would should shall may might must
not
""".split())

_PUNCTUATION_END = re.compile(r"[,.;:!?]$")


def split_phrases(text: str, level: str = "phrase") -> list[str]:
    """An instruction's editable units: word-level (whitespace words, punctuation attached) or
    phrase-level chunks (see the module docstring: a stand-in for GrIPS's constituency parser)."""
    words = text.split()
    if level == "word":
        return words
    phrases: list[list[str]] = []
    has_content = False  # whether the open chunk holds a content word (so a function word may close it)
    for word in words:
        bare = word.strip(".,;:!?\"'()[]").lower()
        opens = bare in FUNCTION_WORDS and has_content
        after_punctuation = bool(phrases) and bool(_PUNCTUATION_END.search(phrases[-1][-1]))
        if not phrases or opens or after_punctuation:
            phrases.append([word])
            has_content = False
        else:
            phrases[-1].append(word)
        has_content = has_content or bare not in FUNCTION_WORDS
    return [" ".join(p) for p in phrases]


def join_phrases(phrases: list[str]) -> str:
    return " ".join(phrases)


# -- the edit operations: each returns a new list and leaves its input alone ----------------------

def delete_phrase(phrases: list[str], i: int) -> list[str]:
    """Phrase ``i`` removed."""
    return phrases[:i] + phrases[i + 1:]


def swap_phrases(phrases: list[str], i: int, j: int) -> list[str]:
    """Phrases ``i`` and ``j`` exchanged."""
    out = list(phrases)
    out[i], out[j] = out[j], out[i]
    return out


def add_phrase(phrases: list[str], phrase: str, position: int) -> list[str]:
    """``phrase`` inserted before position ``position`` (0: first; len(phrases): last). GrIPS puts it
    after a random phrase or at the start: the same len(phrases) + 1 places."""
    return phrases[:position] + [phrase] + phrases[position:]


def substitute_phrase(phrases: list[str], i: int, replacement: str) -> list[str]:
    """Phrase ``i`` replaced by ``replacement`` (a paraphrase)."""
    return phrases[:i] + [replacement] + phrases[i + 1:]


@dataclass(frozen=True)
class Edit:
    """One applied edit operation, for the history (GrIPS's ``operations_tracker``)."""

    op: str  # delete, swap, add, paraphrase
    phrase: str
    other: str | None = None  # swap: the other phrase; paraphrase: the replacement

    def __str__(self) -> str:
        if self.op == "swap":
            return f"swap {self.phrase!r} <-> {self.other!r}"
        if self.op == "paraphrase":
            return f"paraphrase {self.phrase!r} -> {self.other!r}"
        return f"{self.op} {self.phrase!r}"


def available_ops(phrases: list[str], pool: list[str], paraphrase: bool) -> list[str]:
    """The edits that can change ``phrases`` now (GrIPS offers ``add`` only once the pool has a phrase)."""
    ops = ["delete", "swap"] if len(phrases) >= 2 else []
    if pool:
        ops.append("add")
    if paraphrase and phrases:
        ops.append("paraphrase")
    return ops


def random_edit(phrases: list[str], pool: list[str], rng: random.Random,
                paraphrase: Callable[[str, random.Random], str] | None = None) -> tuple[list[str], Edit] | None:
    """One edit drawn uniformly among ``available_ops`` with uniform positions (GrIPS's
    ``perform_edit``); None when no edit is possible. An added phrase is taken out of ``pool``."""
    ops = available_ops(phrases, pool, paraphrase is not None)
    if not ops:
        return None
    op = rng.choice(ops)
    if op == "delete":
        i = rng.randrange(len(phrases))
        return delete_phrase(phrases, i), Edit("delete", phrases[i])
    if op == "swap":
        i, j = rng.sample(range(len(phrases)), 2)
        return swap_phrases(phrases, i, j), Edit("swap", phrases[i], phrases[j])
    if op == "add":
        phrase = pool.pop(rng.randrange(len(pool)))
        return add_phrase(phrases, phrase, rng.randrange(len(phrases) + 1)), Edit("add", phrase)
    i = rng.randrange(len(phrases))
    replacement = paraphrase(phrases[i], rng)
    return substitute_phrase(phrases, i, replacement), Edit("paraphrase", phrases[i], replacement)


def make_candidate(phrases: list[str], pool: list[str], num_edits: int, rng: random.Random,
                   paraphrase: Callable[[str, random.Random], str] | None = None) -> tuple[list[str], list[Edit]]:
    """A candidate: ``num_edits`` random edits composed (GrIPS's ``--num-compose``). Phrases deleted
    within the candidate do not join the pool before it is accepted (as in GrIPS), and a pooled
    phrase is added at most once per candidate."""
    pool = list(pool)
    edits: list[Edit] = []
    for _ in range(num_edits):
        edited = random_edit(phrases, pool, rng, paraphrase)
        if edited is None:
            break
        phrases, edit = edited
        edits.append(edit)
    return phrases, edits


class Paraphraser:
    """GrIPS's paraphrase edit: a seq2seq model's beam search returns 10 paraphrases of a phrase and
    one is drawn at random (GrIPS: tuner007/pegasus_paraphrase, 10 beams, 10 returned, max length 60,
    trailing periods stripped)."""

    def __init__(self, name: str, device: str = "cpu", num_beams: int = 10, max_length: int = 60):
        where = f"method 'grips': paraphrase_model {name!r} could not be loaded as a seq2seq model"
        # pinbench's check for models.load_model: offline, the hub's retries would take half a minute
        unreachable = None if os.path.isdir(os.path.expanduser(name)) else _hub_unreachable_reason(name)
        if unreachable:
            raise ConfigError(f"{where}: {unreachable}")
        try:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            # the model first: its error says what is missing (config.json, weights, a seq2seq class)
            self.model = AutoModelForSeq2SeqLM.from_pretrained(name).to(device).eval()
            self.tokenizer = AutoTokenizer.from_pretrained(name)
        except Exception as exc:  # unknown name, offline, not a seq2seq model: one line for the user
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"{where} (transformers AutoModelForSeq2SeqLM): {reason}") from None
        self.device, self.num_beams, self.max_length = device, num_beams, max_length

    def __call__(self, phrase: str, rng: random.Random) -> str:
        import torch

        batch = self.tokenizer([phrase], truncation=True, max_length=self.max_length, return_tensors="pt")
        with torch.no_grad():
            out = self.model.generate(**batch.to(self.device), max_length=self.max_length, num_beams=self.num_beams,
                                      num_return_sequences=self.num_beams, do_sample=False)
        texts = [t.strip().strip(".") for t in self.tokenizer.batch_decode(out, skip_special_tokens=True)]
        texts = [t for t in texts if t] or [phrase]  # an empty paraphrase would be a deletion
        return rng.choice(texts)


@METHODS.register("grips")
class GrIPS(Method):
    """Greedy edit search over an instruction's phrases, scored on the training split.

    Args:
        spec: the run (``spec.method_config`` is a ``GrIPSConfig``).
        task: the task; built from the spec if None.
    """

    config_class = GrIPSConfig

    def __init__(self, spec, task=None):
        super().__init__(spec, task)
        cfg = self.config
        self.phrases = split_phrases(self.initial_prompt(), cfg.level)
        self.pool: list[str] = []  # phrases deleted by accepted edits: what "add" puts back
        self.current_score: float | None = None  # the current prompt's training reward (scored once)
        self.failures = 0  # iterations in a row without a better candidate
        self.stopped = False
        self.rng = random.Random(self.run.seed)  # every random choice of the search
        self.paraphrase = Paraphraser(cfg.paraphrase_model, self.run.device) if cfg.paraphrase_model else None

    def initial_prompt(self) -> str:
        if self.config.initial_prompt is not None:
            return self.config.initial_prompt
        for kind in ("instruction", "manual"):
            prompts = [p for p in self.task.reference_prompts(kind) if p.split()]
            if prompts:
                return prompts[0]
        raise ConfigError(f"method 'grips' needs an instruction to edit: task '{self.task.name}' has no "
                          f"reference instruction or non-empty manual prompt; set method.initial_prompt")

    @property
    def prompt(self) -> str:
        return join_phrases(self.phrases)

    @property
    def score_name(self) -> str:
        """The training score's name in the history: reward, or the task's selection metric."""
        return "reward" if self.config.score == "reward" else self.task.selection_metric

    def _reward(self, prompts: list[str]) -> list[float]:
        """The training-split score of each prompt, higher is better (``score``: the task's reward,
        or its selection metric, negated when lower is better)."""
        rows = self.book.score(prompts, "train")
        if self.config.score == "reward":
            return [row["reward"] for row in rows]
        sign = 1.0 if self.task.metric(self.task.selection_metric).higher_is_better else -1.0
        return [sign * row[self.task.selection_metric] for row in rows]

    def iterate(self) -> dict:
        """One GrIPS iteration. History row: ``train_reward`` (the current prompt's, after the
        iteration), ``candidates`` (made this iteration), ``new_prompts`` (scored for the first
        time), ``reward_mean`` / ``reward_max`` (the candidates' training rewards), ``improved``
        (with ``score`` metric: ``train_<metric>``, ``<metric>_mean``, ``<metric>_max``, e.g.
        ``train_accuracy``; negated when lower is better),
        ``edits`` (the best candidate's edit operations, accepted or not), ``stopped`` (out of
        patience) and ``phrases`` (the current prompt's phrase count)."""
        budget, score = self.result.budget, self.score_name
        scored_before = budget.get("scored_train", 0)
        if self.current_score is None:  # GrIPS's base score, before the first edit
            self.current_score = self._reward([self.prompt])[0]
        if self.stopped:  # out of patience: nothing more is scored
            return {f"train_{score}": self.current_score, "candidates": 0, "new_prompts": 0, "improved": False,
                    "edits": "", "stopped": True, "phrases": len(self.phrases)}
        made = [make_candidate(self.phrases, self.pool, self.config.num_edits, self.rng, self.paraphrase)
                for _ in range(self.config.num_candidates)]
        made = [(phrases, edits) for phrases, edits in made if edits]  # no edit possible: no candidate
        rewards = self._reward([join_phrases(phrases) for phrases, _ in made]) if made else []
        improved = False
        edits = ""
        if made:
            best = max(range(len(made)), key=lambda k: (rewards[k], -k))  # the first of equal bests, as np.argmax
            phrases, best_edits = made[best]
            edits = "; ".join(str(e) for e in best_edits)
            improved = rewards[best] > self.current_score
            if improved:
                self.phrases, self.current_score = phrases, rewards[best]
                for edit in best_edits:  # GrIPS's delete_tracker: deleted phrases in, added ones out
                    if edit.op == "delete":
                        self.pool.append(edit.phrase)
                    elif edit.op == "add" and edit.phrase in self.pool:
                        self.pool.remove(edit.phrase)
        self.failures = 0 if improved else self.failures + 1
        self.stopped = self.config.patience is not None and self.failures >= self.config.patience
        row = {f"train_{score}": self.current_score, "candidates": len(made),
               "new_prompts": budget.get("scored_train", 0) - scored_before, "improved": improved,
               "edits": edits, "stopped": self.stopped, "phrases": len(self.phrases)}
        if made:
            row |= {f"{score}_mean": sum(rewards) / len(rewards), f"{score}_max": max(rewards)}
        return row

    def exhausted(self) -> bool:
        """Out of patience: GrIPS ends its search (``break``), so the run ends before run.steps
        (an iteration after that, stepped by hand, scores nothing)."""
        return self.stopped

    def evaluation_due(self) -> bool:
        if self.config.select_final:  # only the prompt the search ends with
            return self.stopped or self.step_count >= self.run.steps
        # the prompt the search stops at is evaluated even between two eval_every steps
        return super().evaluation_due() or self.stopped

    def current_prompt(self) -> tuple[str, None]:
        return self.prompt, None

    def evaluation_extras(self, prompt: str) -> dict:
        return {f"train_{self.score_name}": self.current_score} if self.current_score is not None else {}

    def state_dict(self, compact: bool = False) -> dict:
        version, internal, gauss = self.rng.getstate()
        return {**super().state_dict(compact), "phrases": list(self.phrases), "pool": list(self.pool),
                "current_score": self.current_score, "failures": self.failures, "stopped": self.stopped,
                "rng": [version, list(internal), gauss]}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.phrases, self.pool = list(state["phrases"]), list(state["pool"])
        self.current_score, self.failures, self.stopped = state["current_score"], state["failures"], state["stopped"]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
