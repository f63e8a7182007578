"""The wheel's packages: every package under pinbench/ and the analysis folder as pinbench.analysis."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

tomllib = pytest.importorskip("tomllib" if sys.version_info >= (3, 11) else "tomli")


def test_the_package_list_names_every_package_and_maps_the_analysis_folder():
    from setuptools import find_packages

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    assert listed == {*find_packages(str(ROOT), include=["pinbench*"]), "pinbench.analysis", "pinbench.suites"}
    assert config["package-dir"] == {"pinbench.analysis": "analysis", "pinbench.suites": "suites"}
    assert not any(p == "analysis" or p.startswith("analysis.") for p in listed)  # no top-level `analysis`


def test_pinbench_analysis_is_the_analysis_folder():
    import pinbench.analysis
    import pinbench.analysis.report

    assert Path(pinbench.analysis.__file__).resolve().parent == ROOT / "analysis"
    assert pinbench.analysis.build_report is pinbench.analysis.report.build_report
