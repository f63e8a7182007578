"""Training steps per second for the `pin` and `rlprompt` presets, broken into policy sampling,
reward scoring and the update (mean over the timed steps, after warm-up steps).

Usage: python bench/train_step.py --data-dir ../shared/data/few-shot [--steps 10] [--warmup 2]

Scoring dominates early, while every sampled prompt is new; later steps re-sample prompts the
run has already scored, which the trainer does not score again (see "new prompts" per step).
"""

from __future__ import annotations

import argparse
import json
import time

from pinbench.cli import _quiet_transformers
from pinbench.config import from_preset
from pinbench.trainer import Trainer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--dataset", default="sst-2")
    ap.add_argument("--presets", nargs="+", default=["pin", "rlprompt"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    _quiet_transformers()
    print(f"{'preset':10s} {'steps/s':>8s} {'step s':>7s} {'sample s':>9s} {'score s':>8s} {'update s':>9s} {'new prompts':>12s}")
    summary = {}
    for preset in args.presets:
        trainer = Trainer(from_preset(preset, dataset=args.dataset, data_dir=args.data_dir, test=False,
                                      steps=args.warmup + args.steps, eval_every=10**9))
        for _ in range(args.warmup):
            trainer.step()
        start = time.perf_counter()
        rows = [trainer.step() for _ in range(args.steps)]
        total = time.perf_counter() - start
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("sample_s", "score_s", "update_s", "new_prompts")}
        summary[preset] = {"steps_per_s": args.steps / total, **mean}
        print(f"{preset:10s} {args.steps / total:8.3f} {total / args.steps:7.2f} {mean['sample_s']:9.2f} "
              f"{mean['score_s']:8.2f} {mean['update_s']:9.2f} {mean['new_prompts']:12.1f}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
