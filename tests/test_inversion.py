"""Textual inversion and PEZ on tiny random CLIPs (tests/conftest.py: save_tiny_clip): the reward
against a cosine computed by hand, the white-box path against the text path, PEZ's projection and
straight-through gradient, and both methods end to end."""

from __future__ import annotations

import copy

import pytest
import torch

from pinbench.errors import ConfigError, DataError, ModelLoadError
from pinbench.models import load_model
from pinbench.run import make_spec
from pinbench.tasks.inversion.clip import ClipScorer
from pinbench.tasks.inversion.task import Inversion, InversionConfig, image_paths

from conftest import build_gpt2, save_tiny_clip


@pytest.fixture(scope="module")
def clip(tiny_clip_dir):
    return load_model(str(tiny_clip_dir), "clip")


def task_values(clip_dir, image_dir, **more) -> dict:
    return {"task": "inversion", "task.clip_model": str(clip_dir), "task.data_dir": str(image_dir), **more}


def hand_cosine(clip, text: str, image_file) -> float:
    """cos = t . v / (|t| |v|) from the model's own feature calls, no pinbench code."""
    from PIL import Image

    with torch.no_grad():
        pixels = clip.processor(images=[Image.open(image_file).convert("RGB")], return_tensors="pt").pixel_values
        v = clip.model.get_image_features(pixel_values=pixels).pooler_output[0]
        ids = clip.tokenizer([text], return_tensors="pt")
        t = clip.model.get_text_features(**ids).pooler_output[0]
    return float(t @ v / (t.norm() * v.norm()))


def test_the_reward_is_the_cosine_of_clip_text_and_image_features(clip, image_dir):
    task = Inversion(InversionConfig(image="red", data_dir=str(image_dir)), ClipScorer(clip))
    prompts = ["a photo of the red cat", "blue sky", "qz"]
    scores = task.score(prompts, "train")
    expected = [hand_cosine(clip, p, image_dir / "red.png") for p in prompts]
    assert scores["reward"].tolist() == pytest.approx(expected, abs=1e-5)
    assert len(set(expected)) == 3  # the prompts are told apart
    # CLIP tokens without start and end: one per known word, one per character otherwise
    assert scores["clip_tokens"].tolist() == [6.0, 2.0, 2.0]
    assert "eval_clip_score" not in scores  # the second judge scores test only


def test_several_images_make_the_reward_their_mean_cosine(clip, image_dir):
    task = Inversion(InversionConfig(image="red.png, stripes", data_dir=str(image_dir)), ClipScorer(clip))
    got = float(task.score(["a red painting"])["reward"][0])
    each = [hand_cosine(clip, "a red painting", image_dir / f) for f in ("red.png", "stripes.png")]
    assert got == pytest.approx(sum(each) / 2, abs=1e-5)
    assert [p.name for p in task.paths] == ["red.png", "stripes.png"]


def test_test_scores_add_a_second_clip_and_padding_does_not_move_a_score(clip, image_dir, tmp_path):
    other = load_model(str(save_tiny_clip(tmp_path / "other", seed=1)), "clip")
    task = Inversion(InversionConfig(image="noise", data_dir=str(image_dir)), ClipScorer(clip),
                     eval_clip=ClipScorer(other))
    prompts = ["cat", "a photo of the dog in the city at night"]  # batched: the short one is padded
    test = task.score(prompts, "test")
    assert test["reward"].tolist() == pytest.approx([hand_cosine(clip, p, image_dir / "noise.jpg") for p in prompts], abs=1e-5)
    assert test["eval_clip_score"].tolist() == pytest.approx(
        [hand_cosine(other, p, image_dir / "noise.jpg") for p in prompts], abs=1e-5)
    assert not torch.allclose(test["reward"], test["eval_clip_score"])


