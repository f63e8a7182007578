"""Soft prompt tuning (pinbench/methods/soft_prompt) on tiny random models (tests/conftest.py): the
white box's probabilities against the text scorer, training against the verbalizer loss, the dev
and test numbers against the white box by hand, the budget, checkpoints and the errors."""

from __future__ import annotations

import copy
import dataclasses
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

from pinbench.errors import ConfigError
from pinbench.run import make_spec
from pinbench.tasks.classification.data import load_dataset_file, parse_spec, registry
from pinbench.tasks.classification.scoring import VerbalizerScorer

TEXTS = ["the movie was great", "i hated the plot", "boring", "the actors were not very good and the story was awful",
         "fun film", "it is okay"]
SENTIMENT = parse_spec("toy", {"verbalizers": [" terrible", " great"], "template": "{input} {prompt} {mask} ."}, "test")

# Three splits with different rows (a test number that came from dev would show), 2 classes.
SPLITS = {
    "train": ["the movie was great\t1", "i hated the plot\t0", "fun film\t1", "boring\t0", "nice story\t1",
              "awful actors\t0", "i liked the film\t1", "the plot was bad\t0"],
    "dev": ["a great film\t1", "the story was boring\t0", "it was fun\t1", "not very good\t0"],
    "test": ["really nice movie\t1", "i hated this film\t0", "the actors were awful\t0", "good plot\t1",
             "not boring\t1"],
}


@pytest.fixture(scope="module")
def soft_data(tmp_path_factory):
    """The dataset file of 'toy-soft' (train 8, dev 4, test 5 rows in the tiny models' vocabulary)."""
    root = tmp_path_factory.mktemp("soft-data")
    folder = root / "toy-soft" / "16-5"
    folder.mkdir(parents=True)
    for split, rows in SPLITS.items():
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    spec = root / "toy-soft.yaml"
    spec.write_text(textwrap.dedent("""\
        toy-soft:
          verbalizers: [" bad", " good"]
          template: "{input} {prompt} {mask} ."
          path: "toy-soft/16-{split_seed}/{split}.tsv"
        """))
    # registered before any test's own registry snapshot (conftest's autouse fixture, function-
    # scoped, starts after this one): removed with the module, or later modules' listings show it
    load_dataset_file(spec)
    yield spec
    registry().pop("toy-soft", None)


def soft_prompt(lm, data_file: Path, **more):
    """A SoftPrompt on 'toy-soft' scored by ``lm`` (a sharp model: prompts move its predictions)."""
    from pinbench.methods.soft_prompt.method import SoftPrompt
    from pinbench.tasks.classification import FewShotClassification

    values = {"method": "soft_prompt", "task.dataset": "toy-soft", "task.dataset_file": str(data_file),
              "task.split_seed": 5, "run.steps": 8, "run.eval_every": 2, "method.lr": 0.05,
              "method.batch_size": 4, **more}
    task = FewShotClassification("toy-soft", lm, None, 5, bf16=False)
    return SoftPrompt(make_spec(values), task=task)


def hand_metrics(probs: torch.Tensor, labels: list[int]) -> dict[str, float]:
    """RLPrompt's gap reward (200 x gap if right, 180 x gap if wrong) and accuracy, by hand."""
    rewards, right = [], []
    for p, y in zip(probs.tolist(), labels):
        gap = p[y] - max(q for c, q in enumerate(p) if c != y)
        rewards.append(200 * gap if gap > 0 else 180 * gap)
        right.append(max(range(len(p)), key=p.__getitem__) == y)
    return {"reward": sum(rewards) / len(rewards), "accuracy": sum(right) / len(right)}


# ---- the white box: probabilities and metrics of prompt embeddings -------------------------------


