"""AutoPrompt (Shin et al. 2020, arXiv 2010.15980; the authors' ``autoprompt/create_trigger.py``):
gradient-guided search over a hard prompt's tokens.

Each iteration, on one batch of training examples:
  1. the gradient g of the batch loss with respect to the current prompt's embeddings E[z] [L, d]
     (``loss``: the verbalizer cross-entropy, or -log p(label word) over the whole vocabulary);
  2. a position j drawn uniformly (the code's ``token_to_flip = random.randrange(...)``: one
     position per iteration, "so the gradients don't get stale");
  3. the k allowed tokens w with the largest -(E_w . g_j), the first-order estimate of how much
     the loss falls when token j becomes w (the paper's Eq. 2, with the loss for -log p; the
     code's ``hotflip_attack``);
  4. the loss (``candidate_metric`` accuracy: the number of examples classified right) of the
     current prompt and of each candidate (position j replaced), without gradients, on the same batch
     (``fresh_candidate_batch``: on a new draw); the best candidate replaces token j only if it is
     strictly better.
The current prompt is evaluated every ``run.eval_every`` iterations (``eval_on_replace``: only after
an iteration that replaced a token); the best by the task's selection rule (dev accuracy for
classification) is the result, as the code keeps the trigger with the best dev metric. Evaluated
prompts are scored as text by the task, or (``score_by`` ids) as their token ids by the white box,
as the code scores its trigger ids (a mask token in the trigger is then an ordinary input token).

The ``autoprompt-rlprompt`` preset sets the fields that make the search RLPrompt's baseline script
(``examples/few-shot-classification/baseline/6-autoprompt`` on branch ``cls_baseline``).

Where the ``autoprompt`` preset differs from the code: the prompt starts from a word ("the")
instead of [MASK] (``init_token``, ``init_mask``); candidates leave out special tokens and tokens
with no text, not the verbalizer's words or capitalised words (the code's --filter), so AutoPrompt
searches the same vocabulary as the other methods (``allow_special``); the loss is the task's (for
classification the verbalizer cross-entropy over the classes, where the code's is -log p(label
word) over the whole vocabulary: ``loss``); and candidates are compared by that loss, where the
code, given a label map (its sentiment runs), compares training accuracy (``candidate_metric``):
on a 32-example split accuracy ties often and stops the search.
"""

from __future__ import annotations

import torch

from ...errors import ConfigError
from ...registry import METHODS
from ..base import Method
from ..soft_prompt.method import script_template, vocabulary_loss, white_box_in_template
from ..white_box import allowed_ids, require_white_box
from .config import RLPROMPT_TEMPLATES, AutoPromptConfig


