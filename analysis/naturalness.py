"""How natural a prompt is: its perplexity under a reference LM and token-frequency statistics.

Per prompt (text, plus the policy's token ids where the results have them):

    perplexity             exp(mean NLL of the prompt's tokens) under the reference LM. The first
                           token is conditioned on a document-start token, ``context_token``: the
                           tokenizer's BOS when it adds one itself (Llama, OPT), else
                           ``<|endoftext|>`` when the vocabulary has it (GPT-2, SmolLM2: their
                           pretraining documents are separated by it), else the EOS token; with
                           none of these the first token is not scored.
    zipf_mean, zipf_min    Zipf frequency (log10 per billion words; wordfreq, English) of the
                           prompt's words (wordfreq's tokenizer: punctuation is not a word); NaN
                           without words.
    dictionary_word_share  share of those words with Zipf > 0 (wordfreq knows them).
    fragment_share         share of the policy tokenizer's tokens that are word pieces (part of a
                           longer word, or not a dictionary word) or byte fragments (a piece of a
                           UTF-8 character) rather than whole words; punctuation and digits count
                           as neither.
    repeated_token_rate    1 - distinct tokens / tokens.
    non_ascii_share        share of the prompt's non-space characters outside ASCII.

Values are computed once per (prompt, reference LM, policy LM) and cached in
``naturalness.parquet`` in each results directory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import wordfreq

from pinbench.models import mean_token_nll

from .load import Results, Store

CACHE_FILE = "naturalness.parquet"
CACHE_VERSION = 1
KEY = ("prompt", "reference_lm", "policy_lm")
METRICS = ("perplexity", "zipf_mean", "zipf_min", "dictionary_word_share", "fragment_share",
           "repeated_token_rate", "non_ascii_share")


# ---------------------------------------------------------------------------------------------
# Perplexity
# ---------------------------------------------------------------------------------------------


def context_token(tokenizer) -> tuple[int | None, str]:
    """The document-start token that conditions a prompt's first token (see the module docstring)."""
    probe = tokenizer("a", add_special_tokens=True).input_ids
    if tokenizer.bos_token_id is not None and probe and probe[0] == tokenizer.bos_token_id:
        return tokenizer.bos_token_id, tokenizer.bos_token
    vocab = tokenizer.get_vocab()
    if "<|endoftext|>" in vocab:
        return vocab["<|endoftext|>"], "<|endoftext|>"
    if tokenizer.eos_token_id is not None:
        return tokenizer.eos_token_id, tokenizer.eos_token
    return None, ""


MAX_PROMPT_CHARS = 10_000  # naturalness of a longer prompt is measured on its start
MAX_PROMPT_TOKENS = 1024  # and its perplexity on at most this many tokens


def perplexities(texts: list[str], lm, batch_size: int = 64) -> np.ndarray:
    """Perplexity of each text under the causal ``lm`` (a pinbench LoadedModel); NaN where no token
    can be scored (an empty prompt, or one token and no context token). ``mean_token_nll`` runs
    without gradients; torch is imported here, so a report whose metrics are cached loads none."""
    import torch

    tok = lm.tokenizer
    ctx, _ = context_token(tok)
    config = lm.model.config
    context = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    limit = min(MAX_PROMPT_TOKENS, context - 1 if context else MAX_PROMPT_TOKENS)  # - 1: the context token
    encoded = [([ctx] if ctx is not None else []) + tok(t, add_special_tokens=False).input_ids[:limit] for t in texts]
    return torch.exp(mean_token_nll(lm, encoded, batch_size)).double().numpy()


# ---------------------------------------------------------------------------------------------
# Token-frequency statistics
# ---------------------------------------------------------------------------------------------


def word_stats(text: str) -> dict:
    words = wordfreq.tokenize(text, "en")
    if not words:
        return {"zipf_mean": np.nan, "zipf_min": np.nan, "dictionary_word_share": np.nan, "n_words": 0}
    z = np.array([wordfreq.zipf_frequency(w, "en") for w in words])
    return {"zipf_mean": float(z.mean()), "zipf_min": float(z.min()),
            "dictionary_word_share": float((z > 0).mean()), "n_words": len(words)}


def _is_word_char(ch: str) -> bool:
    return ch.isalpha() or ch == "'"


