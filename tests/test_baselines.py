"""The fixed-prompt baselines (manual, instructions, in-context) and random search on tiny models:
fixed prompts reproduce scores computed by hand from the model's logits, demonstrations are the
seed's training examples in the template, random search draws only from the LM's top-k."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

from pinbench.errors import ConfigError
from pinbench.models import load_model
from pinbench.run import make_spec

from conftest import build_gpt2

ROWS = {  # the toy data: the same rows in every split
    "train": ["the movie was great\t1", "i hated the plot\t0", "fun film\t1", "boring\t0", "it is okay\t1",
              "awful story\t0"],
    "dev": ["the movie was great\t1", "i hated the plot\t0", "boring\t0"],
    "test": ["fun film\t1", "awful story\t0", "the plot was not good\t0", "nice actors\t1"],
}
INSTRUCTION = "this is a movie review ."


@pytest.fixture(scope="module")
def toy(tmp_path_factory, tiny_lm_dir):
    """A saved tiny GPT-2, and a two-class dataset whose registry entry has a manual template and
    an instruction (in the tiny model's word vocabulary)."""
    root = tmp_path_factory.mktemp("baselines")
    model_dir = Path(tiny_lm_dir)
    folder = root / "toy2" / "16-5"
    folder.mkdir(parents=True)
    for split, rows in ROWS.items():
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    spec = root / "toy2.yaml"
    spec.write_text(textwrap.dedent(f"""\
        toy2:
          verbalizers: [" bad", " good"]
          template: "{{input}} {{prompt}} {{mask}} ."
          manual_template: "{{prompt}} {{input}} it was {{mask}} ."
          instruction: "{INSTRUCTION}"
          path: "toy2/16-{{split_seed}}/{{split}}.tsv"
        """))
    return model_dir, spec


def values(toy, **more) -> dict:
    model_dir, spec = toy
    return {"task.dataset": "toy2", "task.dataset_file": str(spec), "task.data_dir": str(spec.parent),
            "task.split_seed": 5, "task.task_lm": str(model_dir), "task.bf16": False, **more}


def hand_accuracy(lm, texts, labels, words=(" bad", " good")) -> float:
    """Accuracy from the causal LM's next-token logits after each full text: no pinbench code."""
    ids = [lm.tokenizer(w, add_special_tokens=False).input_ids[0] for w in words]
    hits = 0
    with torch.no_grad():
        for text, label in zip(texts, labels):
            enc = lm.tokenizer(text, return_tensors="pt", add_special_tokens=False)
            logits = lm.model(**enc).logits[0, -1, ids]
            hits += int(logits.argmax()) == label
    return hits / len(texts)


def split_rows(split):
    pairs = [r.split("\t") for r in ROWS[split]]
    return [t for t, _ in pairs], [int(y) for _, y in pairs]


def test_manual_and_instructions_score_the_manual_template_as_by_hand(toy):
    model_dir, _ = toy
    lm = load_model(str(model_dir), "causal")
    texts, labels = split_rows("test")
    for preset, lead in (("manual", ""), ("instructions", INSTRUCTION + " ")):
        spec = make_spec({"preset": preset, **values(toy)})
        result = spec.method_class(spec).train()
        assert result.best["prompt"] == lead.strip()
        expected = hand_accuracy(lm, [f"{lead}{t} it was" for t in texts], labels)
        assert result.test["test_accuracy"] == pytest.approx(expected)
        assert result.steps_done == 1 and result.budget == {"scored_dev": 1, "examples_dev": 3,
                                                             "scored_test": 1, "examples_test": 4}


def test_fixed_user_prompts_end_when_every_candidate_is_scored(toy):
    spec = make_spec({"method": "fixed", "method.prompts": "it was | the movie was | really", **values(toy),
                      "run.steps": 6000, "run.eval_every": 20})
    result = spec.method_class(spec).train()
    assert result.steps_done == 3  # not 6000: the list is exhausted
    assert [r["prompt"] for r in result.prompts if r["source"] == "fixed"] == ["it was", "the movie was", "really"]
    best = max((r for r in result.prompts if r["source"] == "fixed"), key=lambda r: (r["dev_accuracy"], r["dev_reward"]))
    assert result.best["prompt"] == best["prompt"]


def test_a_dataset_without_an_instruction_is_a_clear_error(tiny_setup):
    model_dir, spec_file = tiny_setup
    spec = make_spec({"preset": "manual", "task.dataset": "toy", "task.dataset_file": str(spec_file),
                      "task.data_dir": str(spec_file.parent), "task.split_seed": 5, "task.task_lm": str(model_dir)})
    with pytest.raises(ConfigError, match="task.template: dataset 'toy' has no manual template"):
        spec.method_class(spec)


@pytest.mark.parametrize("seed", [0, 1])
def test_in_context_demonstrations_are_the_seeds_training_examples_before_a_causal_query(toy, seed):
    model_dir, _ = toy
    spec = make_spec({"preset": "in-context", **values(toy), "run.seed": seed})
    method = spec.method_class(spec)
    template = method.task.spec.template_for("causal")
    demos, query = template.rsplit("\n", 1)
    assert query == "{prompt} {input} it was {mask}"
    lines = demos.split("\n")
    train = dict(r.split("\t") for r in ROWS["train"])
    # one demonstration per class, class by class, each a training sentence with its label word
    assert [line.rsplit(" ", 1)[1] for line in lines] == ["bad", "good"]
    for line, label in zip(lines, ("0", "1")):
        sentence = line.removesuffix(" it was bad").removesuffix(" it was good")
        assert train[sentence] == label
    again = make_spec({"preset": "in-context", **values(toy), "run.seed": seed})
    assert again.method_class(again).task.spec.template_for("causal") == template  # the seed fixes them
    result = method.train()
    texts, labels = split_rows("test")
    lm = load_model(str(model_dir), "causal")
    assert result.test["test_accuracy"] == pytest.approx(hand_accuracy(lm, [f"{demos}\n{t} it was" for t in texts], labels))


def test_masked_lms_get_demonstrations_after_the_query_with_the_separator(tiny_roberta, toy):
    from pinbench.tasks.classification.data import get_dataset, load_dataset_file, read_split
    from pinbench.tasks.classification.task import with_demonstrations

    _, spec_file = toy
    load_dataset_file(str(spec_file))
    spec = get_dataset("toy2").with_template("manual")
    out = with_demonstrations(spec, read_split(spec, "train", 5, spec_file.parent), 2, 0, tiny_roberta)
    head, *demos = out.template.split(" </s> ")
    assert head == spec.manual_template and len(demos) == 4  # 2 per class
    assert [d.rsplit(" ", 2)[-2] for d in demos] == ["bad", "bad", "good", "good"]
    with pytest.raises(ConfigError, match="has 3 example"):
        with_demonstrations(spec, read_split(spec, "train", 5, spec_file.parent), 4, 0, tiny_roberta)


def test_random_search_draws_each_token_from_the_lms_top_k_and_keeps_the_best(toy):
    from pinbench.methods.random_search.method import RandomSearch

    lm = build_gpt2(0.2)
    spec = make_spec({"method": "random_search", **values(toy), "method.top_k": 3, "method.prompt_length": 3,
                      "method.prompts_per_step": 8, "run.steps": 4, "run.eval_every": 2})
    method = RandomSearch(spec, policy_lm=lm)
    tokens = method.sample(20)
    with torch.no_grad():  # every token is among the 3 most likely after its prefix
        ids = torch.cat([torch.full((20, 1), method.start_id), tokens], dim=1)
        logits = lm.model(input_ids=ids).logits[:, :-1]
        top = logits.topk(3, dim=-1).indices
    assert (top == tokens.unsqueeze(-1)).any(-1).all()
    assert len({tuple(t) for t in tokens.tolist()}) > 1  # random, not the greedy prompt
    result = method.train()
    sampled = {p: m["reward"] for (split, p), m in method.book.scores.items() if split == "train"}
    assert method.best[1] == max(sampled, key=sampled.get)  # the evaluated prompt is the best sampled
    assert [r["prompt"] for r in result.prompts if r["source"] == "best_sampled"][-1] == method.best[1]
    assert result.budget["scored_train"] == len(sampled)  # each distinct prompt scored once
    assert result.budget["examples_train"] == 6 * len(sampled)


@pytest.mark.parametrize("preset", ["pez", "soft-prompt", "autoprompt"])
def test_gradient_methods_run_on_a_bf16_task_lm(toy, preset):
    """task.exact_eval false gives the white box the bf16 weight copy (baselines-quickstart runs so):
    a float32 prompt is cast to it and the gradient still reaches the prompt."""
    spec = make_spec({"preset": preset, **values(toy), "task.bf16": True, "task.exact_eval": False,
                      "method.prompt_length": 2, "method.batch_size": 4, "run.steps": 2, "run.eval_every": 1})
    method = spec.method_class(spec)
    assert method.white_box.vocabulary.dtype == torch.bfloat16
    result = method.train()
    assert all(torch.isfinite(torch.tensor(row["loss"])) for row in result.history)
    assert result.budget["gradient_steps"] == 2 and "test_accuracy" in result.test


# ---- RLPrompt's in-context script (in-context-rlprompt): demonstrations drawn for every query ----


def hand_probabilities(lm, texts, words=(" bad", " good")) -> torch.Tensor:
    """Verbalizer probabilities [E, C] from the causal LM's next-token logits after each full text."""
    ids = [lm.tokenizer(w, add_special_tokens=False).input_ids[0] for w in words]
    out = []
    with torch.no_grad():
        for text in texts:
            enc = lm.tokenizer(text, return_tensors="pt", add_special_tokens=False)
            out.append(lm.model(**enc).logits[0, -1, ids].float().softmax(-1))
    return torch.stack(out)


def test_in_context_rlprompt_draws_one_example_per_class_for_every_query(toy):
    from pinbench.tasks.classification import rewards

    model_dir, _ = toy
    spec = make_spec({"preset": "in-context-rlprompt", **values(toy), "run.seed": 3})
    method = spec.method_class(spec)
    assert "{input}" in method.task.spec.template and "\n" not in method.task.spec.template  # no fixed set
    train = dict(r.split("\t") for r in ROWS["train"])
    texts, labels = split_rows("test")
    templates = [s.template_for("causal") for s in method.query_templates("test")]
    assert len(templates) == len(texts)
    demo_sets = []
    for template in templates:
        demos, query = template.rsplit("\n", 1)
        assert query == "{prompt} {input} it was {mask}"
        lines = demos.split("\n")
        assert [line.rsplit(" ", 1)[1] for line in lines] == ["bad", "good"]  # one per class, class by class
        for line, label in zip(lines, ("0", "1")):
            assert train[line.removesuffix(" it was bad").removesuffix(" it was good")] == label
        demo_sets.append(demos)
    assert len(set(demo_sets)) > 1  # not one set for the run: each query has its own
    result = method.train()
    # each test input scored after its own demonstrations, by hand
    lm = load_model(str(model_dir), "causal")
    probs = hand_probabilities(lm, [f"{d}\n{t} it was" for d, t in zip(demo_sets, texts)])
    y = torch.tensor(labels)
    assert result.test["test_accuracy"] == pytest.approx(float(rewards.accuracy(probs, y)))
    assert result.test["test_reward"] == pytest.approx(float(rewards.gap_reward(probs, y)), abs=1e-4)
    assert result.budget["scored_dev"] == result.budget["scored_test"] == 1
    # dev, which picks the prompt, is scored the same way (with dev's own draws)
    dev_texts, dev_labels = split_rows("dev")
    dev_demos = [s.template_for("causal").rsplit("\n", 1)[0] for s in method.query_templates("dev")]
    dev_probs = hand_probabilities(lm, [f"{d}\n{t} it was" for d, t in zip(dev_demos, dev_texts)])
    assert result.best["dev_reward"] == pytest.approx(float(rewards.gap_reward(dev_probs, torch.tensor(dev_labels))),
                                                      abs=1e-4)
    # seeded: the same seed draws the same sets, another seed (or the dev split) others
    again = make_spec({"preset": "in-context-rlprompt", **values(toy), "run.seed": 3})
    assert [s.template for s in again.method_class(again).query_templates("test")] == \
        [s.template for s in method.query_templates("test")]
    other = make_spec({"preset": "in-context-rlprompt", **values(toy), "run.seed": 4})
    assert [s.template for s in other.method_class(other).query_templates("test")] != \
        [s.template for s in method.query_templates("test")]
    assert method.demo_seed("dev") != method.demo_seed("test")


def test_per_query_demonstrations_on_a_masked_lm_follow_the_query(tiny_roberta, toy):
    from pinbench.methods.fixed.method import FixedPrompts
    from pinbench.tasks.classification import FewShotClassification
    from pinbench.tasks.classification.data import get_dataset, load_dataset_file
    from pinbench.tasks.classification.scoring import VerbalizerScorer

    _, spec_file = toy
    load_dataset_file(str(spec_file))
    task = FewShotClassification(get_dataset("toy2").with_template("manual"), tiny_roberta, str(spec_file.parent), 5)
    method = FixedPrompts(make_spec({"preset": "in-context-rlprompt", **values(toy)}), task=task)
    specs = method.query_templates("dev")
    for s in specs:
        head, *demos = s.template.split(" </s> ")
        assert head == get_dataset("toy2").manual_template and len(demos) == 2
    # each input's probabilities are the scorer's on its own template
    probs = method.demo_probabilities("", "dev")
    texts = task.split("dev").texts
    for i, (s, text) in enumerate(zip(specs, texts)):
        alone = VerbalizerScorer(tiny_roberta, s).score([""], [text])[0, 0]
        assert torch.allclose(probs[i], alone, atol=1e-5)


def test_lm_bff_cuts_a_long_input_around_its_scored_position():
    from pinbench.methods.fixed.method import truncate

    ids = list(range(10))
    assert truncate(ids, 3, 20) == (ids, 3)
    assert truncate(ids, 3, 6) == ([0, 1, 2, 3, 4, 5], 3)  # the tail goes (demonstrations after a masked query)
    assert truncate(ids, 9, 6) == ([4, 5, 6, 7, 8, 9], 5)  # the head goes when the scored token would
    assert truncate(ids, 6, 6) == ([1, 2, 3, 4, 5, 6], 5)


def test_query_demonstrations_and_a_fixed_set_do_not_mix(toy):
    spec = make_spec({"preset": "in-context-rlprompt", **values(toy), "task.demonstrations": 1})
    with pytest.raises(ConfigError, match="query_demonstrations and task.demonstrations both add"):
        spec.method_class(spec)
    with pytest.raises(ConfigError, match="'query_demonstrations' = -1 is invalid"):
        make_spec({"method": "fixed", "method.query_demonstrations": -1})


def test_the_in_context_presets_say_how_they_draw():
    from pinbench.methods import PRESETS

    spec = make_spec({"preset": "in-context-rlprompt"})
    assert (spec.method_config.query_demonstrations, spec.task_config.demonstrations) == (1, 0)
    assert (spec.task_config.template, spec.run.steps, spec.run.eval_every, spec.run.selection) == \
        ("manual", 1, 1, "metric")
    assert "not RLPrompt's script" in PRESETS["in-context"].description
    assert make_spec({"preset": "in-context"}).method_config.query_demonstrations == 0
