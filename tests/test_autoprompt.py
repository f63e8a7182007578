"""AutoPrompt (pinbench/methods/autoprompt): the first-order candidate ranking, the keep-if-lower
rule, the vocabulary it searches, its budget, its preset and checkpoints, on tiny models."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from pinbench.errors import ConfigError
from pinbench.methods.autoprompt.method import AutoPrompt, first_order_scores
from pinbench.run import make_spec


def task_values(setup, **more) -> dict:
    model_dir, dataset_file = setup
    return {"task.dataset": "toy", "task.dataset_file": str(dataset_file), "task.data_dir": str(dataset_file.parent),
            "task.split_seed": 5, "task.task_lm": str(model_dir), **more}


def autoprompt(setup, lm=None, **more) -> AutoPrompt:
    """AutoPrompt on the toy dataset: with the task LM of ``setup`` (the tiny GPT-2, built from the
    spec), or with ``lm`` (a sharp model, whose outputs depend on the prompt)."""
    from pinbench.tasks.classification import FewShotClassification
    from pinbench.tasks.classification.data import load_dataset_file

    values = {"method": "autoprompt", **task_values(setup), "run.steps": 6, "run.eval_every": 3,
              "method.prompt_length": 2, "method.num_candidates": 4, "method.batch_size": None, **more}
    spec = make_spec(values)
    task = None
    if lm is not None:
        load_dataset_file(setup[1])
        task = FewShotClassification("toy", lm, str(setup[1].parent), 5)
    return AutoPrompt(spec, task)


def full_loss(method: AutoPrompt, ids: list[int]) -> float:
    white_box = method.white_box
    with torch.no_grad():
        return float(white_box.loss(method.embed(ids), white_box.batch(None, torch.Generator())))


def test_autoprompt_lowers_the_verbalizer_loss_on_the_training_set(tiny_setup, sharp_gpt2):
    method = autoprompt(tiny_setup, sharp_gpt2, **{"method.num_candidates": 5, "run.steps": 6})
    start = list(method.ids)
    assert start == method.white_box.encode("the") * 2  # init_token "the", L times
    before = full_loss(method, start)
    result = method.train()
    after = full_loss(method, method.ids)
    assert after < before - 1e-3
    # with the whole training split as the batch, each row's loss is the split's loss, which a
    # replacement lowers and a rejection keeps
    losses = [row["loss"] for row in result.history]
    assert any(row["replaced"] for row in result.history)
    assert all(b <= a for a, b in zip([before] + losses, losses))
    assert all(b < a for a, b, row in zip([before] + losses, losses, result.history) if row["replaced"])
    assert losses[-1] == pytest.approx(after, abs=1e-6)


def test_candidates_are_the_top_k_allowed_rows_by_minus_embedding_dot_gradient(tiny_setup, sharp_gpt2):
    method = autoprompt(tiny_setup, sharp_gpt2, **{"method.num_candidates": 6})
    white_box = method.white_box
    vocab = white_box.vocabulary.detach()
    grad = torch.randn(vocab.shape[1], generator=torch.Generator().manual_seed(3))
    assert torch.allclose(first_order_scores(vocab, grad), -(vocab @ grad))
    # by hand: every row but the special tokens, scored by -(E_w . g), the best 6
    specials = set(white_box.special_ids())
    allowed = torch.tensor([i for i in range(vocab.shape[0]) if i not in specials])
    scores = -(vocab[allowed] @ grad)
    expected = allowed[scores.argsort(descending=True)[:6]]
    assert method.candidates(grad).tolist() == expected.tolist()
    # iterate ranks by the gradient of the batch loss at the current prompt, at the drawn position
    ids = list(method.ids)
    at = method.embed(ids).clone().requires_grad_(True)
    (full,) = torch.autograd.grad(white_box.loss(at, white_box.batch(None, torch.Generator())), at)
    seen = []
    rank = method.candidates
    method.candidates = lambda g: (seen.append(g.clone()), rank(g))[1]
    row = method.iterate()
    assert torch.allclose(seen[0], full[row["position"]], atol=1e-6)
    assert not torch.allclose(full[0], full[1], atol=1e-6)  # the position matters


def test_a_candidate_replaces_the_token_only_when_its_batch_loss_is_lower(tiny_setup, sharp_gpt2):
    method = autoprompt(tiny_setup, sharp_gpt2, **{"method.num_candidates": 4})
    calls = []

    def fake(values):
        def losses(prompts, batch):
            calls.append(prompts)
            return torch.tensor(values)
        return losses

    start = list(method.ids)
    method.losses = fake([1.0, 1.5, 1.0, 2.0, 3.0])  # current first; the best candidate only ties
    row = method.iterate()
    assert (row["replaced"], row["loss"], method.ids) == (False, 1.0, start)
    prompts = calls[-1]
    assert prompts[0] == start and len(prompts) == 5
    for prompt in prompts[1:]:  # each candidate changes the drawn position only
        assert [i for i, (a, b) in enumerate(zip(prompt, start)) if a != b] in ([], [row["position"]])
    method.losses = fake([1.0, 1.5, 0.5, 0.7, 3.0])
    row = method.iterate()
    prompts = calls[-1]
    assert (row["replaced"], row["loss"]) == (True, 0.5)
    assert method.ids == prompts[2]  # the lowest candidate, not the first


def test_special_tokens_are_never_candidates(tiny_setup, sharp_roberta):
    method = autoprompt(tiny_setup, sharp_roberta, **{"method.num_candidates": 1000})
    white_box = method.white_box
    specials = set(white_box.special_ids())
    assert white_box.vocabulary.shape[0] - len(method.allowed) == len(specials)
    vocab = white_box.vocabulary.detach()
    # a gradient whose best row over the whole vocabulary is the mask token
    grad = -vocab[white_box.scorer.tok.mask_token_id]
    assert int(first_order_scores(vocab, grad).argmax()) in specials
    ranked = method.candidates(grad).tolist()
    assert len(ranked) == len(method.allowed) and not set(ranked) & specials
    # a run from a seeded random start keeps them out too
    method = autoprompt(tiny_setup, sharp_roberta, **{"method.init_token": None, "run.steps": 6})
    assert not set(method.ids) & specials
    result = method.train()
    assert not any(set(r["token_ids"]) & specials for r in result.prompts)


def test_the_budget_counts_gradient_steps_and_scored_candidates(tiny_setup, sharp_gpt2):
    method = autoprompt(tiny_setup, sharp_gpt2, **{"method.batch_size": 2, "method.num_candidates": 3,
                                                   "run.steps": 5, "run.eval_every": 5})
    result = method.train()
    budget = result.budget
    assert (budget["gradient_steps"], budget["gradient_examples"]) == (5, 5 * 2)
    assert (budget["scored_train"], budget["examples_train"]) == (5 * (3 + 1), 5 * (3 + 1) * 2)
    assert budget["scored_dev"] == 1  # the one evaluation (step 5)


def test_autoprompt_end_to_end_keeps_the_best_trigger_and_resumes(tiny_setup):
    method = autoprompt(tiny_setup, **{"run.steps": 8, "run.eval_every": 2, "method.batch_size": 2})
    for _ in range(4):
        method.step()
    state = copy.deepcopy(method.state_dict())
    result = method.train()
    evaluated = [r for r in result.prompts if r["source"] == "trigger"]
    assert [r["step"] for r in evaluated] == [2, 4, 6, 8]
    assert all(isinstance(r["round_trip"], bool) for r in evaluated)
    assert result.prompt_tokenizer == str(tiny_setup[0])
    assert "dev_accuracy" in result.best and "test_accuracy" in result.test
    assert {"loss", "position", "replaced"} <= set(result.history[0])
    # a run continued from the step-4 state ends where the uninterrupted one did
    again = autoprompt(tiny_setup, **{"run.steps": 8, "run.eval_every": 2, "method.batch_size": 2})
    again.load_state_dict(state)
    resumed = again.train()
    assert [r["prompt"] for r in resumed.prompts] == [r["prompt"] for r in result.prompts]
    assert [r["position"] for r in resumed.history] == [r["position"] for r in result.history]
    assert again.ids == method.ids


def test_the_autoprompt_preset(tiny_setup, monkeypatch):
    from pinbench import methods
    from pinbench.methods.autoprompt.config import PRESETS

    monkeypatch.setitem(methods.PRESETS, "autoprompt", PRESETS["autoprompt"])  # until methods/__init__ wires it
    spec = make_spec({"preset": "autoprompt", **task_values(tiny_setup)})
    cfg = spec.method_config
    assert (cfg.prompt_length, cfg.num_candidates, cfg.batch_size, cfg.init_token) == (5, 10, None, "the")
    assert (spec.run.steps, spec.run.eval_every) == (8000, 20)
    # the budget claim: 12 passes of the training split per iteration = PIN's 6,000 x 16 prompts
    assert spec.run.steps * (cfg.num_candidates + 2) == 6000 * 16
    with pytest.raises(ConfigError, match="preset 'autoprompt' has no values for task 'style_transfer'"):
        make_spec({"preset": "autoprompt", "task": "style_transfer"})


def test_autoprompt_needs_a_white_box_and_a_one_token_init(tiny_setup, monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    spec = make_spec({"plugins": ["toy_plugins"], "task": "prompt-length", "method": "autoprompt"})
    with pytest.raises(ConfigError, match="method 'autoprompt' needs gradients .* task 'prompt-length' has no white-box"):
        spec.method_class(spec)
    with pytest.raises(ConfigError, match="init_token 'the movie' is .* it must be one token"):
        autoprompt(tiny_setup, **{"method.init_token": "the movie"})
    with pytest.raises(ConfigError, match="'num_candidates' = 0 is invalid"):
        make_spec({"method": "autoprompt", "method.num_candidates": 0})


# ---- RLPrompt's AutoPrompt script (autoprompt-rlprompt) ------------------------------------------

SCRIPT = {"method.init_token": None, "method.init_mask": True, "method.score_by": "ids"}


def test_accuracy_compares_the_candidates_when_asked(tiny_setup, sharp_gpt2):
    method = autoprompt(tiny_setup, sharp_gpt2, **{"method.candidate_metric": "accuracy", "method.num_candidates": 4})
    # correct(): the number of batch examples the verbalizers classify right, as the text scorer sees it
    prompt = "the movie"
    ids = method.white_box.encode(prompt)
    scored = method.task.score([prompt], "train")
    assert float(method.correct([ids], [0, 1, 2, 3])[0]) == pytest.approx(float(scored["accuracy"][0]) * 4)
    start = list(method.ids)
    method.losses = lambda prompts, batch: pytest.fail("the loss does not compare candidates under accuracy")
    method.correct = lambda prompts, batch: torch.tensor([2.0, 2.0, 1.0, 2.0, 0.0])  # only ties: kept
    row = method.iterate()
    assert (row["replaced"], method.ids, row["train_accuracy"]) == (False, start, 0.5)
    calls = []
    method.correct = lambda prompts, batch: (calls.append(prompts), torch.tensor([2.0, 1.0, 3.0, 3.0, 0.0]))[1]
    row = method.iterate()
    assert row["replaced"] and method.ids == calls[-1][2]  # the first of the strictly better ones
    assert row["train_accuracy"] == 0.75 and "loss" in row  # the gradient batch's loss


def test_a_fresh_batch_scores_the_candidates(tiny_setup, sharp_gpt2):
    method = autoprompt(tiny_setup, sharp_gpt2, **{"method.batch_size": 2, "method.fresh_candidate_batch": True})
    draws, scored = [], []
    draw = method.white_box.batch
    method.white_box.batch = lambda size, generator: (draws.append(draw(size, generator)), draws[-1])[1]
    losses = method.losses
    method.losses = lambda prompts, batch: (scored.append(list(batch)), losses(prompts, batch))[1]
    for _ in range(3):
        method.iterate()
    assert len(draws) == 6 and scored == draws[1::2]  # the gradient's draw, then the candidates' own
    assert any(a != b for a, b in zip(draws[0::2], draws[1::2]))  # not the same examples
    same = autoprompt(tiny_setup, sharp_gpt2, **{"method.batch_size": 2})
    draws.clear()
    same.white_box.batch = lambda size, generator: (draws.append(draw(size, generator)), draws[-1])[1]
    same.iterate()
    assert len(draws) == 1  # by default the candidates are scored on the gradient's batch


def test_the_vocabulary_loss_ranks_the_candidates(tiny_setup, sharp_gpt2):
    from pinbench.methods.soft_prompt.method import vocabulary_loss

    method = autoprompt(tiny_setup, sharp_gpt2, **{"method.loss": "vocab", "method.candidate_metric": "accuracy"})
    batch = list(range(4))  # batch_size None: the whole training split
    at = method.embed(method.ids).clone().requires_grad_(True)
    loss = vocabulary_loss(method.white_box, at, batch)
    (grad,) = torch.autograd.grad(loss, at)
    seen = []
    rank = method.candidates
    method.candidates = lambda g: (seen.append(g.clone()), rank(g))[1]
    row = method.iterate()
    assert row["loss"] == pytest.approx(float(loss.detach()))  # the gradient's loss at the starting trigger
    assert torch.allclose(seen[0], grad[row["position"]], atol=1e-6)
    (verbalizer,) = torch.autograd.grad(method.white_box.loss(at, batch), at)
    assert not torch.allclose(verbalizer[row["position"]], grad[row["position"]], atol=1e-4)
    # with candidate_metric loss, the same loss compares them
    method = autoprompt(tiny_setup, sharp_gpt2, **{"method.loss": "vocab"})
    ids = list(method.ids)
    expected = float(vocabulary_loss(method.white_box, method.embed(ids), batch))
    assert float(method.losses([ids], batch)[0]) == pytest.approx(expected)


def test_the_trigger_starts_as_masks_and_is_scored_from_its_ids(tiny_setup, sharp_roberta):
    # one iteration changes at most one of the 2 positions: the kept trigger still holds a mask
    method = autoprompt(tiny_setup, sharp_roberta, **SCRIPT, **{"run.steps": 1, "run.eval_every": 1})
    mask = method.white_box.scorer.tok.mask_token_id
    assert method.ids == [mask, mask]
    result = method.train()
    best = result.best
    assert mask in best["token_ids"]
    dev = method.white_box.metrics(method.embed(best["token_ids"]), method.task.split("dev"))
    test = method.white_box.metrics(method.embed(best["token_ids"]), method.task.split("test"))
    assert (best["dev_accuracy"], best["dev_reward"]) == (dev["accuracy"], dev["reward"])
    assert (result.test["test_accuracy"], result.test["test_reward"]) == (test["accuracy"], test["reward"])
    # the text path would read the trigger's mask as the answer slot: another number
    by_text = method.task.score([best["prompt"]], "dev")
    assert abs(dev["reward"] - float(by_text["reward"][0])) > 1e-3
    with pytest.raises(ConfigError, match="has none \\(a causal LM\\)"):
        autoprompt(tiny_setup, **SCRIPT)
    with pytest.raises(ConfigError, match="'init_mask' = True is invalid: expected False unless score_by is 'ids'"):
        make_spec({"method": "autoprompt", "method.init_token": None, "method.init_mask": True})
    with pytest.raises(ConfigError, match="'init_mask' = True is invalid: expected False unless init_token is None"):
        make_spec({"method": "autoprompt", "method.init_mask": True, "method.score_by": "ids"})


def test_every_embedding_row_is_a_candidate_without_the_filter(tiny_setup, sharp_roberta):
    method = autoprompt(tiny_setup, sharp_roberta, **SCRIPT, **{"method.allow_special": True,
                                                                "method.num_candidates": 1})
    white_box = method.white_box
    vocab = white_box.vocabulary.detach()
    assert method.allowed.tolist() == list(range(vocab.shape[0]))
    mask = white_box.scorer.tok.mask_token_id
    assert method.candidates(-vocab[mask]).tolist() == [int(first_order_scores(vocab, -vocab[mask]).argmax())]
    assert int(method.candidates(-vocab[mask])[0]) in set(white_box.special_ids())
    with pytest.raises(ConfigError, match="'allow_special' = True is invalid"):
        make_spec({"method": "autoprompt", "method.allow_special": True})


def test_dev_is_scored_only_after_a_replacement(tiny_setup, sharp_gpt2):
    def run(pattern, **more):
        method = autoprompt(tiny_setup, sharp_gpt2, **{"method.candidate_metric": "accuracy",
                                                       "method.eval_on_replace": True, "run.steps": len(pattern),
                                                       "run.eval_every": 1, **more})
        better = iter(pattern)
        method.correct = lambda prompts, batch: torch.tensor(
            [1.0] + [2.0 if next(better) else 0.0] + [0.0] * (len(prompts) - 2))
        result = method.train()
        assert [r["replaced"] for r in result.history] == list(pattern)
        return [r["step"] for r in result.history if "dev_accuracy" in r]

    assert run([False, True, False, True]) == [2, 4]
    assert run([True, False, False]) == [1]
    assert run([False, False, False]) == [3]  # nothing replaced: the initial trigger, at the end
    assert run([True, True, False, True], **{"run.eval_every": 2}) == [2, 4]  # and eval_every still applies


def test_the_rlprompt_template_puts_the_trigger_first_for_topic_datasets(tiny_setup, sharp_roberta, monkeypatch):
    from pinbench.methods.autoprompt import config as ap_config
    from pinbench.methods.autoprompt import method as module

    words = (" good", " bad", " okay")
    entry = {"template": "{prompt} {mask} {input} .", "verbalizers": words}
    monkeypatch.setitem(ap_config.RLPROMPT_TEMPLATES, "toy", entry)
    monkeypatch.setattr(module, "RLPROMPT_TEMPLATES", ap_config.RLPROMPT_TEMPLATES)
    method = autoprompt(tiny_setup, sharp_roberta, **SCRIPT, **{"method.template": "rlprompt", "run.steps": 1,
                                                                "run.eval_every": 1})
    scorer = method.white_box.scorer
    assert [p.kind for p in scorer.pieces] == ["prompt", "mask", "input", "literal"]
    tok = scorer.tok
    assert scorer.label_ids.tolist() == [tok(w, add_special_tokens=False).input_ids[0] for w in words]
    result = method.train()
    assert result.best["template"] == "{prompt} {mask} {input} ."
    assert [p.kind for p in autoprompt(tiny_setup, sharp_roberta, **SCRIPT).white_box.scorer.pieces][:3] == \
        ["input", "prompt", "mask"]  # without the field: the task's
    with pytest.raises(ConfigError, match="'template' = 'rlprompt' is invalid: expected None unless score_by is 'ids'"):
        make_spec({"method": "autoprompt", "method.template": "rlprompt"})


def test_the_rlprompt_preset_is_the_scripts_search(tiny_setup):
    from pinbench.methods import PRESETS
    from pinbench.methods.autoprompt.config import RLPROMPT_TEMPLATES

    spec = make_spec({"preset": "autoprompt-rlprompt", **task_values(tiny_setup)})
    c, run = spec.method_config, spec.run
    assert PRESETS["autoprompt-rlprompt"].method == "autoprompt"
    assert (c.prompt_length, c.num_candidates, c.batch_size, c.fresh_candidate_batch) == (5, 100, 32, True)
    assert (c.init_token, c.init_mask, c.candidate_metric, c.loss) == (None, True, "accuracy", "vocab")
    assert (c.score_by, c.allow_special, c.eval_on_replace, c.template) == ("ids", True, True, "rlprompt")
    assert (run.steps, run.eval_every, run.selection) == (5, 1, "metric")
    assert set(RLPROMPT_TEMPLATES) == {"agnews", "yahoo", "dbpedia", "trec"}
    assert all(e["template"] == "{prompt} {mask} {input} ." for e in RLPROMPT_TEMPLATES.values())
    assert "not RLPrompt's script" in PRESETS["autoprompt"].description


def test_the_scripts_classification_fields_need_a_classification_task(tiny_clip_dir, image_dir):
    base = {"method": "autoprompt", "task": "inversion", "task.clip_model": str(tiny_clip_dir),
            "task.data_dir": str(image_dir), "task.image": "red", "method.init_token": None}
    for more, message in [({"method.candidate_metric": "accuracy"}, "no class probabilities"),
                          ({"method.loss": "vocab"}, "loss 'vocab' and candidate_metric 'accuracy' score"),
                          ({"method.score_by": "ids", "method.template": "rlprompt"}, "is not one")]:
        spec = make_spec({**base, **more})
        with pytest.raises(ConfigError, match=message):
            spec.method_class(spec)