def test_the_white_box_path_equals_the_text_path_on_a_prompts_own_tokens(clip, image_dir):
    task = Inversion(InversionConfig(image="stripes", data_dir=str(image_dir)), ClipScorer(clip))
    white_box = task.differentiable()
    for text in ("a photo of the cat", "night sky", "qz"):
        ids = white_box.encode(text)
        assert white_box.decode(ids) == text
        loss = white_box.loss(white_box.vocabulary[ids].detach(), white_box.batch(None, torch.Generator()))
        assert 1 - float(loss) == pytest.approx(float(task.score([text])["reward"][0]), abs=1e-5)


def test_image_errors_name_the_file(image_dir, tmp_path):
    with pytest.raises(DataError, match=r"target image 'blue' not found in .*targets"):
        image_paths("red, blue", image_dir)
    with pytest.raises(DataError, match=r"target image 'red.png' \(not in the working directory\).*--data-dir DIR"):
        image_paths("red.png", None)  # nor in the Lexica images of the data rule's places
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    spec = make_spec({"task": "inversion", "task.image": str(tmp_path / "broken.jpg"),
                      "task.clip_model": "no-such-org/no-such-clip"})
    with pytest.raises(DataError, match="broken.jpg' cannot be read as an image"):
        Inversion.load(spec.task_config, spec.run)  # the image fails before the model would
    assert image_paths("red", image_dir) == [image_dir / "red.png"]  # the stem is enough


@pytest.mark.parametrize("offline_mode", [True, False])
def test_an_unreachable_hub_clip_fails_in_one_line_naming_it(image_dir, monkeypatch, offline_mode):
    """HF_HUB_OFFLINE set (from_pretrained refuses at once) or not (no route to the hub)."""
    import socket

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline_mode)
    if not offline_mode:
        def no_network(*args, **kwargs):
            raise OSError("Temporary failure in name resolution")
        monkeypatch.setattr(socket, "getaddrinfo", no_network)
    spec = make_spec({"task": "inversion", "task.clip_model": "no-such-org/no-such-clip",
                      "task.data_dir": str(image_dir), "task.image": "red"})
    with pytest.raises(ModelLoadError) as caught:
        Inversion.build(spec.task_config, spec.run)
    message = str(caught.value)
    assert message.startswith("could not load clip model 'no-such-org/no-such-clip'") and "\n" not in message
    if not offline_mode:
        assert "cannot reach" in message


def test_dataset_name_is_the_image_set(image_dir):
    assert Inversion.dataset_name(InversionConfig(data_dir=str(image_dir))) == "targets"
    assert Inversion.dataset_name(InversionConfig(image=str(image_dir / "red.png"))) == "targets"


# ---- PIN on the inversion task ---------------------------------------------------------------


def test_pin_on_inversion_shapes_the_raw_cosine_and_reports_the_best_sample(tiny_clip_dir, image_dir):
    from pinbench.methods.rl.trainer import RLMethod

    spec = make_spec({"preset": "pin", **task_values(tiny_clip_dir, image_dir, **{"task.image": "red"}),
                      "run.steps": 6, "run.eval_every": 3, "method.replay_batch": 32, "method.top_k": 20,
                      "method.mlp_hidden": 32, "method.reward_scale": 10.0, "method.reward_shift": -1.0})
    assert (spec.method_config.prompt_length, spec.method_config.prompts_per_step) == (8, 32)  # PIN's inversion
    trainer = RLMethod(spec, policy_lm=build_gpt2())
    result = trainer.train()
    # the buffer holds 10 x cosine - 1 of each sampled prompt: no z-score
    buffer = trainer.buffer._data
    texts = trainer.policy.decode(buffer["tokens"][:32])
    cosines = trainer.task.score(texts)["reward"]
    assert buffer["reward"][:32].tolist() == pytest.approx((10 * cosines - 1).tolist(), abs=1e-4)
    # the reported prompt is the best reward seen: the best sample of some step, or a greedy one
    seen = [r["train_reward"] for r in result.prompts if r["source"] in ("sampled", "greedy")]
    best_sample = max(row["reward_max"] for row in result.history)
    assert result.best["train_reward"] == pytest.approx(max(seen)) and max(seen) >= best_sample - 1e-6
    assert result.best["source"] in ("sampled", "greedy")
    # sampled candidates are recorded only when they improve: increasing rewards
    sampled = [r["train_reward"] for r in result.prompts if r["source"] == "sampled"]
    assert sampled == sorted(sampled) and len(set(sampled)) == len(sampled)
    # scored on test at the end, from its text
    assert result.test["test_reward"] == pytest.approx(result.best["train_reward"], abs=1e-6)
    assert result.test["test_clip_tokens"] >= 1


