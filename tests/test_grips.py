"""GrIPS (pinbench/methods/grips): the edit operations, the greedy search with patience, its budget
and its starting instruction, on the toy prompt-length task (tests/plugins/toy_plugins.py)."""

import random
from pathlib import Path

import pytest
import torch

from pinbench.errors import ConfigError
from pinbench.methods.grips.config import PRESETS
from pinbench.methods.grips.method import (GrIPS, Paraphraser, add_phrase, available_ops, delete_phrase,
                                           make_candidate, random_edit, split_phrases, substitute_phrase,
                                           swap_phrases)
from pinbench.run import make_spec

LONG = "Read the following movie review carefully and then decide whether its overall sentiment is positive or negative"


@pytest.fixture(autouse=True)
def plugin_path(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))


def spec(**values):
    base = {"plugins": ["toy_plugins"], "task": "prompt-length", "method": "grips", "initial_prompt": LONG,
            "eval_every": 1}
    return make_spec({**base, **values})


def distance(prompt: str, target: int) -> int:
    return abs(len(prompt) - target)


def test_the_search_moves_a_long_prompt_to_the_target_length():
    # 30 characters is reachable by deleting words ("Read the movie review carefully" is 31, ...); the
    # search only deletes, swaps and re-adds, so every accepted step must shorten toward it
    for seed in range(3):
        method = GrIPS(spec(target=30, steps=40, seed=seed, patience=None, level="word"))
        result = method.train()
        rewards = [row["train_reward"] for row in result.history]
        assert rewards == sorted(rewards)  # greedy: the current prompt never gets worse
        assert rewards[-1] >= -2 and result.best["dev_distance"] <= 2, (seed, method.prompt)
        assert result.test == {"test_distance": result.best["dev_distance"] + 1,
                               "test_reward": -result.best["dev_distance"] - 1}
        assert set(method.prompt.split()) <= set(LONG.split())  # nothing but the instruction's own words
        accepted = [row for row in result.history if row["improved"]]
        assert accepted and all(row["edits"] for row in accepted)


def test_each_edit_operation_does_what_it_says():
    phrases = ["Classify", "the sentiment", "of the review", "as positive", "or negative."]
    assert split_phrases("Classify the sentiment of the review as positive or negative.") == phrases
    assert split_phrases("Given a movie review, answer it.") == ["Given", "a movie review,", "answer", "it."]
    assert split_phrases("Given a movie review, answer it.", "word") == ["Given", "a", "movie", "review,", "answer",
                                                                        "it."]
    before = list(phrases)
    assert delete_phrase(phrases, 1) == ["Classify", "of the review", "as positive", "or negative."]
    assert delete_phrase(phrases, 4) == phrases[:4]
    assert swap_phrases(phrases, 0, 3) == ["as positive", "the sentiment", "of the review", "Classify", "or negative."]
    assert add_phrase(phrases, "briefly", 0) == ["briefly"] + phrases
    assert add_phrase(phrases, "briefly", 5) == phrases + ["briefly"]
    assert add_phrase(phrases, "briefly", 2) == ["Classify", "the sentiment", "briefly", "of the review",
                                                 "as positive", "or negative."]
    assert substitute_phrase(phrases, 2, "of the text") == ["Classify", "the sentiment", "of the text",
                                                            "as positive", "or negative."]
    assert phrases == before  # each returns a new list

    # which edits are on offer: add only with a pooled phrase, delete/swap only with two phrases
    assert available_ops(["a"], [], False) == []
    assert available_ops(["a", "b"], [], False) == ["delete", "swap"]
    assert available_ops(["a"], ["x"], True) == ["add", "paraphrase"]
    rng = random.Random(0)
    for _ in range(50):
        pool = ["x"]
        edited, edit = random_edit(["a", "b", "c"], pool, rng, lambda p, r: p.upper())
        if edit.op == "delete":
            assert len(edited) == 2 and edit.phrase not in edited and pool == ["x"]
        elif edit.op == "swap":
            assert sorted(edited) == ["a", "b", "c"] and edited != ["a", "b", "c"]
        elif edit.op == "add":
            assert sorted(edited) == ["a", "b", "c", "x"] and pool == []  # taken out of the pool
        else:
            assert edit.op == "paraphrase" and edit.other == edit.phrase.upper() and edit.other in edited
    assert random_edit(["a"], [], rng) is None
    # composed edits: a pooled phrase goes in at most once, and the caller's pool is untouched
    pool = ["x"]
    for _ in range(20):
        edited, edits = make_candidate(["a"], pool, 3, rng)
        assert edits[0].op == "add" and [e.op for e in edits].count("add") == 1  # the pool's one phrase, once
        assert edited.count("x") <= 1 and pool == ["x"]
        assert len(edits) == 3 or available_ops(edited, [], False) == []  # stops early only when stuck


