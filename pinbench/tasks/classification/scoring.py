"""Task-LM scoring: verbalizer probabilities for every (prompt, example) pair.

``VerbalizerScorer.score(prompts, texts)`` returns p(class | template(input, prompt)) of shape
[prompts, examples, classes], from the task LM's logits at the scored position restricted to the
verbalizer tokens (docs/tasks/classification.md). Three things make it fast:

* only the verbalizer rows of the output head are multiplied (C rows, not the whole vocabulary),
  and only at the scored position;
* all pairs are batched with padding (right padding, attention mask and explicit position ids);
* for a causal LM whose template puts the input before the prompt, each input's key/value cache is
  computed once and reused for every prompt: inputs are fixed for a run, only prompts change.

Tokenisation is piecewise: the template is split at its placeholders, whitespace between pieces is
attached to the following piece (" It was", not "It was" after a trailing space), and each piece is
tokenised on its own. That keeps the cached prefix identical to the uncached sequence's prefix.
"""

from __future__ import annotations

import dataclasses
import string
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .data import DatasetSpec
from ...batching import PAD_MULTIPLE, length_batches, pad_right, padded
from ...errors import ConfigError
from ...models import LoadedModel, cast_model, context_length

Progress = Callable[[int], None]  # called with the number of (prompt, example) pairs just scored


@dataclass(frozen=True)
class Piece:
    kind: str  # "literal" | "input" | "prompt" | "mask"
    lead: str  # whitespace moved in front of this piece
    text: str = ""  # literal text (literals only)


def parse_template(template: str) -> list[Piece]:
    """Split a template into pieces, moving whitespace that precedes a piece onto that piece."""
    pieces: list[Piece] = []
    pending = ""
    for literal, field, _, _ in string.Formatter().parse(template):
        body = pending + literal
        stripped = body.rstrip()
        if stripped:
            pieces.append(Piece("literal", "", stripped))
        pending = body[len(stripped):]
        if field is not None:
            pieces.append(Piece(field, pending))
            pending = ""
    return pieces


