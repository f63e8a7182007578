"""bench/differential.py: pinbench against the authors' code (PIN, RLPrompt), imported from a
directory the user fetched. The full comparison runs when that directory is there
($PINBENCH_AUTHORS_DIR, else /tmp/authors); the rest runs offline without it."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from conftest import load_bench_script

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "bench" / "differential.py"


@pytest.fixture(scope="module")
def differential():
    return load_bench_script("differential")


def authors_dir() -> Path:
    return Path(os.environ.get("PINBENCH_AUTHORS_DIR", "/tmp/authors"))


# -- offline: the argument check -------------------------------------------------------------


def test_a_missing_directory_is_one_line_on_stderr(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--authors", str(tmp_path / "nowhere")], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2
    assert out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "nowhere: not a directory" in lines[0] and "PIN/ = github.com/Youseob/PIN" in lines[0]


def test_the_message_names_the_missing_repository_or_file(differential, tmp_path, capsys):
    (tmp_path / "PIN").mkdir()
    assert differential.main(["--authors", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err
    # the absent repository named once; the empty one by its first file and a count
    assert differential.missing_parts(tmp_path) == ["PIN/rlprompt/losses/loss_utils.py and 11 more of its files",
                                                    "rl-prompt/"]
    assert "is missing PIN/rlprompt/losses/loss_utils.py and 11 more of its files, rl-prompt/ (expected" in err
    # everything present but one file
    for repo, (_, files) in differential.REPOS.items():
        for f in files:
            (tmp_path / repo / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / repo / f).write_text("")
    (tmp_path / "PIN/rlprompt/losses/sparse_ql_losses.py").unlink()
    assert differential.missing_parts(tmp_path) == ["PIN/rlprompt/losses/sparse_ql_losses.py"]


# -- offline: importing a repository ----------------------------------------------------------

FAKE = {
    # a package __init__ that must not run (the authors' import the training modules)
    "rlprompt/models/__init__.py": "raise RuntimeError('a bare package ran its __init__')\n",
    "rlprompt/utils/utils.py": "from hydra.core.config_store import ConfigStore\nimport wandb\nTAG = '{tag}'\n",
    "rlprompt/losses/sql_losses.py": "from rlprompt.utils import utils\nTAG = utils.TAG\n",
    "rlprompt/models/model_utils.py": "",
    "rlprompt/models/lm_adaptor_model.py": "from .model_utils import *\n",
    "rlprompt/modules/module_utils.py": "",
    "rlprompt/rewards/__init__.py": "from .base_reward import BaseReward\n",
    "rlprompt/rewards/base_reward.py": "class BaseReward:\n    pass\n",
    "examples/few-shot-classification/fsc_reward.py":
        "from rlprompt.rewards import BaseReward\nclass PromptedClassificationReward(BaseReward):\n    pass\n",
}


def fake_repo(root: Path, tag: str) -> Path:
    for path, text in FAKE.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text.replace("{tag}", tag))
    return root


def test_two_rlprompt_packages_load_side_by_side_with_stubs_and_leave_no_trace(differential, tmp_path, monkeypatch):
    sentinel = types.ModuleType("rlprompt")
    monkeypatch.setitem(sys.modules, "rlprompt", sentinel)  # someone else's rlprompt survives
    before = set(sys.modules)
    stubs: set[str] = set()
    a = differential.load_authors(fake_repo(tmp_path / "a", "A"), "a", stubs)
    b = differential.load_authors(fake_repo(tmp_path / "b", "B"), "b", stubs)
    assert (a.sql_losses.TAG, b.sql_losses.TAG) == ("A", "B")
    assert a.fsc_reward.PromptedClassificationReward.__mro__[1].__module__ == "rlprompt.rewards.base_reward"
    assert not hasattr(a, "sparse_ql_losses")  # RLPrompt has no sparse losses
    for root in ("hydra", "wandb"):
        if importlib.util.find_spec(root) is None:
            assert root in stubs
    assert "hydra.core.config_store" in stubs or importlib.util.find_spec("hydra") is not None
    assert sys.modules["rlprompt"] is sentinel
    assert not [m for m in set(sys.modules) - before if m.startswith(("rlprompt", "hydra", "wandb"))]
    assert not any(isinstance(f, differential._StubFinder) for f in sys.meta_path)


def test_pdb_in_the_authors_code_raises_instead_of_waiting(differential):
    import pdb

    real = pdb.set_trace
    with pytest.raises(differential.AuthorsBreakpoint):
        with differential.authors_call():
            import pdb as theirs

            theirs.set_trace()
    assert pdb.set_trace is real


# -- offline: the pure parts ------------------------------------------------------------------


def test_the_synthetic_tokenizers_behave_like_opts_and_gpt2s(differential):
    opt = differential.bpe_tokenizer("opt", 0)
    ids = opt([" great", "</s>"], padding=True)["input_ids"]
    bos = opt.convert_tokens_to_ids("</s>")
    assert [row[0] for row in ids] == [bos, bos]  # </s> before every call
    assert ids[1][:2] == [bos, bos] and opt.pad_token == "<pad>" and bos == 2
    gpt2 = differential.bpe_tokenizer("gpt2", 0)
    eos = gpt2.convert_tokens_to_ids("<|endoftext|>")
    assert gpt2("<|endoftext|>")["input_ids"] == [eos]
    assert gpt2(" great")["input_ids"][0] != eos  # nothing added
    # some tokens do not survive decode + encode (lone UTF-8 bytes)
    lost = [i for i in range(len(gpt2))
            if gpt2(gpt2.convert_tokens_to_string([gpt2.convert_ids_to_tokens(i)]))["input_ids"] != [i]]
    assert 0 < len(lost) < len(gpt2) // 2


def test_rows_pass_fail_and_info(differential):
    import torch

    ok = differential.row("a", "PIN x.py:f", "g", torch.tensor([1.0, 200.0]), torch.tensor([1.0, 200.001]), 1e-5)
    assert ok.tol == pytest.approx(2e-3) and ok.status == "pass"  # tolerance scales with the values
    bad = differential.row("b", "PIN x.py:f", "g", torch.tensor([0.5]), torch.tensor([0.6]), 1e-5)
    assert bad.status == "FAIL"
    info = differential.row("c", "PIN x.py:f", "g", torch.tensor([0.5]), torch.tensor([0.6]), None, "why")
    assert info.status == "info"
    both = differential.merged([ok, bad], "d", "x", "y")
    assert both.diff == pytest.approx(0.1) and both.tol == ok.tol
    table = differential.format_table([ok, bad, info])
    assert table.splitlines()[0].split()[:4] == ["check", "max|diff|", "tol", "result"]
    assert "FAIL" in table and "c: why" in table
    with pytest.raises(ValueError):
        differential.max_diff(torch.zeros(2), torch.zeros(3))


# -- against the authors' code ----------------------------------------------------------------


@pytest.mark.slow
def test_pinbench_matches_the_authors_code(differential, tmp_path):
    authors = authors_dir()
    missing = differential.missing_parts(authors)
    if missing:
        pytest.skip(f"the authors' code is not at {authors} (set PINBENCH_AUTHORS_DIR): {', '.join(missing[:3])}")
    out_json = tmp_path / "diff.json"
    out = subprocess.run([sys.executable, str(SCRIPT), "--authors", str(authors), "--json", str(out_json)],
                         capture_output=True, text=True, timeout=900, cwd=REPO)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    result = json.loads(out_json.read_text())
    assert result["passed"]
    rows = {r["check"]: r for r in result["rows"]}
    assert not [c for c, r in rows.items() if r["status"] == "FAIL"]
    for section in "1234":  # every check ran
        assert any(c.startswith(section + " ") for c in rows)
    for name in ("1 pcl loss", "1 td loss", "1 mc loss", "1 spmax value, filtered", "2 shaped reward 5z (rl-prompt)",
                 "3 sparsemax sampling probs (pin)", "3 softmax top-256 probs (rlprompt, GPT-2)", "4 OPT ids read",
                 "4 OPT Q logits", "4 GPT-2 states vs rebuilt"):
        assert rows[name]["status"] == "pass", name
    # what policy_input="ids" changes is large: the authors' LM reads another context
    assert rows["4 OPT states under policy_input=ids"]["status"] == "info"
    assert rows["4 OPT states under policy_input=ids"]["diff"] > 0.1
    assert "max|diff|" in out.stdout
