"""Style-transfer scorers (pinbench/tasks/style_transfer/scorers.py): BERTScore, style classifiers,
fluency/perplexity, BLEU and the aggregates. Default tests use tiny random models and hand-made
data; ``slow`` ones read /work/shared/data and the offline minilm-l6 / smollm2-135m models."""

from __future__ import annotations

import math
import os
import random

import pytest
import torch

from pinbench.errors import ConfigError, ModelLoadError
from pinbench.tasks.style_transfer import scorers as S
from conftest import WORDS, shared_data

# ---------------------------------------------------------------------------------------------
# helpers: a tiny BERT-style encoder / classifier with [CLS] ... [SEP]
# ---------------------------------------------------------------------------------------------


def bert_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    vocab = {tok: i for i, tok in enumerate(specials + list(WORDS))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                   cls_token="[CLS]", sep_token="[SEP]", model_max_length=64)


def bert_config(tok, **kw):
    from transformers import BertConfig

    return BertConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, max_position_embeddings=64, pad_token_id=tok.pad_token_id,
                      initializer_range=0.2, **kw)


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    from transformers import BertModel

    torch.manual_seed(0)
    tok = bert_tokenizer()
    path = tmp_path_factory.mktemp("tiny-bert")
    BertModel(bert_config(tok)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def tiny_classifier_dir(tmp_path_factory):
    from transformers import BertForSequenceClassification

    torch.manual_seed(1)
    tok = bert_tokenizer()
    path = tmp_path_factory.mktemp("tiny-cls")
    BertForSequenceClassification(bert_config(tok, num_labels=2)).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PINBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _unit(*v):
    t = torch.tensor(v, dtype=torch.float)
    return t / t.norm()


# ---------------------------------------------------------------------------------------------
# BERTScore
# ---------------------------------------------------------------------------------------------


def test_greedy_match_hand_example():
    # candidate: [CLS] t1 t2 [SEP]; reference: [CLS] r1 r2 r3 [SEP]; specials = (0, 0, 1)
    s = [0.0, 0.0, 1.0]
    cand = torch.tensor([[s, [1, 0, 0], [0, 2, 0], s]], dtype=torch.float)  # t2 not unit: cosine
    ref = torch.tensor([[s, [1, 0, 0], [0.6, 0.8, 0], [0, 0.6, 0.8], s]], dtype=torch.float)
    cw, rw = torch.tensor([[0, 1, 1, 0.]]), torch.tensor([[0, 1, 1, 1, 0.]])
    p, r, f = S.greedy_match(cand, torch.ones(1, 4, dtype=torch.bool), cw,
                             ref, torch.ones(1, 5, dtype=torch.bool), rw)
    # P: t1 -> 1 (r1), t2 -> 0.8 (r2): 0.9. R: r1 -> 1, r2 -> 0.8, r3 -> 0.8 (the [CLS]/[SEP]
    # of the candidate take part in the matching, as in bert_score): 2.6 / 3.
    assert p.item() == pytest.approx(0.9)
    assert r.item() == pytest.approx(2.6 / 3)
    assert f.item() == pytest.approx(2 * 0.9 * (2.6 / 3) / (0.9 + 2.6 / 3))


def test_greedy_match_ignores_padding_and_zeroes_empty():
    s = [0.0, 0.0, 1.0]
    # row 0 is short: its padded positions hold vectors that would be perfect matches
    cand = torch.tensor([[s, [1, 0, 0], s, [0, 1, 0], [0, 1, 0]],
                         [s, [1, 0, 0], [0, 1, 0], [1, 1, 0], s]], dtype=torch.float)
    cmask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    cw = torch.tensor([[0, 1, 0, 5, 5], [0, 1, 1, 1, 0]], dtype=torch.float)
    ref = torch.tensor([[s, [0, 1, 0], s, [1, 0, 0]],
                        [s, [1, 0, 0], [0, 1, 0], s]], dtype=torch.float)
    rmask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    rw = torch.tensor([[0, 1, 0, 0], [0, 1, 1, 0]], dtype=torch.float)
    p, r, f = S.greedy_match(cand, cmask, cw, ref, rmask, rw)
    assert p[0].item() == pytest.approx(0.0, abs=1e-6)  # (1,0,0) vs only (0,1,0) and specials
    assert r[0].item() == pytest.approx(0.0, abs=1e-6)
    assert f[0].item() == 0.0
    assert p[1].item() == pytest.approx((1 + 1 + math.sqrt(0.5)) / 3)  # (1,1,0) -> cos 0.707
    assert r[1].item() == pytest.approx(1.0)
    # an empty candidate ([CLS] [SEP] only: weights all 0) scores 0, not NaN
    e = torch.tensor([[s, s]], dtype=torch.float)
    out = S.greedy_match(e, torch.ones(1, 2, dtype=torch.bool), torch.zeros(1, 2),
                         ref[1:], rmask[1:], rw[1:])
    assert [t.item() for t in out] == [0.0, 0.0, 0.0]


def test_rescale_formula():
    f = torch.tensor([1.0, 0.0, 0.9])
    b = 0.8
    assert torch.allclose(S.rescale(f, b), torch.tensor([1.0, -4.0, 0.5]))
    assert S.rescale(f, None) is f
    assert S.PAPER_CONTENT == dict(model="roberta-large", layer=17, baseline=0.83122575)


def _our_hooks(model):
    """Forward hooks of ours left on the blocks (transformers 5 keeps its own capture hooks)."""
    return [h for block in model.encoder.layer for h in block._forward_hooks.values()
            if h.__module__ == S.__name__]


def _manual_f1(lm, layer, cand, ref):
    """Independent BERTScore: loops over tokens of one pair, each sentence encoded alone."""
    def states(text):
        enc = lm.tokenizer(text.strip(), return_tensors="pt")
        with torch.no_grad():
            h = lm.model(**enc, output_hidden_states=True).hidden_states[layer][0]
        ids = enc["input_ids"][0].tolist()
        special = {lm.tokenizer.cls_token_id, lm.tokenizer.sep_token_id}
        return h / h.norm(dim=-1, keepdim=True), [i not in special for i in ids]

    hc, wc = states(cand)
    hr, wr = states(ref)
    p = sum(max(float(hc[i] @ hr[j]) for j in range(len(hr))) for i in range(len(hc)) if wc[i]) / sum(wc)
    r = sum(max(float(hr[j] @ hc[i]) for i in range(len(hc))) for j in range(len(hr)) if wr[j]) / sum(wr)
    return 2 * p * r / (p + r)


def test_bert_scorer_matches_manual_computation(tiny_bert_dir):
    cands = ["it was great", "the movie was really boring and the plot was bad", "  fun film  ", "nice"]
    refs = ["it was terrible", "i liked the story", "fun film", "the actors were nice and the plot was fun"]
    for layer in (1, 2):
        scorer = S.BertScorer(tiny_bert_dir, layer=layer, batch_size=3)
        got = scorer.f1(cands, refs)
        want = [_manual_f1(scorer.lm, layer, c, r) for c, r in zip(cands, refs)]
        assert torch.allclose(got, torch.tensor(want), atol=1e-5), (layer, got, want)
    # layer 1 of 2 stops the forward pass early with a hook: it must be gone afterwards
    assert not _our_hooks(scorer.lm.model)
    # the layer matters
    assert not torch.allclose(S.BertScorer(tiny_bert_dir, layer=0).f1(cands, refs), got, atol=1e-3)


def test_bert_scorer_identity_empty_and_baseline(tiny_bert_dir):
    raw = S.BertScorer(tiny_bert_dir, layer=2)
    f = raw.f1(["the movie was great", "", "   ", "bad"], ["the movie was great", "it was bad", "ok", "bad"])
    assert f[0].item() == pytest.approx(1.0, abs=1e-5)
    assert f[1].item() == 0.0 and f[2].item() == 0.0  # empty candidates
    assert f[3].item() == pytest.approx(1.0, abs=1e-5)
    scaled = S.BertScorer(tiny_bert_dir, layer=2, baseline=0.6)
    g = scaled.f1(["the movie was great", "", "it was fun"], ["the movie was great", "bad", "the plot was bad"])
    assert g[0].item() == pytest.approx(1.0, abs=1e-5)
    assert g[1].item() == pytest.approx(-0.6 / 0.4)
    assert g[2].item() == pytest.approx((raw.f1(["it was fun"], ["the plot was bad"]).item() - 0.6) / 0.4, abs=1e-6)
    assert raw.f1([], []).shape == (0,)


def test_bert_scorer_batching_and_chunking_do_not_change_scores(tiny_bert_dir):
    rng = random.Random(0)
    words = "it was great terrible the movie plot actors boring fun".split()
    cands = [" ".join(rng.choices(words, k=rng.randint(1, 9))) for _ in range(23)]
    refs = [" ".join(rng.choices(words, k=rng.randint(1, 9))) for _ in range(23)]
    one = S.BertScorer(tiny_bert_dir, layer=2, batch_size=1)
    many = S.BertScorer(tiny_bert_dir, layer=2, batch_size=8, chunk_pairs=5)
    assert torch.allclose(one.f1(cands, refs), many.f1(cands, refs), atol=1e-5)


def test_bert_scorer_rejects_bad_settings(tiny_bert_dir):
    with pytest.raises(ConfigError):
        S.BertScorer(tiny_bert_dir, layer=3)
    with pytest.raises(ConfigError):
        S.BertScorer(tiny_bert_dir, idf=True)
    with pytest.raises(ValueError):
        S.BertScorer(tiny_bert_dir).f1(["a"], [])


def test_byte_level_tokenizers_get_a_prefix_space():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(vocab={"a": 0, "\u0120a": 1}, merges=[], unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    assert S._is_byte_level(PreTrainedTokenizerFast(tokenizer_object=bpe))
    assert not S._is_byte_level(bert_tokenizer())


# ---------------------------------------------------------------------------------------------
# Style classifiers
# ---------------------------------------------------------------------------------------------


def test_pooled_embeddings_layers(tiny_encoder):
    from pinbench.models import sentence_embeddings

    texts = ["it was great", "the movie was really boring and the plot was bad", "fun"]
    last = sentence_embeddings(tiny_encoder, texts)
    assert torch.allclose(S.pooled_embeddings(tiny_encoder, texts, None), last)
    assert torch.allclose(S.pooled_embeddings(tiny_encoder, texts, 2, batch_size=2), last, atol=1e-6)
    got = S.pooled_embeddings(tiny_encoder, texts, 1, batch_size=2)  # stops after block 1 of 2
    for i, t in enumerate(texts):
        enc = tiny_encoder.tokenizer(t, return_tensors="pt")
        with torch.no_grad():
            h = tiny_encoder.model(**enc, output_hidden_states=True).hidden_states[1][0]
        assert torch.allclose(got[i], torch.nn.functional.normalize(h.mean(0), dim=-1), atol=1e-5)
    assert not torch.allclose(got, last, atol=1e-2)
    assert not _our_hooks(tiny_encoder.model)


def test_logistic_regression_learns_separable_toy_set():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 5, generator=g)
    y = (x[:, 0] - 0.5 * x[:, 3] > 0.2).long()
    w, b = S.fit_logistic_regression(x, y, l2=1e-4)
    assert ((x @ w + b > 0).long() == y).all()
    assert w[0] > 0 and w[3] < 0
    # stronger regularisation shrinks the weights
    w2, _ = S.fit_logistic_regression(x, y, l2=1.0)
    assert w2.norm() < w.norm()
    assert S.choose_l2(x, y) in S.L2_GRID


def test_logistic_regression_matches_closed_form_optimum():
    # at the optimum, the gradient of mean BCE + l2/2 |w|^2 vanishes
    g = torch.Generator().manual_seed(1)
    x = torch.randn(100, 3, generator=g)
    y = (torch.rand(100, generator=g) < torch.sigmoid(x[:, 1])).long()
    w, b = S.fit_logistic_regression(x, y, l2=0.1)
    p = torch.sigmoid(x.double() @ w.double() + b.double())
    grad_w = x.double().T @ (p - y.double()) / 100 + 0.1 * w.double()
    grad_b = (p - y.double()).mean()
    assert grad_w.abs().max() < 1e-5 and abs(grad_b) < 1e-5


@pytest.fixture(scope="module")
def tiny_encoder(tiny_bert_dir):
    from pinbench.models import load_model

    return load_model(tiny_bert_dir, "encoder")


TOY_TEXTS = ["it was great", "really fun film", "nice story", "i liked the plot", "good actors",
             "it was terrible", "boring film", "awful story", "i hated the plot", "bad actors"]
TOY_LABELS = [1, 1, 1, 1, 1, 0, 0, 0, 0, 0]


def test_embedding_classifier_cache(cache, tiny_encoder, monkeypatch):
    fits = []
    real_fit = S.fit_logistic_regression
    monkeypatch.setattr(S, "fit_logistic_regression", lambda *a, **k: fits.append(1) or real_fit(*a, **k))
    first = S.EmbeddingStyleClassifier(TOY_TEXTS, TOY_LABELS, tiny_encoder, l2=1e-3, tag="toy")
    assert len(fits) == 1 and not first.from_cache
    assert first.path.parent == cache / "style-classifiers" and first.path.suffix == ".safetensors"
    umask = os.umask(0)
    os.umask(umask)  # written through io.atomic_path: the mode a plain open() gives, not mkstemp's 0600
    assert first.path.stat().st_mode & 0o777 == 0o666 & ~umask
    # a plain safetensors file: no pickle
    from safetensors.torch import load_file
    assert set(load_file(str(first.path))) == {"weight", "bias"}
    second = S.EmbeddingStyleClassifier(TOY_TEXTS, TOY_LABELS, tiny_encoder, l2=1e-3, tag="toy")
    assert len(fits) == 1 and second.from_cache
    assert torch.equal(first.weight, second.weight) and torch.equal(first.bias, second.bias)
    probs = second.probs(["it was great", "boring film", ""])
    assert probs.shape == (3, 2) and torch.allclose(probs.sum(1), torch.ones(3))
    assert torch.allclose(probs, first.probs(["it was great", "boring film", ""]))
    # other training data, or another pooled layer -> another key, another fit
    S.EmbeddingStyleClassifier(TOY_TEXTS[:-1] + ["bad film"], TOY_LABELS, tiny_encoder, l2=1e-3, tag="toy")
    assert len(fits) == 2
    other = S.EmbeddingStyleClassifier(TOY_TEXTS, TOY_LABELS, tiny_encoder, l2=1e-3, layer=1, tag="toy")
    assert len(fits) == 3 and other.path != first.path
    fits.pop()
    # a corrupt cache file is refitted (and rewritten readable)
    first.path.write_bytes(b"not a safetensors file")
    third = S.EmbeddingStyleClassifier(TOY_TEXTS, TOY_LABELS, tiny_encoder, l2=1e-3, tag="toy")
    assert len(fits) == 3 and not third.from_cache
    assert torch.allclose(third.weight, first.weight)
    assert set(load_file(str(first.path))) == {"weight", "bias"}
    assert not [p for p in first.path.parent.iterdir() if p.name.startswith(".")]  # no tmp left


def test_two_builders_of_one_classifier_fit_it_once(cache, tiny_encoder, monkeypatch):
    """Two trials starting together on a fresh machine need the same offline classifier: one fits
    it, the other waits on the cache entry's lock and loads the result (threads stand in for the
    processes: each opens the lock file itself, and flock locks are per open file)."""
    import threading
    import time

    fits = []
    real_fit = S.fit_logistic_regression

    def slow_fit(*a, **k):
        fits.append(1)
        time.sleep(0.5)  # the other builder arrives meanwhile
        return real_fit(*a, **k)

    monkeypatch.setattr(S, "fit_logistic_regression", slow_fit)
    built = []
    threads = [threading.Thread(target=lambda: built.append(
        S.EmbeddingStyleClassifier(TOY_TEXTS, TOY_LABELS, tiny_encoder, l2=1e-3, tag="toy-race"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(fits) == 1 and len(built) == 2
    assert sorted(c.from_cache for c in built) == [False, True]
    assert torch.equal(built[0].weight, built[1].weight)


def test_embedding_classifier_fits_toy_labels(cache, tiny_encoder):
    clf = S.EmbeddingStyleClassifier(TOY_TEXTS, TOY_LABELS, tiny_encoder, l2=1e-6, tag="toy")
    assert S.style_accuracy(clf.probs(TOY_TEXTS), torch.tensor(TOY_LABELS)) == 1.0
    with pytest.raises(ValueError):
        S.EmbeddingStyleClassifier(TOY_TEXTS, [1] * 10, tiny_encoder)


def test_target_prob_and_style_accuracy():
    probs = torch.tensor([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4], [0.2, 0.8]])
    assert torch.allclose(S.target_prob(probs, 1), torch.tensor([0.1, 0.7, 0.4, 0.8]))
    assert torch.allclose(S.target_prob(probs, torch.tensor([0, 0, 1, 1])), torch.tensor([0.9, 0.3, 0.4, 0.8]))
    assert S.style_accuracy(probs, 1) == pytest.approx(0.5)
    assert S.style_accuracy(probs, torch.tensor([0, 1, 0, 0])) == pytest.approx(0.75)


def test_hub_classifier_and_fluency(tiny_classifier_dir):
    texts = ["it was great", "boring film", "", "the the the"]
    clf = S.HubStyleClassifier(tiny_classifier_dir, batch_size=3)
    logits = clf.logits(texts)
    probs = clf.probs(texts)
    assert torch.allclose(probs, torch.softmax(logits, -1), atol=1e-6)
    swapped = S.HubStyleClassifier(tiny_classifier_dir, label_index=(1, 0))
    assert torch.allclose(swapped.probs(texts), probs.flip(1), atol=1e-6)
    assert torch.equal(S.HubFluency(tiny_classifier_dir).fluent(texts), logits.argmax(-1) == 0)
    assert torch.equal(S.HubFluency(tiny_classifier_dir, acceptable_index=1).fluent(texts), logits.argmax(-1) == 1)
    with pytest.raises(ModelLoadError):
        S.HubStyleClassifier(tiny_classifier_dir, label_index=(0, 2))


def test_hub_classifier_missing_model_names_it(tmp_path):
    missing = str(tmp_path / "no-such-classifier")
    with pytest.raises(ModelLoadError, match="no-such-classifier"):
        S.HubStyleClassifier(missing)


# ---------------------------------------------------------------------------------------------
# Offline classifier data selection
# ---------------------------------------------------------------------------------------------


def _fake_yelp(root, n=60):
    folder = root / "yelp" / "clean"
    folder.mkdir(parents=True)
    for c, word in ((0, "neg"), (1, "pos")):
        dev = [f"{word} dev {i}" for i in range(n)]
        dev[30] = dev[31] = dev[33] = f"{word} repeated"  # pool positions 14, 15 and 17
        dev[40] = f"{word} test 3"  # also a test line
        dev[41] = f"{word} dev 2"  # also a held-out dev line
        (folder / f"sentiment.dev.{c}.clean").write_text("\n".join(dev) + "\n")
        (folder / f"sentiment.test.{c}.clean").write_text("\n".join(f"{word} test {i}" for i in range(5)) + "\n")
        (folder / f"sentiment.ref.{c}.clean").write_text("\n".join(f"{word} ref {i}" for i in range(5)) + "\n")
    return folder


def test_yelp_offline_data_disjoint_and_held_out(tmp_path):
    folder = _fake_yelp(tmp_path)
    reward = S.offline_classifier_data("yelp", "reward", tmp_path)
    evals = S.offline_classifier_data("yelp", "eval", tmp_path)
    held = set()
    for c in (0, 1):
        lines = (folder / f"sentiment.dev.{c}.clean").read_text().splitlines()
        held |= set(lines[:16])
        held |= set((folder / f"sentiment.test.{c}.clean").read_text().splitlines())
        held |= set((folder / f"sentiment.ref.{c}.clean").read_text().splitlines())
        pool = lines[16:]
        # reward: the even pool positions of this label (minus held-out texts), in order
        want = [t for t in dict.fromkeys(pool[0::2]) if t not in held]
        assert [t for t, l in zip(*reward) if l == c] == want
    r_texts, e_texts = set(reward[0]), set(evals[0])
    assert r_texts and e_texts
    assert not r_texts & e_texts
    assert not (r_texts | e_texts) & held
    assert "neg repeated" in r_texts and "neg dev 35" in e_texts
    assert all(t.startswith("pos") == (l == 1) for t, l in zip(*evals))
    capped = S.offline_classifier_data("yelp", "eval", tmp_path, max_per_label=4)
    assert [l for l in capped[1]] == [0] * 4 + [1] * 4
    assert set(capped[0]) <= e_texts
    with pytest.raises(ConfigError):
        S.offline_classifier_data("yelp", "train", tmp_path)


def _fake_shakespeare(root):
    test = [("Thou art test.", 0), ("You are test.", 1), ("Yes.", 0), ("Yes.", 1)]
    for seed in S.SHAKESPEARE_SEEDS:
        folder = root / "shakespeare" / "100-shot" / f"100-{seed}"
        folder.mkdir(parents=True)
        train = [(f"thou train {seed} {i}", 0) for i in range(3)] + [(f"you train {seed} {i}", 1) for i in range(3)]
        dev = [(f"thou dev {seed} {i}", 0) for i in range(3)] + [(f"you dev {seed} {i}", 1) for i in range(3)]
        train.append(("Yes.", 0))  # a test text
        dev.append(("thou dev shared", 0))  # in every seed's dev
        dev.append(("thou train 100 0", 0))  # seed 100's first training text
        for name, rows in (("train", train), ("dev", dev), ("test", test)):
            (folder / f"{name}.tsv").write_text("text\tlabel\n" + "".join(f"{t}\t{l}\n" for t, l in rows))


def test_shakespeare_offline_data_disjoint(tmp_path):
    _fake_shakespeare(tmp_path)
    r_texts, r_labels = S.offline_classifier_data("shakespeare", "reward", tmp_path, split_seed=100)
    e_texts, e_labels = S.offline_classifier_data("shakespeare", "eval", tmp_path, split_seed=100)
    assert r_texts == [f"thou train 100 {i}" for i in range(3)] + [f"you train 100 {i}" for i in range(3)]
    assert r_labels == [0, 0, 0, 1, 1, 1]
    assert not set(r_texts) & set(e_texts)
    assert not (set(r_texts) | set(e_texts)) & {"Thou art test.", "You are test.", "Yes."}
    assert "thou train 13 0" in e_texts and "thou dev 100 1" in e_texts and "you dev 87 2" in e_texts
    assert e_texts.count("thou dev shared") == 1
    assert not any(t.startswith(("thou train 100", "you train 100")) for t in e_texts)
    with pytest.raises(ConfigError):
        S.offline_classifier_data("shakespeare", "eval", tmp_path)


# ---------------------------------------------------------------------------------------------
# Fluency, perplexity, BLEU, aggregates
# ---------------------------------------------------------------------------------------------


def test_perplexity_matches_hf_loss(sharp_gpt2, sharp_llama):
    texts = ["it was great", "the movie was really boring and the plot was bad .", "fun", "",
             "i liked the story"]
    for lm in (sharp_gpt2, sharp_llama):
        sum_nll, sum_len = 0.0, 0
        nlls = []
        for t in texts:
            ids = lm.tokenizer(t, return_tensors="pt")["input_ids"]
            if ids.shape[1] < 2:
                nlls.append(float("nan"))
                continue
            with torch.no_grad():
                loss = lm.model(input_ids=ids, labels=ids).loss.item()  # RLPrompt's _sent_nll
            nlls.append(loss)
            sum_nll += ids.shape[1] * loss
            sum_len += ids.shape[1]
        assert S.perplexity(lm, texts, batch_size=2) == pytest.approx(math.exp(sum_nll / sum_len), rel=1e-5)
        nll, lengths = S.sentence_nll(lm, texts, batch_size=2)
        assert lengths.tolist() == [3, 11, 1, 0, 4]
        assert torch.allclose(nll, torch.tensor(nlls), atol=1e-5, equal_nan=True)
    assert math.isnan(S.perplexity(sharp_gpt2, ["fun", ""]))


def test_quantile_threshold_and_calibration(cache, monkeypatch, tiny_gpt2):
    values = torch.tensor([10.0, 3, 7, 1, float("nan"), 5, 2, 9, 4, 8, 6])
    assert S.quantile_threshold(values, 0.9) == 9.0  # 9 of the 10 finite values are <= 9
    assert S.quantile_threshold(values, 0.5) == 5.0
    assert S.quantile_threshold(values, 0.95) == 10.0
    assert S.quantile_threshold(values, 1.0) == 10.0
    calls = []

    def fake(lm, texts, batch_size=32):
        calls.append(list(texts))
        return values[:len(texts)]

    monkeypatch.setattr(S, "sentence_perplexities", fake)
    human = [f"text {i}" for i in range(11)]
    assert S.calibrate_threshold(tiny_gpt2, human, 0.9) == 9.0
    assert S.calibrate_threshold(tiny_gpt2, human, 0.9) == 9.0
    assert len(calls) == 1  # cached
    assert list((cache / "style-fluency").glob("*.json"))
    assert S.calibrate_threshold(tiny_gpt2, human, 0.5) == 5.0 and len(calls) == 2
    fluency = S.PerplexityFluency(tiny_gpt2, threshold=5.0)
    assert fluency.fluent(["a", "b", "c", "d", "e", "f"]).tolist() == [False, True, False, True, False, True]


def test_perplexity_fluency_on_a_model(tiny_gpt2):
    texts = ["it was great", "the plot was bad", "fun"]
    ppl = S.sentence_perplexities(tiny_gpt2, texts)
    fluency = S.PerplexityFluency(tiny_gpt2, threshold=float(ppl[:2].max()))
    assert fluency.fluent(texts).tolist() == [True, True, False]  # 1 token: no perplexity


def test_perplexity_of_an_output_longer_than_the_models_context(tiny_gpt2):
    """An output longer than the reference LM's positions (a small GPT-2) is scored on its first
    tokens: it was cut at 1024 whatever the model, and an IndexError ended the evaluation."""
    from pinbench.models import context_length

    context = context_length(tiny_gpt2)
    assert context is not None and context < 1024
    nll, lengths = S.sentence_nll(tiny_gpt2, ["it was great", " ".join(["good"] * 3 * context)])
    assert lengths.tolist()[1] == context and torch.isfinite(nll).all()


def test_sentence_bleu_mean():
    import sacrebleu

    outputs = ["the food was great and the staff was friendly .", "completely different words here",
               "the service was slow ."]
    refs = ["the food was great and the staff was friendly .", "nothing in common at all",
            "the service was very slow ."]
    want = [100.0, 0.0, sacrebleu.sentence_bleu(outputs[2], [refs[2]]).score]
    assert 0 < want[2] < 100
    assert S.sentence_bleu_mean(outputs, refs) == pytest.approx(sum(want) / 3)
    # mean of sentence BLEU, not corpus BLEU
    assert S.sentence_bleu_mean(outputs[:2], refs[:2]) == pytest.approx(50.0)
    assert sacrebleu.corpus_bleu(outputs[:2], [refs[:2]]).score != pytest.approx(50.0)


def test_joint_and_geometric_mean():
    content = torch.tensor([80.0, 50.0, 100.0, 20.0])
    style = torch.tensor([1, 1, 0, 1])
    fluent = torch.tensor([True, False, True, True])
    assert S.joint(content, style, fluent) == pytest.approx((80 + 0 + 0 + 20) / 4)
    assert S.geometric_mean(8.0, 27.0, 64.0) == pytest.approx(24.0)  # (8*27*64)^(1/3) = 2*3*4
    assert S.geometric_mean(74.5, 94.3, 89.1) == pytest.approx((74.5 * 94.3 * 89.1) ** (1 / 3))
    assert S.geometric_mean(50.0, 0.0, 90.0) == 0.0


# ---------------------------------------------------------------------------------------------
# Slow: real data and offline models
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def style_dir():
    return shared_data("style-transfer", "yelp", "clean").parents[1]  # fails in CI when missing


def _yelp_test(style_dir):
    texts, labels = [], []
    for c in (0, 1):
        lines = (style_dir / "yelp" / "clean" / f"sentiment.test.{c}.clean").read_text().splitlines()
        texts += [t.strip() for t in lines]
        labels += [c] * len(lines)
    return texts, torch.tensor(labels)


@pytest.mark.slow
def test_minilm_bertscore_and_baseline(style_dir):
    scorer = S.BertScorer(**S.OFFLINE_CONTENT)
    f = scorer.f1(["the food was great .", "", "the food was great ."],
                  ["the food was great .", "the food was great .", "the food was terrible ."])
    assert f[0].item() == pytest.approx(1.0, abs=1e-5)
    assert f[1].item() == pytest.approx(-S.MINILM_BASELINE / (1 - S.MINILM_BASELINE))
    assert 0.3 < f[2].item() < 1.0
    # the constant reproduces (on a tenth of the pairs: within sampling noise)
    assert S.compute_baseline(style_dir, pairs=2000) == pytest.approx(S.MINILM_BASELINE, abs=0.01)


@pytest.mark.slow
def test_offline_yelp_classifiers_accuracy(style_dir):
    """The offline classifiers' recipe (each role's lines of the dev pool, minilm layer 3, L2 by
    cross-validation) on the 1,000 Yelp test lines, built from 1,000 lines per style: a fifth of
    the default (:data:`S.YELP_MAX_PER_LABEL`), the same code path, a sixth of the time. Measured:
    .92 / .93 here, .944 / .937 at the default size (docs/tasks/style-transfer.md)."""
    texts, labels = _yelp_test(style_dir)
    for role in S.ROLES:
        clf = S.offline_style_classifier("yelp", role, style_dir, max_per_label=1000)
        assert clf.n_train == 2000, role
        assert S.style_accuracy(clf.probs(texts), labels) >= 0.90, role


@pytest.mark.slow
def test_perplexity_fluency_separates_shuffled_sentences(style_dir, smollm2):
    texts, _ = _yelp_test(style_dir)
    texts = texts[::10]
    threshold = S.calibrate_threshold(smollm2, texts, 0.9)
    fluency = S.PerplexityFluency(smollm2, threshold)
    assert fluency.fluent(texts).float().mean() >= 0.9
    rng = random.Random(0)
    shuffled = [" ".join(rng.sample(t.split(), len(t.split()))) for t in texts if len(t.split()) >= 6]
    assert fluency.fluent(shuffled).float().mean() < 0.6
