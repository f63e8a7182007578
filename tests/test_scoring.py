import pytest
import torch

from pinbench.data import DatasetSpec, get_dataset, parse_spec
from pinbench.errors import ConfigError
from pinbench.scoring import VerbalizerScorer, parse_template

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


@pytest.mark.parametrize("model", ["tiny_gpt2", "tiny_llama"])
def test_causal_cached_equals_uncached_and_naive(model, request):
    lm = request.getfixturevalue(model)
    scorer = VerbalizerScorer(lm, SENTIMENT, max_batch_tokens=64)  # small budget: many groups
    cached = scorer.score(PROMPTS, TEXTS)
    uncached = scorer.score(PROMPTS, TEXTS, use_cache=False)
    naive = scorer.score_naive(PROMPTS, TEXTS)
    assert cached.shape == (len(PROMPTS), len(TEXTS), 2)
    assert torch.allclose(cached.sum(-1), torch.ones(len(PROMPTS), len(TEXTS)))
    assert (cached - uncached).abs().max() < 1e-4
    assert (cached - naive).abs().max() < 1e-4
    # Prompts matter: a random model still gives different scores for different prompts.
    assert (cached[0] - cached[1]).abs().max() > 1e-6


def test_causal_cache_is_reused_across_calls(tiny_llama):
    scorer = VerbalizerScorer(tiny_llama, SENTIMENT)
    first = scorer.score(PROMPTS[:2], TEXTS)
    assert set(scorer._kv_cache) == set(TEXTS)
    cached_state = {t: c.kv[0][0].data_ptr() for t, c in scorer._kv_cache.items()}
    second = scorer.score(PROMPTS[2:], TEXTS)
    assert {t: c.kv[0][0].data_ptr() for t, c in scorer._kv_cache.items()} == cached_state
    assert torch.allclose(torch.cat([first, second]), scorer.score(PROMPTS, TEXTS, use_cache=False), atol=1e-5)


def test_causal_template_with_input_after_prompt(tiny_gpt2):
    spec = parse_spec("news", {"verbalizers": [" world", " sports"], "template": "{mask} {prompt} {input}",
                               "causal_template": "{prompt} news : {input} {mask}"}, "test")
    scorer = VerbalizerScorer(tiny_gpt2, spec)
    cached = scorer.score(PROMPTS, TEXTS)
    assert (cached - scorer.score_naive(PROMPTS, TEXTS)).abs().max() < 1e-4


def test_empty_input_without_bos_is_scored(tiny_gpt2):
    scorer = VerbalizerScorer(tiny_gpt2, SENTIMENT)
    texts = ["", "fun film", ""]
    assert (scorer.score(PROMPTS, texts) - scorer.score_naive(PROMPTS, texts)).abs().max() < 1e-4


def test_masked_lm_fast_path_matches_full_vocabulary_head(tiny_roberta):
    spec = parse_spec("toy", {"verbalizers": ["terrible", "great", "okay"], "template": "{input} {prompt} {mask} ."}, "t")
    scorer = VerbalizerScorer(tiny_roberta, spec, max_batch_tokens=50)
    ids, pos = scorer.full_ids("it was", "fun film")
    tok = tiny_roberta.tokenizer
    assert tok.convert_ids_to_tokens(ids) == ["<s>", "fun", "film", "it", "was", "<mask>", ".", "</s>"]
    assert pos == 5
    fast = scorer.score(PROMPTS, TEXTS)
    naive = scorer.score_naive(PROMPTS, TEXTS)
    assert fast.shape == (len(PROMPTS), len(TEXTS), 3)
    assert (fast - naive).abs().max() < 1e-5
    assert (fast[0] - fast[1]).abs().max() > 1e-6


def test_masked_template_with_mask_first(tiny_roberta):
    spec = parse_spec("news", {"verbalizers": ["world", "sports", "business", "tech"],
                               "template": "{mask} {prompt} {input}", "causal_template": "{input} {prompt} {mask}"}, "t")
    scorer = VerbalizerScorer(tiny_roberta, spec)
    ids, pos = scorer.full_ids("news", "team won")
    assert pos == 1 and ids[pos] == tiny_roberta.tokenizer.mask_token_id
    assert (scorer.score(PROMPTS, TEXTS) - scorer.score_naive(PROMPTS, TEXTS)).abs().max() < 1e-5


def test_long_inputs_are_truncated(tiny_gpt2):
    scorer = VerbalizerScorer(tiny_gpt2, SENTIMENT, max_input_tokens=5)
    ids, _ = scorer.full_ids("it was", " ".join(["movie"] * 50))
    assert len(ids) == 5 + 2
    assert scorer.score(["it was"], [" ".join(["movie"] * 50)]).shape == (1, 1, 2)


def test_multi_token_verbalizer_is_an_error_naming_word_and_model(tiny_gpt2):
    spec = parse_spec("toy", {"verbalizers": [" great", " not great"], "template": "{input} {prompt} {mask}"}, "t")
    with pytest.raises(ConfigError, match=r"verbalizer word ' not great' of dataset 'toy' is 2 tokens .*'tiny-gpt2'"):
        VerbalizerScorer(tiny_gpt2, spec)


def test_bf16_autocast_is_close_to_float32(tiny_llama):
    exact = VerbalizerScorer(tiny_llama, SENTIMENT).score(PROMPTS, TEXTS)
    fast = VerbalizerScorer(tiny_llama, SENTIMENT, bf16=True).score(PROMPTS, TEXTS)
    assert fast.dtype == torch.float32
    assert (exact - fast).abs().max() < 0.05


@pytest.mark.slow
def test_smollm2_cached_equals_uncached_on_sst2(smollm2, few_shot_dir):
    from pinbench.data import read_split

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