def test_reward_zscore_is_the_tasks_rule_unless_the_method_says(tiny_clip_dir, image_dir):
    from pinbench.methods.rl.trainer import RLMethod

    values = {**task_values(tiny_clip_dir, image_dir, **{"task.image": "red"}), "run.steps": 1,
              "method.replay_size": 0, "method.mlp_hidden": 16, "method.prompt_length": 3, "method.top_k": None}
    trainer = RLMethod(make_spec({**values, "method.reward_zscore": True}), policy_lm=build_gpt2())
    assert trainer.reward_zscore is True
    assert RLMethod(make_spec(values), policy_lm=build_gpt2()).reward_zscore is False


# ---- PEZ -------------------------------------------------------------------------------------


def pez(clip_dir, image_dir, **more):
    from pinbench.methods.pez.method import PEZ

    values = {"preset": "pez", **task_values(clip_dir, image_dir, **{"task.image": "red,stripes"}),
              "run.steps": 4, "method.prompt_length": 4, **more}
    return PEZ(make_spec(values))


def test_pez_projects_onto_the_nearest_row_by_cosine(tiny_clip_dir, image_dir):
    method = pez(tiny_clip_dir, image_dir)
    vocab = method.white_box.vocabulary.detach()
    ids = torch.tensor([5, 300, 520, 17])
    # a row scaled up stays nearest by cosine; a small nudge does not move it
    queries = vocab[ids] * torch.tensor([[3.0], [0.5], [1.0], [1.0]]) + 1e-4 * torch.randn(4, vocab.shape[1])
    assert method.project(queries).tolist() == ids.tolist()
    # by hand: the highest cosine over the vocabulary
    q = torch.randn(4, vocab.shape[1], generator=torch.Generator().manual_seed(1))
    cos = (q / q.norm(dim=-1, keepdim=True)) @ (vocab / vocab.norm(dim=-1, keepdim=True)).T
    assert method.project(q).tolist() == cos.argmax(-1).tolist()


def test_pez_without_special_tokens_never_projects_onto_one(tiny_clip_dir, image_dir):
    method = pez(tiny_clip_dir, image_dir, **{"method.allowed_tokens": "no_special"})
    specials = method.white_box.special_ids()
    vocab = method.white_box.vocabulary.detach()
    assert method.project(vocab[specials]).tolist() != specials
    assert not set(method.project(vocab[specials]).tolist()) & set(specials)
    assert pez(tiny_clip_dir, image_dir).project(vocab[specials]).tolist() == specials  # PEZ's code: all


def test_pez_applies_the_gradient_at_the_projection_to_the_continuous_embeddings(tiny_clip_dir, image_dir):
    method = pez(tiny_clip_dir, image_dir, **{"method.batch_size": None})
    white_box, start = method.white_box, method.embeds.detach().clone()
    with torch.no_grad():  # move P off its projection, so the two gradients differ
        method.embeds.add_(0.3 * torch.randn(start.shape, generator=torch.Generator().manual_seed(0)))
    moved = method.embeds.detach().clone()
    ids = method.project(moved)
    at_projection = white_box.vocabulary[ids].detach().clone().requires_grad_(True)
    (expected,) = torch.autograd.grad(white_box.loss(at_projection, [0, 1]), at_projection)
    at_p = moved.clone().requires_grad_(True)
    (naive,) = torch.autograd.grad(white_box.loss(at_p, [0, 1]), at_p)
    assert not torch.allclose(expected, naive, atol=1e-6)
    captured = {}
    step = method.optimizer.step
    method.optimizer.step = lambda: (captured.setdefault("grad", method.embeds.grad.clone()), step())
    method.iterate()
    assert torch.allclose(captured["grad"], expected, atol=1e-6)
    # AdamW's first step moves every coordinate by lr against the gradient's sign, after the decay
    lr, wd = method.config.lr, method.config.weight_decay
    want = moved * (1 - lr * wd) - lr * torch.sign(expected)
    nonzero = expected.abs() > 1e-6
    assert torch.allclose(method.embeds.detach()[nonzero], want[nonzero], atol=1e-5)
    assert method.ids == ids.tolist()


