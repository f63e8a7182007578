"""The style-transfer task: data layout, pairing, the bootstrapped-max reward, the evaluation's
selection and aggregates, checkpoints, and a few training steps end to end with tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pinbench.errors import ConfigError, DataError
from pinbench.run import make_spec
from pinbench.tasks.style_transfer.data import read_split
from pinbench.tasks.style_transfer.task import (StyleTransfer, StyleTransferConfig, block_max_mean, pair_inputs)

from conftest import _frozen, word_tokenizer

# Sample i of every (prompt, input) gets these BERTScore F1s and P(target): content (clipped, x100)
# = 50, 0, 90, 10; style = 20, 80, 40, 0; reward (c + s) / 2 = 35, 40, 65, 5. Prompt "b" adds 0.1 to
# P(target): +5 on every reward.
F1 = [0.5, -0.2, 0.9, 0.1]
P_TARGET = [0.2, 0.8, 0.4, 0.0]
OFFSET = {"a": 0.0, "b": 0.1}


class FakeGenerator:
    """Output i of pair (p, x) is the text "p|x|i"; records the pairs it was asked for."""

    def __init__(self):
        self.calls = []

    def sample_pairs(self, pairs, n, generator):
        self.calls.append(list(pairs))
        return [[f"{p}|{x}|{i}" for i in range(n)] for p, x in pairs]


class FakeContent:
    def f1(self, candidates, references):
        out = []
        for c, r in zip(candidates, references):
            p, x, i = c.split("|") if c.count("|") == 2 else ("", "", None)
            assert i is None or x == r  # content is scored against the sample's own input
            out.append(F1[int(i)] if i is not None else 1.0)
        return torch.tensor(out)


class FakeStyle:
    """P(target = 1) from the sample index and the prompt's offset; "" and other texts: 0.5."""

    def probs(self, texts):
        p1 = []
        for t in texts:
            parts = t.split("|")
            p1.append(P_TARGET[int(parts[2])] + OFFSET[parts[0]] if len(parts) == 3 else 0.5)
        p1 = torch.tensor(p1)
        return torch.stack([1 - p1, p1], -1)


@pytest.fixture
def yelp_dir(tmp_path) -> Path:
    root = tmp_path / "style"
    folder = root / "yelp" / "clean"
    folder.mkdir(parents=True)
    for label in (0, 1):
        (folder / f"sentiment.dev.{label}.clean").write_text("\n".join(f"dev{label} line {i}" for i in range(20)) + "\n")
        (folder / f"sentiment.test.{label}.clean").write_text("\n".join(f"test{label} {i}" for i in range(3)) + "\n")
        (folder / f"sentiment.ref.{label}.clean").write_text("\n".join(f"ref{label} {i}" for i in range(3)) + "\n")
    return root


def make_task(data_dir, **fields) -> tuple[StyleTransfer, FakeGenerator]:
    config = StyleTransferConfig(data_dir=str(data_dir), num_samples=2, num_bootstraps=2, **fields)
    gen = FakeGenerator()
    return StyleTransfer(config, gen, FakeContent(), FakeStyle(), seed=0), gen


# -- data ------------------------------------------------------------------------------------


def test_yelp_holds_out_the_first_16_dev_lines_and_trains_on_the_rest(yelp_dir):
    dev = read_split("yelp", "0_to_1", "dev", yelp_dir)
    train = read_split("yelp", "0_to_1", "train", yelp_dir)
    assert dev.inputs == tuple(f"dev0 line {i}" for i in range(16))
    assert train.inputs == tuple(f"dev0 line {i}" for i in range(16, 20))
    assert (dev.source, dev.target) == (0, 1)
    test = read_split("yelp", "1_to_0", "test", yelp_dir, test_size=2)
    assert test.inputs == ("test1 0", "test1 1") and test.references == ("ref1 0", "ref1 1")


