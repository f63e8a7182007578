"""Real signals to a real `pinbench train` child: SIGTERM and SIGHUP behave as Ctrl-C (what was
computed is written, status interrupted, exit 128 + the signal), and a second signal while the run
is being written neither cuts the write short nor prints a traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pandas as pd
import pytest

from conftest import sigterm_stops_with_one_line, train_argv

# The child runs `pinbench train`; with SLOW_WRITE set, the run's write first says so on stderr and
# waits, so that the test can send its second signal while the write is under way.
CHILD = textwrap.dedent("""\
    import os, sys, time
    import pinbench.results as results
    write_run = results.write_run

    def slow_write_run(*args, **kwargs):
        if os.environ.get("SLOW_WRITE"):
            print("WRITING", file=sys.stderr, flush=True)
            time.sleep(1.5)
        return write_run(*args, **kwargs)

    results.write_run = slow_write_run
    from pinbench.cli import main
    sys.exit(main(sys.argv[1:]))
    """)


def _start(tiny_setup, tmp_path: Path, slow_write: bool = False) -> tuple[subprocess.Popen, Path, list[str], list[str]]:
    out = tmp_path / "run"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **({"SLOW_WRITE": "1"} if slow_write else {})}
    proc = subprocess.Popen([sys.executable, str(script), *train_argv(tiny_setup, out, steps=100_000)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    stdout, stderr = [], []
    started = threading.Event()

    def pump(stream, lines, marker):
        for line in stream:
            lines.append(line)
            if marker(line):
                started.set()

    threading.Thread(target=pump, args=(proc.stdout, stdout, lambda l: l.startswith("step ")), daemon=True).start()
    threading.Thread(target=pump, args=(proc.stderr, stderr, lambda l: False), daemon=True).start()
    # wait for the first evaluation line (steps done, something to keep); a dead child fails at once
    while not started.wait(0.1):
        assert proc.poll() is None, "".join(stdout + stderr)
    return proc, out, stdout, stderr


def _wait(proc: subprocess.Popen) -> int:
    try:
        return proc.wait(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_signal_writes_what_was_computed_as_interrupted(sig, tiny_setup, tmp_path):
    proc, out, stdout, stderr = _start(tiny_setup, tmp_path)
    proc.send_signal(sig)
    code = _wait(proc)
    assert code == 128 + sig, "".join(stdout + stderr)
    assert "Traceback" not in "".join(stderr)
    trials = pd.read_parquet(out / "trials.parquet")
    history = pd.read_parquet(out / "history.parquet")
    assert trials.loc[0, "status"] == "interrupted"
    assert trials.loc[0, "steps"] >= 2 and len(history) == trials.loc[0, "steps"]
    assert "(interrupted)" in "".join(stdout) and "results written to" in "".join(stdout)


@pytest.mark.slow
def test_a_second_signal_during_the_write_neither_cuts_it_nor_prints_a_traceback(tiny_setup, tmp_path):
    proc, out, stdout, stderr = _start(tiny_setup, tmp_path, slow_write=True)
    proc.send_signal(signal.SIGTERM)
    while not any(line.startswith("WRITING") for line in stderr):
        assert proc.poll() is None, "".join(stdout + stderr)
        threading.Event().wait(0.05)
    proc.send_signal(signal.SIGINT)  # during the write
    proc.send_signal(signal.SIGTERM)
    code = _wait(proc)
    assert code == 128 + signal.SIGTERM  # the first signal decides
    err = "".join(stderr)
    assert "Traceback" not in err and "received while writing the run" in err
    trials = pd.read_parquet(out / "trials.parquet")  # complete and readable
    assert trials.loc[0, "status"] == "interrupted"
    assert (out / "config.json").is_file() and len(pd.read_parquet(out / "history.parquet")) == trials.loc[0, "steps"]


# The child runs `pinbench eval`; its scoring first says so on stderr, then takes a minute, so that
# the signal lands mid-scoring.
EVAL_CHILD = textwrap.dedent("""\
    import sys, time
    from pinbench.tasks.classification import FewShotClassification

    def slow_evaluate(self, *args, **kwargs):
        print("SCORING", file=sys.stderr, flush=True)
        time.sleep(60)

    FewShotClassification.evaluate = slow_evaluate
    from pinbench.cli import main
    sys.exit(main(sys.argv[1:]))
    """)


@pytest.mark.slow
def test_sigterm_during_eval_is_one_line_and_leaves_no_predictions_file(tiny_setup, tmp_path):
    """eval keeps nothing half-made: a SIGTERM mid-scoring exits 143 with one line, no traceback, and
    no predictions table (whole or partial) where --predictions points."""
    model_dir, spec = tiny_setup
    script = tmp_path / "child.py"
    script.write_text(EVAL_CHILD)
    predictions = tmp_path / "pred.parquet"
    proc = subprocess.Popen([sys.executable, str(script), "eval", "--dataset", "toy", "--dataset-file", str(spec),
                             "--split-seed", "5", "--prompt", "it was", "--task-lm", str(model_dir),
                             "--predictions", str(predictions)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stderr.readline().strip() == "SCORING"
    except BaseException:
        proc.kill()
        raise
    sigterm_stops_with_one_line(proc)
    assert list(tmp_path.iterdir()) == [script]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_a_signal_during_a_sweep_is_noted_and_handed_to_tune_as_its_graceful_stop(sig):
    """While Tune runs a sweep, each signal is noted (the exit status and the --resume hint come
    from it) and raised as SIGUSR1, Tune's graceful stop; a second signal stops at once. Tune's own
    SIGINT handler, which would hide the signal from pinbench, is switched off."""
    import os

    from pinbench import signals

    graceful = []
    previous = signal.signal(signal.SIGUSR1, lambda s, f: graceful.append(s))  # Tune's, inside fit()
    try:
        with signals.handled(), signals.tune_stops_gracefully():
            assert os.environ["TUNE_DISABLE_SIGINT_HANDLER"] == "1"
            os.kill(os.getpid(), sig)
            assert graceful == [signal.SIGUSR1] and signals.received() and signals.first_signal() == sig
            with pytest.raises(KeyboardInterrupt):
                os.kill(os.getpid(), signal.SIGINT)
            assert signals.exit_code() == 128 + sig
        assert "TUNE_DISABLE_SIGINT_HANDLER" not in os.environ
    finally:
        signal.signal(signal.SIGUSR1, previous)