def test_pez_end_to_end_keeps_the_best_projected_prompt_and_resumes(tiny_clip_dir, image_dir):
    method = pez(tiny_clip_dir, image_dir, **{"run.steps": 8})
    for _ in range(4):
        method.step()
    state = copy.deepcopy(method.state_dict())  # a checkpoint is a copy (the optimizer's moments move on)
    result = method.train()
    evaluated = [r for r in result.prompts if r["source"] == "projected"]
    assert len(evaluated) == 8  # every step's projection is a candidate (PEZ scores each)
    assert result.best["train_reward"] == max(r["train_reward"] for r in evaluated)
    assert result.test["test_reward"] == pytest.approx(result.best["train_reward"], abs=1e-6)
    assert result.prompt_tokenizer == str(tiny_clip_dir)
    assert all(isinstance(r["round_trip"], bool) for r in evaluated)
    # a run continued from the step-4 state ends where the uninterrupted one did
    again = pez(tiny_clip_dir, image_dir, **{"run.steps": 8})
    again.load_state_dict(state)
    resumed = again.train()
    assert [r["prompt"] for r in resumed.prompts] == [r["prompt"] for r in result.prompts]
    assert torch.equal(again.embeds, method.embeds)


def test_pez_on_classification_descends_the_verbalizer_loss(tiny_setup):
    from pinbench.methods.pez.method import PEZ

    model_dir, dataset_file = tiny_setup
    spec = make_spec({"preset": "pez", "task.dataset": "toy", "task.dataset_file": str(dataset_file),
                      "task.data_dir": str(dataset_file.parent), "task.split_seed": 5, "task.task_lm": str(model_dir),
                      "run.steps": 6, "run.eval_every": 3, "method.prompt_length": 2})
    assert (spec.method_config.allowed_tokens, spec.method_config.batch_size) == ("no_special", 16)
    method = PEZ(spec)
    result = method.train()
    specials = set(method.white_box.special_ids())
    assert [r["step"] for r in result.prompts if r["source"] == "projected"] == [3, 6]
    assert not any(set(r["token_ids"]) & specials for r in result.prompts)
    assert "dev_accuracy" in result.best and "test_accuracy" in result.test
    # the history's loss is the verbalizer cross-entropy of the step's projection, on all examples
    white_box = method.white_box
    first = method.history_loss = result.history[-1]["loss"]
    assert first == pytest.approx(float(white_box.loss(white_box.vocabulary[torch.tensor(method.ids)],
                                                       white_box.batch(None, torch.Generator()))), abs=1e-5)


def test_pez_needs_a_task_with_a_white_box(monkeypatch):
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "plugins"))
    spec = make_spec({"plugins": ["toy_plugins"], "task": "prompt-length", "method": "pez"})
    with pytest.raises(ConfigError, match="method 'pez' needs gradients .* task 'prompt-length' has no white-box"):
        spec.method_class(spec)


def test_the_pez_preset_has_no_values_for_style_transfer():
    with pytest.raises(ConfigError, match="preset 'pez' has no values for task 'style_transfer'"):
        make_spec({"preset": "pez", "task": "style_transfer"})


