import json
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import ray
import yaml

from conftest import REPO


def _schema() -> dict:
    return json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())


def _config() -> dict:
    return yaml.safe_load((REPO / "cluster.yaml").read_text())


def _node_setup_commands(config: dict) -> list[str]:
    """What runs on a node before Ray starts there (the launcher runs setup_commands, then the
    head's or the workers' own)."""
    return [*config.get("initialization_commands", []), *config["setup_commands"],
            *config["head_setup_commands"], *config["worker_setup_commands"]]


def test_cluster_yaml_matches_rays_schema():
    config = _config()
    jsonschema.validate(config, _schema())
    # What pinbench relies on: GPU workers that scale, a head that runs no trials, pinbench installed.
    workers = config["available_node_types"]["gpu_worker"]
    assert workers["min_workers"] <= workers["max_workers"] <= config["max_workers"]
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert any("pinbench" in c for c in config["setup_commands"])


def test_pinbench_is_installed_from_a_mounted_checkout_that_exists():
    """The install reads a path that file_mounts fills from this checkout (no repository URL to
    fetch), and every mount source that setup reads exists relative to the repo root, where `ray
    up` is run."""
    config = _config()
    mounts = config["file_mounts"]
    installs = [word for command in _node_setup_commands(config) if "pip install" in command
                for word in shlex.split(command) if "pinbench" in word]
    assert installs, "no setup command pip-installs pinbench"
    assert not [w for w in installs if "://" in w or w.startswith("git+")], installs
    used = set()
    for word in installs:
        path = re.sub(r"\[[^\]]*\]$", "", word)  # drop the extras: /home/ubuntu/pinbench[cluster]
        targets = [t for t in mounts if path == t or path.startswith(t.rstrip("/") + "/")]
        assert targets, f"{word!r} is not under any file_mounts target ({sorted(mounts)})"
        used.update(targets)
    for target in used:
        source = REPO / mounts[target]
        assert source.is_dir(), f"file_mounts {target}: {mounts[target]} does not exist under {REPO}"
        pyproject = (source / "pyproject.toml").read_text()
        assert re.search(r'^name = "pinbench"$', pyproject, re.M)
        assert re.search(r"^cluster = ", pyproject, re.M)  # the [cluster] extra the install asks for
    # The other mounts that come from the checkout exist too (suites, data are read by jobs).
    for target, source in mounts.items():
        if not source.startswith(("~", "/")) and (REPO / source).resolve().is_relative_to(REPO):
            assert (REPO / source).exists(), f"file_mounts {target}: {source} does not exist under {REPO}"


def test_the_checkout_mount_leaves_out_the_venv_and_results():
    """rsync_filter applies the checkout's .gitignore to the mount: a 2 GB .venv or old results
    must not be copied to every node."""
    from ray._private.runtime_env.packaging import _get_ignore_file

    config = _config()
    assert ".gitignore" in config["rsync_filter"]
    assert "**/.git" in config["rsync_exclude"]
    ignored = _get_ignore_file(REPO, ".gitignore")  # Ray's reader of .gitignore (job uploads use it too)
    for path in (".venv/bin/python", "results/tiny/trials.parquet", "build/lib/pinbench/cli.py"):
        assert ignored(REPO / path), path
    for path in ("pyproject.toml", "README.md", "pinbench/cli.py", "suites/quickstart.yaml"):
        assert not ignored(REPO / path), path


def test_every_node_uses_the_same_token_and_ray_as_the_client():
    """Token auth: each node starts Ray with RAY_AUTH_MODE=token and gets the launcher's token
    file at Ray's default path; the Ray installed on the nodes is the client's version."""
    from ray._private.authentication.authentication_token_setup import _get_default_token_path

    config = _config()
    default = "~/" + _get_default_token_path().relative_to(Path.home()).as_posix()
    assert config["file_mounts"].get(default) == default
    for key in ("head_start_ray_commands", "worker_start_ray_commands"):
        starts = [c for c in config[key] if "ray start" in c]
        assert starts and all("RAY_AUTH_MODE=token" in c for c in starts), (key, starts)
    pins = {m.group(1) for c in config["setup_commands"] for m in re.finditer(r'ray\[[^\]]*\]==([\w.]+)', c)}
    assert pins == {ray.__version__}


def test_a_broken_cluster_yaml_is_rejected():
    config = _config()
    config["provider"] = {"region": "us-west-2"}  # no provider type
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, _schema())
