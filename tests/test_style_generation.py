"""Style-transfer generation (pinbench/tasks/style_transfer/generation.py): cleaning, length limit,
and the batched, cache-sharing sampler against a step-by-step reference without any cache."""

from __future__ import annotations

import pytest
import torch

from conftest import SHARP, word_tokenizer
from pinbench.errors import ConfigError
from pinbench.models import LoadedModel
from pinbench.tasks.style_transfer.generation import (
    StyleGenerator,
    check_template,
    clean_output,
    max_new_tokens,
)

# A vocabulary with the quote and the sentence ends, so that samples can stop and be cut.
VOCAB = ('" . ! ? , the food was great bad service slow i love it not Great very and we will come back '
         'never again place staff rude nice').split()
PAIRS = [
    (" it was", "the food was great"),
    (" i love", "service was very slow and the staff was rude"),
    ("", "we will come back"),
]


def _frozen(model: torch.nn.Module) -> torch.nn.Module:
    model.requires_grad_(False)
    return model.eval()


def _llama(tok) -> LoadedModel:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                      eos_token_id=tok.eos_token_id, initializer_range=SHARP)
    return LoadedModel("tiny-llama-st", "causal", _frozen(LlamaForCausalLM(cfg)), tok)


def _gpt2(tok) -> LoadedModel:
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, initializer_range=SHARP)
    return LoadedModel("tiny-gpt2-st", "causal", _frozen(GPT2LMHeadModel(cfg)), tok)


@pytest.fixture(scope="module")
def tok():
    return word_tokenizer(words=VOCAB)


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def lm(request, tok) -> LoadedModel:
    """Rotary positions with grouped-query attention (like smollm2), and learned absolute positions."""
    return {"llama": _llama, "gpt2": _gpt2}[request.param](tok)


@pytest.fixture(autouse=True)
def one_thread(request):
    """Tiny models run on one thread: more only adds synchronisation, and on a busy machine waiting
    threads make each step 100x slower. The smollm2 test keeps torch's setting."""
    if request.node.get_closest_marker("slow"):
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def quote_ids(tok) -> set[int]:
    return {i for i in range(len(tok)) if '"' in tok.decode([i])}


# -- cleaning and the length limit ------------------------------------------------------------


@pytest.mark.parametrize("text, lower, expected", [
    ('the food was great." and more', False, "the food was great."),   # cut at the quote, then at "."
    ('  good food "here. yes', False, "good food"),                   # the quote cut comes first
    ('fine "no. more', False, "fine"),                                 # punctuation after the quote is gone
    ("wow? yes! ok.", False, "wow?"),                                  # the earliest of . ! ?
    ("great! really.", False, "great!"),                               # "!" before "."
    ("it was ok. great!", False, "it was ok."),                        # "." before "!"
    ("  no punctuation here \n", False, "no punctuation here"),        # none: keep all, stripped
    ("a . b", False, "a ."),                                           # cut just after, punctuation kept
    (' . x "', False, "."),                                            # strip before looking for punctuation
    ('"everything after', False, ""),                                  # quote first: empty
    ("", False, ""),
    ("   ", False, ""),
    ("Great Food. Bad", False, "Great Food."),                         # case kept
    ("Great Food. Bad", True, "great food."),                          # lowercased last
    ('Very NICE "X', True, "very nice"),
])
def test_clean_output(text, lower, expected):
    assert clean_output(text, lower) == expected


@pytest.mark.parametrize("n, expected", [(0, 10), (1, 11), (4, 14), (20, 30), (21, 32), (30, 45), (31, 47)])
def test_max_new_tokens(n, expected):
    assert max_new_tokens(n) == expected


def test_limit_counts_the_input_tokens_with_special_tokens(lm):
    gen = StyleGenerator(lm)
    assert gen.limit("the food was great") == 14  # 4 words, no special tokens
    wrapped = LoadedModel("m", "causal", lm.model, word_tokenizer(mask=True, words=VOCAB))  # <s> ... </s>
    assert StyleGenerator(wrapped).limit("the food was great") == 16


