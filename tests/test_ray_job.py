"""The README's cluster path on this machine: `ray start --head` with token authentication, then
`ray job submit --working-dir <this checkout> -- pinbench sweep ...`, then the head is stopped.

The head runs in the foreground (`ray start --head --block`) as a child of the test, with its own
temp dir and free ports, and is stopped by SIGTERM to that process, which shuts down every
process of this head. Not `ray stop`: it kills every Ray process on the machine (it matches
process names), including other local sessions such as the in-process Ray of other tests.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO
from test_sweep import write_suite

pytestmark = pytest.mark.slow

JOB_TIMEOUT_S = 600  # a hang guard for each `ray` command, not a performance threshold


def _dashboard_missing() -> str | None:
    try:
        importlib.import_module("ray.dashboard.optional_deps")  # what `ray start` checks for the dashboard
    except ImportError as exc:
        return str(exc)
    return None


def _free_ports(n: int) -> list[int]:
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _ray_cli() -> str:
    here = Path(sys.executable).parent / "ray"  # the ray of this environment
    return str(here) if here.exists() else shutil.which("ray") or "ray"


class Head:
    """A `ray start --head --block` child process and what a client needs to reach it."""

    def __init__(self, temp_dir: str, env: dict[str, str], dashboard_port: int, log_path: Path):
        self.temp_dir, self.env, self.log_path = temp_dir, env, log_path
        self.url = f"http://127.0.0.1:{dashboard_port}"
        self.proc: subprocess.Popen | None = None

    def start(self, gcs_port: int, client_port: int, agent_port: int) -> None:
        dashboard_port = self.url.rsplit(":", 1)[1]
        cmd = [_ray_cli(), "start", "--head", "--block", "--port", str(gcs_port), "--num-cpus", "2",
               "--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", dashboard_port,
               "--ray-client-server-port", str(client_port), "--dashboard-agent-listen-port", str(agent_port),
               "--temp-dir", self.temp_dir, "--disable-usage-stats"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(cmd, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        # Up when the job server answers an authenticated request (token auth is on, so an
        # unauthenticated one gets 401).
        request = urllib.request.Request(f"{self.url}/api/version",
                                         headers={"Authorization": f"Bearer {self.env['RAY_AUTH_TOKEN']}"})
        deadline = time.monotonic() + 180
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"ray start --head exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the job server at {self.url} did not come up:\n{self.log()}")
            time.sleep(0.5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def ray(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        return subprocess.run([_ray_cli(), *args], env=env or self.env, capture_output=True, text=True,
                              timeout=JOB_TIMEOUT_S, stdin=subprocess.DEVNULL)

    def processes(self):
        """This head's processes still alive: the `ray start` process and its descendants, and any
        process whose command line names this head's temp dir (one that was re-parented)."""
        import psutil

        found = {}
        if self.proc is not None:
            try:
                root = psutil.Process(self.proc.pid)
                for p in [root, *root.children(recursive=True)]:
                    found[p.pid] = p
            except psutil.NoSuchProcess:
                pass
        for p in psutil.process_iter(["cmdline"]):
            if self.temp_dir in " ".join(p.info["cmdline"] or []):
                found[p.pid] = p

        def alive(p) -> bool:
            try:
                return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
            except psutil.NoSuchProcess:
                return False

        return [p for p in found.values() if alive(p)]

    def stop(self) -> list[str]:
        """SIGTERM to `ray start --block` (it drains and stops its node's processes), then SIGKILL
        to whatever of this head is left. Returns what had to be killed."""
        import psutil

        family = self.processes()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
        _, alive = psutil.wait_procs(family, timeout=60)
        killed = []
        for p in alive + [p for p in self.processes() if p not in alive]:
            try:
                killed.append(" ".join(p.cmdline())[:200])
                p.kill()
            except psutil.NoSuchProcess:
                pass
        psutil.wait_procs(alive, timeout=10)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        return killed