def test_the_same_seed_gives_the_same_prompts():
    def run(seed):
        result = GrIPS(spec(target=30, steps=8, seed=seed, patience=None)).train()
        return [row["current_prompt"] for row in result.history], [row["edits"] for row in result.history]

    assert run(0) == run(0)
    assert len({str(run(seed)) for seed in range(4)}) > 1  # a different seed searches differently


def test_patience_stops_the_search():
    # target = the start's own length: no single edit can beat it (delete shortens, add lengthens,
    # swap keeps the length), so after two iterations without improvement nothing more is scored
    method = GrIPS(spec(target=len(LONG), steps=10, patience=2, seed=0))
    rows = [method.step() for _ in range(2)]
    assert [r["stopped"] for r in rows] == [False, True] and not any(r["improved"] for r in rows)
    spent = dict(method.result.budget)
    rows += [method.step() for _ in range(8)]
    assert method.result.budget["scored_train"] == spent["scored_train"]
    assert all(r["stopped"] and r["candidates"] == 0 and r["new_prompts"] == 0 for r in rows[2:])
    assert method.current_prompt() == (LONG, None)
    # through train(): the run ends where the search stops, and that prompt is evaluated
    result = GrIPS(spec(target=len(LONG), steps=10, patience=2, seed=0, eval_every=5)).train()
    assert result.steps_done == 2 and result.history[-1]["stopped"] and "dev_distance" in result.history[-1]
    assert result.budget["scored_train"] == spent["scored_train"] and result.best["prompt"] == LONG
    # patience None keeps searching (and scoring) for the whole budget
    searching = GrIPS(spec(target=len(LONG), steps=10, patience=None, seed=0))
    searching.train()
    assert searching.result.budget["scored_train"] > spent["scored_train"]
    assert not any(r["stopped"] for r in searching.result.history)


def test_the_budget_counts_each_distinct_prompt_scored_once():
    method = GrIPS(spec(target=30, steps=12, patience=None, seed=1, level="word"))
    seen: list[str] = []
    score = method.task.score

    def counting(prompts, split="train"):
        if split == "train":
            seen.extend(prompts)
        return score(prompts, split)

    method.task.score = counting
    result = method.train()
    assert len(seen) == len(set(seen))  # the run's cache: no prompt scored twice on train
    assert result.budget["scored_train"] == len(set(seen)) == sum(r["new_prompts"] for r in result.history)
    assert sum(r["candidates"] for r in result.history) + 1 >= len(set(seen))  # duplicates are cache hits
    assert set(seen) == {p for split, p in method.book.scores if split == "train"}


class WithReferences:
    """The toy task with the literature's prompts a real task gives (classification will)."""

    def __init__(self, task, instruction=(), manual=()):
        self.task, self.refs = task, {"instruction": list(instruction), "manual": list(manual)}

    def __getattr__(self, name):
        return getattr(self.task, name)

    def reference_prompts(self, kind):
        return self.refs[kind]


def test_the_initial_prompt_is_the_tasks_reference_when_not_given():
    base = spec(target=5, steps=1, initial_prompt=None)
    toy = base.task_class.build(base.task_config, base.run)
    both = WithReferences(toy, ["Say if the review is positive or negative."], ["It was"])
    assert GrIPS(base, task=both).current_prompt() == ("Say if the review is positive or negative.", None)
    assert GrIPS(base, task=WithReferences(toy, [], ["It was"])).current_prompt() == ("It was", None)
    given = spec(target=5, steps=1, initial_prompt="Judge the review.")
    assert GrIPS(given, task=both).current_prompt() == ("Judge the review.", None)  # a setting wins
    with pytest.raises(ConfigError, match="task 'prompt-length' has no reference instruction or non-empty manual "
                                          "prompt; set method.initial_prompt"):
        GrIPS(base)
    with pytest.raises(ConfigError, match="set method.initial_prompt"):  # classification's manual prompt is ""
        GrIPS(base, task=WithReferences(toy, [], [""]))
    with pytest.raises(ConfigError, match="initial_prompt"):
        spec(initial_prompt="  ")
    with pytest.raises(ConfigError, match="patience"):
        spec(patience=0)


def test_the_preset_is_the_papers_search(tmp_path):
    preset = PRESETS["grips"]
    search = {"method.num_candidates": 5, "method.num_edits": 1, "method.patience": 2, "method.level": "phrase",
              "run.steps": 10, "run.eval_every": 1}
    assert preset.method == "grips" and preset.values_for("prompt-length") == search  # any task ("*")
    # classification: the instruction sits before the input in the manual template (Instructions row)
    assert preset.settings("classification") == {**search, "task.template": "manual"}
    # a checkpoint continues the search where it was: same prompts as an uninterrupted run
    whole = GrIPS(spec(target=30, steps=8, patience=None, seed=3))
    whole.train()
    first = GrIPS(spec(target=30, steps=8, patience=None, seed=3))
    for _ in range(4):
        first.step()
    torch.save(first.state_dict(), tmp_path / "state.pt")
    resumed = GrIPS(spec(target=30, steps=8, patience=None, seed=3))
    resumed.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    resumed.train()
    assert [r.get("current_prompt") for r in resumed.result.history] == \
           [r.get("current_prompt") for r in whole.result.history]