@pytest.mark.parametrize("model", ["sharp_gpt2", "sharp_llama", "sharp_roberta"])
def test_probabilities_of_a_prompts_own_embeddings_equal_the_scorers(model, request):
    from pinbench.tasks.classification.gradients import VerbalizerLoss

    lm = request.getfixturevalue(model)
    # a small token budget: several length-sorted groups, which must come back in the texts' order
    white_box = VerbalizerLoss(VerbalizerScorer(lm, SENTIMENT, max_batch_tokens=40))
    scorer = VerbalizerScorer(lm, SENTIMENT)
    assert len(white_box.scorer._batches([12] * len(TEXTS))) > 1
    for prompt in ("it was", "overall the film was really"):
        ids = lm.tokenizer(" " + prompt, add_special_tokens=False).input_ids  # the template's lead space
        embeds = white_box.vocabulary[ids].detach().clone()
        with torch.no_grad():
            probs = white_box.probabilities(embeds, TEXTS)
        assert not probs.requires_grad
        expected = scorer.score([prompt], TEXTS)[0]
        assert probs.shape == expected.shape == (len(TEXTS), 2)
        assert torch.allclose(probs.cpu(), expected, atol=1e-5)
        # the shared logits: cross_entropy is -log of these probabilities
        labels = [1, 0, 0, 0, 1, 1]
        ce = white_box.cross_entropy(embeds, TEXTS, labels)
        assert ce.item() == pytest.approx(-probs[torch.arange(len(TEXTS)), torch.tensor(labels)].log().mean().item(),
                                          rel=1e-5)
    # outside no_grad the probabilities carry the prompt's gradient
    embeds = embeds.requires_grad_(True)
    white_box.probabilities(embeds, TEXTS)[:, 1].sum().backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0


def test_white_box_metrics_are_the_tasks_metrics_of_a_prompts_own_embeddings(sharp_llama, soft_data):
    method = soft_prompt(sharp_llama, soft_data)
    task, white_box = method.task, method.white_box
    for prompt in ("it was", "the film was really"):
        embeds = white_box.vocabulary[white_box.encode(prompt)].detach()
        for split in ("dev", "test"):
            ours = white_box.metrics(embeds, task.split(split))
            theirs = task.score([prompt], split)
            assert ours["accuracy"] == pytest.approx(float(theirs["accuracy"][0]), abs=1e-6)
            assert ours["reward"] == pytest.approx(float(theirs["reward"][0]), abs=1e-3)


# ---- the method ------------------------------------------------------------------------------


def test_training_lowers_the_loss_and_moves_every_vector(sharp_gpt2, soft_data):
    method = soft_prompt(sharp_gpt2, soft_data, **{"method.batch_size": None, "run.steps": 30})
    white_box = method.white_box
    everything = white_box.batch(None, torch.Generator())
    start = method.embeds.detach().clone()
    with torch.no_grad():
        before = float(white_box.loss(start, everything))
    result = method.train()
    with torch.no_grad():
        after = float(white_box.loss(method.embeds, everything))
    assert after < before - 0.1, (before, after)
    # every vector moved (all of them are trained), and the history's loss went down too
    assert ((method.embeds.detach() - start).norm(dim=-1) > 1e-3).all()
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.history[0]["loss"] == pytest.approx(before, rel=1e-5)  # full batch: the same loss
    assert all(r["grad_norm"] > 0 for r in result.history)
    # the LM stayed frozen: only the prompt has a gradient
    assert all(p.grad is None for p in white_box.model.parameters())


