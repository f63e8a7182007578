"""A sweep on a local two-node Ray cluster places trials on both nodes."""

import pandas as pd
import pytest

from pinbench.suite import load_suite
from test_sweep import write_suite


@pytest.mark.slow
def test_trials_run_on_both_nodes(one_cluster_at_a_time, tiny_setup, tmp_path):
    import ray
    from ray.cluster_utils import Cluster
    from ray.util.placement_group import placement_group, remove_placement_group

    from pinbench.sweep import run_sweep

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1, wait=False)  # (wait=True and wait_for_nodes poll with a 30 s deadline)
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        # The event that both nodes are up: a placement group of one CPU on each of two different
        # nodes is ready only once the second node has registered; then its CPUs are given back.
        group = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
        ray.get(group.ready())
        remove_placement_group(group)
        model_dir, spec = tiny_setup
        suite = load_suite(write_suite(tmp_path / "tiny.yaml", model_dir, spec, extra="max_concurrent: 2\n"))
        run_sweep(suite, results_dir=tmp_path / "results", verbose=0)
        trials = pd.read_parquet(tmp_path / "results" / "tiny" / "trials.parquet")
        assert (trials["status"] == "completed").all() and len(trials) == 2
        nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        assert set(trials["node_id"]) == nodes  # one trial per 1-CPU node: both nodes were used
        assert trials["node_id"].nunique() == 2 and len(nodes) == 2
    finally:
        ray.shutdown()
        cluster.shutdown()