@pytest.mark.parametrize("template", ["{prompt} {input} {other}", "no fields", '{prompt} "', '{input} "',
                                      "{prompt} {input} {", "{0} {input} {prompt}"])
def test_template_must_have_prompt_and_input_only(lm, template):
    with pytest.raises(ConfigError, match="template"):
        check_template(template)
    with pytest.raises(ConfigError) as err:
        StyleGenerator(lm, template=template)
    assert repr(template) in str(err.value)


def test_template_fields_are_filled(lm, tok):
    gen = StyleGenerator(lm, template='{input} . {prompt} "')
    assert gen.prefix_ids(" it was", "the food") == tok('the food . it was "').input_ids
    assert StyleGenerator(lm).prefix_ids(" it was", "the food") == tok(' it was "the food" "').input_ids


# -- a reference without batching or caches --------------------------------------------------


def naive_generate(lm: LoadedModel, pair: tuple[str, str], top_k: int, seed: int | None,
                   template: str = '{prompt} "{input}" "') -> list[int]:
    """One sequence, every step a full forward of the whole text so far, following the documented
    rules: top-k probabilities in token-id order, one multinomial draw per token from the sample's
    own generator; stop at EOS, at a token containing a quote, or at the limit."""
    tok = lm.tokenizer
    prompt, text = pair
    ids = tok(template.format(prompt=prompt, input=text)).input_ids
    limit = max_new_tokens(len(tok(text).input_ids))
    g = None if seed is None else torch.Generator().manual_seed(seed)
    quotes, out = quote_ids(tok), []
    while len(out) < limit:
        logits = lm.model(input_ids=torch.tensor([ids + out])).logits[0, -1]
        if g is None:
            t = int(logits.argmax())
        else:
            values, index = logits.topk(top_k)
            index, order = index.sort()
            t = int(index[torch.multinomial(values[order].softmax(-1), 1, generator=g)])
        out.append(t)
        if t == tok.eos_token_id or t in quotes:
            break
    return out


def row_seeds(seed: int, n_pairs: int, n: int) -> list[list[int]]:
    """The documented seeds: one draw per pair from the caller's generator, then s + j per sample."""
    g = seeded(seed)
    pair_seeds = [int(torch.randint(0, 2 ** 32, (1,), generator=g)) for _ in range(n_pairs)]
    return [[(s + j) % 2 ** 32 for j in range(n)] for s in pair_seeds]


def test_greedy_matches_step_by_step_reference(lm):
    """Batched pairs of different lengths (padding, positions, the shared cache) give exactly the
    tokens of plain full-sequence greedy decoding."""
    got = StyleGenerator(lm, top_k=1).generate_ids(PAIRS, 2, seeded())
    for pair, samples in zip(PAIRS, got):
        expected = naive_generate(lm, pair, 1, None)
        assert samples == [expected, expected]


def test_sampling_matches_step_by_step_reference(lm):
    n, top_k = 6, 5
    got = StyleGenerator(lm, top_k=top_k).generate_ids(PAIRS, n, seeded(3))
    seeds = row_seeds(3, len(PAIRS), n)
    for pair, samples, pair_seeds in zip(PAIRS, got, seeds):
        assert samples == [naive_generate(lm, pair, top_k, s) for s in pair_seeds]
    assert len({tuple(s) for samples in got for s in samples}) > len(PAIRS)  # samples differ


# -- the shared cache ------------------------------------------------------------------------


@pytest.mark.parametrize("top_k", [1, 10])
def test_cache_sharing_agrees_with_reference_path(lm, top_k):
    gen = StyleGenerator(lm, top_k=top_k)
    shared = gen.generate_ids(PAIRS, 8, seeded(1))
    plain = gen.generate_ids(PAIRS, 8, seeded(1), use_cache_sharing=False)
    assert shared == plain
    assert gen.sample_pairs(PAIRS, 8, seeded(1)) == gen.sample_pairs(PAIRS, 8, seeded(1), use_cache_sharing=False)


