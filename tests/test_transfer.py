"""Prompt transfer: a store's best prompts scored with other task LMs (``pinbench transfer``) and
the report's transfer table."""

from __future__ import annotations

import argparse
import shutil

import pandas as pd
import pytest
import torch

from conftest import SHARP, WORDS, build_llama
from pinbench.cli import main
from pinbench.errors import PinbenchError
from pinbench.transfer import TRANSFER_FILE, add_transfer_parser, lm_key, run_transfer

SPLIT_SEED = 5


def _save(loaded, path):
    loaded.model.save_pretrained(path)
    loaded.tokenizer.save_pretrained(path)
    return path


def _split_word_gpt2(path):
    """A tiny GPT-2 whose WordPiece tokenizer spells 'okay' as 'ok' + '##ay': the toy dataset's
    verbalizer ' okay' is two tokens for it."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    specials = ["<pad>", "<unk>", "<s>", "</s>"]
    vocab = {t: i for i, t in enumerate(specials + [w for w in WORDS if w != "okay"] + ["ok", "##ay"])}
    tok = Tokenizer(models.WordPiece(vocab=vocab, unk_token="<unk>", continuing_subword_prefix="##"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>",
                                        bos_token="<s>", eos_token="</s>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(vocab), n_positions=128, n_embd=32, n_layer=2, n_head=2,
                                       bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def lms(tiny_setup, tmp_path_factory):
    """Three task LMs over the toy dataset's words: the tiny GPT-2 ('tiny-model'), a sharp Llama
    ('tiny-llama'), and a GPT-2 that splits the verbalizer ' okay' ('tiny-split')."""
    model_dir, _ = tiny_setup
    root = tmp_path_factory.mktemp("transfer-lms")
    llama = _save(build_llama(SHARP), root / "tiny-llama")
    split = _split_word_gpt2(root / "tiny-split")
    return str(model_dir), str(llama), str(split)


@pytest.fixture(scope="module")
def trained(tiny_setup, lms, tmp_path_factory):
    """A root of two stores, each one trained PIN run on the toy dataset: store 'a' learned with
    tiny-model, store 'b' with tiny-llama (both trial ids are 'run')."""
    model_dir, spec = tiny_setup
    root = tmp_path_factory.mktemp("transfer-stores") / "stores"
    for name, lm in (("a", lms[0]), ("b", lms[1])):
        code = main(["train", "--preset", "pin", "--dataset", "toy", "--dataset-file", str(spec),
                     "--split-seed", str(SPLIT_SEED), "--policy-lm", str(model_dir), "--task-lm", lm,
                     "--top-k", "20", "--mlp-hidden", "32", "--steps", "4", "--eval-every", "2",
                     "--replay-batch", "8", "--out", str(root / name)])
        assert code == 0
    return root


@pytest.fixture
def stores(trained, tmp_path):
    """A fresh copy of the trained stores (a test's transfer.parquet does not leak into another's)."""
    return shutil.copytree(trained, tmp_path / "stores")


def _trial(stores, name) -> pd.Series:
    return pd.read_parquet(stores / name / "trials.parquet").iloc[0]


def _independent_score(lm: str, prompt: str, spec_file):
    """What `pinbench eval` computes for one prompt: the classification task with that LM, exact."""
    from pinbench.models import load_model
    from pinbench.tasks.classification import FewShotClassification
    from pinbench.tasks.classification.data import load_dataset_file

    load_dataset_file(spec_file)
    task = FewShotClassification("toy", load_model(lm, "causal"), None, SPLIT_SEED, bf16=False)
    result = task.evaluate([prompt], "test")
    return float(result.accuracy[0]), float(result.reward[0])


def test_same_lm_reproduces_the_store_and_other_lms_match_eval(stores, lms, tiny_setup, capsys):
    model_dir, llama, _ = lms
    frame = run_transfer([stores], [model_dir, llama])
    assert len(frame) == 4 and frame["skipped"].isna().all()
    assert set(zip(frame["store"].map(lambda s: s[-1]), frame["scored_with"].map(lm_key))) == \
        {(s, lm_key(lm)) for s in "ab" for lm in (model_dir, llama)}
    for name, learned in (("a", model_dir), ("b", llama)):
        trial = _trial(stores, name)
        rows = frame[frame["store"].str.endswith(name)]
        assert set(rows["learned_with"]) == {learned} and set(rows["prompt"]) == {trial["best_prompt"]}
        same = rows[rows["same_lm"]].iloc[0]
        # rescored with the LM it was learned with: exactly the store's test score
        assert same["scored_with"] == learned
        assert same["accuracy"] == trial["test_accuracy"] == same["store_accuracy"]
        assert same["reward"] == pytest.approx(trial["test_reward"], rel=1e-5, abs=1e-4)
        other = rows[~rows["same_lm"]].iloc[0]
        assert pd.isna(other["store_accuracy"])
        # scored with the other LM: what the task (pinbench eval) gives that prompt with that LM
        acc, reward = _independent_score(other["scored_with"], trial["best_prompt"], tiny_setup[1])
        assert other["accuracy"] == acc and other["reward"] == pytest.approx(reward, rel=1e-5, abs=1e-4)
        assert other["reward"] != pytest.approx(same["reward"], abs=1e-3)  # the scoring LM matters
        code = main(["eval", "--dataset", "toy", "--dataset-file", str(tiny_setup[1]), "--split-seed", "5",
                     "--prompt", trial["best_prompt"], "--task-lm", other["scored_with"], "--no-bf16"])
        assert code == 0 and f"{100 * other['accuracy']:.2f}%" in capsys.readouterr().out
    written = pd.concat([pd.read_parquet(stores / s / TRANSFER_FILE) for s in "ab"], ignore_index=True)
    assert len(written) == 4
    assert written.sort_values(["store", "scored_with"])["accuracy"].tolist() == \
        frame.sort_values(["store", "scored_with"])["accuracy"].tolist()


def test_rerun_merges_into_transfer_parquet(stores, lms):
    model_dir, llama, _ = lms
    run_transfer([stores], [llama])  # with the source: 2 rows per store
    file = stores / "a" / TRANSFER_FILE
    first = pd.read_parquet(file)
    assert len(first) == 2
    first.loc[:, "accuracy"] = -1.0  # a stale score a rerun must replace
    first.to_parquet(file, index=False)
    run_transfer([stores], [llama, model_dir])  # the same pairs again (model_dir is a's source)
    again = pd.read_parquet(file)
    assert len(again) == 2 and (again["accuracy"] >= 0).all()
    assert not again.duplicated(["trial_id", "scored_with", "split"]).any()
    run_transfer([stores, stores / "a"], [llama], split="dev", include_source=False)  # a store named twice
    merged = pd.read_parquet(file)
    assert sorted(merged["split"]) == ["dev", "test", "test"]
    assert not merged.duplicated(["trial_id", "scored_with", "split"]).any()


def test_an_interrupt_writes_the_groups_scored_before_it(stores, lms, monkeypatch):
    """Ctrl-C (or SIGTERM, which pinbench turns into it) while the second scoring LM runs: the rows
    of the first LM are in transfer.parquet, and the interrupt still stops the command."""
    from pinbench.tasks.classification import FewShotClassification

    model_dir, llama, _ = lms
    evaluate, calls = FewShotClassification.evaluate, []

    def interrupted_second(self, *args, **kwargs):
        calls.append(self)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return evaluate(self, *args, **kwargs)

    monkeypatch.setattr(FewShotClassification, "evaluate", interrupted_second)
    with pytest.raises(KeyboardInterrupt):
        run_transfer([stores], [model_dir, llama], include_source=False)
    written = pd.concat([pd.read_parquet(stores / s / TRANSFER_FILE) for s in "ab"], ignore_index=True)
    # the first group: both stores' prompts scored with the first LM, and nothing of the second
    assert len(written) == 2 and set(written["scored_with"].map(lm_key)) == {lm_key(model_dir)}
    assert written["accuracy"].notna().all()
    monkeypatch.setattr(FewShotClassification, "evaluate", evaluate)
    run_transfer([stores], [model_dir, llama], include_source=False)  # a rerun completes and merges
    assert len(pd.read_parquet(stores / "a" / TRANSFER_FILE)) == 2


def test_a_split_verbalizer_is_a_skipped_pair_not_a_failure(stores, lms, capsys):
    model_dir, _, split = lms
    frame = run_transfer([stores / "a"], [split, model_dir])
    bad = frame[frame["scored_with"] == lm_key(split)]
    assert len(bad) == 1 and pd.isna(bad["accuracy"]).all()
    reason = bad["skipped"].iloc[0]
    assert "' okay'" in reason and "tiny-split" in reason and "2 tokens" in reason
    assert frame.loc[frame["scored_with"] != lm_key(split), "accuracy"].notna().all()
    assert len(pd.read_parquet(stores / "a" / TRANSFER_FILE)) == 2
    # the command line says so and succeeds
    parser = argparse.ArgumentParser()
    add_transfer_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["transfer", str(stores / "a"), "--task-lm", split, "--no-include-source"])
    assert args.func(args) == 0
    out = capsys.readouterr().out.replace("\n", "")
    assert "skipped" in out and "okay" in out and TRANSFER_FILE in out


def test_errors_name_the_model_and_the_store(stores, tmp_path):
    with pytest.raises(PinbenchError, match="missing-model"):
        run_transfer([stores], [str(tmp_path / "missing-model")])
    assert not (stores / "a" / TRANSFER_FILE).exists()
    with pytest.raises(PinbenchError, match="no-such-store"):
        run_transfer([tmp_path / "no-such-store"], ["x"])


def test_settings_data_and_device_are_checked_before_any_model_loads(stores, tmp_path, monkeypatch):
    """A bad --batch-tokens, --data-dir or --device failed only after every --task-lm had loaded
    (seconds each on a CPU, minutes at the papers' sizes)."""
    import pinbench.models

    def no_load(*args, **kwargs):
        raise AssertionError("a model loaded before the settings were checked")

    monkeypatch.setattr(pinbench.models, "load_model", no_load)
    with pytest.raises(PinbenchError, match="'max_batch_tokens' = 0 is invalid"):
        run_transfer([stores], ["any-lm"], batch_tokens=0)
    with pytest.raises(PinbenchError, match="data directory '.*nope' does not exist"):
        run_transfer([stores], ["any-lm"], data_dir=tmp_path / "nope")
    if not torch.cuda.is_available():
        with pytest.raises(PinbenchError, match="cuda"):
            run_transfer([stores], ["any-lm"], device="cuda")


def test_report_has_the_transfer_table(stores, lms, tiny_lm_dir, tmp_path):
    from pinbench.analysis import ReportOptions, build_report
    from pinbench.analysis.naturalness import NaturalnessOptions

    options = ReportOptions(naturalness=NaturalnessOptions(reference_lm=tiny_lm_dir))
    plain = build_report([stores], tmp_path / "plain", options)
    assert "Prompt transfer" not in (tmp_path / "plain" / "report.md").read_text()
    assert not (tmp_path / "plain" / "tables" / "transfer.md").exists() and plain.files

    model_dir, llama, split = lms
    frame = run_transfer([stores], [model_dir, llama, split])
    build_report([stores], tmp_path / "r", options)
    text = (tmp_path / "r" / "report.md").read_text()
    assert "## Prompt transfer" in text and "tables/transfer.csv" in text
    assert "2 of 2 prompt(s) reproduce the store's accuracy exactly" in text
    assert "Not scored:" in text and "' okay'" in text
    assert (tmp_path / "r" / "tables" / "transfer.tex").exists()
    long = pd.read_csv(tmp_path / "r" / "tables" / "transfer.csv")
    label = frame["method"].iloc[0]  # the trials' method label (both are the same recipe)
    assert sorted(set(long["method"])) == [f"{label} · tiny-llama", f"{label} · tiny-model"]
    assert sorted(set(long["column"])) == ["tiny-llama", "tiny-model", "tiny-split"]
    for _, r in frame[frame["skipped"].isna()].iterrows():
        learned, scored = lm_key(r["learned_with"]).rsplit("/", 1)[-1], lm_key(r["scored_with"]).rsplit("/", 1)[-1]
        cell = long[(long["method"] == f"{label} · {learned}") & (long["column"] == scored)].iloc[0]
        assert cell["mean"] == pytest.approx(100 * r["accuracy"]) and cell["n"] == 1
    assert long.loc[long["column"] == "tiny-split", "n"].eq(0).all()
    md = (tmp_path / "r" / "tables" / "transfer.md").read_text()
    assert md.splitlines()[0] == "| Method | tiny-llama | tiny-model | tiny-split |"


def test_transfer_table_keeps_datasets_apart_and_names_lms_uniquely():
    from pinbench.analysis.transfer import lm_names, transfer_table

    def row(dataset, method, learned, scored, acc, skipped=None):
        return {"trial_id": f"{dataset}-{method}-{learned}-{acc}", "dataset": dataset, "method": method,
                "learned_with": learned, "scored_with": scored, "split": "test", "accuracy": acc,
                "same_lm": learned == scored, "store_accuracy": acc if learned == scored else None,
                "skipped": skipped, "dtype": "float32", "bf16": False}

    frame = pd.DataFrame([row("sst-2", "pin", "roberta-large", "roberta-large", 0.8),
                          row("sst-2", "pin", "roberta-large", "roberta-large", 0.9),
                          row("sst-2", "pin", "roberta-large", "gpt2", 0.5),
                          row("sst-2", "pin", "roberta-large", "gpt2", 0.6),
                          row("agnews", "rlprompt", "roberta-large", "gpt2", None, "verbalizer word ' World'"),
                          row("agnews", "rlprompt", "roberta-large", "roberta-large", 0.7)])
    table = transfer_table(frame, ["rlprompt", "pin"])
    assert table.rows == ["pin · roberta-large · SST-2", "rlprompt · roberta-large · AG News"]  # datasets' order
    assert [c.key for c in table.columns] == ["roberta-large", "gpt2"]
    assert table.mean.loc["pin · roberta-large · SST-2", "roberta-large"] == pytest.approx(85.0)
    assert table.err.loc["pin · roberta-large · SST-2", "gpt2"] == pytest.approx(5.0)  # se of 50, 60
    assert pd.isna(table.mean.loc["rlprompt · roberta-large · AG News", "gpt2"])
    assert "' World'" in table.notes and "3 of 3" in table.notes
    assert transfer_table(pd.DataFrame(), []) is None
    assert lm_names(["/a/model", "/b/model", "facebook/opt-125m"]) == \
        {"/a/model": "/a/model", "/b/model": "/b/model", "facebook/opt-125m": "opt-125m"}


def test_two_transfers_into_one_store_at_once_keep_both_rows(tmp_path, monkeypatch):
    """`transfer.parquet` is read, merged and written again: two processes at once could each read
    it before the other wrote, and one's rows were lost. The merge now holds a lock beside the file."""
    import threading
    import time

    from pinbench.analysis.load import Store
    from pinbench.storage import resolve
    from pinbench.transfer import KEY, read_transfer, write_transfer

    (tmp_path / "s").mkdir()
    store = Store(resolve(tmp_path / "s"), "s")
    write = store.write

    def slow_write(name, frame):  # both have read before either writes, unless the lock keeps them apart
        time.sleep(0.5)
        write(name, frame)

    monkeypatch.setattr(store, "write", slow_write)
    rows = [pd.DataFrame([{"trial_id": t, "scored_with": "lm", "split": "test", "accuracy": 0.5}]) for t in "ab"]
    threads = [threading.Thread(target=write_transfer, args=(store, r)) for r in rows]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(read_transfer(store)["trial_id"]) == ["a", "b"] and list(KEY)[0] == "trial_id"