def test_shakespeare_references_are_the_parallel_test_half(tmp_path):
    folder = tmp_path / "shakespeare" / "100-shot" / "100-13"
    folder.mkdir(parents=True)
    # the files are CSV-quoted as pandas writes them: a text with quotes is "..."" ...""..."
    rows = ('text\tlabel\nthou art\t0\nyou are\t1\n"Yea, "" quoth he, ""Fall\'st?"\t0\n'
            '"Yes, "" he said, ""You fall?"\t1\nNA\t0\nno\t1\n')
    for split in ("train", "dev", "test"):
        (folder / f"{split}.tsv").write_text(rows)
    test = read_split("shakespeare", "1_to_0", "test", tmp_path, split_seed=13)
    assert test.inputs == ("you are", 'Yes, " he said, "You fall?', "no")
    assert test.references == ("thou art", 'Yea, " quoth he, "Fall\'st?', "NA")
    assert read_split("shakespeare", "0_to_1", "dev", tmp_path, split_seed=13, dev_size=2).inputs == \
        ("thou art", 'Yea, " quoth he, "Fall\'st?')


def test_missing_files_and_bad_directions_are_named(tmp_path, yelp_dir, monkeypatch):
    with pytest.raises(DataError, match="sentiment.dev.0.clean"):
        read_split("yelp", "0_to_1", "dev", tmp_path)
    with pytest.raises(ConfigError, match="2_to_0"):
        read_split("yelp", "2_to_0", "dev", yelp_dir)
    monkeypatch.setenv("PINBENCH_DATA_DIR", str(tmp_path))  # no data directory given: the data rule's places
    with pytest.raises(DataError, match="'style-transfer/yelp/clean' not found.*pinbench data download yelp"):
        read_split("yelp", "0_to_1", "dev", None)
    with pytest.raises(ConfigError, match="num_samples"):
        StyleTransferConfig(num_samples=0)


# -- reward ----------------------------------------------------------------------------------


def test_block_max_mean_cuts_generation_order_into_contiguous_blocks():
    rewards = torch.tensor([[35.0, 40.0, 65.0, 5.0], [1.0, 9.0, 3.0, 2.0]])
    maxima, mean = block_max_mean(rewards, 2)
    assert maxima.tolist() == [[40.0, 65.0], [9.0, 3.0]]
    assert mean.tolist() == [52.5, 6.0]
    # two blocks of two is not four blocks of one (the mean) nor one block (the max)
    assert block_max_mean(rewards, 4)[1].tolist() == [36.25, 3.75]
    assert block_max_mean(rewards, 1)[1].tolist() == [65.0, 9.0]


def test_prompts_are_split_evenly_among_the_steps_inputs():
    assert pair_inputs(4, 2) == [0, 0, 1, 1]
    assert pair_inputs(16, 2) == [0] * 8 + [1] * 8
    assert pair_inputs(3, 2) == [0, 0, 1]


def test_training_reward_pairs_each_prompt_with_one_input_and_streams_inputs(yelp_dir):
    task, gen = make_task(yelp_dir)
    out = task.score(["a", "b", "a", "b"], "train")
    x1, x2 = "dev0 line 16", "dev0 line 17"
    assert gen.calls[-1] == [("a", x1), ("b", x1), ("a", x2), ("b", x2)]
    assert out["reward_group"].tolist() == [0, 0, 1, 1]
    assert out["reward_draws"].tolist() == [[40, 65], [45, 70], [40, 65], [45, 70]]
    assert out["reward"].tolist() == [52.5, 57.5, 52.5, 57.5]
    assert out["content"].tolist() == pytest.approx([37.5] * 4)
    # the stream goes on (lines 18, 19) and wraps around the 4-line pool
    task.score(["a", "b"], "train")
    assert [x for _, x in gen.calls[-1]] == ["dev0 line 18", "dev0 line 19"]
    task.score(["a", "b"], "train")
    assert [x for _, x in gen.calls[-1]] == ["dev0 line 16", "dev0 line 17"]


