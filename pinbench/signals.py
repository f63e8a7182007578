"""SIGTERM and SIGHUP behave as SIGINT (Ctrl-C) in every command, and a write of what was computed
is never cut short by a second signal.

``timeout``, Slurm, ``docker stop`` and Kubernetes stop a process with SIGTERM; a closed terminal
sends SIGHUP. Both are turned into SIGINT, so the same code path keeps what was computed: Python's
``KeyboardInterrupt`` in `train` and `eval`, Ray Tune's graceful stop in a sweep (Tune handles
SIGINT while a sweep runs). The exit status is 128 + the first signal's number (130, 143, 129).

While :func:`deferred` is active (results being written), a signal only prints a line; the write
finishes, then the command exits as the first signal asked.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

CAUGHT = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
_first: list[int] = []  # the first signal received by this command


def first_signal() -> int:
    """The number of the first signal received (SIGINT when none was, e.g. a KeyboardInterrupt
    raised by other code)."""
    return _first[0] if _first else int(signal.SIGINT)


def received() -> bool:
    """Whether this command was sent SIGINT, SIGTERM or SIGHUP."""
    return bool(_first)


def signal_name() -> str:
    return signal.Signals(first_signal()).name


def exit_code() -> int:
    """128 + the first signal's number, the shell's convention for a process stopped by it."""
    return 128 + first_signal()


def _as_interrupt(signum, frame) -> None:
    if not _first:
        _first.append(signum)
    # Whatever handles SIGINT now handles this signal: KeyboardInterrupt, or Tune's graceful stop.
    signal.raise_signal(signal.SIGINT)


def _note_sigint(signum, frame) -> None:
    if not _first:
        _first.append(signum)
    signal.default_int_handler(signum, frame)


_active: list[bool] = []  # inside handled(): the handlers below are the command's


def reinstall() -> None:
    """Put the command's SIGTERM and SIGHUP handlers back after a library replaced them (ray.init
    installs a C handler that dumps a stack and aborts on SIGTERM, losing the sweep's graceful stop)."""
    if _active and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _as_interrupt)
        signal.signal(signal.SIGHUP, _as_interrupt)


@contextlib.contextmanager
def _installed(handlers: dict) -> Iterator[None]:
    """``handlers`` (signal -> handler) for the block, the previous ones restored after it."""
    previous = {s: signal.getsignal(s) for s in handlers}
    for s, handler in handlers.items():
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """For the duration of a command (main thread only): SIGTERM and SIGHUP act as SIGINT."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _first.clear()
    with _installed({signal.SIGINT: _note_sigint, signal.SIGTERM: _as_interrupt, signal.SIGHUP: _as_interrupt}):
        _active.append(True)
        try:
            yield
        finally:
            _active.pop()


@contextlib.contextmanager
def deferred(what: str = "the results") -> Iterator[None]:
    """Signals received inside the block are noted, not acted on: the block (a write) completes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def note(signum, frame):
        if not _first:
            _first.append(signum)
        print(f"pinbench: {signal.Signals(signum).name} received while writing {what}; finishing the write first",
              file=sys.stderr, flush=True)

    with _installed({s: note for s in CAUGHT}):
        yield


@contextlib.contextmanager
def tune_stops_gracefully() -> Iterator[None]:
    """Around ``Tuner.fit`` (main thread): SIGINT, SIGTERM and SIGHUP are noted here (so the command
    knows it was interrupted, and exits 128 + the signal) and passed to Tune as SIGUSR1, on which
    Tune stops the sweep gracefully (its SIGINT handler, which would hide the signal from pinbench,
    is off: TUNE_DISABLE_SIGINT_HANDLER). A second signal stops at once (KeyboardInterrupt)."""
    from .io import environment

    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGUSR1"):
        yield
        return

    def stop(signum, frame):
        again = bool(_first)
        if not _first:
            _first.append(signum)
        tune_handler = signal.getsignal(signal.SIGUSR1)
        if again or tune_handler in (signal.SIG_DFL, signal.SIG_IGN, None):
            raise KeyboardInterrupt  # a second signal, or Tune's handler not yet in place
        signal.raise_signal(signal.SIGUSR1)

    with environment({"TUNE_DISABLE_SIGINT_HANDLER": "1"}), _installed({s: stop for s in CAUGHT}):
        yield