def record_calls(lm: LoadedModel) -> tuple[list[tuple[int, int]], object]:
    """Shapes of the input ids of every forward pass of the model's body."""
    shapes: list[tuple[int, int]] = []

    def hook(module, args, kwargs):
        shapes.append(tuple((kwargs.get("input_ids") if "input_ids" in kwargs else args[0]).shape))

    return shapes, lm.model.base_model.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("share", [True, False])
def test_prefix_runs_once_per_pair_when_shared(lm, share):
    n = 8
    shapes, handle = record_calls(lm)
    try:
        StyleGenerator(lm).generate_ids(PAIRS, n, seeded(), use_cache_sharing=share)
    finally:
        handle.remove()
    prefill = [s for s in shapes if s[1] > 1]
    assert len(prefill) == 1  # one chunk: all pairs' prefixes in one pass
    assert prefill[0][0] == (len(PAIRS) if share else len(PAIRS) * n)
    # the last prefix token: once per pair (shared) or per sample; then all samples decode together
    assert shapes[1] == ((len(PAIRS), 1) if share else (len(PAIRS) * n, 1))
    assert len(PAIRS) < shapes[2][0] <= len(PAIRS) * n and shapes[2][1] == 1  # less any that stopped at once


# -- randomness, batching, chunking -----------------------------------------------------------


def test_same_seed_same_outputs_other_seed_other_outputs(lm):
    gen = StyleGenerator(lm)
    a = gen.sample_pairs(PAIRS, 8, seeded(0))
    assert gen.sample_pairs(PAIRS, 8, seeded(0)) == a
    assert gen.sample_pairs(PAIRS, 8, seeded(1)) != a
    assert gen.generate_ids(PAIRS, 8, seeded(1)) != gen.generate_ids(PAIRS, 8, seeded(0))


def test_generator_advances_one_draw_per_pair(lm):
    g = seeded(5)
    StyleGenerator(lm).generate_ids(PAIRS, 4, g)
    expected = seeded(5)
    for _ in PAIRS:
        torch.randint(0, 2 ** 32, (1,), generator=expected)
    assert torch.equal(g.get_state(), expected.get_state())


@pytest.mark.parametrize("top_k", [1, 10])
def test_pairs_together_equal_pairs_one_at_a_time(lm, top_k):
    gen = StyleGenerator(lm, top_k=top_k)
    together = gen.generate_ids(PAIRS, 5, seeded(7))
    g = seeded(7)
    alone = [gen.generate_ids([pair], 5, g)[0] for pair in PAIRS]
    assert together == alone


def test_chunking_keeps_outputs_and_bounds_batches(lm):
    n, budget = 8, 200
    gen = StyleGenerator(lm)
    whole = gen.generate_ids(PAIRS, n, seeded(2))
    small = StyleGenerator(lm, max_batch_tokens=budget)
    shapes, handle = record_calls(lm)
    try:
        chunked = small.generate_ids(PAIRS, n, seeded(2))
    finally:
        handle.remove()
    assert chunked == whole
    widths = [len(small.prefix_ids(*p)) + small.limit(p[1]) for p in PAIRS]
    assert len([s for s in shapes if s[1] > 1]) > 1  # several chunks
    assert max(rows for rows, _ in shapes) <= budget // min(widths)


# -- stopping ---------------------------------------------------------------------------------