def first_order_scores(embeddings: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """-(E_w . g) for each row w of ``embeddings`` [A, d], given ``grad`` [d], the loss's gradient
    at one prompt position: the first-order estimate of the loss's fall when that position becomes
    token w, less a constant (E_current . g) that does not change the ranking."""
    return -(embeddings.float() @ grad.float())


@METHODS.register("autoprompt")
class AutoPrompt(Method):
    """AutoPrompt's gradient-guided token search over a task's white-box path.

    Args:
        spec: the run (``spec.method_config`` is an ``AutoPromptConfig``).
        task: the task; built from the spec if None. It must have ``differentiable()``.
    """

    config_class = AutoPromptConfig
    evaluation_source = "trigger"  # AutoPrompt's name for the prompt tokens

    def __init__(self, spec, task=None):
        super().__init__(spec, task)
        cfg = self.config
        white_box = require_white_box("autoprompt", self.task)
        self.template: str | None = None  # the script's template, where method.template replaced the task's
        if cfg.template == "rlprompt":
            entry = script_template("autoprompt", self.task, RLPROMPT_TEMPLATES)
            if entry is not None:
                white_box = white_box_in_template("autoprompt", self.task, **entry)
                self.template = entry["template"]
        if cfg.candidate_metric == "accuracy" and not callable(getattr(white_box, "probabilities", None)):
            raise ConfigError(f"method 'autoprompt': candidate_metric 'accuracy' counts the examples a classification "
                              f"task's verbalizers get right, and the white-box path of task '{self.task.name}' has "
                              f"no class probabilities; use candidate_metric 'loss'")
        if (cfg.loss == "vocab" or cfg.candidate_metric == "accuracy") and getattr(white_box, "train", None) is None:
            raise ConfigError(f"method 'autoprompt': loss 'vocab' and candidate_metric 'accuracy' score a "
                              f"classification task's training examples, and task '{self.task.name}' has none")
        if cfg.score_by == "ids" and not callable(getattr(white_box, "metrics", None)):
            raise ConfigError(f"method 'autoprompt': score_by 'ids' scores triggers by the white-box path's "
                              f"metrics, and the white-box path of task '{self.task.name}' has none")
        self.white_box = white_box
        self.result.prompt_tokenizer = white_box.model_name  # the task model's tokenizer made the ids
        vocabulary = white_box.vocabulary.detach()
        if cfg.allow_special:  # the code without --filter: every row of the embedding matrix
            self.allowed = torch.arange(vocabulary.shape[0], device=vocabulary.device)
        else:
            # Candidates: every row but special tokens (a mask token in the prompt would be scored) and
            # rows with no text (past the tokenizer's vocabulary, a lone space the template already has).
            self.allowed = torch.tensor([i for i in allowed_ids(white_box).tolist() if white_box.decode([i]) != ""],
                                        device=vocabulary.device)
        self.generator = torch.Generator().manual_seed(self.run.seed)
        self.ids = self.initial_ids()
        self.replaced = False  # whether the last iteration replaced a token (eval_on_replace)
        # score_by ids: (split, trigger ids) -> metrics, each scored once
        self.id_scores: dict[tuple[str, tuple[int, ...]], dict[str, float]] = {}

    def initial_ids(self) -> list[int]:
        """L copies of ``init_token``'s one token, L mask tokens (``init_mask``), or (None) L allowed
        tokens drawn uniformly."""
        cfg, white_box = self.config, self.white_box
        if cfg.init_mask:  # the code: [tokenizer.mask_token_id] * num_trigger_tokens
            mask = getattr(getattr(white_box, "scorer", None), "tok", None)
            mask = None if mask is None else mask.mask_token_id
            if mask is None:
                raise ConfigError(f"method 'autoprompt': init_mask starts the trigger as the task LM's mask token, "
                                  f"and '{white_box.model_name}' has none (a causal LM); use a masked task LM "
                                  f"(the authors' roberta-large) or --init-mask false --init-token the")
            return [mask] * cfg.prompt_length
        if cfg.init_token is None:
            picks = torch.randint(len(self.allowed), (cfg.prompt_length,), generator=self.generator)
            return self.allowed[picks.to(self.allowed.device)].tolist()
        ids = white_box.encode(cfg.init_token)
        if len(ids) != 1 or ids[0] not in set(self.allowed.tolist()):
            raise ConfigError(f"method 'autoprompt': init_token {cfg.init_token!r} is {ids} in the tokenizer of "
                              f"'{white_box.model_name}' as the task's template places a prompt; it must be one "
                              f"token that is not special")
        return ids * cfg.prompt_length

    def embed(self, ids: list[int]) -> torch.Tensor:
        """The prompt's embeddings [L, d] (float32), as the task's loss takes them."""
        vocabulary = self.white_box.vocabulary
        return vocabulary[torch.tensor(ids, device=vocabulary.device)].detach().float()

    def candidates(self, grad: torch.Tensor) -> torch.Tensor:
        """The ``num_candidates`` allowed token ids with the best first-order scores for a position
        whose gradient is ``grad`` [d], best first."""
        scores = first_order_scores(self.white_box.vocabulary.detach()[self.allowed], grad)
        k = min(self.config.num_candidates, len(self.allowed))
        return self.allowed[scores.topk(k).indices]

    def loss(self, embeds: torch.Tensor, batch) -> torch.Tensor:
        """The loss of ``loss`` (verbalizer or vocab) of prompt embeddings on ``batch``."""
        if self.config.loss == "vocab":
            return vocabulary_loss(self.white_box, embeds, batch)
        return self.white_box.loss(embeds, batch)

    @torch.no_grad()
    def losses(self, prompts: list[list[int]], batch) -> torch.Tensor:
        """The loss [P] of each prompt (token ids) on ``batch``, without gradients."""
        return torch.stack([self.loss(self.embed(ids), batch).float() for ids in prompts])

    @torch.no_grad()
    def correct(self, prompts: list[list[int]], batch) -> torch.Tensor:
        """How many examples of ``batch`` each prompt (token ids) classifies right [P] (the code's
        ``AccuracyFn`` summed over the batch: the label word's score above every other class's)."""
        texts = [self.white_box.train.texts[i] for i in batch]
        labels = torch.tensor([self.white_box.train.labels[i] for i in batch])
        return torch.stack([(self.white_box.probabilities(self.embed(ids), texts).argmax(-1).cpu() == labels).sum()
                            for ids in prompts]).float()

    def iterate(self) -> dict:
        cfg, white_box = self.config, self.white_box
        batch = white_box.batch(cfg.batch_size, self.generator)

        # 1. the gradient of the batch loss at the current prompt's embeddings (a leaf)
        embeds = self.embed(self.ids).clone().requires_grad_(True)
        loss = self.loss(embeds, batch)
        (grad,) = torch.autograd.grad(loss, embeds)
        self.book.count_gradient(len(batch))

        # 2-3. one position at random, and its top-k candidates by -(E_w . g_j)
        position = int(torch.randint(cfg.prompt_length, (1,), generator=self.generator))
        candidates = self.candidates(grad[position]).tolist()

        # 4. the current prompt and each candidate on the same batch (or, as the code, on a new
        # draw); the code compares them in one evaluation pass, so both sides are computed alike
        # (no-grad kernels)
        scored = white_box.batch(cfg.batch_size, self.generator) if cfg.fresh_candidate_batch else batch
        prompts = [self.ids] + [self.ids[:position] + [w] + self.ids[position + 1:] for w in candidates]
        if cfg.candidate_metric == "accuracy":
            scores = self.correct(prompts, scored)  # higher is better
        else:
            scores = -self.losses(prompts, scored)
        self.book.count("train", prompts=len(prompts), examples=len(prompts) * len(scored))
        best = int(scores[1:].argmax()) + 1  # the first of equal bests, as torch's argmax in the code
        replaced = bool(scores[best] > scores[0])  # strictly better, as the code's `>`
        if replaced:
            self.ids = prompts[best]
        self.replaced = replaced
        kept = float(scores[best] if replaced else scores[0])
        row = {"position": position, "replaced": replaced}
        if cfg.candidate_metric == "accuracy":
            return row | {"loss": float(loss.detach()), "train_accuracy": kept / len(scored)}
        return row | {"loss": -kept}

    def evaluation_due(self) -> bool:
        """Every ``run.eval_every`` (and at the last); with ``eval_on_replace`` only when this
        iteration replaced a token, or at the last when nothing has been evaluated yet."""
        if not super().evaluation_due():
            return False
        if not self.config.eval_on_replace:
            return True
        return self.replaced or (self.step_count >= self.run.steps and not self.result.best)

    def id_metrics(self, ids: list[int], split: str) -> dict[str, float]:
        """The task's metrics of the trigger ``ids`` on ``split``, by the white box from its token
        ids (``score_by`` ids), scored once per (split, ids) and counted."""
        key = (split, tuple(ids))
        if key not in self.id_scores:
            self.book.count(split, 1)
            self.id_scores[key] = self.white_box.metrics(self.embed(list(ids)), self.task.split(split))
        return self.id_scores[key]

    def evaluate(self) -> dict:
        if self.config.score_by == "text":
            return super().evaluate()
        prompt, ids = self.current_prompt()
        metrics = self.id_metrics(ids, self.task.selection_split)
        source = self.evaluation_source
        return self.book.consider(prompt, self.step_count, source, ids, metrics=metrics,
                                  **self.evaluation_extras(prompt)) | {f"{source}_prompt": prompt}

    def report_scorer(self):
        """score_by ids: the kept trigger's token ids scored on the report split by the white box."""
        if self.config.score_by == "text":
            return None
        return lambda best, split: self.id_metrics(best["token_ids"], split)

    def current_prompt(self) -> tuple[str, list[int]]:
        return self.white_box.decode(self.ids), list(self.ids)

    def evaluation_extras(self, prompt: str) -> dict:
        extra = {"template": self.template} if self.template is not None else {}
        return {"round_trip": self.white_box.encode(prompt) == list(self.ids), **extra}

    def state_dict(self, compact: bool = False) -> dict:
        return {**super().state_dict(compact), "generator": self.generator.get_state(), "ids": list(self.ids),
                "replaced": self.replaced, "id_scores": dict(self.id_scores)}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.generator.set_state(state["generator"])
        self.ids = list(state["ids"])
        self.replaced = state.get("replaced", False)
        self.id_scores = dict(state.get("id_scores", {}))