def token_kinds(token_ids: list[int], tokenizer) -> list[str]:
    """``word``, ``piece``, ``byte`` or ``other`` for each token. A token's text is read off the
    decoded prefix (so SentencePiece's and byte-level BPE's space markers both work)."""
    texts, prev = [], ""
    for i in range(len(token_ids)):
        cur = tokenizer.decode(token_ids[:i + 1])
        texts.append(cur[len(prev):] if cur.startswith(prev) else tokenizer.decode(token_ids[i:i + 1]))
        prev = cur
    kinds = []
    for i, (tid, text) in enumerate(zip(token_ids, texts)):
        core = text.strip()
        if "\ufffd" in tokenizer.decode([tid]):
            kinds.append("byte")
        elif not core or not all(_is_word_char(c) for c in core):
            kinds.append("other")
        else:
            starts = text[0].isspace() or i == 0 or not _is_word_char(texts[i - 1][-1:] or " ")
            nxt = texts[i + 1] if i + 1 < len(texts) else " "
            continues = bool(nxt) and _is_word_char(nxt[0])
            whole = starts and not continues and wordfreq.zipf_frequency(core.lower(), "en") > 0
            kinds.append("word" if whole else "piece")
    return kinds


def token_stats(text: str, token_ids: list[int] | None, tokenizer) -> dict:
    """Fragment share and repeated-token rate over the policy tokenizer's tokens (the ids the policy
    produced where given, else the text re-tokenized), plus the non-ASCII share of the text."""
    chars = [c for c in text if not c.isspace()]
    stats = {"non_ascii_share": float(np.mean([ord(c) > 127 for c in chars])) if chars else np.nan,
             "fragment_share": np.nan, "repeated_token_rate": np.nan, "n_tokens": np.nan}
    if tokenizer is None:
        return stats
    ids = list(token_ids) if token_ids is not None and len(token_ids) else \
        tokenizer(text, add_special_tokens=False).input_ids
    if not ids:
        return stats
    kinds = token_kinds(ids, tokenizer)
    stats.update(fragment_share=sum(k in ("piece", "byte") for k in kinds) / len(ids),
                 repeated_token_rate=1 - len(set(ids)) / len(ids), n_tokens=len(ids))
    return stats


# ---------------------------------------------------------------------------------------------
# Per-results computation with a cache
# ---------------------------------------------------------------------------------------------


@dataclass
class NaturalnessOptions:
    reference_lm: str = "smollm2-135m"
    """Causal LM for perplexity: an offline alias, a hub id (RLPrompt used gpt2-xl) or a directory."""
    device: str = "cpu"
    dtype: str = "float32"
    trust_remote_code: bool = False
    batch_size: int = 64


def _load_cache(store: Store) -> pd.DataFrame:
    if not store.exists(CACHE_FILE):
        return pd.DataFrame()
    frame = store.read(CACHE_FILE, "naturalness cache", "; delete it to recompute")
    if frame.get("cache_version", pd.Series([CACHE_VERSION])).ne(CACHE_VERSION).any():
        return pd.DataFrame()  # written by another pinbench version: recompute
    return frame


def _policy_tokenizer(name: str, warnings: list[str]):
    from transformers import AutoTokenizer

    from pinbench.errors import PinbenchError
    from pinbench.models import resolve_path

    try:
        return AutoTokenizer.from_pretrained(resolve_path(name, "causal"))
    except (OSError, ValueError, PinbenchError) as exc:
        warnings.append(f"policy tokenizer '{name}' could not be loaded ({str(exc).splitlines()[0]}); "
                        "fragment share and repeated-token rate are left empty for its prompts")
        return None


def prompt_tokenizers(trials: pd.DataFrame) -> pd.Series:
    """The tokenizer each trial's prompt tokens came from ("" for text-only prompts)."""
    return trials["prompt_tokenizer"].fillna("").astype(str)


def prompts_to_score(results: Results) -> pd.DataFrame:
    """The unique (store, prompt, policy_lm) of every trial's best prompt, with its token ids."""
    trials = results.completed()
    trials = trials[trials["best_prompt"].notna()]
    ids = trials["best_token_ids"] if "best_token_ids" in trials.columns else pd.Series(None, index=trials.index)
    frame = pd.DataFrame({"store": trials["store"], "prompt": trials["best_prompt"].astype(str),
                          "policy_lm": prompt_tokenizers(trials), "token_ids": ids})
    return frame.drop_duplicates(subset=["store", "prompt", "policy_lm"]).reset_index(drop=True)