@pytest.fixture
def ray_head(tmp_path):
    missing = _dashboard_missing()
    if missing is not None:
        message = f"ray[default] (the dashboard and job server) is not installed: {missing}; pip install \"ray[default]\""
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    # A short temp dir of its own: Ray's unix sockets live under it (paths are limited to 107
    # bytes, too short for pytest's tmp_path), and it marks this head's processes.
    temp_dir = tempfile.mkdtemp(prefix="pbray-", dir="/tmp" if os.path.isdir("/tmp") else None)
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_AUTH_TOKEN_PATH", "RAY_JOB_HEADERS")}
    # As the README says: token auth on for the head and for every client (RAY_AUTH_MODE=token).
    # The token is this test's own, passed as RAY_AUTH_TOKEN (Ray reads it before
    # RAY_AUTH_TOKEN_PATH and ~/.ray/auth_token), so ~/.ray is neither read nor written.
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32), RAY_USAGE_STATS_ENABLED="0",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]))
    gcs, dashboard, client, agent = _free_ports(4)
    head = Head(temp_dir, env, dashboard, tmp_path / "ray-start.log")
    try:
        head.start(gcs, client, agent)
        yield head
    finally:
        head.stop()
        shutil.rmtree(temp_dir, ignore_errors=True)


def test_ray_job_submit_runs_the_sweep_on_the_running_head(ray_head, tiny_setup, tmp_path):
    model_dir, spec = tiny_setup
    # one trial of 4 steps: what is checked is where the job and its trial ran, not how trials share
    # a node (tests/test_sweep.py runs trials side by side)
    suite_file = write_suite(tmp_path / "tiny.yaml", model_dir, spec, grid="seed: [0]")
    results = tmp_path / "results"
    address = ["--address", ray_head.url]

    # A client without RAY_AUTH_MODE=token sends no token: the head refuses it (what a new user
    # met before setting it). HOME is empty so no ~/.ray/auth_token of the user's can be used.
    (tmp_path / "home").mkdir()
    bare = {k: v for k, v in ray_head.env.items() if not k.startswith("RAY_AUTH_")}
    refused = ray_head.ray("job", "list", *address, env={**bare, "HOME": str(tmp_path / "home")})
    assert refused.returncode != 0
    assert "Missing authentication token" in refused.stdout + refused.stderr

    # Which pinbench a job runs: the copy of --working-dir that Ray uploaded (a probe job, run
    # alongside the sweep, imports it as the `pinbench` command does: without the cwd on sys.path).
    probe_id = f"probe-{secrets.token_hex(4)}"
    probe = ray_head.ray("job", "submit", *address, "--working-dir", str(REPO), "--submission-id", probe_id,
                         "--no-wait", "--", sys.executable, "-c",
                         "import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; "
                         "import pinbench; print('PINBENCH_FROM', pinbench.__file__)")
    assert probe.returncode == 0, probe.stdout + probe.stderr

    # The README's command. No --address: inside a job Ray sets RAY_ADDRESS, so the sweep joins
    # this head instead of starting a Ray of its own.
    job_id = f"sweep-{secrets.token_hex(4)}"
    submit = ray_head.ray("job", "submit", *address, "--working-dir", str(REPO), "--submission-id", job_id,
                          "--", "pinbench", "sweep", str(suite_file), "--results", str(results))
    output = submit.stdout + submit.stderr
    assert submit.returncode == 0, output
    assert f"Job '{job_id}' succeeded" in output, output  # printed only for status SUCCEEDED

    trials = pd.read_parquet(results / "tiny" / "trials.parquet")
    assert trials["run.seed"].tolist() == [0]
    assert (trials["status"] == "completed").all(), trials[["trial_id", "status", "error"]]
    assert (trials["steps"] == 4).all()

    # The trials ran on this head's node (a Ray started inside the job would be another node).
    nodes = ray_head.ray("list", "nodes", *address, "--format", "json")
    assert nodes.returncode == 0, nodes.stdout + nodes.stderr
    head_ids = {n["node_id"] for n in json.loads(nodes.stdout[nodes.stdout.index("["):])}
    assert len(head_ids) == 1 and set(trials["node_id"]) == head_ids

    logs = ray_head.ray("job", "logs", *address, probe_id)
    assert logs.returncode == 0, logs.stdout + logs.stderr
    line = next(ln for ln in logs.stdout.splitlines() if ln.startswith("PINBENCH_FROM "))
    module = Path(line.split(" ", 1)[1].strip()).resolve()
    assert Path(ray_head.temp_dir).resolve() in module.parents, module  # unpacked in this head's session
    assert "working_dir_files" in module.parts and REPO not in module.parents, module

    # Stopping the head leaves none of its processes behind, and SIGTERM alone was enough.
    assert ray_head.stop() == []
    assert ray_head.processes() == []
