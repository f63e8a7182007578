"""Soft prompt tuning (Lester et al. 2021, arXiv 2104.08691): the prompt is L free vectors P [L, d] in
the task LM's input-embedding space, placed where the template's prompt goes, and trained with the
task's white-box loss (classification: the verbalizer cross-entropy) while the LM stays frozen.

Each step:
  1. draw ``batch_size`` training examples (``batch_order``: at random, or the next ones in file order);
  2. loss = the white box's objective of P on them (``loss`` vocab: -log p(label word) over the whole
     vocabulary instead); backward; clip (``grad_clip``); optimiser step on P at the step's learning
     rate (``lr_schedule``).
Every ``run.eval_every`` steps P is scored on the selection split by the white box itself
(``metrics``: the task's reward functions on its probabilities) and kept if it is the best so far;
the kept P is scored on the report split the same way (``report_scorer``). A soft prompt is not
text, so pinbench records it as:

* ``prompt``: a label, ``<soft prompt 5x576, step 40>`` (text scoring of it would be meaningless);
* ``token_ids`` / ``nearest_text``: the vocabulary rows nearest each vector by cosine, what a user
  can read off the prompt (its projection, as PEZ's; usually far from the soft prompt's score);
* ``embeds`` (best record only): P as a list of L lists of d floats when L x d <= 65,536 (5 x 1,024
  for RoBERTa-large is 5,120), so a chosen soft prompt can be used again from the results;
  larger prompts are left out to keep Parquet rows small (a checkpoint holds them all).
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import torch
import torch.nn.functional as F

from ...errors import ConfigError
from ...registry import METHODS
from ..base import Method
from ..white_box import allowed_ids, require_white_box
from .config import RLPROMPT_TEMPLATES, SoftPromptConfig

MAX_STORED_FLOATS = 65_536
"""Largest L x d stored as ``embeds`` with the best record."""


# -- what the RLPrompt-script readings of the gradient methods share (AutoPrompt imports these) -----

def white_box_in_template(method: str, task, template: str, verbalizers: Sequence[str] | None = None):
    """The task's white box (the verbalizer cross-entropy) with ``template`` (and ``verbalizers``)
    in place of the task's: a classification task's exact scorer rebuilt on the changed dataset spec,
    so that training and the white box's own dev and test scores use that template. A method field
    (``template``) uses it where an authors' script places the prompt elsewhere than the task does."""
    from ...tasks.classification.gradients import VerbalizerLoss
    from ...tasks.classification.scoring import VerbalizerScorer

    spec, lm, exact = (getattr(task, name, None) for name in ("spec", "task_lm", "exact_scorer"))
    if spec is None or lm is None or exact is None:
        raise ConfigError(f"method '{method}': method.template changes a classification task's template, and "
                          f"task '{task.name}' is not one; leave method.template unset")
    changes = {"template": template, "causal_template": None}
    if verbalizers is not None:
        changes["verbalizers"] = tuple(verbalizers)
    scorer = VerbalizerScorer(lm, dataclasses.replace(spec, **changes), bf16=exact.bf16,
                              max_batch_tokens=exact.max_batch_tokens, max_cached_tokens=exact.max_cached_tokens)
    return VerbalizerLoss(scorer, task.split("train"))


def script_template(method: str, task, table: dict) -> dict | None:
    """``table``'s entry (``{"template": ..., "verbalizers": ...}`` or a template string) for the
    task's dataset when its task LM is a masked LM (the authors' scripts ran RoBERTa-large); None
    otherwise: a causal task LM scores the label word last, which a template with the input after
    the mask cannot give, and a dataset the script does not run has no entry. A task that is not
    classification is an error."""
    spec, lm = getattr(task, "spec", None), getattr(task, "task_lm", None)
    if spec is None or lm is None or not hasattr(spec, "template"):
        raise ConfigError(f"method '{method}': method.template changes a classification task's template, and "
                          f"task '{task.name}' is not one; leave method.template unset")
    if lm.kind != "masked" or spec.name not in table:
        return None
    entry = table[spec.name]
    return {"template": entry} if isinstance(entry, str) else dict(entry)