def test_recorded_dev_and_test_metrics_are_the_soft_prompts_own(sharp_llama, soft_data):
    method = soft_prompt(sharp_llama, soft_data, **{"run.steps": 10})
    task, white_box = method.task, method.white_box
    evaluated = []
    while method.step_count < method.run.steps:
        row = method.step()
        if "dev_accuracy" in row:  # an evaluation: its record is the white box's numbers for P now
            record = method.result.prompts[-1]
            dev = task.split("dev")
            expected = hand_metrics(white_box.probabilities(method.embeds.detach(), dev.texts).cpu(), dev.labels)
            assert record["dev_accuracy"] == pytest.approx(expected["accuracy"])
            assert record["dev_reward"] == pytest.approx(expected["reward"], abs=1e-4)
            assert record["prompt"] == f"<soft prompt 5x32, step {method.step_count}>" == row["soft_prompt"]
            assert record["nearest_text"] == white_box.decode(record["token_ids"])
            assert not set(record["token_ids"]) & set(white_box.special_ids())
            evaluated.append(record)
    assert [r["step"] for r in evaluated] == [2, 4, 6, 8, 10]
    result = method.finish()
    best = result.best
    assert best["dev_accuracy"] == max(r["dev_accuracy"] for r in evaluated)
    # the best record keeps its vectors, and they give its dev numbers and the test numbers
    assert torch.equal(torch.tensor(best["embeds"]), method.best_embeds)
    recorded = {"dev": best, "test": result.test}
    for split in ("dev", "test"):
        data = task.split(split)
        expected = hand_metrics(white_box.probabilities(method.best_embeds, data.texts).cpu(), data.labels)
        assert recorded[split][f"{split}_accuracy"] == pytest.approx(expected["accuracy"])
        assert recorded[split][f"{split}_reward"] == pytest.approx(expected["reward"], abs=1e-4)
    # ... and not from scoring the label as text (which the task would happily do)
    as_text = task.score([best["prompt"]], "test")
    assert result.test["test_reward"] != pytest.approx(float(as_text["reward"][0]), abs=1e-3)
    assert result.prompts[-1]["source"] == "best" and result.prompts[-1]["test_reward"] == result.test["test_reward"]


def test_the_budget_counts_gradient_steps_and_white_box_scorings(sharp_gpt2, soft_data):
    method = soft_prompt(sharp_gpt2, soft_data, **{"run.steps": 7, "run.eval_every": 3})
    result = method.train()
    # 7 iterations of 4 examples; evaluations at 3, 6 and the last step (7); one test scoring
    assert result.budget == {"gradient_steps": 7, "gradient_examples": 28, "scored_dev": 3, "examples_dev": 12,
                             "scored_test": 1, "examples_test": 5}
    full = soft_prompt(sharp_gpt2, soft_data, **{"run.steps": 2, "method.batch_size": None}).train()
    assert (full.budget["gradient_steps"], full.budget["gradient_examples"]) == (2, 16)


def test_a_resumed_run_ends_where_the_uninterrupted_one_did(sharp_llama, soft_data):
    method = soft_prompt(sharp_llama, soft_data)
    for _ in range(4):
        method.step()
    state = copy.deepcopy(method.state_dict())  # a checkpoint is a copy (Adam's moments move on)
    result = method.train()
    again = soft_prompt(sharp_llama, soft_data, **{"run.seed": 99})  # the state, not the seed, decides
    again.load_state_dict(state)
    resumed = again.train()
    assert torch.equal(again.embeds, method.embeds)
    assert torch.equal(again.best_embeds, method.best_embeds)
    assert resumed.prompts == result.prompts and resumed.best == result.best
    assert resumed.test == result.test and resumed.budget == result.budget
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in result.history]


def test_init_text_starts_the_prompt_and_vocab_init_is_seeded(sharp_gpt2, soft_data):
    method = soft_prompt(sharp_gpt2, soft_data, **{"method.init": "text", "method.init_text": "it was"})
    vocab = method.white_box.vocabulary
    ids = method.white_box.encode("it was")
    assert torch.equal(method.embeds.detach()[:2], vocab[ids].float())
    assert method.nearest(method.embeds)[:2] == ids
    specials = set(method.white_box.special_ids())
    assert not set(method.nearest(method.embeds)) & specials  # the rest: sampled non-special tokens
    a, b = (soft_prompt(sharp_gpt2, soft_data, **{"run.seed": s}).embeds for s in (1, 1))
    assert torch.equal(a, b)
    assert not torch.equal(a, soft_prompt(sharp_gpt2, soft_data, **{"run.seed": 2}).embeds)
    with pytest.raises(ConfigError, match="init_text 'it was really great' is 4 tokens .* prompt_length 3"):
        soft_prompt(sharp_gpt2, soft_data, **{"method.init": "text", "method.init_text": "it was really great",
                                              "method.prompt_length": 3})