def compute(prompts: pd.DataFrame, options: NaturalnessOptions, warnings: list[str] | None = None) -> pd.DataFrame:
    """Naturalness rows for ``prompts`` (columns prompt, policy_lm, token_ids)."""
    from pinbench.models import load_model

    warnings = warnings if warnings is not None else []
    if not len(prompts):
        return pd.DataFrame(columns=[*KEY, *METRICS])
    lm = load_model(options.reference_lm, "causal", dtype=options.dtype, device=options.device,
                    trust_remote_code=options.trust_remote_code)
    _, ctx_text = context_token(lm.tokenizer)
    # a prompt is a few dozen tokens; a huge one (a broken method, a hand-edited store) is measured
    # on its start, so the report's time and memory stay bounded
    texts = [str(p)[:MAX_PROMPT_CHARS] for p in prompts["prompt"]]
    long = sum(len(str(p)) > MAX_PROMPT_CHARS for p in prompts["prompt"])
    if long:
        warnings.append(f"{long} prompt(s) longer than {MAX_PROMPT_CHARS:,} characters: their naturalness is "
                        f"measured on the first {MAX_PROMPT_CHARS:,}")
    ppl = perplexities(texts, lm, options.batch_size)
    # A prompt with no tokenizer recorded (a method that writes text) is tokenised by the reference LM.
    tokenizers = {name: _policy_tokenizer(name, warnings) if name else lm.tokenizer
                  for name in prompts["policy_lm"].unique()}
    rows = []
    for (_, p), text, value in zip(prompts.iterrows(), texts, ppl):
        ids = p["token_ids"]
        ids = [int(i) for i in ids][:MAX_PROMPT_CHARS] if isinstance(ids, (list, tuple, np.ndarray)) else None
        rows.append({"prompt": p["prompt"], "reference_lm": options.reference_lm, "policy_lm": p["policy_lm"],
                     "perplexity": float(value), "context_token": ctx_text,
                     **word_stats(text), **token_stats(text, ids, tokenizers[p["policy_lm"]])})
    frame = pd.DataFrame(rows)
    frame.insert(0, "cache_version", CACHE_VERSION)
    return frame


@dataclass
class NaturalnessRun:
    table: pd.DataFrame
    """One row per unique (prompt, reference_lm, policy_lm)."""
    computed: int
    """How many prompts were scored now."""
    cached: int
    """How many came from the stores' caches."""
    warnings: list[str]


def naturalness(results: Results, options: NaturalnessOptions | None = None, use_cache: bool = True) -> NaturalnessRun:
    """Naturalness of every trial's best prompt: look prompts up in the stores' caches (unless
    ``use_cache`` is off), compute the rest, and add them to each store's cache (atomically;
    rows of other reference LMs are kept)."""
    options = options or NaturalnessOptions()
    key = list(KEY)
    wanted = prompts_to_score(results).assign(reference_lm=options.reference_lm)
    caches = {s.label: _load_cache(s) for s in results.stores}
    known = pd.concat([c for c in caches.values() if len(c)] + [pd.DataFrame(columns=key)], ignore_index=True)
    known = known[known["reference_lm"] == options.reference_lm].drop_duplicates(subset=key)
    if not use_cache:
        known = known.iloc[:0]
    have = set(map(tuple, known[key].to_numpy().tolist()))
    todo = wanted[[tuple(r) not in have for r in wanted[key].to_numpy().tolist()]]
    warnings: list[str] = []
    fresh = compute(todo.drop_duplicates(subset=["prompt", "policy_lm"]), options, warnings)
    table = pd.concat([f for f in (known, fresh) if len(f)] or [pd.DataFrame(columns=[*key, *METRICS])],
                      ignore_index=True).drop_duplicates(subset=key, keep="last").reset_index(drop=True)
    if len(fresh):
        for store in results.stores:
            mine = table.merge(wanted.loc[wanted["store"] == store.label, key].drop_duplicates(), on=key)
            if len(mine):
                merged = pd.concat([f for f in (caches[store.label], mine) if len(f)], ignore_index=True)
                try:  # a cache: a store that may be read but not written still gets its report
                    store.write(CACHE_FILE, merged.drop_duplicates(subset=key, keep="last"))
                except OSError as exc:
                    warnings.append(f"naturalness cache not saved in {store.display(CACHE_FILE)} "
                                    f"({exc.strerror or exc}); the next report computes these prompts again")
    needed = len(wanted.drop_duplicates(subset=["prompt", "policy_lm"]))
    return NaturalnessRun(table, len(fresh), needed - len(fresh), warnings)