def test_dev_scores_every_prompt_on_every_dev_input(yelp_dir):
    task, gen = make_task(yelp_dir, dev_size=3)
    out = task.score(["a", "b"], "dev")
    assert len(gen.calls[-1]) == 2 * 3
    assert out["reward"].tolist() == [52.5, 57.5]
    # each dev input's best sample is sample 2 (reward 65 / 70)
    assert out["outputs"][0] == [f"a|dev0 line {i}|2" for i in range(3)]


def test_test_outputs_are_the_best_nonempty_sample_by_training_reward(yelp_dir):
    task, _ = make_task(yelp_dir)
    samples = [["a|x|0", "a|x|1", "", "a|x|3"], ["", ""]]
    chosen, reward = task.select_outputs(samples, ["x", "y"])
    assert chosen == ["a|x|1", ""]  # rewards 35, 40, -, 5; all-empty -> ""
    assert reward[0].item() == pytest.approx(40.0)
    # the empty output still gets its reward: content of "" is F1 1.0 in the fake, style 0.5
    assert reward[1].item() == pytest.approx((100 + 50) / 2)


def test_evaluate_outputs_pools_per_sentence_values(yelp_dir, tiny_gpt2):
    class Judge:  # style-correct iff the text contains "good"; fluent iff it has no "xx"
        def probs(self, texts):
            p = torch.tensor([1.0 if "good" in t else 0.0 for t in texts])
            return torch.stack([1 - p, p], -1)

        def fluent(self, texts):
            return torch.tensor(["xx" not in t for t in texts])

    class Content:
        def f1(self, candidates, references):
            return torch.tensor([0.8, 0.5, -0.3])

    config = StyleTransferConfig(data_dir=str(yelp_dir))
    task = StyleTransfer(config, FakeGenerator(), Content(), FakeStyle(), eval_style=Judge(), fluency=Judge(),
                         reference_lm=tiny_gpt2)
    m = task.evaluate_outputs(["good xx", "good", "bad"])
    # content 80, 50, 0 -> 43.33; style-correct 1, 1, 0 -> 66.7 %; fluent 0, 1, 1 -> 66.7 %
    assert m["content"] == pytest.approx(130 / 3)
    assert m["style"] == pytest.approx(200 / 3) and m["fluency"] == pytest.approx(200 / 3)
    assert m["joint"] == pytest.approx((0.8 * 1 * 0 + 0.5 * 1 * 1 + 0) / 3 * 100)
    assert m["gm"] == pytest.approx((130 / 3 * 200 / 3 * 200 / 3) ** (1 / 3))
    assert m["style_correct_each"] == [1.0, 1.0, 0.0] and m["outputs"] == ["good xx", "good", "bad"]
    assert m["inputs"] == ["test0 0", "test0 1", "test0 2"]
    with pytest.raises(ConfigError, match="2 outputs for 3 test inputs"):
        task.evaluate_outputs(["a", "b"])


def test_task_state_resumes_the_input_stream_and_the_samples(yelp_dir):
    task, gen = make_task(yelp_dir)
    task.score(["a", "b"], "train")
    state = task.state_dict()
    rng_next = task._rng("train").initial_seed()
    again, gen2 = make_task(yelp_dir)
    again.load_state_dict(state)
    assert again._rng("train").initial_seed() == rng_next
    task.score(["a", "b"], "train")
    again.score(["a", "b"], "train")
    assert gen.calls[-1] == gen2.calls[-1]
    # the test split draws from one fixed seed: the same prompt gets the same outputs every time
    assert task._rng("test").initial_seed() == task._rng("test").initial_seed()


# -- end to end with tiny models ---------------------------------------------------------------

