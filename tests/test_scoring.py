import contextlib
import dataclasses

import pytest
import torch

from pinbench.tasks.classification.data import get_dataset, parse_spec
from pinbench.errors import ConfigError
from pinbench.tasks.classification.scoring import VerbalizerScorer, packed_layout, parse_template

TEXTS = ["the movie was great", "i hated the plot", "boring", "the actors were not very good and the story was awful",
         "fun film", "it is okay"]
PROMPTS = ["it was", "overall the film was really", "", "the"]
SENTIMENT = parse_spec("toy", {"verbalizers": [" terrible", " great"], "template": "{input} {prompt} {mask} ."}, "test")


def test_parse_template_moves_whitespace_onto_the_next_piece():
    pieces = parse_template("{input} {prompt} {mask} .")
    assert [(p.kind, p.lead, p.text) for p in pieces] == [
        ("input", "", ""), ("prompt", " ", ""), ("mask", " ", ""), ("literal", "", " ."),
    ]
    pieces = parse_template("Review: {input}\nSo it was {prompt}{mask}")
    assert [(p.kind, p.lead, p.text) for p in pieces] == [
        ("literal", "", "Review:"), ("input", " ", ""), ("literal", "", "\nSo it was"),
        ("prompt", " ", ""), ("mask", "", ""),
    ]


TOL = 1e-4  # cached == uncached == naive in float32


def prompt_spread(probs: torch.Tensor) -> float:
    """How far prompts move the scores: max over pairs of |p - mean over prompts of p|."""
    return float((probs - probs.mean(0, keepdim=True)).abs().max())


@pytest.mark.parametrize("model", ["sharp_gpt2", "sharp_llama"])
def test_causal_cached_equals_uncached_and_naive(model, request):
    lm = request.getfixturevalue(model)
    scorer = VerbalizerScorer(lm, SENTIMENT, max_batch_tokens=64)  # small budget: many groups
    cached = scorer.score(PROMPTS, TEXTS)
    uncached = scorer.score(PROMPTS, TEXTS, use_cache=False)
    naive = scorer.score_naive(PROMPTS, TEXTS)
    assert cached.shape == (len(PROMPTS), len(TEXTS), 2)
    assert torch.allclose(cached.sum(-1), torch.ones(len(PROMPTS), len(TEXTS)))
    assert (cached - uncached).abs().max() < TOL
    assert (cached - naive).abs().max() < TOL
    # The check has teeth: prompts move the probabilities by far more than the tolerance.
    assert prompt_spread(naive) > 1000 * TOL


@pytest.mark.parametrize("model", ["sharp_gpt2", "sharp_llama"])
@pytest.mark.parametrize("bug", ["suffix positions off by one", "prompts see each other", "prefix padding visible"])
def test_a_wrong_position_or_mask_in_the_cached_path_is_caught(model, bug, request, monkeypatch):
    """Deliberately broken layouts must move the scores far beyond the exactness tolerance."""
    from pinbench.tasks.classification import scoring

    lm = request.getfixturevalue(model)
    texts = TEXTS + ["fun"]  # prefixes of different lengths: a group has padding
    exact = VerbalizerScorer(lm, SENTIMENT).score(PROMPTS, texts, use_cache=False)
    layout = scoring.packed_layout
    if bug == "suffix positions off by one":
        def broken(prefix_lengths, blocks):
            good = layout(prefix_lengths, blocks)
            return dataclasses.replace(good, offset=good.offset + 1)
    elif bug == "prompts see each other":
        def broken(prefix_lengths, blocks):
            good = layout(prefix_lengths, blocks)
            return dataclasses.replace(good, block=torch.zeros_like(good.block))
    else:
        def broken(prefix_lengths, blocks):
            good = layout(prefix_lengths, blocks)
            return dataclasses.replace(good, prefix_lengths=torch.full_like(good.prefix_lengths, good.prefix_width))
    monkeypatch.setattr(scoring, "packed_layout", broken)
    wrong = VerbalizerScorer(lm, SENTIMENT).score(PROMPTS, texts)
    assert (wrong - exact).abs().max() > 100 * TOL