def _special_tokens(tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer puts before and after a text (e.g. BOS, or <s> ... </s>)."""
    with_special = tokenizer("a").input_ids
    plain = tokenizer("a", add_special_tokens=False).input_ids
    for start in range(len(with_special) - len(plain) + 1):
        if with_special[start:start + len(plain)] == plain:
            return with_special[:start], with_special[start + len(plain):]
    return [], []


def verbalizer_ids(lm: LoadedModel, words: Sequence[str], dataset: str = "?") -> list[int]:
    """One token id per verbalizer word; a word that is not exactly one token, or the same token as
    another class's word, is an error."""
    ids = []
    for word in words:
        toks = lm.tokenizer(word, add_special_tokens=False).input_ids
        if len(toks) != 1:
            pieces = lm.tokenizer.convert_ids_to_tokens(toks)
            raise ConfigError(
                f"verbalizer word {word!r} of dataset '{dataset}' is {len(toks)} tokens {pieces} "
                f"for task model '{lm.name}', not one; choose single-token words for this model"
            )
        unk = lm.tokenizer.unk_token_id
        if unk is not None and toks[0] == unk:
            raise ConfigError(
                f"verbalizer word {word!r} of dataset '{dataset}' is not in the vocabulary of task model "
                f"'{lm.name}' (it becomes the unknown token {lm.tokenizer.unk_token!r}); choose another word"
            )
        if toks[0] in ids:  # two classes scored by one logit: the later class could never win
            first = words[ids.index(toks[0])]
            raise ConfigError(
                f"verbalizer words {first!r} and {word!r} of dataset '{dataset}' are the same token "
                f"{lm.tokenizer.convert_ids_to_tokens(toks)[0]!r} (id {toks[0]}) for task model '{lm.name}'; "
                "choose words that are different tokens for this model"
            )
        ids.append(toks[0])
    return ids


class OutputHead:
    """The task LM's output head split into a per-position transform and the vocabulary matrix,
    so that logits are computed for the verbalizer rows only."""

    def __init__(self, model: torch.nn.Module, kind: str):
        self.transform: Callable[[torch.Tensor], torch.Tensor] = lambda h: h
        self.full_head: torch.nn.Module | None = None
        out = model.get_output_embeddings()
        self.weight, self.bias = out.weight, getattr(out, "bias", None)
        if kind == "masked":
            self._split_masked_head(model)

    def _split_masked_head(self, model: torch.nn.Module) -> None:
        lm_head = getattr(model, "lm_head", None)
        cls = getattr(model, "cls", None)
        if lm_head is not None and all(hasattr(lm_head, a) for a in ("dense", "layer_norm", "decoder")):
            # RoBERTa / XLM-R / CamemBERT: dense -> gelu -> layer_norm -> decoder (+ bias)
            self.transform = lambda h: lm_head.layer_norm(F.gelu(lm_head.dense(h)))
            self.bias = getattr(lm_head, "bias", self.bias)
        elif cls is not None and hasattr(getattr(cls, "predictions", None), "transform"):
            # BERT: predictions.transform (dense -> act -> LayerNorm) -> decoder (+ bias)
            self.transform = cls.predictions.transform
        elif hasattr(model, "vocab_transform") and hasattr(model, "vocab_layer_norm"):
            # DistilBERT
            self.transform = lambda h: model.vocab_layer_norm(model.activation(model.vocab_transform(h)))
        else:
            # Unknown head: apply it whole, still only at the scored positions.
            self.full_head = model.get_output_embeddings() if lm_head is None else lm_head

    def logits(self, hidden: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
        """Logits of ``token_ids`` for hidden states [N, d] -> [N, len(token_ids)]."""
        if self.full_head is not None:
            return self.full_head(hidden)[:, token_ids].float()
        h = self.transform(hidden)
        w = self.weight[token_ids]
        out = h @ w.to(h.dtype).T
        if self.bias is not None:
            out = out + self.bias[token_ids].to(out.dtype)
        return out.float()


class VerbalizerScorer:
    """Scores prompts on a classification dataset with a frozen task LM.

    Args:
        lm: the task LM (``kind`` ``causal`` or ``masked``).
        spec: the dataset spec (template and verbalizers).
        bf16: score with a bfloat16 copy of the task LM's weights (made once per model; several
            times faster on CPU than float32). Probabilities move by up to a few 1e-2 (docs/performance.md).
            ``False`` scores exactly, with the model as loaded.
        max_batch_tokens: the memory budget of one forward pass, in tokens held: padded rows x
            width of the input ids plus, on the cached path, the prefix keys and values each row
            attends to. Peak memory is the model plus this budget, whatever the split's size
            (a row that alone passes the budget is scored alone).
        max_input_tokens: inputs longer than this are truncated (keeps the first tokens).
        cache_inputs: causal LMs: keep the inputs' prefix keys/values across calls (a training
            run scores the same inputs at every step).
        max_cached_tokens: bound on the prefix tokens kept across calls; a call whose inputs need
            more (a test split of thousands) computes its prefixes group by group and keeps none.
    """

    def __init__(self, lm: LoadedModel, spec: DatasetSpec, *, bf16: bool = False,
                 max_batch_tokens: int = 4096, max_input_tokens: int = 256,
                 cache_inputs: bool = True, max_cached_tokens: int = 16384):
        if lm.kind not in ("causal", "masked"):
            raise ConfigError(f"task model '{lm.name}' is a {lm.kind} model; scoring needs a causal or masked LM")
        self.lm, self.spec = lm, spec
        self.tok = lm.tokenizer
        self.bf16 = bf16
        self.max_batch_tokens = max_batch_tokens
        self.max_input_tokens = max_input_tokens
        self.cache_inputs = cache_inputs
        self.max_cached_tokens = max_cached_tokens
        self.pieces = parse_template(spec.template_for(lm.kind))
        self.label_ids = torch.tensor(verbalizer_ids(lm, spec.verbalizers_for(lm.kind), spec.name))
        # bf16 weights rather than autocast: autocast re-casts every weight at every forward.
        self.model = cast_model(lm, torch.bfloat16).model if bf16 else lm.model
        self.head = OutputHead(self.model, lm.kind)
        self.body = self.model.base_model
        self.bos, self.eos = _special_tokens(self.tok)
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        if lm.kind == "masked":
            if self.tok.mask_token_id is None:
                raise ConfigError(f"task model '{lm.name}' has no mask token; load it as a causal LM")
        else:
            mask_at = [p.kind for p in self.pieces].index("mask")
            self.pieces = self.pieces[:mask_at]  # the next token after the text is the scored one
            self.eos = []
            prompt_at = [p.kind for p in self.pieces].index("prompt")
            # The prefix before the prompt is the same for every prompt: its KV cache is reusable.
            self.prefix_pieces, self.suffix_pieces = self.pieces[:prompt_at], self.pieces[prompt_at:]
        self._token_cache: dict[tuple[str, str], list[int]] = {}
        # Prefix keys/values of groups of inputs, by the group's texts (oldest first).
        self._prefix_cache: OrderedDict[tuple[str, ...], GroupPrefix] = OrderedDict()
        self.peak_held_tokens = 0  # largest tokens held by one forward (ids + cached keys); see max_batch_tokens

    # -- tokenisation ------------------------------------------------------------------------

    def _encode(self, text: str) -> list[int]:
        key = ("t", text)
        if key not in self._token_cache:
            self._token_cache[key] = self.tok(text, add_special_tokens=False).input_ids
        return self._token_cache[key]

    def _piece_ids(self, piece: Piece, text: str, prompt: str) -> list[int]:
        if piece.kind == "mask":
            return [self.tok.mask_token_id]  # whitespace before the mask belongs to the verbalizer
        if piece.kind == "input":
            return self._encode(piece.lead + text)[: self.max_input_tokens]
        body = prompt if piece.kind == "prompt" else piece.text
        if piece.kind == "prompt" and not body:
            return []
        return self._encode(piece.lead + body)

    def _ids(self, pieces: Sequence[Piece], text: str, prompt: str) -> list[int]:
        return [i for p in pieces for i in self._piece_ids(p, text, prompt)]

    def full_ids(self, prompt: str, text: str) -> tuple[list[int], int]:
        """Token ids of one (prompt, input) pair and the index of the scored position."""
        if self.lm.kind == "masked":
            ids = self.bos + self._ids(self.pieces, text, prompt) + self.eos
            return ids, ids.index(self.tok.mask_token_id, len(self.bos))
        ids = self.bos + self._ids(self.pieces, text, prompt)
        if not ids:  # empty input and prompt, no BOS: predict from a start-of-text token
            ids = [self.tok.bos_token_id if self.tok.bos_token_id is not None else self.tok.eos_token_id]
        return ids, len(ids) - 1

    # -- public API --------------------------------------------------------------------------

    @torch.no_grad()
    def score(self, prompts: Sequence[str], texts: Sequence[str], *, use_cache: bool = True,
              progress: Progress | None = None) -> torch.Tensor:
        """Verbalizer probabilities [len(prompts), len(texts), classes] (float32, on CPU)."""
        if not prompts or not texts:
            return torch.zeros(len(prompts), len(texts), self.spec.num_classes)
        self._check_context(prompts, texts)
        if self.lm.kind == "causal" and use_cache:
            logits = self._score_causal(list(prompts), list(texts), progress)
        else:
            logits = self._score_full(list(prompts), list(texts), progress)
        return logits.softmax(-1).cpu()

    def _check_context(self, prompts: Sequence[str], texts: Sequence[str]) -> None:
        """Before any forward: the longest prompt in the template with the longest input (inputs are
        cut at ``max_input_tokens``) fits the task LM's positions; a longer row would be an index
        error deep in the model, or minutes of scoring garbage."""
        context = context_length(self.lm)
        if context is None:
            return
        longest_text = max(texts, key=lambda t: len(self._encode(t)))
        for i, prompt in enumerate(prompts):
            n = len(self.full_ids(prompt, longest_text)[0])
            if n > context:
                own = len(self._encode(" " + prompt)) if prompt else 0
                raise ConfigError(f"prompt {i + 1} ({own} tokens, {prompt[:40]!r}...) in the template with the "
                                  f"longest input makes {n} tokens; task model '{self.lm.name}' attends over at most "
                                  f"{context} (inputs are cut at {self.max_input_tokens} tokens)")

    @torch.no_grad()
    def score_naive(self, prompts: Sequence[str], texts: Sequence[str],
                    progress: Progress | None = None) -> torch.Tensor:
        """Reference path: one full forward per pair with the full-vocabulary head (benchmarks)."""
        out = torch.empty(len(prompts), len(texts), self.spec.num_classes)
        for i, prompt in enumerate(prompts):
            for j, text in enumerate(texts):
                ids, pos = self.full_ids(prompt, text)
                logits = self.model(input_ids=torch.tensor([ids], device=self.lm.device)).logits
                out[i, j] = logits[0, pos, self.label_ids.to(logits.device)].float().softmax(-1).cpu()
                if progress:
                    progress(1)
        return out

    # -- uncached path: every pair is one padded row -----------------------------------------

    def _batches(self, lengths: Sequence[int]) -> list[list[int]]:
        """Row indices grouped so that rows x longest row <= max_batch_tokens (sorted by length)."""
        return length_batches(lengths, self.max_batch_tokens, multiple=PAD_MULTIPLE)

    def _score_full(self, prompts: list[str], texts: list[str], progress: Progress | None) -> torch.Tensor:
        rows = [self.full_ids(p, t) for p in prompts for t in texts]
        out = torch.empty(len(rows), self.spec.num_classes)
        device = self.lm.device
        for batch in self._batches([len(ids) for ids, _ in rows]):
            input_ids, mask = pad_right([rows[i][0] for i in batch], self.pad_id, PAD_MULTIPLE)
            self._held(input_ids.numel())
            hidden = self.body(input_ids=input_ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            pos = torch.tensor([rows[i][1] for i in batch], device=device)
            h = hidden[torch.arange(len(batch), device=device), pos]
            out[batch] = self.head.logits(h, self.label_ids.to(device)).cpu()
            if progress:
                progress(len(batch))
        return out.view(len(prompts), len(texts), -1)

    # -- cached causal path: input-major, each input's prefix shared by all its prompts -------

    def _prefix_ids(self, text: str) -> list[int]:
        return self.bos + self._ids(self.prefix_pieces, text, "")

    def _held(self, tokens: int) -> None:
        self.peak_held_tokens = max(self.peak_held_tokens, tokens)

    def clear_cache(self) -> None:
        """Forget the cached prefixes (benchmarks time a run's first, cold, call)."""
        self._prefix_cache.clear()

    def _compute_prefix(self, ids_list: list[list[int]]) -> GroupPrefix:
        """One forward over a group's right-padded prefixes: their keys/values [G, heads, width,
        dim] per layer, left-aligned as the packed suffix expects, and each one's last hidden state.
        Right padding: real tokens never attend to the pads after them, so each row's first n
        keys/values are exactly those of its unpadded prefix."""
        device = self.lm.device
        input_ids, mask = pad_right(ids_list, self.pad_id, PAD_MULTIPLE)
        self._held(input_ids.numel())
        out = self.body(input_ids=input_ids.to(device), attention_mask=mask.to(device), use_cache=True)
        lengths = torch.tensor([len(i) for i in ids_list], dtype=torch.long)
        last = out.last_hidden_state[torch.arange(len(ids_list), device=device), (lengths - 1).to(device)]
        layers = _cache_layers(out.cache)
        return GroupPrefix([k for k, _ in layers], [v for _, v in layers], lengths, last)

    def _group_prefix(self, key: tuple[str, ...], ids_list: list[list[int]], keep: bool,
                      in_use: set[tuple[str, ...]]) -> GroupPrefix:
        """The group's prefix from the cache, else computed (and kept when ``keep``, evicting the
        oldest groups this call does not use until the cache fits its bound)."""
        if key in self._prefix_cache:
            self._prefix_cache.move_to_end(key)
            return self._prefix_cache[key]
        prefix = self._compute_prefix(ids_list)
        if keep:
            while self._cached_tokens() + prefix.tokens > self.max_cached_tokens:
                old = next((k for k in self._prefix_cache if k not in in_use), None)
                if old is None:
                    return prefix
                del self._prefix_cache[old]
            self._prefix_cache[key] = prefix
        return prefix

    def _cached_tokens(self) -> int:
        return sum(p.tokens for p in self._prefix_cache.values())

    def _score_causal(self, prompts: list[str], texts: list[str], progress: Progress | None) -> torch.Tensor:
        """Cached path when the input comes before the prompt (its prefix is worth sharing);
        otherwise (the input after the prompt, or an empty input without BOS: nothing to cache)
        every pair is one padded row."""
        if "input" not in [p.kind for p in self.prefix_pieces]:
            return self._score_full(prompts, texts, progress)
        has_prefix = [bool(self._prefix_ids(t)) for t in texts]
        out = torch.empty(len(prompts), len(texts), self.spec.num_classes)
        for flag, scorer in ((True, self._score_packed), (False, self._score_full)):
            idx = [i for i, h in enumerate(has_prefix) if h == flag]
            if idx:
                out[:, idx] = scorer(prompts, [texts[i] for i in idx], progress)
        return out

    def _score_packed(self, prompts: list[str], texts: list[str], progress: Progress | None) -> torch.Tensor:
        """One row per input: its prompts' suffixes packed one after another (no padding between
        them), all attending to the input's cached prefix and, causally, to their own block only
        (a 4D mask). The prefix's keys and values are used once per input, never copied per prompt,
        and the forward pass runs on the suffix tokens alone.

        Memory: a group of G inputs whose longest prefix is W holds G x (W + packed) tokens, kept
        within ``max_batch_tokens``; prompts whose packed suffixes would pass it are scored in
        several chunks against the same prefixes."""
        device = self.lm.device
        # The suffix is the prompt plus any literal text up to the scored position; it does not
        # depend on the input (the input is in the prefix), so every row has the same blocks.
        blocks = [self._ids(self.suffix_pieces, "", p) for p in prompts]
        prefix_ids = [self._prefix_ids(t) for t in texts]
        chunks = self._prompt_chunks([len(b) for b in blocks], max(len(i) for i in prefix_ids))
        # Groups depend on the prompts only through a power-of-two bucket of the widest chunk, so a
        # training run's steps (same inputs, new prompts of similar length) meet the same groups
        # and reuse their cached prefixes.
        widest = max(sum(len(blocks[p]) for p in chunk) for chunk in chunks)
        bucket = 1 << max(widest - 1, 0).bit_length()
        groups = length_batches([padded(len(i)) + bucket for i in prefix_ids], self.max_batch_tokens)
        keys = [tuple(texts[i] for i in g) for g in groups]
        need = sum(len(g) * padded(max(len(prefix_ids[i]) for i in g)) for g in groups)
        keep = self.cache_inputs and need <= self.max_cached_tokens
        in_use = set(keys)
        out = torch.empty(len(texts), len(prompts), self.spec.num_classes)
        for group, key in zip(groups, keys):
            prefix = self._group_prefix(key, [prefix_ids[i] for i in group], keep, in_use)
            for chunk in chunks:
                h = self._score_chunk(prefix, [blocks[p] for p in chunk], device)
                logits = self.head.logits(h.reshape(-1, h.shape[-1]), self.label_ids.to(device)).cpu()
                out[torch.tensor(group)[:, None], torch.tensor(chunk)[None, :]] = logits.view(len(group), len(chunk), -1)
                if progress:
                    progress(len(group) * len(chunk))
        return out.transpose(0, 1).contiguous()

    def _prompt_chunks(self, block_lengths: list[int], widest_prefix: int) -> list[list[int]]:
        """Prompt indices in consecutive chunks whose packed tokens, after the widest prefix, fit
        the budget (at least one prompt per chunk)."""
        room = max(self.max_batch_tokens - widest_prefix, 1)
        chunks, current, used = [], [], 0
        for p, n in enumerate(block_lengths):
            if current and used + n > room:
                chunks.append(current)
                current, used = [], 0
            current.append(p)
            used += n
        return chunks + [current]

    def _score_chunk(self, prefix: "GroupPrefix", blocks: list[list[int]], device) -> torch.Tensor:
        """Hidden states [G, P, d] at each block's scored position for the group's inputs."""
        g = len(prefix.lengths)
        h = prefix.last_hidden[:, None].expand(-1, len(blocks), -1)
        packed = sum(len(b) for b in blocks)
        if not packed:
            return h
        layout = packed_layout(prefix.lengths.tolist(), [len(b) for b in blocks])
        layout = dataclasses.replace(layout, padded_width=prefix.width)  # the keys' (rounded) width
        self._held(g * (prefix.width + packed))
        input_ids = torch.tensor([i for b in blocks for i in b], dtype=torch.long)
        hidden = self.body(
            input_ids=input_ids.expand(g, -1).to(device),
            attention_mask=layout.mask(prefix.keys[0].dtype).to(device),
            position_ids=layout.positions.to(device),
            cache=_make_cache(prefix.keys, prefix.values),
            use_cache=True,
        ).last_hidden_state
        # An empty block (empty prompt, nothing after it) is scored at the prefix's end.
        scored = hidden[:, layout.last.clamp(min=0).to(device)]
        return torch.where((layout.last >= 0).to(device)[None, :, None], scored, h.to(scored.dtype))


@dataclass
class GroupPrefix:
    """The task LM's state after the prefixes (everything before the prompt) of a group of inputs."""

    keys: list[torch.Tensor]  # per layer [G, heads, width, dim], left-aligned, right-padded (pads masked)
    values: list[torch.Tensor]
    lengths: torch.Tensor  # [G] real prefix tokens per input
    last_hidden: torch.Tensor  # [G, d], scores a pair directly when its prompt adds no token

    @property
    def width(self) -> int:
        return int(self.keys[0].shape[2]) if self.keys else int(self.lengths.max())

    @property
    def tokens(self) -> int:
        """Prefix tokens held, padding included."""
        return len(self.lengths) * self.width


@dataclass(frozen=True)
class PackedLayout:
    """Where each prompt's suffix block sits in a packed row, for inputs of given prefix lengths."""

    prefix_lengths: torch.Tensor  # [G] real prefix tokens per input (keys left-aligned, padded)
    block: torch.Tensor  # [T] index of the block each packed token belongs to
    offset: torch.Tensor  # [T] token's index inside its block
    last: torch.Tensor  # [P] packed index of each block's last token, -1 for an empty block
    padded_width: int | None = None  # the cached keys' width when padded past the longest prefix

    @property
    def prefix_width(self) -> int:
        return self.padded_width or int(self.prefix_lengths.max())

    @property
    def positions(self) -> torch.Tensor:
        """[G, T] position ids: every block continues its input's prefix (starts at n_g)."""
        return self.prefix_lengths[:, None] + self.offset[None, :]

    def mask(self, dtype: torch.dtype) -> torch.Tensor:
        """[G, 1, T, width + T] additive mask: a token sees its input's real prefix tokens and the
        tokens of its own block up to itself; never padding, never another prompt's block."""
        width = self.prefix_width
        sees_prefix = torch.arange(width)[None, :] < self.prefix_lengths[:, None]  # [G, width]
        same_block = self.block[:, None] == self.block[None, :]
        causal = self.offset[:, None] >= self.offset[None, :]
        sees_suffix = same_block & causal  # [T, T]
        g, t = len(self.prefix_lengths), len(self.block)
        allowed = torch.cat([sees_prefix[:, None, :].expand(g, t, width), sees_suffix.expand(g, t, t)], dim=-1)
        blocked = torch.zeros(allowed.shape, dtype=dtype).masked_fill_(~allowed, torch.finfo(dtype).min)
        return blocked[:, None]


def packed_layout(prefix_lengths: Sequence[int], block_lengths: Sequence[int]) -> PackedLayout:
    """The layout of blocks of ``block_lengths`` tokens packed after prefixes of ``prefix_lengths``."""
    lengths = torch.tensor(block_lengths, dtype=torch.long)
    block = torch.repeat_interleave(torch.arange(len(lengths)), lengths)
    starts = torch.cumsum(lengths, 0) - lengths
    offset = torch.arange(int(lengths.sum())) - starts[block]
    last = torch.where(lengths > 0, starts + lengths - 1, torch.full_like(lengths, -1))
    return PackedLayout(torch.tensor(prefix_lengths, dtype=torch.long), block, offset, last)


# ---------------------------------------------------------------------------------------------
# transformers cache helpers (the Cache API changed across versions; keep it in one place)
# ---------------------------------------------------------------------------------------------


def _cache_layers(cache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(layer.keys, layer.values) for layer in cache.layers]  # transformers >= 5.24


def _make_cache(keys: list[torch.Tensor], values: list[torch.Tensor]):
    from transformers import DynamicCache

    cache = DynamicCache()
    for layer, (k, v) in enumerate(zip(keys, values)):
        cache.update(k, v, layer)
    return cache
