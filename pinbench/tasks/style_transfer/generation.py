"""Task-LM generation for text style transfer: n sampled rewrites of each (prompt, input) pair.

The task LM continues ``{prompt} "{input}" "`` with top-k sampling (temperature 1) and the output
is cleaned (``clean_output``). Settings follow RLPrompt's
``examples/text-style-transfer/tst_modules/prompted_generator.py`` (mingkaid/rl-prompt; PIN's copy is
identical): top_k 10, top_p 1, at most ``max_new_tokens(len(tokenizer(input).input_ids))`` new
tokens, stop at EOS (docs/tasks/style-transfer.md, section 2).

Why a shared cache: every (prompt, input) pair gets n = 4..128 samples that all continue the same
prefix. ``StyleGenerator`` runs the prefix once per pair and copies its keys/values to the pair's n
rows; the decode steps then run the samples of several pairs in one batch. ``use_cache_sharing=False``
is the reference path (the prefix run once per sample), same code otherwise.

Layout (right padding with a hole): a chunk's prefixes minus their last token are right-padded to
width W and run once (right padding: a real token never has a pad before it, so its keys/values are
those of the unpadded prefix). The last prefix token, then every generated token, is appended as a
new column (W, W + 1, ...) for all rows, so one column holds every row's next-token logits. Each
row's pads sit between its prefix and its continuation and are masked out; explicit position ids
keep positions contiguous (L - 1 for the last prefix token, L + j for generated token j, L = prefix
length). Rows that stopped are dropped from the batch (and their cache) at once: a stopped row
would otherwise cost a full row of compute per step. The cache lives in preallocated buffers
(transformers' DynamicLayer concatenates the whole cache at every step).

Stopping: a sample stops at EOS (dropped when decoding), at the first generated token whose text
contains ``"`` (the cleaning cuts there anyway, so this only saves steps; the token is kept), or after
``max_new_tokens`` tokens (EOS included, as in HF). A chunk stops when all its rows have stopped.

Randomness: ``generator`` is advanced by exactly one draw per pair, in pair order, giving a 32-bit
seed s (torch's CPU generator keeps only 32 bits of a seed); sample j of the pair draws from its own
``torch.Generator`` seeded (s + j) mod 2**32, one ``torch.multinomial`` call per token over the top-k
probabilities in token-id order. So a sample depends only on its pair's seed and its own logits: not
on batching, chunking, cache sharing or when other rows stop, and calling ``sample_pairs`` pair by
pair with one generator gives what one call with all pairs gives. Token-id order (not value order)
keeps a draw on the same token when two near-equal logits swap places between batch shapes.
top_k = 1 is greedy (argmax, no draws).
"""

from __future__ import annotations

import functools
import math
from typing import Sequence

import torch

from ...errors import ConfigError
from ...models import LoadedModel, cast_model
from .template import DEFAULT_TEMPLATE, check_template

QUOTE = '"'


def clean_output(text: str, lower: bool) -> str:
    """RLPrompt's ``postprocess_output``: cut at the first ``"``, strip, keep up to and including the
    earliest of ``.``/``!``/``?``, strip, optionally lowercase."""
    cut = text.find(QUOTE)
    text = (text if cut < 0 else text[:cut]).strip()
    ends = [i for i in (text.find(p) for p in ".!?") if i >= 0]
    if ends:
        text = text[: min(ends) + 1].strip()
    return text.lower() if lower else text


def max_new_tokens(n_input_tokens: int) -> int:
    """The authors' length limit: max(1.5 n, n + 10), n = input tokens; 1.5 n rounded up."""
    return max(math.ceil(1.5 * n_input_tokens), n_input_tokens + 10)


_QUOTE_TABLES: dict[int, tuple[object, torch.Tensor]] = {}


def _quote_table(tokenizer, size: int) -> torch.Tensor:
    """[size] bool: does token i's text contain a double quote (decoded alone, once per tokenizer)."""
    key = id(tokenizer)
    entry = _QUOTE_TABLES.get(key)
    if entry is None or entry[1].numel() < size:  # the tokenizer is kept in the entry: its id stays unique
        n = len(tokenizer)
        texts = tokenizer.batch_decode([[i] for i in range(n)])
        table = torch.zeros(max(size, n), dtype=torch.bool)
        table[:n] = torch.tensor([QUOTE in t for t in texts])
        _QUOTE_TABLES[key] = entry = (tokenizer, table)
    return entry[1]


