"""The Q-network policy (docs/method.md).

A frozen causal LM reads the prompt prefix z_<t and gives its last hidden state e_t (after the
final norm). A trainable MLP psi maps it back to the LM's width, and the frozen output head W
turns it into Q-values:

    Q(z_<t, v) = w_v . psi(e_t)          psi: Linear(d, 2048) -> ReLU -> Linear(2048, d)

Only psi trains; its target copy psi' (never a second LM) is Polyak-averaged. PIN's ignorable-token
filter keeps the top-k tokens of the frozen LM's own logits w_v . e_t and sets the other Q to -inf
for sampling and targets; RLPrompt's truncation samples from the top-k of the policy itself.

What the LM reads (``policy_input``): "ids" feeds the start token and the sampled token ids, a clean
prefix. "retokenize" is what the authors' code feeds (``lm_filter_model._get_generation_cache``, the
same in RLPrompt's ``lm_adaptor_model``): the start token's *string* through the tokenizer, then at
each step each sampled token decoded to a string and tokenized again, the batch padded to its
longest row, with no attention mask. OPT's tokenizer adds ``</s>`` to every call, so OPT reads
``</s> </s> </s> z1 </s> z2 ...``; a token whose string tokenizes differently becomes those tokens;
a padded row's pads stay in the context of its later steps. GPT-2's tokenizer adds nothing, so
there the two differ only for tokens that do not survive the round trip.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from ...errors import ConfigError, NonFiniteError
from ...models import LoadedModel, context_length
from .config import POLICY_INPUTS


class MLPHead(nn.Module):
    """psi: Linear(d, hidden) -> ReLU -> Linear(hidden, d), initialised so every Q starts near 0
    (Xavier-uniform with gain 1e-4, biases -1e-4, as in RLPrompt)."""

    def __init__(self, width: int, hidden: int = 2048):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, width))
        for layer in self.net:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight, gain=1e-4)
                nn.init.constant_(layer.bias, -1e-4)

    def forward(self, e: torch.Tensor) -> torch.Tensor:
        return self.net(e)


@dataclass
class Rollout:
    """Prompts sampled token by token, with what the update needs so the LM never reruns on them."""

    tokens: torch.Tensor  # [B, L] sampled token ids
    hidden: torch.Tensor  # [B, L, d] frozen-LM state e_t before each token
    threshold: torch.Tensor  # [B, L] k-th largest LM logit (PIN filter), -inf when off
    entropy: torch.Tensor  # [B, L] regulariser entropy of the sampling policy
    support: torch.Tensor  # [B, L] tokens with non-zero sampling probability
    context: torch.Tensor | None = None  # [B, T] what the LM read ("retokenize"; None: start + tokens)
    positions: torch.Tensor | None = None  # [B, L] where in ``context`` each e_t was read


class QPolicy(nn.Module):
    """Frozen policy LM + trainable MLP + frozen output head.

    Args:
        lm: the frozen causal policy LM.
        hidden: MLP width.
        prompt_length: L, tokens per prompt.
        top_k: PIN's filter: keep the LM's top-k tokens per prefix (None: off).
        sample_top_k: RLPrompt's truncation: sample from the policy's own top-k (None: off).
        q_bias: a constant added to every Q (RLPrompt's ``logit_bias``, -10 for style transfer).
        policy_input: "ids" (a clean prefix of token ids) or "retokenize" (the authors' code: each
            token decoded and tokenized again; module docstring).
    """

    def __init__(self, lm: LoadedModel, *, hidden: int = 2048, prompt_length: int = 5,
                 top_k: int | None = None, sample_top_k: int | None = None, q_bias: float = 0.0,
                 policy_input: str = "ids"):
        super().__init__()
        if policy_input not in POLICY_INPUTS:
            raise ConfigError(f"method.policy_input = {policy_input!r}: expected one of {POLICY_INPUTS}")
        context = context_length(lm)
        if context is not None and prompt_length + 1 > context:  # the start token, then the prompt
            raise ConfigError(f"method.prompt_length = {prompt_length}: the policy model '{lm.name}' attends over "
                              f"at most {context} positions (its start token and {context - 1} prompt tokens)")
        self.lm = lm
        self.q_bias = q_bias
        self.prompt_length = prompt_length
        self.top_k, self.sample_top_k = top_k, sample_top_k
        out = lm.model.get_output_embeddings()
        self.register_buffer("head_weight", out.weight.detach().float(), persistent=False)
        bias = getattr(out, "bias", None)
        self.register_buffer("head_bias", None if bias is None else bias.detach().float(), persistent=False)
        self.mlp = MLPHead(self.head_weight.shape[1], hidden).to(self.head_weight.device)
        self.target = copy.deepcopy(self.mlp).requires_grad_(False)
        tok = lm.tokenizer
        # The prompt starts after the LM's start-of-text token (GPT-2 / OPT: BOS; SmolLM2 has
        # no BOS in its tokenizer output, so its end-of-text token <|endoftext|> separates docs).
        start = tok.bos_token_id if tok.bos_token_id is not None else tok.eos_token_id
        self.start_id = int(start)
        self.policy_input = policy_input
        if policy_input == "retokenize":
            # The authors' source string is the start token's text (BOS_TOKENS: '</s>' for OPT,
            # '<|endoftext|>' for GPT-2); their pad token is the tokenizer's (OPT '<pad>').
            self._start_context = list(tok(tok.convert_ids_to_tokens(self.start_id))["input_ids"]) or [self.start_id]
            self.pad_id = int(tok.pad_token_id if tok.pad_token_id is not None else self.start_id)
            # Each step re-reads tokens: the context grows by up to a few ids per token.
            longest = len(self._start_context) + prompt_length * (1 + int(tok.bos_token_id is not None) + 3)
            if context is not None and longest > context:
                raise ConfigError(f"method.policy_input = 'retokenize' with method.prompt_length = {prompt_length}: "
                                  f"the policy model '{lm.name}' attends over at most {context} positions")

    def _token_inputs(self, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One step's LM input under "retokenize": each token's string tokenized again, padded on
        the right to the longest row (ids [B, W], lengths [B]), as the authors' tokenizer call
        with ``padding=True`` makes it."""
        tok = self.lm.tokenizer
        strings = []
        for piece in tok.convert_ids_to_tokens(tokens.tolist()):
            # (the authors put the pad token's text where an id has no token)
            strings.append(tok.convert_tokens_to_string([piece if piece is not None else tok.pad_token or ""]))
        rows = [list(ids) or [self.pad_id] for ids in tok(strings)["input_ids"]]  # an empty string reads a pad
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r)
        return ids.to(tokens.device), torch.tensor([len(r) for r in rows], device=tokens.device)

    @property
    def vocab_size(self) -> int:
        return self.head_weight.shape[0]

    # -- Q-values --------------------------------------------------------------------------

    def lm_logits(self, e: torch.Tensor) -> torch.Tensor:
        """The frozen LM's own next-token logits w_v . e_t (+ bias)."""
        logits = e @ self.head_weight.T
        return logits if self.head_bias is None else logits + self.head_bias

    def q_values(self, e: torch.Tensor, threshold: torch.Tensor | None = None, target: bool = False,
                 lm_logits: torch.Tensor | None = None) -> torch.Tensor:
        """Q(s, .) = W psi(e) [..., V]; tokens whose LM logit is below ``threshold`` get -inf.
        ``lm_logits`` (the LM's own logits for ``e``) saves recomputing them when known."""
        q = (self.target if target else self.mlp)(e) @ self.head_weight.T + self.q_bias
        if threshold is not None and self.top_k is not None:
            with torch.no_grad():
                logits = self.lm_logits(e) if lm_logits is None else lm_logits
                ignorable = logits < threshold.unsqueeze(-1)
            q = q.masked_fill(ignorable, float("-inf"))
        return q

    def q_taken(self, e: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Q(s, a) for the taken tokens only: psi(e) . w_a, without the full-vocabulary product.
        (A taken token always passed the filter, so no mask is needed.)"""
        return (self.mlp(e) * self.head_weight[tokens]).sum(-1) + self.q_bias

    def filter_threshold(self, e: torch.Tensor, lm_logits: torch.Tensor | None = None) -> torch.Tensor:
        """The k-th largest LM logit per state (-inf when the filter is off or k >= vocab)."""
        if self.top_k is None or self.top_k >= self.vocab_size:
            return torch.full(e.shape[:-1], float("-inf"), device=e.device)
        logits = self.lm_logits(e) if lm_logits is None else lm_logits
        # kthvalue (a selection) gives the same value as topk(k)[-1] without sorting k entries.
        return torch.kthvalue(logits, self.vocab_size - self.top_k + 1, dim=-1).values

    @torch.no_grad()
    def polyak_update(self, tau: float) -> None:
        """psi' <- (1 - tau) psi' + tau psi."""
        for target, online in zip(self.target.parameters(), self.mlp.parameters()):
            target.lerp_(online, tau)

    # -- sampling ---------------------------------------------------------------------------

    @torch.no_grad()
    def rollout(self, n: int, regularizer, alpha: float, generator: torch.Generator | None = None,
                greedy: bool = False) -> Rollout:
        """Sample n prompts token by token from the regulariser's policy (greedy: argmax)."""
        body = self.lm.model.base_model
        device = self.head_weight.device
        retokenize = self.policy_input == "retokenize"
        # Every prompt starts from the same start text: one forward, its state shared by all rows.
        start = torch.tensor([self._start_context if retokenize else [self.start_id]], device=device)
        out = body(input_ids=start, use_cache=True)
        cache, e = out.cache, out.last_hidden_state[:, -1].float().expand(n, -1)
        cache.batch_repeat_interleave(n)
        # (retokenize) what the LM has read per row, and where each e_t was read in it
        context, positions = [start.expand(n, -1)], [torch.full((n,), start.shape[1] - 1, device=device)]
        tokens, hidden, thresholds, entropies, supports = [], [], [], [], []
        for t in range(self.prompt_length):
            # The LM's own logits once per position, for the threshold and the mask. (They are not
            # fused with Q's product: the loss recomputes them from e_t, and a product of another
            # shape can round differently and move a token across the stored threshold.)
            logits = self.lm_logits(e) if self.top_k is not None else None
            threshold = self.filter_threshold(e, logits)
            q = self.q_values(e, threshold, lm_logits=logits)
            if bool(torch.isnan(q).any() or torch.isposinf(q).any()):  # -inf: filtered tokens
                raise NonFiniteError(f"the policy's Q values became non-finite while sampling prompt token {t + 1} "
                                     f"(alpha {alpha}): the Q network diverged; lower method.lr or method.alpha")
            pi = regularizer.policy(q, alpha)
            probs = pi  # what is sampled from: pi, or RLPrompt's top-k truncation of it
            if self.sample_top_k is not None and self.sample_top_k < self.vocab_size:
                top = torch.topk(pi, self.sample_top_k, dim=-1)
                probs = torch.zeros_like(pi).scatter(-1, top.indices, top.values)
            if greedy:
                a = q.argmax(-1)
            else:
                a = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
            tokens.append(a)
            hidden.append(e)
            thresholds.append(threshold)
            entropies.append(regularizer.entropy(pi))
            supports.append((probs > 0).sum(-1).float())
            if t + 1 < self.prompt_length:
                if retokenize:
                    ids, lengths = self._token_inputs(a)
                    out = body(input_ids=ids, cache=cache, use_cache=True)
                    last = lengths - 1
                    cache, e = out.cache, out.last_hidden_state[torch.arange(n, device=device), last].float()
                    positions.append(sum(c.shape[1] for c in context) + last)
                    context.append(ids)
                else:
                    out = body(input_ids=a[:, None], cache=cache, use_cache=True)
                    cache, e = out.cache, out.last_hidden_state[:, -1].float()
        stack = lambda xs: torch.stack(xs, dim=1)  # noqa: E731
        rollout = Rollout(stack(tokens), stack(hidden), stack(thresholds), stack(entropies), stack(supports))
        if retokenize:
            rollout.context, rollout.positions = torch.cat(context, dim=1), stack(positions)
        return rollout

    @torch.no_grad()
    def hidden_states(self, tokens: torch.Tensor, context: torch.Tensor | None = None,
                      positions: torch.Tensor | None = None, batch_size: int = 512) -> torch.Tensor:
        """e_0..e_{L-1} [N, L, d] for stored prompts, in one forward pass per batch (used to
        rebuild a replay buffer from a compact checkpoint; equal to the sampled states up to
        floating-point rounding). ``context`` and ``positions``: what a "retokenize" rollout read
        (``Rollout``); trailing columns past a row's last position are never attended by it."""
        device = self.head_weight.device
        if context is None:
            context = torch.cat([torch.full_like(tokens[:, :1], self.start_id), tokens[:, :-1]], dim=1)
            positions = torch.arange(tokens.shape[1]).expand(tokens.shape[0], -1)
        out = []
        for start in range(0, tokens.shape[0], batch_size):
            ids, where = context[start:start + batch_size].to(device), positions[start:start + batch_size].to(device)
            states = self.lm.model.base_model(input_ids=ids).last_hidden_state.float()
            out.append(states.gather(1, where.long().unsqueeze(-1).expand(-1, -1, states.shape[-1])))
        return torch.cat(out) if out else torch.empty(0, tokens.shape[1], self.head_weight.shape[1])

    def decode(self, tokens: torch.Tensor) -> list[str]:
        return [self.lm.tokenizer.decode(row, clean_up_tokenization_spaces=False) for row in tokens.tolist()]
