"""`pinbench sweep --smoke` (pinbench/smoke.py), the cost projection (pinbench/cost.py) and the GPU
shape script's CPU dry run (bench/gpu_paper_shapes.py). Models are tiny: PINBENCH_SMOKE_SHRINK
builds every shipped config at width 32 and 2 layers, with the real vocabularies and special tokens."""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from pinbench import smoke
from pinbench.errors import ModelLoadError
from pinbench.models import clear_cache, load_model
from pinbench.suite import load_suite, parse_suite

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def smoke_env(monkeypatch):
    """Random-weight, tiny models in this process; the model cache is cleared around the test."""
    monkeypatch.setenv(smoke.ENV, "1")
    monkeypatch.setenv(smoke.SHRINK_ENV, "1")
    monkeypatch.delenv(smoke.LAYERS_ENV, raising=False)
    clear_cache()
    yield
    clear_cache()


# ---- set-ups ---------------------------------------------------------------------------------


def test_paper_suites_group_into_their_model_setups():
    fsc = smoke.group_setups(load_suite(REPO / "suites/paper-fsc.yaml"))
    assert [s.method for s in fsc] == ["rl", "fixed", "soft_prompt", "grips", "autoprompt", "pez", "random_search"]
    rl = fsc[0]
    assert rl.presets == ["pin", "pin-td", "pin-released", "rlprompt"] and len(rl.trials) == 420
    assert rl.models == {"method.policy_lm": "facebook/opt-125m", "task.task_lm": "roberta-large",
                         "task.task_lm_kind": "masked"}
    assert fsc[3].models["method.paraphrase_model"] == "tuner007/pegasus_paraphrase"
    assert sum(len(s.trials) for s in fsc) == 1120
    tst = smoke.group_setups(load_suite(REPO / "suites/paper-tst.yaml"))
    assert [s.models["task.task_lm"] for s in tst] == ["facebook/opt-125m", "facebook/opt-350m", "facebook/opt-1.3b"]
    assert tst[0].models["task.fluency_classifier"] == "cointegrated/roberta-large-cola-krishna2020"
    assert tst[0].models["task.reference_lm"] == "gpt2" and "task.style_classifier" not in tst[0].models
    inv = smoke.group_setups(load_suite(REPO / "suites/paper-inversion.yaml"))
    assert [(s.method, len(s.trials)) for s in inv] == [("rl", 90), ("pez", 30)]
    assert inv[0].models["task.eval_clip_model"] == "openai/clip-vit-large-patch14"
    for setup in fsc + tst + inv:  # every paper model has a shipped config
        assert smoke.unbuildable(setup) == []


def test_setup_key_of_a_store_row_matches_the_suites():
    setup = smoke.group_setups(load_suite(REPO / "suites/paper-fsc.yaml"))[0]
    row = {"task": "classification", "method": "rl", "task.task_lm": "roberta-large", "task.task_lm_kind": "masked",
           "method.policy_lm": "facebook/opt-125m", "task.dataset": "mr", "method.alpha": 1.0,
           "task.dataset_file": None, "method.paraphrase_model": float("nan")}
    assert smoke.setup_key(row) == setup.key


# ---- stand-in tokenizers ---------------------------------------------------------------------


@pytest.mark.parametrize("name, size, specials", [
    ("roberta-large", 50265, {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3, "<mask>": 50264}),
    ("facebook/opt-125m", 50265, {"<pad>": 1, "</s>": 2, "<unk>": 3}),
    ("gpt2", 50257, {"<|endoftext|>": 50256}),
    ("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", 49408, {"<|startoftext|>": 49406, "<|endoftext|>": 49407}),
])
def test_standin_tokenizer_has_the_models_size_and_special_tokens(name, size, specials):
    tok = smoke.tokenizer_for(name)
    assert len(tok) == size
    for content, index in specials.items():
        assert tok.convert_tokens_to_ids(content) == index
    if name == "roberta-large":
        assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id, tok.mask_token_id) == (0, 1, 2, 50264)
        assert tok("it was").input_ids[0] == 0 and tok("it was").input_ids[-1] == 2
        assert tok.model_max_length == 512
        for word in smoke.verbalizer_words():  # every registered verbalizer is one token
            assert len(tok(word, add_special_tokens=False).input_ids) == 1, word
    if name == "facebook/opt-125m":
        assert tok("it was").input_ids[0] == 2  # OPT prepends </s>
    if name.startswith("laion/"):
        ids = tok("A PHOTO").input_ids
        assert ids[0] == 49406 and ids[-1] == 49407 and tok.model_max_length == 77
        assert tok.decode(ids[1:-1]) == "a photo"  # CLIP lowercases


# ---- random-weight loading -------------------------------------------------------------------