def _preallocate(cache, extra: int) -> None:
    """Give each plain ``DynamicLayer`` of ``cache`` room for ``extra`` more tokens: a DynamicLayer
    concatenates its whole cache at every step (O(length) copies per token); a buffer is written in
    place. Other layer types (sliding windows, ...) are left as they are."""
    from transformers.cache_utils import DynamicLayer

    for i, layer in enumerate(cache.layers):
        if type(layer) is DynamicLayer and layer.is_initialized:
            cache.layers[i] = _buffer_layer_class()(layer.keys, layer.values, extra)


@functools.cache
def _buffer_layer_class():
    from transformers.cache_utils import DynamicLayer

    class BufferLayer(DynamicLayer):
        """A DynamicLayer whose keys/values are views of the first ``length`` tokens of a buffer."""

        def __init__(self, keys: torch.Tensor, values: torch.Tensor, extra: int):
            super().__init__()
            self.device, self.length, self.is_initialized = keys.device, keys.shape[-2], True
            self._k = keys.new_empty(*keys.shape[:2], self.length + extra, keys.shape[-1])
            self._v = values.new_empty(*values.shape[:2], self.length + extra, values.shape[-1])
            self._k[:, :, : self.length] = keys
            self._v[:, :, : self.length] = values
            self._views()

        def _views(self) -> None:
            self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]

        def update(self, key_states, value_states, *args, **kwargs):
            end = self.length + key_states.shape[-2]
            self._k[:, :, self.length:end] = key_states
            self._v[:, :, self.length:end] = value_states
            self.length = end
            self._views()
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        # The batch and length edits of DynamicLayer, applied to the buffers.
        def batch_select_indices(self, indices: torch.Tensor) -> None:
            self._k, self._v = self._k[indices], self._v[indices]
            self._views()

        def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
            self.batch_select_indices(beam_idx.to(self._k.device))

        def batch_repeat_interleave(self, repeats: int) -> None:
            self._k, self._v = self._k.repeat_interleave(repeats, 0), self._v.repeat_interleave(repeats, 0)
            self._views()

        def crop(self, tokens_to_remove: int) -> None:
            self.length -= abs(tokens_to_remove)  # negative, as DynamicLayer's modern form
            self._views()

    return BufferLayer