def vocabulary_logits(white_box, prompt: torch.Tensor, texts: Sequence[str]) -> torch.Tensor:
    """Logits [E, V] over the task LM's whole vocabulary at each text's scored position, given
    ``prompt`` [L, d] (the white box's forward pass with the full output head, not its verbalizer
    rows)."""
    scorer = white_box.scorer
    prompt = prompt.to(white_box.embeddings.weight.dtype)
    rows = [white_box._rows(prompt, t) for t in texts]
    width = max(len(r) for r, _ in rows)
    embeds = prompt.new_zeros(len(rows), width, prompt.shape[-1])
    mask = torch.zeros(len(rows), width, dtype=torch.long, device=prompt.device)
    for i, (r, _) in enumerate(rows):
        embeds[i, : len(r)] = r
        mask[i, : len(r)] = 1
    hidden = scorer.body(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
    at = torch.tensor([pos for _, pos in rows], device=prompt.device)
    h = hidden[torch.arange(len(rows), device=prompt.device), at]
    head = scorer.head
    if head.full_head is not None:
        return head.full_head(h).float()
    out = head.transform(h) @ head.weight.to(h.dtype).T
    if head.bias is not None:
        out = out + head.bias.to(out.dtype)
    return out.float()


def vocabulary_loss(white_box, prompt: torch.Tensor, batch: Sequence[int]) -> torch.Tensor:
    """-log p(label word) over the whole vocabulary at the scored position, averaged over the
    training examples ``batch``: a masked LM's own loss with the label word at the mask (the loss of
    RLPrompt's soft prompt script and of AutoPrompt's ``get_loss``), where the white box's loss is
    the cross-entropy among the verbalizer words only."""
    train = white_box.train
    logits = vocabulary_logits(white_box, prompt, [train.texts[i] for i in batch])
    label_ids = white_box.scorer.label_ids.to(logits.device)
    targets = label_ids[torch.tensor([train.labels[i] for i in batch], device=logits.device)]
    return F.cross_entropy(logits, targets)


def sequential_batch(step: int, size: int | None, n: int) -> list[int]:
    """The ``step``-th (0-based) batch of a DataLoader with ``shuffle=False`` over ``n`` items, epoch
    after epoch: consecutive indices in file order, the last batch of an epoch short when ``size``
    does not divide ``n`` (``drop_last=False``); None or ``size >= n``: all of them."""
    if size is None or size >= n:
        return list(range(n))
    per_epoch = -(-n // size)
    start = (step % per_epoch) * size
    return list(range(start, min(start + size, n)))


@METHODS.register("soft_prompt")
class SoftPrompt(Method):
    """Gradient descent on L continuous prompt vectors through a task's white-box path.

    Args:
        spec: the run (``spec.method_config`` is a ``SoftPromptConfig``).
        task: the task; built from the spec if None. It must have ``differentiable()`` whose
            white box scores a prompt's embeddings (``metrics(prompt, data)``: classification).
    """

    config_class = SoftPromptConfig
    evaluation_source = "soft"

    def __init__(self, spec, task=None):
        super().__init__(spec, task)
        white_box = require_white_box("soft_prompt", self.task)
        self.template: str | None = None  # the script's template, where method.template replaced the task's
        if self.config.template == "rlprompt":
            entry = script_template("soft_prompt", self.task, RLPROMPT_TEMPLATES)
            if entry is not None:
                white_box = white_box_in_template("soft_prompt", self.task, **entry)
                self.template = entry["template"]
        if not callable(getattr(white_box, "metrics", None)):
            raise ConfigError(f"method 'soft_prompt' scores its prompt vectors by the white-box path's metrics, and "
                              f"the white-box path of task '{self.task.name}' has none (metrics(prompt, data))")
        self.white_box = white_box
        self.result.prompt_tokenizer = white_box.model_name  # the nearest tokens' ids are this model's
        vocabulary = white_box.vocabulary.detach()
        self.allowed = allowed_ids(white_box)  # no <mask>, <s>, ...
        self._unit_rows = F.normalize(vocabulary[self.allowed].float(), dim=-1)  # [A, d]
        self.generator = torch.Generator().manual_seed(self.run.seed)
        self.embeds = torch.nn.Parameter(vocabulary[self._initial_ids()].float().clone())
        self.optimizer = self._optimizer()
        self.scheduler = self._scheduler()
        self.best_embeds: torch.Tensor | None = None  # a copy of P when it became the best

    def _initial_ids(self) -> torch.Tensor:
        """Token ids [L] whose embeddings start P: init_text's tokens, then sampled vocabulary
        (Lester et al. Sec. 3.2: "sampled vocab", and the rest of a class-label init)."""
        cfg, ids = self.config, []
        if cfg.init == "head":  # RLPrompt's script: np.random.permutation(range(5000))[:n_prefix]
            size = len(self.white_box.vocabulary)
            if cfg.init_head > size:
                raise ConfigError(f"method 'soft_prompt': init_head {cfg.init_head} is more ids than the "
                                  f"{size} rows of '{self.white_box.model_name}''s vocabulary")
            drawn = torch.randperm(cfg.init_head, generator=self.generator)[:cfg.prompt_length]
            return drawn.to(self.allowed.device)
        if cfg.init == "text":
            ids = self.white_box.encode(cfg.init_text)
            if len(ids) > cfg.prompt_length:
                raise ConfigError(f"method 'soft_prompt': init_text {cfg.init_text!r} is {len(ids)} tokens of "
                                  f"'{self.white_box.model_name}', more than prompt_length {cfg.prompt_length}")
        drawn = torch.randint(len(self.allowed), (cfg.prompt_length - len(ids),), generator=self.generator)
        return torch.cat([torch.tensor(ids, dtype=torch.long), self.allowed.cpu()[drawn]]).to(self.allowed.device)

    def _optimizer(self) -> torch.optim.Optimizer:
        cfg = self.config
        if cfg.optimizer == "adafactor":
            from transformers.optimization import Adafactor

            # Lester et al. Sec. 3: constant lr, beta2 decay 0.8 (decay_rate -0.8), no parameter scaling
            return Adafactor([self.embeds], lr=cfg.learning_rate, weight_decay=cfg.weight_decay, decay_rate=-0.8,
                             scale_parameter=False, relative_step=False, warmup_init=False)
        return torch.optim.AdamW([self.embeds], lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    def _scheduler(self) -> torch.optim.lr_scheduler.LambdaLR | None:
        """linear: the k-th update at lr x max(0, 1 - (k - 1) / decay steps), as transformers'
        ``get_linear_schedule_with_warmup`` with no warm-up (stepped after every update)."""
        cfg = self.config
        if cfg.lr_schedule == "constant":
            return None
        decay = cfg.lr_decay_steps if cfg.lr_decay_steps is not None else self.run.steps
        return torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda done: max(0.0, (decay - done) / decay))

    def current_lr(self) -> float:
        """The learning rate the next update takes."""
        return float(self.optimizer.param_groups[0]["lr"])

    def batch(self) -> list[int]:
        """This step's training examples (``batch_order``)."""
        cfg = self.config
        if cfg.batch_order == "sequential":
            return sequential_batch(self.step_count, cfg.batch_size, self.white_box.num_items)
        return self.white_box.batch(cfg.batch_size, self.generator)

    def loss(self, batch: list[int]) -> torch.Tensor:
        if self.config.loss == "vocab":
            return vocabulary_loss(self.white_box, self.embeds, batch)
        return self.white_box.loss(self.embeds, batch)

    def nearest(self, embeds: torch.Tensor) -> list[int]:
        """Ids [L] of the non-special vocabulary rows nearest ``embeds`` [L, d] by cosine."""
        scores = F.normalize(embeds.detach().float(), dim=-1) @ self._unit_rows.T
        return self.allowed[scores.argmax(-1)].tolist()

    def iterate(self) -> dict:
        batch = self.batch()
        loss = self.loss(batch)
        self.book.count_gradient(len(batch))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(self.embeds.grad.norm())  # before clipping: what the loss gave
        if self.config.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_([self.embeds], self.config.grad_clip)
        lr = self.current_lr()
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()
        return {"loss": float(loss.detach()), "grad_norm": grad_norm, "lr": lr}

    def label(self) -> str:
        """What the results call the current soft prompt (its ``prompt``)."""
        length, width = self.embeds.shape
        return f"<soft prompt {length}x{width}, step {self.step_count}>"

    def current_prompt(self) -> tuple[str, list[int]]:
        return self.label(), self.nearest(self.embeds)

    def score(self, embeds: torch.Tensor, split: str) -> dict[str, float]:
        """The task's metrics of the vectors ``embeds`` on ``split``, by the white box, counted."""
        self.book.count(split, 1)
        return self.white_box.metrics(embeds.detach(), self.task.split(split))

    def evaluate(self) -> dict:
        """Score P itself on the selection split (not its label's text); keep a copy if it is best."""
        prompt, ids = self.current_prompt()
        metrics = self.score(self.embeds, self.task.selection_split)
        extra = {"template": self.template} if self.template is not None else {}
        row = self.book.consider(prompt, self.step_count, self.evaluation_source, ids, metrics=metrics,
                                 nearest_text=self.white_box.decode(ids), **extra)
        if self.result.best["step"] == self.step_count and self.result.best["prompt"] == prompt:
            self.best_embeds = self.embeds.detach().clone()
            if self.best_embeds.numel() <= MAX_STORED_FLOATS:
                self.result.best["embeds"] = self.best_embeds.cpu().tolist()
        return row | {f"{self.evaluation_source}_prompt": prompt}

    def report_scorer(self):
        """The kept P scored on the report split by the white box (its label is not the prompt)."""
        def scorer(best: dict, split: str) -> dict:
            return self.score(self.best_embeds, split)
        return scorer

    def state_dict(self, compact: bool = False) -> dict:
        best = None if self.best_embeds is None else self.best_embeds.clone()
        return {**super().state_dict(compact), "embeds": self.embeds.detach().clone(), "best_embeds": best,
                "optimizer": self.optimizer.state_dict(), "generator": self.generator.get_state(),
                "scheduler": None if self.scheduler is None else self.scheduler.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            self.embeds.copy_(state["embeds"])
        self.best_embeds = None if state["best_embeds"] is None else state["best_embeds"].clone()
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.generator.set_state(state["generator"])