def test_stops_at_quote_eos_or_limit(lm, tok):
    n, top_k = 32, len(tok)  # every token possible: quotes and EOS do get sampled
    gen = StyleGenerator(lm, top_k=top_k)
    quotes = quote_ids(tok)
    stops = {"quote": 0, "eos": 0, "limit": 0}
    for (_, text), samples in zip(PAIRS, gen.generate_ids(PAIRS, n, seeded(4))):
        limit = gen.limit(text)
        for s in samples:
            assert 1 <= len(s) <= limit
            body = s[:-1]
            assert not quotes & set(body) and tok.eos_token_id not in body  # nothing after a stop
            if s[-1] in quotes:
                stops["quote"] += 1
            elif s[-1] == tok.eos_token_id:
                stops["eos"] += 1
            else:
                assert len(s) == limit  # no stop token: ran to the limit
                stops["limit"] += 1
    assert all(stops.values()), stops  # each rule was exercised


def test_stopping_at_the_quote_does_not_change_outputs(lm, tok):
    top_k = len(tok)
    fast = StyleGenerator(lm, top_k=top_k)
    full = StyleGenerator(lm, top_k=top_k, stop_at_quote=False)
    assert fast.sample_pairs(PAIRS, 16, seeded(4)) == full.sample_pairs(PAIRS, 16, seeded(4))
    longer = sum(len(b) > len(a) for pa, pb in zip(fast.generate_ids(PAIRS, 16, seeded(4)),
                                                   full.generate_ids(PAIRS, 16, seeded(4)))
                 for a, b in zip(pa, pb))
    assert longer > 0  # the quote stop did cut some samples short


# -- outputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize("lower", [False, True])
def test_outputs_are_the_cleaned_decoded_tokens(lm, tok, lower):
    gen = StyleGenerator(lm, top_k=len(tok), lower=lower)
    ids = gen.generate_ids(PAIRS, 16, seeded(6))
    texts = gen.sample_pairs(PAIRS, 16, seeded(6))
    assert texts == [[clean_output(tok.decode(s, skip_special_tokens=True), lower) for s in per_pair]
                     for per_pair in ids]
    flat = [t for per_pair in texts for t in per_pair]
    assert not any('"' in t for t in flat)
    assert any(t.endswith((".", "!", "?")) for t in flat)
    assert any("Great" in t for t in flat) != lower  # the upper-case word survives unless lowered


@pytest.mark.parametrize("n", [0, 1, 3])
def test_n_outputs_per_pair(lm, n):
    gen = StyleGenerator(lm)
    out = gen.sample_pairs(PAIRS, n, seeded())
    assert [len(o) for o in out] == [n] * len(PAIRS)
    assert all(isinstance(t, str) for o in out for t in o)
    assert gen.sample_pairs([], n, seeded()) == []


def test_sample_is_sample_pairs_of_one_prompt(lm):
    gen = StyleGenerator(lm)
    inputs = [x for _, x in PAIRS]
    assert gen.sample(" it was", inputs, 4, seeded(9)) == gen.sample_pairs([(" it was", x) for x in inputs], 4, seeded(9))


# -- the offline task LM ----------------------------------------------------------------------


@pytest.mark.slow
def test_smollm2_greedy_matches_hf_generate(smollm2):
    """Greedy continuation equals HF's ``generate`` up to where ours stops (HF knows no quote stop)."""
    pairs = [(" Rewrite the sentence:", "ok never going back to this place again."),
             (" Make it positive:", "the host that walked us to the table and left without a word.")]
    gen = StyleGenerator(smollm2, top_k=1)
    shared = gen.generate_ids(pairs, 2, seeded())
    assert shared == gen.generate_ids(pairs, 2, seeded(), use_cache_sharing=False)
    for (prompt, text), samples in zip(pairs, shared):
        ids = torch.tensor([gen.prefix_ids(prompt, text)])
        hf = smollm2.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                    max_new_tokens=gen.limit(text), pad_token_id=smollm2.tokenizer.pad_token_id)
        hf = hf[0, ids.shape[1]:].tolist()
        assert samples[0] == samples[1] == hf[: len(samples[0])]
    texts = StyleGenerator(smollm2, top_k=10, lower=True, bf16=True).sample_pairs(pairs, 4, seeded())
    assert [len(t) for t in texts] == [4, 4] and all(t == t.lower() and '"' not in t for o in texts for t in o)