class StyleGenerator:
    """Samples n cleaned continuations per (prompt, input) pair with a frozen causal task LM.

    Args:
        lm: the task LM (causal).
        template: ``{prompt}`` and ``{input}`` placeholders; the filled text is tokenised whole (the
            tokenizer's special tokens included, like the authors' pipeline) and continued.
        top_k: sample among the k most likely tokens (1: greedy).
        lower: lowercase the cleaned outputs (Yelp).
        bf16: generate with a bfloat16 copy of the weights (shared, ``cast_model``).
        max_batch_tokens: rows x (longest prefix + its token limit) per chunk; bounds the KV cache.
        stop_at_quote: stop a sample at its first token containing ``"`` (False: reference for tests).
    """

    def __init__(self, lm: LoadedModel, *, template: str = DEFAULT_TEMPLATE, top_k: int = 10,
                 lower: bool = False, bf16: bool = False, max_batch_tokens: int = 8192,
                 stop_at_quote: bool = True):
        if lm.kind != "causal":
            raise ConfigError(f"task model '{lm.name}' is a {lm.kind} model; style transfer needs a causal LM")
        check_template(template)
        if top_k < 1:
            raise ConfigError(f"style-transfer top_k must be >= 1, got {top_k}")
        self.lm, self.template, self.top_k, self.lower = lm, template, top_k, lower
        self.max_batch_tokens, self.stop_at_quote = max_batch_tokens, stop_at_quote
        self.model = cast_model(lm, torch.bfloat16).model if bf16 else lm.model
        self.tok = lm.tokenizer
        # EOS as HF's generate sees it: the model's generation config, else the tokenizer's.
        gen_config = getattr(self.model, "generation_config", None)
        eos = getattr(gen_config, "eos_token_id", None)
        eos = self.tok.eos_token_id if eos is None else eos
        eos = [] if eos is None else list(eos) if isinstance(eos, (list, tuple)) else [eos]
        self.eos_ids = torch.tensor(eos, dtype=torch.long)
        self.pad_id = next(i for i in (self.tok.pad_token_id, self.tok.eos_token_id, 0) if i is not None)
        self._limits: dict[str, int] = {}

    # -- tokens ----------------------------------------------------------------------------

    def prefix_ids(self, prompt: str, text: str) -> list[int]:
        ids = self.tok(self.template.format(prompt=prompt, input=text)).input_ids
        return ids or [self.pad_id]  # cannot happen with a quote in the template; keeps shapes valid

    def limit(self, text: str) -> int:
        """New-token limit for an input (its token count with special tokens, as the authors count)."""
        if text not in self._limits:
            self._limits[text] = max_new_tokens(len(self.tok(text).input_ids))
        return self._limits[text]

    # -- public API --------------------------------------------------------------------------

    def sample(self, prompt: str, inputs: Sequence[str], n: int, generator: torch.Generator, *,
               use_cache_sharing: bool = True) -> list[list[str]]:
        """n cleaned outputs per input for one prompt."""
        return self.sample_pairs([(prompt, x) for x in inputs], n, generator, use_cache_sharing=use_cache_sharing)

    def sample_pairs(self, pairs: Sequence[tuple[str, str]], n: int, generator: torch.Generator, *,
                     use_cache_sharing: bool = True) -> list[list[str]]:
        """n cleaned outputs per (prompt, input) pair, in sampling order."""
        ids = self.generate_ids(pairs, n, generator, use_cache_sharing=use_cache_sharing)
        flat = self.tok.batch_decode([s for per_pair in ids for s in per_pair], skip_special_tokens=True)
        texts = [clean_output(t, self.lower) for t in flat]
        return [texts[i * n:(i + 1) * n] for i in range(len(ids))]

    @torch.no_grad()
    def generate_ids(self, pairs: Sequence[tuple[str, str]], n: int, generator: torch.Generator, *,
                     use_cache_sharing: bool = True) -> list[list[list[int]]]:
        """The raw generated token ids per pair and sample, the stopping token (EOS or the token with
        the quote) included."""
        if n < 0:
            raise ValueError(f"number of samples must be >= 0, got {n}")
        pairs = list(pairs)
        # One draw per pair, always (even greedy or n = 0): the generator's state after a call depends
        # only on the number of pairs.
        seeds = [int(torch.randint(0, 2 ** 32, (1,), generator=generator)) for _ in pairs]
        prefixes = [self.prefix_ids(p, x) for p, x in pairs]
        limits = [self.limit(x) for _, x in pairs]
        out: list[list[list[int]]] = [[[] for _ in range(n)] for _ in pairs]
        for chunk in self._chunks(prefixes, limits, n):
            tokens = self._run(chunk, prefixes, limits, seeds, use_cache_sharing)
            for (i, j), toks in zip(chunk, tokens):
                out[i][j] = toks
        return out

    # -- batching ----------------------------------------------------------------------------

    def _chunks(self, prefixes: list[list[int]], limits: list[int], n: int) -> list[list[tuple[int, int]]]:
        """(pair, sample) rows grouped so that rows x (longest prefix + limit) <= max_batch_tokens;
        pairs sorted by that width so that a chunk's rows need similar numbers of columns."""
        width = [len(p) + m for p, m in zip(prefixes, limits)]
        chunks, current, widest = [], [], 0
        for i in sorted(range(len(prefixes)), key=lambda i: width[i]):
            for j in range(n):
                w = max(widest, width[i])
                if current and w * (len(current) + 1) > self.max_batch_tokens:
                    chunks.append(current)
                    current, w = [], width[i]
                current.append((i, j))
                widest = w
        if current:
            chunks.append(current)
        return chunks

    def _run(self, rows: list[tuple[int, int]], prefixes: list[list[int]], limits: list[int],
             seeds: list[int], share: bool) -> list[list[int]]:
        """Generate the chunk's rows; returns each row's new tokens."""
        device = next(self.model.parameters()).device
        # Units run the prefix: one per pair (shared) or one per row (reference).
        units = list(dict.fromkeys(i for i, _ in rows)) if share else [i for i, _ in rows]
        unit_of = {i: u for u, i in enumerate(units)}
        row_unit = torch.tensor([unit_of[i] for i, _ in rows] if share else list(range(len(rows))))
        lengths = torch.tensor([len(prefixes[i]) for i in units])
        width = int(lengths.max()) - 1  # columns of the prefixes minus their last token
        steps = max(limits[i] for i, _ in rows)
        mask = torch.ones(len(units), width + 1 + steps, dtype=torch.long)
        mask[:, :width] = torch.arange(width)[None] < (lengths - 1)[:, None]
        cache = None
        if width > 0:
            ids = torch.full((len(units), width), self.pad_id, dtype=torch.long)
            for u, i in enumerate(units):
                ids[u, : len(prefixes[i]) - 1] = torch.tensor(prefixes[i][:-1])
            cache = self.model.base_model(
                input_ids=ids.to(device), attention_mask=mask[:, :width].to(device),
                position_ids=torch.arange(width)[None].expand(len(units), -1).to(device), use_cache=True,
            ).cache
        last = torch.tensor([prefixes[i][-1] for i in units])[:, None]
        logits = self.model(input_ids=last.to(device), attention_mask=mask[:, : width + 1].to(device),
                            position_ids=(lengths - 1)[:, None].to(device), cache=cache, use_cache=True)
        cache, logits = logits.cache, logits.logits[:, -1]
        _preallocate(cache, steps)
        if share:  # the pair's keys/values and first-token logits, copied to its rows
            cache.batch_select_indices(row_unit.to(device))
            logits, mask = logits[row_unit.to(device)], mask[row_unit]
        # Per active row: chunk row index, position of its next token, limit and sampler.
        active = torch.arange(len(rows))
        base = lengths[row_unit]
        limit = torch.tensor([limits[i] for i, _ in rows])
        gens = None if self.top_k == 1 else [
            torch.Generator().manual_seed((seeds[i] + j) % 2 ** 32) for i, j in rows]
        quote = _quote_table(self.tok, logits.shape[-1]) if self.stop_at_quote else None
        out: list[list[int]] = [[] for _ in rows]
        step = 0
        while True:
            token = self._sample(logits, gens)
            for r, t in zip(active.tolist(), token.tolist()):
                out[r].append(t)
            done = torch.isin(token, self.eos_ids) | (step + 1 >= limit)
            if quote is not None:
                done |= quote[token]
            if bool(done.all()):
                break
            if bool(done.any()):  # drop stopped rows now: each costs a row of compute per step
                keep = (~done).nonzero().squeeze(1)
                cache.batch_select_indices(keep.to(device))
                active, base, limit, mask, token = active[keep], base[keep], limit[keep], mask[keep], token[keep]
                if gens is not None:
                    gens = [gens[k] for k in keep.tolist()]
            logits = self.model(input_ids=token[:, None].to(device),
                                attention_mask=mask[:, : width + 2 + step].to(device),
                                position_ids=(base + step)[:, None].to(device), cache=cache,
                                use_cache=True).logits[:, -1]
            step += 1
        return out

    def _sample(self, logits: torch.Tensor, gens: list[torch.Generator] | None) -> torch.Tensor:
        """Next token per row (CPU, long): argmax for top_k 1, else one draw per row from its own
        generator over the top-k probabilities ordered by token id."""
        if gens is None:
            return logits.argmax(-1).cpu()
        values, ids = logits.float().topk(min(self.top_k, logits.shape[-1]), dim=-1)
        ids, order = ids.sort(dim=-1)
        probs = values.gather(-1, order).softmax(-1).cpu()
        ids = ids.cpu()
        picks = torch.cat([torch.multinomial(p, 1, generator=g) for p, g in zip(probs, gens)])
        return ids.gather(1, picks[:, None]).squeeze(1)