QUOTE_WORDS = ['"', "great", "terrible", "food", "service", "the", "was", "is", "good", "bad", ".", "it",
               "very", "not", "place", "love", "hate", "dev0", "dev1", "line", "test0", "test1", "ref0", "ref1",
               *[str(i) for i in range(20)]]


@pytest.fixture(scope="module")
def quote_lm():
    from transformers import GPT2Config, GPT2LMHeadModel

    from pinbench.models import LoadedModel

    torch.manual_seed(0)
    tok = word_tokenizer(words=QUOTE_WORDS)
    cfg = GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=32, n_layer=2, n_head=2,
                     bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, initializer_range=0.2)
    return LoadedModel("tiny-quote-gpt2", "causal", _frozen(GPT2LMHeadModel(cfg)), tok)


@pytest.mark.parametrize("preset", ["pin", "rlprompt"])
def test_a_few_training_steps_end_to_end(yelp_dir, quote_lm, tiny_gpt2, preset):
    from pinbench.methods.rl.trainer import RLMethod
    from pinbench.tasks.style_transfer.generation import StyleGenerator

    spec = make_spec({"task": "style_transfer", "preset": preset, "task.data_dir": str(yelp_dir),
                      "task.num_samples": 2, "task.num_bootstraps": 2, "task.dev_size": 2, "task.test_size": 3,
                      "task.test_samples": 2, "method.prompts_per_step": 4, "method.replay_batch": 4,
                      "method.prompt_length": 2, "method.mlp_hidden": 16, "method.top_k": None,
                      "run.steps": 4, "run.eval_every": 2, "run.seed": 0})
    assert spec.method_config.reward_scale == (1.0 if preset == "pin" else 100.0)
    config = spec.task_config

    class Judge:
        def probs(self, texts):
            p = torch.tensor([0.9 if "great" in t else 0.1 for t in texts])
            return torch.stack([1 - p, p], -1)

        def fluent(self, texts):
            return torch.tensor([len(t) > 0 for t in texts])

    class Content:  # word overlap with the input, as a stand-in for BERTScore
        def f1(self, candidates, references):
            return torch.tensor([len(set(c.split()) & set(r.split())) / max(len(set(r.split())), 1)
                                 for c, r in zip(candidates, references)])

    task = StyleTransfer(config, StyleGenerator(quote_lm, top_k=config.gen_top_k, lower=True), Content(), Judge(),
                         seed=0, eval_style=Judge(), fluency=Judge(), reference_lm=quote_lm)
    trainer = RLMethod(spec, task=task, policy_lm=tiny_gpt2)
    before = [p.detach().clone() for p in trainer.policy.mlp.parameters()]
    result = trainer.train()
    changed = any(not torch.equal(a, b) for a, b in zip(before, trainer.policy.mlp.parameters()))
    assert changed  # the Q head learned from the shaped style-transfer rewards
    assert result.steps_done == 4 and len(result.history) == 4
    assert all("dev_reward" in r for r in result.history if r["step"] % 2 == 0)
    assert set(result.test) >= {"test_content", "test_style", "test_fluency", "test_joint", "test_gm", "test_bleu"}
    best = [p for p in result.prompts if p["source"] == "best"][-1]
    assert len(best["test_outputs"]) == 3 and len(best["test_content_each"]) == 3
    assert not any(isinstance(v, list) for v in result.test.values())
    # the same seed gives the same prompts and numbers
    task2 = StyleTransfer(config, StyleGenerator(quote_lm, top_k=config.gen_top_k, lower=True), Content(), Judge(),
                          seed=0, eval_style=Judge(), fluency=Judge(), reference_lm=quote_lm)
    again = RLMethod(spec, task=task2, policy_lm=tiny_gpt2).train()
    assert [p["prompt"] for p in again.prompts] == [p["prompt"] for p in result.prompts]
    assert again.test == result.test