def test_load_model_builds_random_weights_from_the_shipped_config(smoke_env):
    lm = load_model("roberta-large", "masked")
    assert type(lm.model).__name__ == "RobertaForMaskedLM"
    assert lm.model.get_input_embeddings().weight.shape == (50265, 32)  # the real vocabulary, tiny width
    assert not any(p.requires_grad for p in lm.model.parameters()) and not lm.model.training
    assert len(lm.tokenizer) == 50265 and lm.tokenizer.mask_token_id == 50264
    assert load_model("roberta-large", "masked") is lm
    again = smoke.random_weights("roberta-large", "masked")[0]  # seeded by the name
    assert all((a == b).all() for a, b in zip(lm.model.parameters(), again.parameters()))
    opt = load_model("facebook/opt-350m", "causal")
    assert opt.model.config.word_embed_proj_dim != opt.model.config.hidden_size  # OPT-350M's projection kept
    assert opt.model.get_output_embeddings().weight.shape[0] == 50272 and len(opt.tokenizer) == 50265
    clip = load_model("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "clip")
    assert clip.processor is not None and clip.model.config.vision_config.image_size == 224
    assert smoke.BUILT[-1]["note"].startswith("tiny")


def test_layer_cap_and_directory_configs(smoke_env, monkeypatch, tiny_lm_dir):
    monkeypatch.delenv(smoke.SHRINK_ENV)
    monkeypatch.setenv(smoke.LAYERS_ENV, f"{tiny_lm_dir}=1")
    lm = load_model(tiny_lm_dir, "causal")  # a directory: its own config.json and tokenizer
    assert lm.model.config.n_layer == 1 and smoke.BUILT[-1]["note"].startswith("1 of ")
    assert smoke.BUILT[-1]["config"] == "directory"
    config, note = smoke.cap_layers({"text_config": {"num_hidden_layers": 24}, "vision_config": {"num_hidden_layers": 32},
                                     "model_type": "clip"}, 4)
    assert config["text_config"]["num_hidden_layers"] == 4 and note == "4 of 32 layers"


def test_unknown_model_says_which_file_it_needs(smoke_env):
    with pytest.raises(ModelLoadError, match=r"needs config\.json of someone/no-such-model \(put it in the "
                                             r"Hugging Face cache, or ship it as pinbench/smoke_configs/"
                                             r"someone--no-such-model\.json"):
        load_model("someone/no-such-model", "causal")
    # a loader that calls from_pretrained itself (GrIPS's paraphraser) gets the same answer
    from pinbench.models import _hub_unreachable_reason

    assert "needs config.json of someone/no-such-model" in _hub_unreachable_reason("someone/no-such-model")
    assert _hub_unreachable_reason("tuner007/pegasus_paraphrase") is None
    import transformers

    model = transformers.AutoModelForSeq2SeqLM.from_pretrained("tuner007/pegasus_paraphrase")
    assert type(model).__name__ == "PegasusForConditionalGeneration"


def test_unbuildable_setup_is_named_before_anything_runs(tmp_path):
    suite = parse_suite({"name": "x", "base": {"task.task_lm": "someone/private-lm", "method.policy_lm": "smollm2-135m"}})
    [setup] = smoke.group_setups(suite)
    [problem] = smoke.unbuildable(setup)
    assert "needs config.json of someone/private-lm" in problem  # smollm2-135m is an offline alias


# ---- the smoke, end to end (Ray) ---------------------------------------------------------------


@pytest.mark.slow
def test_smoke_runs_each_setup_once_prints_the_table_and_measures_each_trial(tmp_path, tiny_setup, monkeypatch):
    from rich.console import Console

    model_dir, spec = tiny_setup
    path = tmp_path / "tiny.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: tiny-smoke
        base:
          dataset: toy
          dataset_file: {spec}
          split_seed: 5
          task_lm: {model_dir}
          steps: 50
          run.device: cuda
        grid:
          - preset: [pin, rlprompt]
            policy_lm: [{model_dir}]
            mlp_hidden: [16]
            top_k: [20]
            replay_batch: [8]
            seed: [0, 1]
          - preset: [random-search]
            policy_lm: [{model_dir}]
            top_k: [20]
          - preset: [pin]
            policy_lm: [someone/unknown-policy]
        resources: {{cpu: 1, gpu: 0.5}}
        """))
    monkeypatch.setenv(smoke.SHRINK_ENV, "1")
    printed = io.StringIO()
    code, rows = smoke.run_smoke(load_suite(path), num_cpus=2, console=Console(file=printed, width=200),
                                 workdir=tmp_path / "work", keep=True)
    out = printed.getvalue()
    assert code == 1, out  # the unknown policy LM cannot be built
    assert "3 model set-up(s) in 6 trial(s); 2 to run" in out
    assert "pin*, rlprompt (4 trials)" in out and "random-search* (1 trials)" in out and "cannot build" in out
    assert "needs config.json of someone/unknown-policy" in out
    assert out.count(" pass ") == 2 and "2/3 set-up(s) passed" in out
    assert "run.device cuda -> cpu (no CUDA here)" in out and "replay warm-up off" in out
    assert "toy: 2 examples per class per split" in out
    # each trial that ran is measured: the pin set-up's, with one model as task and policy LM
    pin = next(r for r in rows if r.setup.presets[0] == "pin" and r.status == "pass")
    numbers = smoke.summary(pin)
    assert numbers["steps"] == 2 and numbers["step_s"] > 0 and numbers["test_s"] is not None
    assert numbers["peak_rss_mb"] > 50 and numbers["load_s"] > 0
    assert {m["config"] for m in pin.stats["models"]} == {"directory"}
    trials = pd.read_parquet(tmp_path / "work" / "results" / "tiny-smoke-smoke" / "trials.parquet")
    ran = trials.set_index("trial_id").loc[pin.trial_id]
    assert ran["steps"] == 2 and ran["run.eval_every"] == 2 and not ran["method.replay_warmup"]


def test_smoke_on_the_command_line_exits_1_when_a_setup_cannot_be_built(tmp_path, tiny_setup, capsys, no_ray):
    """The command dispatches to run_smoke; a set-up that cannot be built fails it before Ray starts."""
    from pinbench.cli import main

    _, spec = tiny_setup
    path = tmp_path / "bad.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: bad-smoke
        base: {{dataset: toy, dataset_file: {spec}, split_seed: 5, preset: pin,
                policy_lm: someone/unknown-policy, task_lm: someone/unknown-policy}}
        """))
    assert main(["sweep", str(path), "--smoke"]) == 1
    out = capsys.readouterr().out
    assert "cannot build" in out and "0/1 set-up(s) passed" in out and not no_ray


