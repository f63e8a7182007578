"""Two real processes writing one place: the second is refused, naming the first, and nothing the
first computed is lost (a lock file on local disks; docs: docs/guarantees.md)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from conftest import train_argv
from test_signals import _start, _wait
from test_sweep import write_suite


@pytest.mark.slow
def test_a_second_train_into_one_out_is_refused_and_the_first_run_is_kept(tiny_setup, tmp_path):
    first, out, stdout, stderr = _start(tiny_setup, tmp_path)  # running, its first steps done
    second = subprocess.run([sys.executable, "-m", "pinbench.cli", *train_argv(tiny_setup, out, steps=2)],
                            capture_output=True, text=True, timeout=600)
    assert first.poll() is None  # the first is still training
    assert second.returncode == 2
    assert f"--out '{out}' is being written by another pinbench process (pid {first.pid} " in second.stderr
    assert "Traceback" not in second.stderr
    first.send_signal(signal.SIGINT)
    assert _wait(first) == 130
    trials = pd.read_parquet(out / "trials.parquet")
    assert trials.loc[0, "status"] == "interrupted" and trials.loc[0, "steps"] >= 2  # the first run, whole
    # once the first has ended, the directory is free again (its run replaced only when asked);
    # in this process: the lock is the first process's, which has ended
    from pinbench.cli import main

    assert main([*train_argv(tiny_setup, out, steps=2), "--overwrite"]) == 0
    assert pd.read_parquet(out / "trials.parquet").loc[0, "status"] == "completed"


HOLD = textwrap.dedent("""\
    import sys, time
    from pinbench.storage import exclusive_writer
    with exclusive_writer(sys.argv[1], "results store"):
        print("HELD", flush=True)
        time.sleep(600)
    """)


def _second_sweep_refused(tiny_setup, tmp_path, held: str, message: str, **where) -> None:
    """Another process holds the lock of ``tmp_path/held``: a sweep of suite 'tiny' writing there is
    refused with ``message`` naming that process, before Ray starts."""
    import ray

    from pinbench.errors import ConfigError
    from pinbench.suite import load_suite
    from pinbench.sweep import run_sweep

    model_dir, spec = tiny_setup
    suite = load_suite(write_suite(tmp_path / "tiny.yaml", model_dir, spec))
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / held)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "HELD"
        if ray.is_initialized():
            ray.shutdown()
        with pytest.raises(ConfigError, match=rf"{message} is being written by another pinbench process "
                                              rf"\(pid {holder.pid} "):
            run_sweep(suite, verbose=0, check_data=False, **where)
        assert not ray.is_initialized()  # refused before Ray started
    finally:
        holder.kill()
        holder.wait()


def test_a_second_sweep_into_one_store_is_refused_before_ray_starts(tiny_setup, tmp_path):
    _second_sweep_refused(tiny_setup, tmp_path, "results/tiny", "results store '.*tiny'",
                          results_dir=tmp_path / "results")


def test_a_second_sweep_into_one_tune_storage_is_refused_before_ray_starts(tiny_setup, tmp_path):
    """Two results stores, one --storage: the second driver of the suite would write the first's
    Tune experiment (its trial table, searcher state, checkpoints), which --resume then reads."""
    _second_sweep_refused(tiny_setup, tmp_path, "checkpoints/tiny",
                          f"^Tune's checkpoints '{tmp_path}/checkpoints/tiny'",
                          results_dir=tmp_path / "other-results", storage=str(tmp_path / "checkpoints"))
