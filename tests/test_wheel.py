"""pinbench as users install it: an sdist (holding the tests and docs), a wheel built from that
sdist, `twine check` on both, and the wheel installed into a fresh virtual environment, run from an
empty directory with the checkout off the path: the shipped suites by name, and `pinbench eval` on
the SST-2 split embedded in the package.

The fresh environment gets pinbench's dependencies from this one (a .pth line to its
site-packages, which holds no pinbench: the checkout is installed there in editable mode, through an
import hook that a .pth path line does not run), so nothing is downloaded."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


def run(*cmd, cwd: Path, env: dict | None = None, timeout: int = 300) -> str:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(map(str, cmd))} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """The sdist of the checkout, and the wheel built from the unpacked sdist (as pip builds one)."""
    out = tmp_path_factory.mktemp("dist")
    build = ("import sys; from setuptools import build_meta as b; "
             "print(getattr(b, sys.argv[1])(sys.argv[2]))")
    # --no-isolation: the build backend is this environment's setuptools (no network), which also
    # leaves the checkout as it was (the egg-info it writes is ignored by git)
    sdist = out / run(sys.executable, "-c", build, "build_sdist", out, cwd=ROOT).strip().splitlines()[-1]
    with tarfile.open(sdist) as tar:
        tar.extractall(out / "unpacked", filter="data")
    source = next((out / "unpacked").iterdir())
    wheel = out / run(sys.executable, "-c", build, "build_wheel", out, cwd=source).strip().splitlines()[-1]
    return {"sdist": sdist, "wheel": wheel}


def test_the_sdist_holds_the_tests_docs_suites_and_bench(dist):
    with tarfile.open(dist["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for path in ("tests/conftest.py", "tests/test_wheel.py", "tests/plugins/toy_plugins.py", "docs/method.md",
                 "docs/fidelity.md", "suites/paper-fsc.yaml", "bench/differential.py", "Makefile", "cluster.yaml",
                 "analysis/report.py", "pinbench/cli.py", "README.md", "pyproject.toml"):
        assert path in names, f"the sdist lacks {path}"
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_wheel_holds_the_suites_and_no_top_level_analysis(dist):
    names = zipfile.ZipFile(dist["wheel"]).namelist()
    shipped = {Path(n).stem for n in names if n.startswith("pinbench/suites/") and n.endswith(".yaml")}
    assert shipped == {p.stem for p in (ROOT / "suites").glob("*.yaml")}
    assert "pinbench/analysis/report.py" in names
    assert not [n for n in names if n.startswith(("analysis/", "tests/", "suites/"))]


def test_twine_check_passes(dist):
    out = run(sys.executable, "-m", "twine", "check", "--strict", dist["sdist"], dist["wheel"], cwd=ROOT)
    assert out.count("PASSED") == 2


def test_the_installed_wheel_runs_suites_by_name_and_eval_from_an_empty_directory(dist, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    (site / "pinbench-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-deps", "--no-index", dist["wheel"],
        cwd=tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    # no checkout, no shared data, no download cache: only what the wheel holds. The cache holds
    # one thing: smollm2 converted from its GGUF, as this session's tests have it (the conversion,
    # 12 CPU-seconds, is pinbench's and tested in tests/test_models.py, not the wheel's concern)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PINBENCH_DATA_DIR")}
    env.update(PINBENCH_CACHE_DIR=str(tmp_path / "cache"), HOME=str(tmp_path / "home"))
    from pinbench.models import _smollm2_dir

    converted = _smollm2_dir()
    (tmp_path / "cache" / "models").mkdir(parents=True)
    (tmp_path / "cache" / "models" / converted.name).symlink_to(converted, target_is_directory=True)
    pinbench = venv / "bin" / "pinbench"

    where = run(python, "-c", "import pinbench, pinbench.analysis, pinbench.suite as s; "
                "print(pinbench.__file__, pinbench.analysis.__file__, s.shipped_suites_dir(), sep='\\n')",
                cwd=empty, env=env).split()
    assert all(Path(p).is_relative_to(site) for p in where), where

    listed = run(pinbench, "list", cwd=empty, env=env)
    assert "paper-fsc" in listed and "1,120 trial(s)" in listed and "quickstart" in listed
    assert "1120 trial(s)" in run(pinbench, "sweep", "paper-fsc", "--dry-run", cwd=empty, env=env)
    assert "2 trial(s)" in run(pinbench, "sweep", "quickstart", "--dry-run", cwd=empty, env=env)

    out = run(pinbench, "eval", "--dataset", "sst-2", "--split-seed", "13", "--split", "dev", "--prompt", "It was",
              "--task-lm", "smollm2-135m", "--bf16", cwd=empty, env=env, timeout=600)
    assert "sst-2 (split seed 13, dev, n=32)" in out and "accuracy" in out and "'It was'" in out
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == ["models"]  # no data downloaded