# ---- the cost projection ------------------------------------------------------------------------


def test_projection_from_the_gpu_json_and_from_a_store(tmp_path):
    suite = load_suite(REPO / "suites/paper-inversion.yaml")
    rl, pez = smoke.group_setups(suite)
    doc = {"device": "H200", "setups": [
        {"task": "inversion", "method": "rl", "models": rl.models, "step_s": 0.5, "eval_s": 2.0},
        {"task": "classification", "method": "rl", "models": {}, "step_s": 9.0}]}
    (tmp_path / "shapes.json").write_text(json.dumps(doc))
    from pinbench.cost import from_store, load_step_times, project

    frame = project(suite, load_step_times(tmp_path / "shapes.json"))
    row = frame.iloc[0]
    # 90 trials x 20,000 steps x 0.5 s + 90 x 400 evaluations x 2 s
    assert row["trials"] == 90 and row["steps"] == 90 * 20000
    assert row["hours"] == pytest.approx((90 * 20000 * 0.5 + 90 * 400 * 2.0) / 3600)
    assert row["device_hours"] == pytest.approx(row["hours"] * 0.5) and row["source"] == "shapes.json (H200)"
    assert math.isnan(frame.iloc[1]["hours"]) and frame.iloc[1]["source"] == ""
    # a store of earlier runs: median wall time per step of the set-up's completed trials
    store = tmp_path / "store"
    store.mkdir()
    rows = [{"trial_id": f"t{i}", "status": s, "task": "inversion", "method": "pez", "steps": 100, "wall_time_s": w,
             "dataset": "lexica", **{k: v for k, v in pez.models.items()}}
            for i, (s, w) in enumerate([("completed", 30.0), ("completed", 50.0), ("failed", 1.0)])]
    pd.DataFrame(rows).to_parquet(store / "trials.parquet")
    [measured] = from_store(store)
    assert measured.step_s == pytest.approx(0.4) and measured.key == pez.key
    frame = project(suite, load_step_times(store))
    assert frame.iloc[1]["hours"] == pytest.approx(30 * 3000 * 0.4 / 3600)


def test_dry_run_prints_the_projection(tmp_path, capsys):
    from pinbench.cli import main

    suite = load_suite(REPO / "suites/paper-tst.yaml")
    setups = smoke.group_setups(suite)
    doc = {"setups": [{"task": s.task, "method": s.method, "models": s.models, "step_s": 1.0 + i, "eval_s": 0.0}
                      for i, s in enumerate(setups)]}
    (tmp_path / "t.json").write_text(json.dumps(doc))
    assert main(["sweep", str(REPO / "suites/paper-tst.yaml"), "--dry-run", "--step-times", str(tmp_path / "t.json"),
                 "--results", str(tmp_path / "none")]) == 0
    out = capsys.readouterr().out
    assert "projected cost" in out and "measured set-ups: 3/3" in out
    # 16 trials per set-up: pin 15,000 and rlprompt 12,000 steps, 8 of each
    hours = 8 * (15000 + 12000) * (1 + 2 + 3) / 3600
    assert f"{hours:,.1f} trial-hours, {hours * 0.5:,.1f} GPU-hours" in out
    assert main(["sweep", str(REPO / "suites/paper-tst.yaml"), "--dry-run", "--results", str(tmp_path / "none")]) == 0
    assert "no measured step times" in capsys.readouterr().out