def test_a_paraphrase_model_is_loaded_or_fails_with_one_clear_line(tmp_path):
    from transformers import T5Config, T5ForConditionalGeneration

    from conftest import word_tokenizer

    with pytest.raises(ConfigError, match="paraphrase_model .*could not be loaded as a seq2seq model"):
        GrIPS(spec(target=5, steps=1, paraphrase_model=str(tmp_path)))  # a directory without a model
    tok = word_tokenizer()
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(tok), d_model=16, d_ff=32, d_kv=8, num_layers=1, num_heads=2,
                      pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      decoder_start_token_id=tok.pad_token_id)
    T5ForConditionalGeneration(config).save_pretrained(tmp_path / "t5")
    tok.save_pretrained(tmp_path / "t5")
    paraphrase = Paraphraser(str(tmp_path / "t5"), max_length=8)
    out = paraphrase("the movie was great", random.Random(0))
    assert isinstance(out, str) and out.strip()
    method = GrIPS(spec(target=5, steps=10, patience=None, paraphrase_model=str(tmp_path / "t5")))
    assert isinstance(method.paraphrase, Paraphraser) and method.paraphrase.num_beams == 10  # GrIPS's beams
    calls = []
    method.paraphrase.max_length = 8  # GrIPS's 60 tokens x 10 beams take seconds a call on CPU
    loaded = method.paraphrase
    method.paraphrase = lambda phrase, rng: calls.append(phrase) or loaded(phrase, rng)
    while not calls and method.step_count < 10:  # until a candidate draws the paraphrase edit
        method.step()
    assert calls and set(calls) <= set(split_phrases(LONG))  # the edit is on offer and paraphrases a phrase


# ---- RLPrompt's GrIPS script (grips-rlprompt): the metric ranks candidates, the final prompt is the result ----


class ContraryReward(WithReferences):
    """The toy task with a reward that prefers the prompts its metric ranks worst (further from the
    target), so a search shows which of the two it follows."""

    def score(self, prompts, split="train"):
        scores = self.task.score(prompts, split)
        return {**scores, "reward": scores["distance"]}


def test_the_metric_can_rank_the_candidates():
    def search(score):
        base = spec(target=20, steps=6, patience=None, seed=0, score=score)
        task = ContraryReward(base.task_class.build(base.task_config, base.run))
        method = GrIPS(base, task=task)
        method.train()
        return method

    by_metric = search("metric")
    assert distance(by_metric.prompt, 20) < distance(LONG, 20)  # toward the target: the metric's way
    rows = by_metric.result.history
    assert all(r["train_distance"] == -distance_of(r["current_prompt"]) for r in rows)  # higher is better
    assert any(r["improved"] for r in rows) and "distance_max" in rows[0]
    by_reward = search("reward")
    assert by_reward.prompt == LONG or distance(by_reward.prompt, 20) >= distance(LONG, 20)  # away, or stuck
    assert "train_reward" in by_reward.result.history[0]
    with pytest.raises(ConfigError, match="'score' = 'accuracy' is invalid"):
        spec(score="accuracy")


def distance_of(prompt: str) -> int:
    return distance(prompt, 20)


def test_select_final_evaluates_only_the_prompt_the_search_ends_with():
    result = GrIPS(spec(target=30, steps=6, patience=None, seed=1, select_final=True)).train()
    evaluated = [r["step"] for r in result.history if "dev_distance" in r]
    assert evaluated == [6] and result.budget["scored_dev"] == 1
    assert result.best["prompt"] == result.history[-1]["current_prompt"] and result.best["step"] == 6
    # stopped by patience: that iteration's prompt, however eval_every falls
    stopped = GrIPS(spec(target=len(LONG), steps=10, patience=2, seed=0, select_final=True, eval_every=1)).train()
    assert [r["step"] for r in stopped.history if "dev_distance" in r] == [2] and stopped.best["prompt"] == LONG
    # without it every iteration's prompt is a candidate for the best
    every = GrIPS(spec(target=30, steps=6, patience=None, seed=1)).train()
    assert [r["step"] for r in every.history if "dev_distance" in r] == [1, 2, 3, 4, 5, 6]


def test_the_rlprompt_preset_is_the_scripts_search():
    from pinbench.methods import PRESETS as ALL

    preset = ALL["grips-rlprompt"]
    settings = preset.settings("classification")
    assert preset.method == "grips" and settings["task.template"] == "manual"
    s = make_spec({"preset": "grips-rlprompt"})
    c = s.method_config
    assert (c.num_candidates, c.num_edits, c.patience, c.level) == (5, 1, 2, "phrase")
    assert (c.paraphrase_model, c.score, c.select_final) == ("tuner007/pegasus_paraphrase", "metric", True)
    assert (s.run.steps, s.run.eval_every, s.run.selection) == (10, 1, "metric")
    assert "not RLPrompt's script" in ALL["grips"].description
