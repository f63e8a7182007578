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


def test_the_report_states_the_provenance_and_warns_when_rows_mix_code(tmp_path, monkeypatch, tiny_lm_dir):
    """`pinbench report` has a Provenance section (one line per distinct set-up, tables/provenance.csv)
    and warns when the rows come from different pinbench versions, or record no provenance."""
    from pinbench.analysis import ReportOptions, build_report
    from pinbench.analysis.naturalness import NaturalnessOptions

    monkeypatch.syspath_prepend(PLUGINS)
    monkeypatch.setenv("PINBENCH_HOST", "node-7")
    for seed in (0, 1, 2):
        assert main(["train", "--plugin", "toy_plugins", "--task", "prompt-length", "--method", "fixed-prompts",
                     "--steps", "1", "--seed", str(seed), "--out", str(tmp_path / "runs" / f"s{seed}")]) == 0
    options = ReportOptions(naturalness=NaturalnessOptions(reference_lm=tiny_lm_dir))
    report = build_report([tmp_path / "runs"], tmp_path / "same", options)
    text = (tmp_path / "same" / "report.md").read_text()
    section = text[text.index("## Provenance"):]
    rows = [line for line in section.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert len(rows) == 1 and "node-7" in rows[0] and " 3 " in rows[0]  # one set-up, three trials
    assert not [w for w in report.warnings if "provenance" in w or "different" in w]
    csv = pd.read_csv(tmp_path / "same" / "tables" / "provenance.csv")
    assert csv["trials"].tolist() == [3] and csv["host"].tolist() == ["node-7"]

    # one run from another pinbench version, one from before schema 3 (provenance columns empty)
    for name, change in (("s1", {"pinbench_version": "0.0.9"}), ("s2", {c: None for c in PROVENANCE_COLUMNS})):
        path = tmp_path / "runs" / name / "trials.parquet"
        trials = pd.read_parquet(path)
        for column, value in change.items():
            trials[column] = pd.Series([value] * len(trials), dtype=object)
        trials.to_parquet(path)
    report = build_report([tmp_path / "runs"], tmp_path / "mixed", options)
    section = (tmp_path / "mixed" / "report.md").read_text().split("## Provenance")[1]
    assert "| 3 |" in section and "0.0.9" in section and "| — | — |" in section
    assert any(w.startswith("the rows come from 2 different pinbench values (0.0.9: 1 trial(s), ") for w in report.warnings)
    assert "1 trial(s) record no provenance (written before results schema 3): which code made them is unknown" \
        in report.warnings
