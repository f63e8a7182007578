"""A sweep on a local two-node Ray cluster places trials on both nodes."""

import pandas as pd

from pinbench.suite import load_suite
from test_sweep import write_suite


def test_trials_run_on_both_nodes(tiny_setup, tmp_path):
    import ray
    from ray.cluster_utils import Cluster

    from pinbench.sweep import run_sweep

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    worker = cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, include_dashboard=False, log_to_driver=False)
        cluster.wait_for_nodes()
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