def test_presets_carry_the_style_transfer_settings():
    pin = make_spec({"task": "style_transfer", "preset": "pin"})
    rl = make_spec({"task": "style_transfer", "preset": "rlprompt"})
    assert (pin.run.steps, pin.run.eval_every, pin.method_config.prompts_per_step) == (15000, 50, 16)
    assert (pin.method_config.reward_scale, pin.method_config.reward_shift, pin.method_config.q_bias) == (1.0, 0.0, 0.0)
    m = rl.method_config
    assert (rl.run.steps, rl.run.eval_every, m.prompts_per_step, m.sample_top_k) == (12000, 50, 8, 50)
    assert (m.reward_scale, m.reward_shift, m.q_bias) == (100.0, -20.0, -10.0)
    # classification keeps its own values
    cls = make_spec({"preset": "rlprompt"})
    assert (cls.run.steps, cls.method_config.prompts_per_step, cls.method_config.q_bias) == (12000, 16, 0.0)


# -- the command line with tiny models saved as local directories --------------------------------


@pytest.fixture(scope="module")
def tiny_dirs(tmp_path_factory, quote_lm):
    """A tiny causal LM, BERT encoder and sequence classifier, each saved as a model directory."""
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    root = tmp_path_factory.mktemp("tiny-style-models")
    dirs = {"lm": root / "lm", "encoder": root / "encoder", "classifier": root / "classifier"}
    quote_lm.model.save_pretrained(dirs["lm"])
    quote_lm.tokenizer.save_pretrained(dirs["lm"])
    tok = word_tokenizer(mask=True, words=QUOTE_WORDS)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                     num_attention_heads=2, max_position_embeddings=128, pad_token_id=tok.pad_token_id,
                     initializer_range=0.2)
    for name, model in (("encoder", BertModel(cfg)), ("classifier", BertForSequenceClassification(cfg))):
        model.save_pretrained(dirs[name])
        tok.save_pretrained(dirs[name])
    return dirs


def test_eval_scores_output_files_and_prompts_from_the_command_line(yelp_dir, tiny_dirs, tmp_path, capsys):
    import pandas as pd

    from pinbench.cli import main

    outputs = tmp_path / "outputs.txt"
    outputs.write_text("great food .\n\nthe service was bad .\n")  # line 2: an empty output
    preds = tmp_path / "preds.csv"
    models = [f"--set=task.{k}={tiny_dirs[v]}" for k, v in (
        ("content_model", "encoder"), ("style_classifier", "classifier"), ("eval_style_classifier", "classifier"),
        ("fluency_classifier", "classifier"), ("reference_lm", "lm"))]
    code = main(["eval", "--task", "style_transfer", "--dataset", "yelp", "--direction", "1_to_0",
                 "--data-dir", str(yelp_dir), "--task-lm", str(tiny_dirs["lm"]), "--outputs", str(outputs),
                 "--prompt", "great", "--set", "task.test_samples=2", "--predictions", str(preds), *models])
    assert code == 0
    # an empty output is judged (style 100% for a classifier that likes empty text): said under the table
    assert f"warning: outputs file '{outputs}': 1 of 3 output(s) are empty;" in capsys.readouterr().out
    frame = pd.read_csv(preds, keep_default_na=False)
    assert list(frame["source"].unique()) == ["'great'", str(outputs)]  # prompts, then files
    mine = frame[frame["source"] == str(outputs)]
    assert mine["output"].tolist() == ["great food .", "", "the service was bad ."]
    assert mine["input"].tolist() == ["test1 0", "test1 1", "test1 2"]
    assert mine["reference"].tolist() == ["ref1 0", "ref1 1", "ref1 2"]
    assert mine["content"].iloc[1] == 0.0  # an empty output keeps nothing of its input
    # a file with the wrong number of lines is an error naming the counts, before anything is written
    outputs.write_text("one line\n")
    assert main(["eval", "--task", "style_transfer", "--dataset", "yelp", "--data-dir", str(yelp_dir),
                 "--task-lm", str(tiny_dirs["lm"]), "--outputs", str(outputs), *models]) == 2
    assert main(["eval", "--task", "style_transfer", "--dataset", "yelp", "--data-dir", str(yelp_dir)]) == 2