def test_the_paper_inversion_suite_is_three_blocks_of_trials():
    from pinbench.suite import load_suite

    from conftest import REPO

    trials = load_suite(REPO / "suites" / "paper-inversion.yaml").trials()
    by_preset = {}
    for t in trials:
        by_preset.setdefault(t.spec.preset, []).append(t)
    assert {k: len(v) for k, v in by_preset.items()} == {"pin": 60, "rlprompt": 30, "pez": 30}
    assert {t.spec.method_config.top_k for t in by_preset["pin"]} == {10000, 20000}
    assert all(t.spec.method_config.policy_lm == "facebook/opt-350m" for t in by_preset["rlprompt"])
    pez_run = by_preset["pez"][0].spec
    assert (pez_run.method_config.prompt_length, pez_run.run.steps, pez_run.method_config.lr) == (16, 3000, 0.1)
    assert len({t.trial_id for t in trials}) == 120


def test_eval_cli_scores_prompts_against_an_image(tiny_clip_dir, image_dir, clip, tmp_path, capsys):
    import pandas as pd

    from pinbench.cli import main

    out = tmp_path / "scores.csv"
    code = main(["eval", "--task", "inversion", "--data-dir", str(image_dir), "--set", "image=stripes",
                 "--set", f"clip_model={tiny_clip_dir}", "--prompt", "blue sky", "--prompt", "a red cat",
                 "--predictions", str(out)])
    assert code == 0 and "stripes.png" in capsys.readouterr().out
    frame = pd.read_csv(out)
    assert frame["reward"].tolist() == pytest.approx(
        [hand_cosine(clip, p, image_dir / "stripes.png") for p in ("blue sky", "a red cat")], abs=1e-4)
    assert frame["eval_clip_score"].isna().all()  # no second CLIP named
    assert main(["eval", "--prompt", "x"]) == 2  # classification still needs its dataset
    assert "give --dataset" in capsys.readouterr().err


def test_train_cli_logs_each_pez_evaluation_with_its_loss(tiny_clip_dir, image_dir, tmp_path, capsys):
    from pinbench.cli import main

    code = main(["train", "--task", "inversion", "--preset", "pez", "--steps", "4", "--eval-every", "2",
                 "--set", f"task.clip_model={tiny_clip_dir}", "--set", f"task.data_dir={image_dir}",
                 "--set", "task.image=red", "--set", "method.prompt_length=3", "--out", str(tmp_path / "run")])
    assert code == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("step ")]
    assert [line.split(" loss ")[0] for line in lines] == ["step 2/4", "step 4/4"]
    assert all(" train_reward 0." in line and " projected '" in line for line in lines)


def test_unusual_image_modes_are_read_and_huge_ones_refused_before_decoding(tmp_path, monkeypatch):
    """16-bit grey (PIL's RGB conversion clips it to white), palette, CMYK and alpha images become
    RGB that keeps their content; a header declaring more pixels than the limit is refused by name
    before any pixel is decoded."""
    import numpy as np
    from PIL import Image

    from pinbench.errors import DataError
    from pinbench.tasks.inversion import images as C

    ramp = (np.arange(64 * 32).reshape(32, 64) * 30).astype(np.uint16)  # 0 .. ~61,000
    Image.fromarray(ramp).save(tmp_path / "grey16.png")
    rgb = np.asarray(C.read_image(tmp_path / "grey16.png"))
    assert rgb.shape == (32, 64, 3) and rgb.min() == 0 and rgb.max() == 255
    assert len(np.unique(rgb[..., 0])) > 100  # a ramp, not clipped to one value
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg")
    assert tuple(np.asarray(C.read_image(tmp_path / "cmyk.jpg"))[4, 4]) == pytest.approx((255, 0, 0), abs=8)
    Image.new("RGBA", (8, 8), (10, 200, 30, 128)).save(tmp_path / "alpha.png")
    assert tuple(np.asarray(C.read_image(tmp_path / "alpha.png"))[0, 0]) == (10, 200, 30)
    Image.new("RGB", (400, 300)).save(tmp_path / "big.png")
    monkeypatch.setattr(C, "MAX_IMAGE_PIXELS", 100_000)
    with pytest.raises(DataError, match=r"target image '.*big.png' is 400 x 300 pixels, over the limit of 100,000"):
        C.read_image(tmp_path / "big.png")