def test_packed_layout_positions_and_mask():
    layout = packed_layout([3, 1], [2, 0, 1])
    assert layout.block.tolist() == [0, 0, 2]
    assert layout.offset.tolist() == [0, 1, 0]
    assert layout.last.tolist() == [1, -1, 2]
    assert layout.positions.tolist() == [[3, 4, 3], [1, 2, 1]]
    allowed = (layout.mask(torch.float32) == 0)[:, 0].int().tolist()
    # columns: 3 prefix slots, then the 3 packed tokens
    assert allowed[0] == [[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 0], [1, 1, 1, 0, 0, 1]]
    assert allowed[1] == [[1, 0, 0, 1, 0, 0], [1, 0, 0, 1, 1, 0], [1, 0, 0, 0, 0, 1]]


def _cached_texts(scorer) -> set[str]:
    return {t for key in scorer._prefix_cache for t in key}


def _cached_pointers(scorer) -> dict:
    return {key: p.keys[0].data_ptr() for key, p in scorer._prefix_cache.items()}


def test_causal_cache_is_reused_across_calls(sharp_llama):
    scorer = VerbalizerScorer(sharp_llama, SENTIMENT)
    first = scorer.score(PROMPTS[:2], TEXTS)
    assert _cached_texts(scorer) == set(TEXTS)
    cached_state = _cached_pointers(scorer)
    second = scorer.score(PROMPTS[2:], TEXTS)
    assert _cached_pointers(scorer) == cached_state  # the same tensors: not recomputed
    assert (torch.cat([first, second]) - scorer.score(PROMPTS, TEXTS, use_cache=False)).abs().max() < TOL
    # another set of inputs in between: the prefixes of the first set are not used for it
    other = scorer.score(PROMPTS, TEXTS[3:] + TEXTS[:1])
    assert (other - scorer.score(PROMPTS, TEXTS[3:] + TEXTS[:1], use_cache=False)).abs().max() < TOL
    assert (scorer.score(PROMPTS, TEXTS) - torch.cat([first, second])).abs().max() < TOL