def test_q_bias_shifts_every_q_value_and_leaves_the_policy(tiny_gpt2):
    # RLPrompt's logit_bias (lm_adaptor_model.py): Q + b in sampling and in the loss's targets
    from pinbench.methods.rl.policy import QPolicy
    from pinbench.methods.rl.regularizers import make_regularizer

    torch.manual_seed(0)
    plain = QPolicy(tiny_gpt2, hidden=16, prompt_length=2)
    biased = QPolicy(tiny_gpt2, hidden=16, prompt_length=2, q_bias=-10.0)
    biased.mlp.load_state_dict(plain.mlp.state_dict())
    biased.target.load_state_dict(plain.target.state_dict())
    e = torch.randn(3, tiny_gpt2.model.config.n_embd)
    tokens = torch.tensor([4, 7, 9])
    assert torch.allclose(biased.q_values(e), plain.q_values(e) - 10.0, atol=1e-5)
    assert torch.allclose(biased.q_values(e, target=True), plain.q_values(e, target=True) - 10.0, atol=1e-5)
    assert torch.allclose(biased.q_taken(e, tokens), plain.q_taken(e, tokens) - 10.0, atol=1e-5)
    for name in ("shannon", "sparse_tsallis"):
        reg = make_regularizer(name, 1.5)
        assert torch.allclose(reg.policy(biased.q_values(e), 1.0), reg.policy(plain.q_values(e), 1.0), atol=1e-5)


def test_an_outputs_file_splits_at_newlines_only(tmp_path):
    """One output per line, a line ending at \\n or \\r\\n; U+2028, \\x0b and \\x1c inside an output
    are text (str.splitlines split there and shifted every later output against its input)."""
    from pinbench.tasks.style_transfer.task import read_outputs

    file = tmp_path / "outputs.txt"
    file.write_bytes("good food\u2028really\r\nbad\x0bservice\n\nlast\x1c one".encode())
    assert read_outputs(file) == ["good food\u2028really", "bad\x0bservice", "", "last\x1c one"]


def test_outputs_files_are_read_exactly_and_counted_before_any_model_loads(yelp_dir, tmp_path, monkeypatch, capsys):
    """An editor's byte-order mark is not part of the first output (it changed its perplexity and
    went into --predictions); a lone carriage return is an error naming its line (it split one
    output in two); a file with the wrong number of lines is refused before the task LM, the
    content model and the style classifier load."""
    from pinbench.cli import main
    from pinbench.tasks.style_transfer.task import read_outputs

    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffthe food was great .\r\nlovely staff .\n".encode())
    assert read_outputs(bom) == ["the food was great .", "lovely staff ."]
    lone = tmp_path / "cr.txt"
    lone.write_bytes(b"the food was great\r .\nlovely staff .\n")
    with pytest.raises(ConfigError, match=r"outputs file '.*cr\.txt' line 1: a carriage return inside the line"):
        read_outputs(lone)

    def no_models(*args, **kwargs):
        raise AssertionError("a model loaded before the outputs were counted")

    monkeypatch.setattr(StyleTransfer, "build", classmethod(no_models))
    two = tmp_path / "two.txt"
    two.write_text("one\ntwo\n")
    argv = ["eval", "--task", "style_transfer", "--dataset", "yelp", "--direction", "0_to_1", "--data-dir",
            str(yelp_dir), "--split", "test", "--outputs", str(two)]
    assert main(argv) == 2
    assert capsys.readouterr().err.strip() == (f"pinbench: error: outputs file '{two}' has 2 line(s) for 3 test inputs "
                                               "of style transfer yelp 0_to_1: give one output per input, one per line")
