import json
from pathlib import Path

import jsonschema
import ray
import yaml

from conftest import REPO


def test_cluster_yaml_matches_rays_schema():
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    jsonschema.validate(config, schema)
    # What pinbench relies on: GPU workers that scale, a head that runs no trials, pinbench installed.
    workers = config["available_node_types"]["gpu_worker"]
    assert workers["min_workers"] <= workers["max_workers"] <= config["max_workers"]
    assert config["available_node_types"]["head"]["resources"] == {"CPU": 0}
    assert any("pinbench" in c for c in config["setup_commands"])


def test_a_broken_cluster_yaml_is_rejected():
    import pytest

    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    config = yaml.safe_load((REPO / "cluster.yaml").read_text())
    config["provider"] = {"region": "us-west-2"}  # no provider type
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(config, schema)