@contextlib.contextmanager
def _held_by_forward(scorer):
    """Measures what each forward pass of the scorer's task LM holds, from the tensors it is given:
    the input ids' rows x width plus the cached keys each row attends to (rows x cache length)."""
    held = []

    def hook(module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        cache = kwargs.get("cache")
        keys = 0
        if cache is not None and cache.layers and getattr(cache.layers[0], "keys", None) is not None:
            k = cache.layers[0].keys
            keys = k.shape[0] * k.shape[2]
        held.append(ids.numel() + keys)

    handle = scorer.body.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield held
    finally:
        handle.remove()


def _cached_prefix_tokens(scorer) -> int:
    """Tokens of keys actually held in the scorer's cache across calls (padding included)."""
    return sum(p.keys[0].shape[0] * p.keys[0].shape[2] for p in scorer._prefix_cache.values())


@pytest.mark.parametrize("model", ["sharp_gpt2", "sharp_llama"])
@pytest.mark.parametrize("prompts", [["it was"], PROMPTS, PROMPTS * 6], ids=["one", "four", "many"])
def test_memory_held_stays_within_the_budget_whatever_the_split_size(model, prompts, request):
    """A split ten times larger than one group: no forward holds more than the token budget, the
    cache keeps nothing from a call larger than its bound, and the scores stay exact."""
    lm = request.getfixturevalue(model)
    budget = 96
    texts = [f"{a} {b} {c}" for a in ("the movie", "i liked the plot and the actors", "fun")
             for b in ("was", "is not very") for c in ("great", "bad", "okay", "boring fun film", "nice")] * 2
    scorer = VerbalizerScorer(lm, SENTIMENT, max_batch_tokens=budget, max_cached_tokens=200)
    with _held_by_forward(scorer) as held:
        cached = scorer.score(prompts, texts)
    widest = max(len(scorer._prefix_ids(t)) for t in texts)
    assert len(held) >= 10  # the split is many groups
    # a group holds its padded prefixes plus, per row, the packed suffixes of one chunk of prompts
    longest_block = max(len(scorer._ids(scorer.suffix_pieces, "", p)) for p in prompts)
    assert max(held) <= max(budget, widest + longest_block)
    assert scorer.peak_held_tokens == max(held)
    assert _cached_prefix_tokens(scorer) == 0  # the call needed more than max_cached_tokens
    reference = VerbalizerScorer(lm, SENTIMENT).score(prompts, texts, use_cache=False)
    assert (cached - reference).abs().max() < TOL


def test_masked_lm_forwards_stay_within_the_budget(sharp_roberta):
    spec = parse_spec("toy", {"verbalizers": ["terrible", "great"], "template": "{input} {prompt} {mask} ."}, "t")
    texts = [" ".join(["the movie was great"] * (1 + i % 4)) for i in range(60)]
    scorer = VerbalizerScorer(sharp_roberta, spec, max_batch_tokens=80)
    with _held_by_forward(scorer) as held:
        got = scorer.score(PROMPTS, texts)
    widest = max(len(scorer.full_ids(p, t)[0]) for p in PROMPTS for t in texts)
    assert len(held) >= 10 and max(held) <= max(80, widest)
    assert (got - scorer.score_naive(PROMPTS, texts)).abs().max() < TOL


def test_perplexity_batches_hold_bounded_logits(sharp_gpt2, monkeypatch):
    """One long text among short ones: no forward computes more logit entries than the budget
    (the long text goes alone), and each text's NLL equals its NLL scored alone."""
    from pinbench import models

    vocab = sharp_gpt2.model.get_output_embeddings().weight.shape[0]
    monkeypatch.setattr(models, "MAX_LOGITS", 24 * vocab)
    encoded = [[5, 6, 7, 8]] * 12 + [list(range(5, 45))] + [[9, 10]] * 5
    shapes = []
    handle = sharp_gpt2.model.register_forward_hook(lambda m, a, out: shapes.append(tuple(out.logits.shape)))
    try:
        nll = models.mean_token_nll(sharp_gpt2, encoded, batch_size=32)
    finally:
        handle.remove()
    assert all(rows * width <= 24 or rows == 1 for rows, width, _ in shapes)
    assert (40, vocab) in [(w, v) for r, w, v in shapes if r == 1]
    alone = torch.stack([models.mean_token_nll(sharp_gpt2, [e])[0] for e in encoded])
    assert torch.allclose(nll, alone, atol=1e-5)


def test_cache_is_bounded_across_calls(sharp_llama):
    """Alternating sets of inputs that each fit the cache's bound, but not together: the cache never
    holds more than the bound and every set is scored exactly."""
    sets = [TEXTS, [t + " fun" for t in TEXTS], [t + " bad" for t in TEXTS]]
    # (prefix widths are padded to multiples of 16: a set of 6 inputs holds 96 cached tokens)
    scorer = VerbalizerScorer(sharp_llama, SENTIMENT, max_batch_tokens=64, max_cached_tokens=100)
    reference = VerbalizerScorer(sharp_llama, SENTIMENT)
    for texts in sets * 2:
        got = scorer.score(PROMPTS, texts)
        assert 0 < _cached_prefix_tokens(scorer) <= 100
        assert (got - reference.score(PROMPTS, texts, use_cache=False)).abs().max() < TOL


def test_causal_template_with_input_after_prompt(sharp_gpt2):
    spec = parse_spec("news", {"verbalizers": [" world", " sports"], "template": "{mask} {prompt} {input}",
                               "causal_template": "{prompt} news : {input} {mask}"}, "test")
    scorer = VerbalizerScorer(sharp_gpt2, spec)
    cached = scorer.score(PROMPTS, TEXTS)
    naive = scorer.score_naive(PROMPTS, TEXTS)
    assert (cached - naive).abs().max() < TOL
    assert prompt_spread(naive) > 1000 * TOL


def test_empty_input_without_bos_is_scored(sharp_gpt2):
    scorer = VerbalizerScorer(sharp_gpt2, SENTIMENT)
    texts = ["", "fun film", ""]
    naive = scorer.score_naive(PROMPTS, texts)
    assert (scorer.score(PROMPTS, texts) - naive).abs().max() < TOL
    assert prompt_spread(naive) > 1000 * TOL


def test_masked_lm_fast_path_matches_full_vocabulary_head(sharp_roberta):
    spec = parse_spec("toy", {"verbalizers": ["terrible", "great", "okay"], "template": "{input} {prompt} {mask} ."}, "t")
    scorer = VerbalizerScorer(sharp_roberta, spec, max_batch_tokens=50)
    ids, pos = scorer.full_ids("it was", "fun film")
    tok = sharp_roberta.tokenizer
    assert tok.convert_ids_to_tokens(ids) == ["<s>", "fun", "film", "it", "was", "<mask>", ".", "</s>"]
    assert pos == 5
    fast = scorer.score(PROMPTS, TEXTS)
    naive = scorer.score_naive(PROMPTS, TEXTS)
    assert fast.shape == (len(PROMPTS), len(TEXTS), 3)
    assert (fast - naive).abs().max() < TOL / 10
    assert prompt_spread(naive) > 1000 * TOL


def test_masked_template_with_mask_first(sharp_roberta):
    spec = parse_spec("news", {"verbalizers": ["world", "sports", "business", "tech"],
                               "template": "{mask} {prompt} {input}", "causal_template": "{input} {prompt} {mask}"}, "t")
    scorer = VerbalizerScorer(sharp_roberta, spec)
    ids, pos = scorer.full_ids("news", "team won")
    assert pos == 1 and ids[pos] == sharp_roberta.tokenizer.mask_token_id
    assert (scorer.score(PROMPTS, TEXTS) - scorer.score_naive(PROMPTS, TEXTS)).abs().max() < TOL / 10


def test_long_inputs_are_truncated(tiny_gpt2):
    scorer = VerbalizerScorer(tiny_gpt2, SENTIMENT, max_input_tokens=5)
    ids, _ = scorer.full_ids("it was", " ".join(["movie"] * 50))
    assert len(ids) == 5 + 2
    assert scorer.score(["it was"], [" ".join(["movie"] * 50)]).shape == (1, 1, 2)


def test_multi_token_verbalizer_is_an_error_naming_word_and_model(tiny_gpt2):
    spec = parse_spec("toy", {"verbalizers": [" great", " not great"], "template": "{input} {prompt} {mask}"}, "t")
    with pytest.raises(ConfigError, match=r"verbalizer word ' not great' of dataset 'toy' is 2 tokens .*'tiny-gpt2'"):
        VerbalizerScorer(tiny_gpt2, spec)


@pytest.mark.parametrize("model", ["sharp_llama", "sharp_roberta"])
def test_bf16_weights_stay_close_to_float32_relative_to_the_prompt_spread(model, request):
    lm = request.getfixturevalue(model)
    spec = SENTIMENT if lm.kind == "causal" else parse_spec(
        "toy", {"verbalizers": ["terrible", "great"], "template": "{input} {prompt} {mask} ."}, "t")
    exact = VerbalizerScorer(lm, spec).score(PROMPTS, TEXTS)
    fast_scorer = VerbalizerScorer(lm, spec, bf16=True)
    fast = fast_scorer.score(PROMPTS, TEXTS)
    assert fast.dtype == torch.float32
    assert next(fast_scorer.model.parameters()).dtype == torch.bfloat16
    assert next(lm.model.parameters()).dtype == torch.float32  # the shared model is not cast in place
    spread = prompt_spread(exact)
    assert spread > 0.1
    assert (exact - fast).abs().max() < 0.1 * spread
    # one bf16 copy per model, shared by every scorer
    assert VerbalizerScorer(lm, spec, bf16=True).model is fast_scorer.model


@pytest.mark.slow
def test_smollm2_cached_equals_uncached_on_sst2(smollm2, few_shot_dir):
    from pinbench.tasks.classification.data import read_split

    spec = get_dataset("sst-2")
    texts = read_split(spec, "train", 13, few_shot_dir).texts[:8]
    scorer = VerbalizerScorer(smollm2, spec)
    prompts = ["It was", "Overall, the movie felt", "", "Rate:"]
    cached = scorer.score(prompts, texts)
    uncached = scorer.score(prompts, texts, use_cache=False)
    assert (cached - uncached).abs().max() < 1e-4
    # Every verbalizer of the causal templates in the registry is one smollm2 token.
    for name in ("sst-2", "sst-5", "agnews", "subj", "trec", "yahoo"):
        VerbalizerScorer(smollm2, get_dataset(name))
    # ...but not dbpedia's: the error names the word, the dataset and the model.
    with pytest.raises(ConfigError, match=r"' Album' of dataset 'dbpedia' is 2 tokens .*'smollm2-135m'"):
        VerbalizerScorer(smollm2, get_dataset("dbpedia"))


def test_reported_splits_are_scored_exactly_while_training_rewards_use_bf16(tiny_setup, sharp_llama):
    from pinbench.tasks.classification.data import load_dataset_file
    from pinbench.tasks.classification import FewShotClassification

    _, spec_file = tiny_setup
    load_dataset_file(spec_file)
    prompts = ["it was", "overall the film was really", "the"]
    fast = FewShotClassification("toy", sharp_llama, None, 5, bf16=True)
    exact = FewShotClassification("toy", sharp_llama, None, 5, bf16=False)
    for split in ("dev", "test"):  # the numbers a user reports: exact, bit for bit
        assert torch.equal(fast.evaluate(prompts, split).probs, exact.evaluate(prompts, split).probs)
    # the training signal is the bf16 scorer's (the train split has the same rows as dev here)
    train = fast.evaluate(prompts, "train").probs
    assert not torch.equal(train, exact.evaluate(prompts, "train").probs)
    assert (train - exact.evaluate(prompts, "train").probs).abs().max() < 0.1
    # opting out scores dev like training
    loose = FewShotClassification("toy", sharp_llama, None, 5, bf16=True, exact_eval=False)
    assert torch.equal(loose.evaluate(prompts, "dev").probs, train)


# ---- the white-box path (gradient methods) ----------------------------------------------------


@pytest.mark.parametrize("model", ["sharp_gpt2", "sharp_llama", "sharp_roberta"])
def test_verbalizer_loss_of_a_prompts_own_embeddings_equals_the_scorers_cross_entropy(model, request):
    from pinbench.tasks.classification.gradients import VerbalizerLoss

    lm = request.getfixturevalue(model)
    scorer = VerbalizerScorer(lm, SENTIMENT)
    white_box = VerbalizerLoss(scorer)
    labels = [1, 0, 0, 0, 1, 1]
    for prompt in ("it was", "overall the film was really"):
        ids = lm.tokenizer(" " + prompt, add_special_tokens=False).input_ids  # the template's lead space
        embeds = white_box.vocabulary[ids].detach().clone().requires_grad_(True)
        loss = white_box.cross_entropy(embeds, TEXTS, labels)
        probs = scorer.score([prompt], TEXTS)[0]
        expected = -probs[torch.arange(len(TEXTS)), torch.tensor(labels)].log().mean()
        assert loss.item() == pytest.approx(expected.item(), rel=1e-4, abs=1e-5)
        loss.backward()
        assert embeds.grad is not None and embeds.grad.abs().sum() > 0
        # a step against the gradient lowers the loss: the gradient is the loss's
        with torch.no_grad():
            stepped = embeds - 1e-2 * embeds.grad / embeds.grad.norm()
        assert white_box.cross_entropy(stepped, TEXTS, labels).item() < loss.item()
