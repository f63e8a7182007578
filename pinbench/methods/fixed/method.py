"""Fixed prompts: score each candidate on the selection split and keep the best; nothing is
trained. Candidates are the user's (``method.prompts``) or the task's reference prompts
(``Task.reference_prompts``: the papers' manual prompt or task instruction).

With ``query_demonstrations`` (RLPrompt's in-context script, LM-BFF's dataset) every scored input
gets demonstrations of its own: for each input, in file order, a seed drawn from a generator seeded
by ``run.seed`` and the split picks ``query_demonstrations`` training examples per class, rendered
into the template exactly as ``task.demonstrations`` renders its one set
(``tasks.classification.task.with_demonstrations``), and the input is scored in that template. The
method then scores its prompts itself (the task's scorer has one template for all inputs) and
computes the task's metrics from the verbalizer probabilities with the task's reward functions.
"""

from __future__ import annotations

import zlib

import torch

from ...errors import ConfigError
from ...registry import METHODS
from ..base import Method
from .config import FixedPromptsConfig

MAX_LENGTH = 512
"""Tokens an input with its demonstrations is cut to (LM-BFF's max_seq_length in RLPrompt's script),
fewer when the task LM attends over fewer positions."""


def truncate(ids: list[int], position: int, limit: int) -> tuple[list[int], int]:
    """``ids`` cut to ``limit`` tokens as LM-BFF's ``tokenize_multipart_input`` cuts them: the tail
    when the scored position stays inside, else the head so that it is the last token kept."""
    if len(ids) <= limit:
        return ids, position
    if position < limit:
        return ids[:limit], position
    start = position - limit + 1
    return ids[start:start + limit], position - start


@METHODS.register("fixed")
class FixedPrompts(Method):
    """Evaluates a fixed list of prompts, one per iteration (the manual, instruction and in-context
    baselines)."""

    config_class = FixedPromptsConfig
    evaluation_source = "fixed"

    def __init__(self, spec, task=None):
        super().__init__(spec, task)
        cfg = self.config
        if cfg.prompts is not None:
            self.candidates = [p.strip() for p in cfg.prompts]
        else:
            self.candidates = self.task.reference_prompts(cfg.source)
            if not self.candidates:
                raise ConfigError(f"method 'fixed': task '{self.task.name}' ({self.task.dataset_name(spec.task_config)}) "
                                  f"has no {cfg.source} prompt; give method.prompts")
        self.demo_scores: dict[tuple[str, str], dict[str, float]] = {}  # (split, prompt) -> metrics
        if cfg.query_demonstrations:
            if not all(hasattr(self.task, name) for name in ("spec", "task_lm", "exact_scorer")):
                raise ConfigError(f"method 'fixed': query_demonstrations draws training examples of a classification "
                                  f"task, and task '{self.task.name}' is not one; set it to 0")
            if getattr(spec.task_config, "demonstrations", 0):
                raise ConfigError("method 'fixed': query_demonstrations and task.demonstrations both add "
                                  "demonstrations to the template; set task.demonstrations to 0")

    def exhausted(self) -> bool:
        return self.step_count >= len(self.candidates)

    def evaluation_due(self) -> bool:
        return True  # each iteration is one candidate, scored by its evaluation

    def iterate(self) -> dict:
        return {"candidate": self.step_count}

    def current_prompt(self) -> tuple[str, None]:
        return self.candidates[min(self.step_count, len(self.candidates)) - 1], None

    # -- demonstrations drawn per query -------------------------------------------------------

    def demo_seed(self, split: str) -> int:
        """The seed of ``split``'s per-query draws: the run's seed and the split's name."""
        return (self.run.seed * 1_000_003 + zlib.crc32(split.encode())) % 2 ** 63

    def query_templates(self, split: str) -> list:
        """One dataset spec per input of ``split`` (in file order), its template holding that
        input's demonstrations."""
        from ...tasks.classification.task import with_demonstrations

        task, k = self.task, self.config.query_demonstrations
        train, n = task.split("train"), len(task.split(split))
        generator = torch.Generator().manual_seed(self.demo_seed(split))
        seeds = torch.randint(2 ** 62, (n,), generator=generator).tolist()
        return [with_demonstrations(task.spec, train, k, seed, task.task_lm) for seed in seeds]

    @torch.no_grad()
    def demo_probabilities(self, prompt: str, split: str) -> torch.Tensor:
        """Verbalizer probabilities [E, C] of ``prompt`` on ``split``, each input in its own
        demonstrations' template, in padded batches of at most the task's token budget."""
        from ...batching import PAD_MULTIPLE, length_batches, pad_right
        from ...models import context_length
        from ...tasks.classification.scoring import VerbalizerScorer

        task, lm = self.task, self.task.task_lm
        budget = task.exact_scorer.max_batch_tokens
        context = context_length(lm)
        limit = MAX_LENGTH if context is None else min(MAX_LENGTH, context - (2 if lm.kind == "masked" else 0))
        scorers: dict = {}  # one per distinct demonstration set (a 32-example split repeats them)
        rows = []
        for text, spec in zip(task.split(split).texts, self.query_templates(split)):
            if spec not in scorers:
                scorers[spec] = VerbalizerScorer(lm, spec, bf16=False, max_batch_tokens=budget)
            rows.append(truncate(*scorers[spec].full_ids(prompt, text), limit))
        scorer = next(iter(scorers.values()))  # the model, head and verbalizer ids are the same for all
        device = lm.device
        logits = torch.empty(len(rows), len(scorer.label_ids))
        for batch in length_batches([len(ids) for ids, _ in rows], budget, multiple=PAD_MULTIPLE):
            input_ids, mask = pad_right([rows[i][0] for i in batch], scorer.pad_id, PAD_MULTIPLE)
            hidden = scorer.body(input_ids=input_ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            at = torch.tensor([rows[i][1] for i in batch], device=device)
            h = hidden[torch.arange(len(batch), device=device), at]
            logits[batch] = scorer.head.logits(h, scorer.label_ids.to(device)).cpu()
        return logits.softmax(-1)

    def demo_metrics(self, prompt: str, split: str) -> dict[str, float]:
        """The task's metrics (reward, accuracy) of ``prompt`` on ``split`` with per-query
        demonstrations, by the task's reward functions; scored once per (split, prompt), counted."""
        from ...tasks.classification import rewards

        key = (split, prompt)
        if key not in self.demo_scores:
            self.book.count(split, 1)
            probs = self.demo_probabilities(prompt, split)
            labels = torch.tensor(self.task.split(split).labels)
            self.demo_scores[key] = {"reward": float(rewards.gap_reward(probs, labels)),
                                     "accuracy": float(rewards.accuracy(probs, labels))}
        return self.demo_scores[key]

    def evaluate(self) -> dict:
        if not self.config.query_demonstrations:
            return super().evaluate()
        prompt, ids = self.current_prompt()
        metrics = self.demo_metrics(prompt, self.task.selection_split)
        source = self.evaluation_source
        return self.book.consider(prompt, self.step_count, source, ids, metrics=metrics) | {f"{source}_prompt": prompt}

    def report_scorer(self):
        if not self.config.query_demonstrations:
            return None
        return lambda best, split: self.demo_metrics(best["prompt"], split)

    def state_dict(self, compact: bool = False) -> dict:
        return {**super().state_dict(compact), "demo_scores": dict(self.demo_scores)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.demo_scores = dict(state.get("demo_scores", {}))
