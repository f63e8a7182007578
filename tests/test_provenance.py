"""Every trials row records what produced it (pinbench.provenance): the code, the libraries, the
machine and the times; older stores are upgraded with the columns empty."""

import re
from pathlib import Path

import pandas as pd
import pytest

from pinbench.cli import main
from pinbench.provenance import PROVENANCE_COLUMNS, git_state
from pinbench.results import SCHEMA_VERSION, upgrade

PLUGINS = str(Path(__file__).parent / "plugins")
ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def test_a_trained_run_records_its_provenance(tmp_path, monkeypatch):
    import torch
    import transformers

    monkeypatch.syspath_prepend(PLUGINS)
    monkeypatch.setenv("PINBENCH_HOST", "node-7")
    out = tmp_path / "run"
    assert main(["train", "--plugin", "toy_plugins", "--task", "prompt-length", "--method", "fixed-prompts",
                 "--steps", "2", "--out", str(out)]) == 0
    row = pd.read_parquet(out / "trials.parquet").iloc[0]
    assert row["schema_version"] == SCHEMA_VERSION == 3
    assert row["torch_version"] == torch.__version__ and row["transformers_version"] == transformers.__version__
    assert row["host"] == "node-7" and row["threads"] == torch.get_num_threads() and row["dtype"] == "float32"
    assert row["device_name"] and row["python_version"].count(".") == 2
    assert re.fullmatch(ISO, row["started_at"]) and re.fullmatch(ISO, row["ended_at"])
    assert row["started_at"] <= row["ended_at"]
    commit, dirty = git_state()
    if commit is not None:  # run from a git checkout: its commit and whether the tree was dirty
        assert re.fullmatch(r"[0-9a-f]{40}", row["pinbench_commit"]) and row["pinbench_dirty"] == dirty


@pytest.mark.parametrize("version", [2])
def test_older_trials_tables_get_empty_provenance(version):
    old = pd.DataFrame({"schema_version": [version], "trial_id": ["a"], "task": ["classification"]})
    up = upgrade(old, "trials")
    assert all(c in up.columns and up[c].isna().all() for c in PROVENANCE_COLUMNS)
    assert upgrade(old, "history").equals(old)  # only trials rows carry provenance