def test_adafactor_trains_too(sharp_gpt2, soft_data):
    lester = soft_prompt(sharp_gpt2, soft_data, **{"method.optimizer": "adafactor", "method.lr": None})
    assert lester.optimizer.param_groups[0]["lr"] == 0.3  # Lester et al.'s constant rate (for T5's large
    # embeddings: the tiny model's vectors have norm ~1, so the test takes a rate of their scale)
    method = soft_prompt(sharp_gpt2, soft_data, **{"method.optimizer": "adafactor", "method.lr": 0.01,
                                                   "method.batch_size": None, "run.steps": 10})
    result = method.train()
    assert result.history[-1]["loss"] < result.history[0]["loss"]


def test_config_errors_name_the_field():
    for values, match in [({"method.init": "text"}, "'init' = 'text' is invalid"),
                          ({"method.init_text": "it was"}, "'init_text' = 'it was' is invalid"),
                          ({"method.optimizer": "sgd"}, "'optimizer' = 'sgd' is invalid"),
                          ({"method.lr": 0.0}, "'lr' = 0.0 is invalid")]:
        with pytest.raises(ConfigError, match=match):
            make_spec({"method": "soft_prompt", **values})


def test_soft_prompt_needs_a_task_with_a_white_box(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    spec = make_spec({"plugins": ["toy_plugins"], "task": "prompt-length", "method": "soft_prompt"})
    with pytest.raises(ConfigError, match="method 'soft_prompt' needs gradients .* "
                                          "task 'prompt-length' has no white-box"):
        spec.method_class(spec)


def test_soft_prompt_needs_a_white_box_that_scores_prompt_vectors(tiny_clip_dir, image_dir):
    spec = make_spec({"method": "soft_prompt", "task": "inversion", "task.clip_model": str(tiny_clip_dir),
                      "task.data_dir": str(image_dir), "task.image": "red"})
    with pytest.raises(ConfigError, match="the white-box path of task 'inversion' has none"):
        spec.method_class(spec)


def test_the_preset_is_a_valid_classification_run_with_peZs_budget():
    from pinbench.methods.pez.config import PRESETS as PEZ_PRESETS
    from pinbench.methods.soft_prompt.config import PRESETS

    preset = PRESETS["soft-prompt"]
    assert preset.method == "soft_prompt"
    spec = make_spec({"method": "soft_prompt", **preset.values_for("classification")})
    cfg, pez = spec.method_config, PEZ_PRESETS["pez"].settings("classification")
    assert (cfg.prompt_length, cfg.batch_size, cfg.learning_rate) == (5, 16, 1e-3)
    assert (spec.run.steps, spec.run.eval_every) == (pez["run.steps"], pez["run.eval_every"])
    assert cfg.batch_size == pez["method.batch_size"]
    with pytest.raises(ConfigError, match="preset 'soft-prompt' has no values for task 'inversion'"):
        preset.values_for("inversion")


def test_results_keep_the_best_soft_prompts_vectors(sharp_gpt2, soft_data, tmp_path):
    from pinbench.results import write_run

    method = soft_prompt(sharp_gpt2, soft_data, **{"run.steps": 4})
    result = method.train()
    write_run(tmp_path, result)
    prompts = pd.read_parquet(tmp_path / "prompts.parquet")
    best = prompts[prompts["source"] == "best"].iloc[0]
    assert torch.equal(torch.tensor([list(row) for row in best["embeds"]]), method.best_embeds)
    assert best["nearest_text"] == result.best["nearest_text"]
    assert prompts[prompts["source"] != "best"]["embeds"].isna().all()  # the best record only
    trials = pd.read_parquet(tmp_path / "trials.parquet")
    assert trials["test_accuracy"].iloc[0] == result.test["test_accuracy"]
    assert trials["budget_gradient_steps"].iloc[0] == 4


def test_prompts_too_large_to_store_keep_their_vectors_in_the_method_only(sharp_gpt2, soft_data, monkeypatch):
    from pinbench.methods.soft_prompt import method as module

    monkeypatch.setattr(module, "MAX_STORED_FLOATS", 5 * 32 - 1)
    method = soft_prompt(sharp_gpt2, soft_data, **{"run.steps": 2})
    result = method.train()
    assert "embeds" not in result.best and method.best_embeds is not None
    assert "test_accuracy" in result.test


# ---- RLPrompt's soft prompt script (soft-prompt-rlprompt): schedule, batches, init, loss, template ----


def test_the_linear_schedule_decays_the_lr_to_zero_and_then_the_vectors_stay(sharp_gpt2, soft_data):
    method = soft_prompt(sharp_gpt2, soft_data, **{"method.lr_schedule": "linear", "method.lr_decay_steps": 3,
                                                   "run.steps": 5, "run.eval_every": 5})
    seen = []
    for _ in range(5):
        method.step()
        seen.append(method.embeds.detach().clone())
    # transformers' get_linear_schedule_with_warmup(0 warm-up, 3 steps): lr x (3 - k) / 3 before the k-th update
    assert [r["lr"] for r in method.result.history] == pytest.approx([0.05, 0.05 * 2 / 3, 0.05 / 3, 0.0, 0.0])
    assert not torch.equal(seen[1], seen[2])  # the third update still moves them
    assert torch.equal(seen[2], seen[3]) and torch.equal(seen[3], seen[4])  # lr 0: nothing moves
    # without lr_decay_steps the schedule spans run.steps; constant is the default
    method = soft_prompt(sharp_gpt2, soft_data, **{"method.lr_schedule": "linear", "run.steps": 4})
    method.train()
    assert [r["lr"] for r in method.result.history] == pytest.approx([0.05, 0.0375, 0.025, 0.0125])
    method = soft_prompt(sharp_gpt2, soft_data, **{"run.steps": 3})
    method.train()
    assert [r["lr"] for r in method.result.history] == [0.05] * 3


def test_a_resumed_linear_schedule_continues_where_it_stopped(sharp_gpt2, soft_data):
    values = {"method.lr_schedule": "linear", "run.steps": 6, "run.eval_every": 3}
    method = soft_prompt(sharp_gpt2, soft_data, **values)
    for _ in range(3):
        method.step()
    state = copy.deepcopy(method.state_dict())
    method.train()
    again = soft_prompt(sharp_gpt2, soft_data, **values)
    again.load_state_dict(state)
    again.train()
    assert [r["lr"] for r in again.result.history] == [r["lr"] for r in method.result.history]
    assert torch.equal(again.embeds, method.embeds)


def test_sequential_batches_walk_the_training_file_in_order(sharp_gpt2, soft_data):
    method = soft_prompt(sharp_gpt2, soft_data, **{"method.batch_order": "sequential", "method.batch_size": 3,
                                                   "run.steps": 5, "run.eval_every": 5})
    seen = []
    loss = method.white_box.loss
    method.white_box.loss = lambda prompt, batch: (seen.append(list(batch)), loss(prompt, batch))[1]
    method.train()
    # a DataLoader with shuffle=False over 8 examples: 0-2, 3-5, 6-7 (short), then again
    assert seen == [[0, 1, 2], [3, 4, 5], [6, 7], [0, 1, 2], [3, 4, 5]]
    assert method.result.budget["gradient_examples"] == 3 + 3 + 2 + 3 + 3


def test_head_init_takes_distinct_ids_among_the_first_ones(sharp_gpt2, soft_data):
    vocab = sharp_gpt2.model.get_input_embeddings().weight.detach()

    def start_ids(**more):
        method = soft_prompt(sharp_gpt2, soft_data, **{"method.init": "head", **more})
        rows = method.embeds.detach()
        return [int((vocab == row).all(-1).nonzero()[0]) for row in rows]

    ids = start_ids(**{"method.prompt_length": 5, "method.init_head": 5})
    assert sorted(ids) == [0, 1, 2, 3, 4]  # a permutation of the first 5 (special ids included, as the script)
    ids = start_ids(**{"method.prompt_length": 4, "method.init_head": 12})
    assert len(set(ids)) == 4 and max(ids) < 12
    assert start_ids(**{"method.prompt_length": 4, "method.init_head": 12}) == ids  # seeded by run.seed
    with pytest.raises(ConfigError, match="'init_head' = 3 is invalid: expected >= prompt_length"):
        make_spec({"method": "soft_prompt", "method.init": "head", "method.init_head": 3})
    with pytest.raises(ConfigError, match="init_head 100000 is more ids than"):
        soft_prompt(sharp_gpt2, soft_data, **{"method.init": "head", "method.init_head": 100000})


def hand_vocabulary_loss(lm, prompt: str, texts: list[str], words: list[str], labels: list[int],
                         template: str) -> float:
    """-log p(label word) over the whole vocabulary from the model's own logits at the scored
    position of each templated text (token ids, no pinbench code): a causal LM's last position, a
    masked LM's mask."""
    tok = lm.tokenizer
    losses = []
    with torch.no_grad():
        for text, label in zip(texts, labels):
            if lm.kind == "masked":
                filled = template.format(input=text, prompt=prompt, mask=tok.mask_token)
                ids = tok(filled, return_tensors="pt").input_ids
                at = int((ids[0] == tok.mask_token_id).nonzero()[0])
            else:
                ids = tok(template.split("{mask}")[0].format(input=text, prompt=prompt).rstrip(), return_tensors="pt",
                          add_special_tokens=False).input_ids
                at = ids.shape[1] - 1
            logits = lm.model(input_ids=ids).logits[0, at].float()
            word = tok(words[label], add_special_tokens=False).input_ids[0]
            losses.append(-float(logits.log_softmax(-1)[word]))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("model", ["sharp_gpt2", "sharp_roberta"])
def test_the_vocabulary_loss_is_the_lms_own_loss_of_the_label_word(model, soft_data, request):
    from pinbench.methods.soft_prompt.method import vocabulary_loss

    lm = request.getfixturevalue(model)
    method = soft_prompt(lm, soft_data, **{"method.loss": "vocab", "method.batch_order": "sequential",
                                           "method.batch_size": 4, "run.steps": 1})
    white_box = method.white_box
    prompt = "the movie"
    embeds = white_box.vocabulary[torch.tensor(white_box.encode(prompt))].detach().float()
    train = [r.split("\t") for r in SPLITS["train"]][:4]
    texts, labels = [t for t, _ in train], [int(y) for _, y in train]
    expected = hand_vocabulary_loss(lm, prompt, texts, [" bad", " good"], labels, "{input} {prompt} {mask} .")
    assert float(vocabulary_loss(white_box, embeds, [0, 1, 2, 3])) == pytest.approx(expected, abs=1e-4)
    # not the verbalizer cross-entropy (which normalises over the 2 words only)
    assert float(white_box.loss(embeds, [0, 1, 2, 3])) < expected - 0.1
    # the method trains on it: its first step's loss is the vocabulary loss of its first batch
    start = method.embeds.detach().clone()
    row = method.step()
    assert row["loss"] == pytest.approx(float(vocabulary_loss(white_box, start, [0, 1, 2, 3])), abs=1e-5)


def test_the_rlprompt_template_replaces_the_tasks_for_masked_lms(sharp_roberta, sharp_gpt2, soft_data, monkeypatch):
    from pinbench.methods.soft_prompt import config as soft_config
    from pinbench.methods.soft_prompt import method as module
    from pinbench.tasks.classification.gradients import VerbalizerLoss
    from pinbench.tasks.classification.data import get_dataset

    monkeypatch.setitem(soft_config.RLPROMPT_TEMPLATES, "toy-soft", "{prompt}{mask}{input}")
    monkeypatch.setattr(module, "RLPROMPT_TEMPLATES", soft_config.RLPROMPT_TEMPLATES)
    method = soft_prompt(sharp_roberta, soft_data, **{"method.template": "rlprompt", "run.steps": 2,
                                                     "run.eval_every": 2})
    assert method.template == "{prompt}{mask}{input}"
    assert [p.kind for p in method.white_box.scorer.pieces] == ["prompt", "mask", "input"]
    result = method.train()
    assert result.best["template"] == "{prompt}{mask}{input}"
    # dev and test are scored in that template: the white box of a scorer built on it, by hand
    spec = dataclasses.replace(get_dataset("toy-soft"), template="{prompt}{mask}{input}")
    by_hand = VerbalizerLoss(VerbalizerScorer(sharp_roberta, spec), None)
    dev, test = (by_hand.metrics(method.best_embeds, method.task.split(s)) for s in ("dev", "test"))
    assert (result.best["dev_accuracy"], result.best["dev_reward"]) == (dev["accuracy"], dev["reward"])
    assert (result.test["test_accuracy"], result.test["test_reward"]) == (test["accuracy"], test["reward"])
    default = soft_prompt(sharp_roberta, soft_data, **{"run.steps": 2})
    assert [p.kind for p in default.white_box.scorer.pieces] == ["input", "prompt", "mask", "literal"]
    # a causal task LM keeps the task's template (the label word has to be scored last)
    causal = soft_prompt(sharp_gpt2, soft_data, **{"method.template": "rlprompt", "run.steps": 2})
    assert causal.template is None and [p.kind for p in causal.white_box.scorer.pieces] == ["input", "prompt"]


def test_the_rlprompt_template_is_for_classification(tiny_clip_dir, image_dir):
    spec = make_spec({"method": "soft_prompt", "method.template": "rlprompt", "task": "inversion",
                      "task.clip_model": str(tiny_clip_dir), "task.data_dir": str(image_dir), "task.image": "red"})
    with pytest.raises(ConfigError, match="method.template changes a classification task's template"):
        spec.method_class(spec)


def test_the_rlprompt_preset_is_the_scripts_training():
    from pinbench.methods import PRESETS

    preset = PRESETS["soft-prompt-rlprompt"]
    spec = make_spec({"preset": "soft-prompt-rlprompt"})
    c, run = spec.method_config, spec.run
    assert preset.method == "soft_prompt"
    assert (c.prompt_length, c.optimizer, c.learning_rate) == (20, "adamw", 1e-2)
    assert (c.lr_schedule, c.lr_decay_steps) == ("linear", 100)
    assert (c.weight_decay, c.grad_clip, c.batch_size, c.batch_order) == (0.0, 1.0, 16, "sequential")
    assert (c.init, c.init_head, c.loss, c.template) == ("head", 5000, "vocab", "rlprompt")
    assert (run.steps, run.eval_every, run.selection) == (100, 100, "metric")
    # the script's templates: the input, the vectors and the mask in its order per dataset
    assert module_templates()["sst-2"] == "{input}{prompt}{mask}."
    assert module_templates()["agnews"] == module_templates()["trec"] == "{mask}{prompt}{input}"
    assert module_templates()["yahoo"] == module_templates()["dbpedia"] == "{prompt}{mask}{input}"
    assert "not RLPrompt's script" in PRESETS["soft-prompt"].description  # each preset names its source


def module_templates() -> dict:
    from pinbench.methods.soft_prompt.config import RLPROMPT_TEMPLATES

    return RLPROMPT_TEMPLATES