# ---- the GPU script ----------------------------------------------------------------------------


def test_gpu_shape_script_imports_no_ray(tmp_path):
    """The GPU script's path (pinbench's models, tasks, methods, smoke and cost) runs without Ray."""
    code = textwrap.dedent("""
        import sys
        class NoRay:
            def find_spec(self, name, path=None, target=None):
                if name == "ray" or name.startswith("ray."):
                    raise ImportError("ray is blocked")
        sys.meta_path.insert(0, NoRay())
        import pinbench.tasks.classification.task, pinbench.tasks.style_transfer.task, pinbench.tasks.inversion.task
        import pinbench.methods.rl.trainer, pinbench.methods.pez.method, pinbench.smoke, pinbench.cost
        import pinbench.random_models
        import pinbench.tasks.style_transfer.generation, pinbench.tasks.style_transfer.scorers
        from pinbench.run import make_spec
        make_spec({"preset": "pin", "task": "inversion"}).method_class
        print("ok", "ray" in sys.modules)
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["ok", "False"]


@pytest.mark.slow
def test_gpu_shape_script_dry_run(tmp_path):
    out = tmp_path / "shapes.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop(smoke.ENV, None)
    proc = subprocess.run([sys.executable, str(REPO / "bench/gpu_paper_shapes.py"), "--dry-run", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    doc = json.loads(out.read_text())
    assert doc["dry_run"] and doc["fsc_scoring"]["pairs_per_s_warm"] > 0 and doc["fsc_scoring"]["ratio_to_bound_warm"] > 0
    assert doc["pin_step"]["step_ms"] > 0 and doc["pin_step"]["update_s"] > 0
    assert set(doc["generation"]["models"]) == {"facebook/opt-125m", "facebook/opt-350m", "facebook/opt-1.3b"}
    assert doc["clip"]["steps_per_s"] > 0 and doc["clip"]["pin_step"]["wall_s"] > 0
    fsc = doc["projection"]["paper-fsc"]
    assert fsc["measured_setups"] == "2/7" and fsc["device_hours"] > 0
    assert doc["projection"]["paper-tst"]["measured_setups"] == "3/3"
    assert doc["projection"]["paper-inversion"]["measured_setups"] == "2/2"
    by = next(e for e in doc["setups"] if e["suite"] == "paper-fsc" and e["method"] == "rl")["step_s_by_dataset"]
    assert by["yahoo"] > by["agnews"] > by["sst-2"]  # 10, 4 and 2 classes of 16 examples


def test_smoke_data_never_overwrites_the_users_split_files(tmp_path):
    """A path pattern with enough '..' to reach the filesystem's root names the same files from the
    smoke run's work folder as from the data folder: the trimmed copies would overwrite the user's
    splits. The smoke trial reads those full splits instead, and the files stay as they were."""
    from pinbench.run import make_spec
    from pinbench.tasks.classification.task import FewShotClassification

    data = tmp_path / "data"
    data.mkdir()
    rows = "sentence\tlabel\n" + "".join(f"real row {i}\t{i % 2}\n" for i in range(7))
    for split in ("train", "dev", "test"):
        (data / f"{split}.tsv").write_text(rows)
    up = "../" * (len(tmp_path.parts) + 4)  # more than any folder's depth: '..' stops at '/'
    (tmp_path / "mine.yaml").write_text(textwrap.dedent(f"""\
        mine:
          verbalizers: [" bad", " good"]
          template: "{{input}} {{prompt}} {{mask}} ."
          path: "{up}{str(data).lstrip('/')}/{{split}}.tsv"
        """))
    spec = make_spec({"task.dataset": "mine", "task.dataset_file": str(tmp_path / "mine.yaml")})
    work = tmp_path / "work"
    work.mkdir()
    overrides, notes = FewShotClassification.smoke_settings(spec.task_config, spec.run, work)
    assert overrides == {} and notes == ["mine: full splits (its path pattern leaves the data folder)"]
    assert [(data / f"{s}.tsv").read_text() for s in ("train", "dev", "test")] == [rows] * 3
    assert not any(work.rglob("*.tsv"))
