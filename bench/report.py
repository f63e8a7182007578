"""Time `pinbench report` on a synthetic results store the size of a paper sweep.

Builds a store of N completed trials (the paper-fsc grid: methods x datasets x split seeds x
seeds) whose best prompts are random token sequences of the policy vocabulary, then times the
report twice: cold (every prompt's perplexity computed) and warm (naturalness.parquet reused).

Usage: python bench/report.py [--trials 210] [--out /tmp/pinbench-bench-report] [--reference-lm smollm2-135m]
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd

from pinbench.analysis import ReportOptions, build_report
from pinbench.analysis.naturalness import NaturalnessOptions
from pinbench.cli import _quiet_transformers
from pinbench.models import load_model
from pinbench.results import TABLES, frames, write_results
from pinbench.run import RunResult, make_spec


def synthetic_store(directory: Path, n: int, policy_lm: str, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    tok = load_model(policy_lm, "causal").tokenizer
    grid = itertools.product(["pin", "rlprompt", "pin-td"], ["sst-2", "yelp-2", "mr", "cr", "agnews", "yahoo", "subj"],
                             [13, 21, 42, 87, 100], [0, 1, 2])
    tables = {name: [] for name in TABLES}
    for i, (preset, dataset, split_seed, s) in zip(range(n), grid):
        ids = rng.integers(100, len(tok), 5).tolist()
        spec = make_spec({"preset": preset, "dataset": dataset, "split_seed": split_seed, "seed": s,
                          "policy_lm": policy_lm})
        acc, prompt = float(rng.uniform(0.5, 0.95)), tok.decode(ids)
        result = RunResult(spec, prompt_tokenizer=policy_lm, steps_done=300, wall_time_s=1.0,
                             best={"step": 100, "prompt": prompt, "token_ids": ids, "dev_accuracy": acc},
                             test={"test_accuracy": acc},
                             history=[{"step": step, "support": 10.0, "entropy": 0.5, "dev_accuracy": acc * step / 300}
                                      for step in range(20, 301, 20)],
                             prompts=[{"step": 100, "source": "best", "prompt": prompt, "token_ids": ids}])
        for name, frame in frames(result, f"t{i:04d}", "bench").items():
            tables[name].append(frame)
    write_results(directory, {name: pd.concat(parts, ignore_index=True) for name, parts in tables.items()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=210)
    ap.add_argument("--out", type=Path, default=Path("/tmp/pinbench-bench-report"))
    ap.add_argument("--reference-lm", default="smollm2-135m")
    args = ap.parse_args()
    _quiet_transformers()
    shutil.rmtree(args.out, ignore_errors=True)
    store = args.out / "results" / "bench"
    synthetic_store(store, args.trials, args.reference_lm)
    load_model(args.reference_lm, "causal")  # model loading is not what we time
    options = ReportOptions(naturalness=NaturalnessOptions(reference_lm=args.reference_lm), published="all")
    timings = {}
    for run in ("cold", "warm"):
        start = time.perf_counter()
        report = build_report([store], args.out / f"report-{run}", options)
        timings[run] = {"seconds": round(time.perf_counter() - start, 2), "prompts_scored": report.computed_prompts}
    print(json.dumps({"trials": args.trials, "reference_lm": args.reference_lm, **timings}, indent=2))


if __name__ == "__main__":
    main()
