"""Training steps per second for the `pin` and `rlprompt` presets, broken into policy sampling,
reward scoring and the update (mean over the timed steps, after warm-up steps), and how much of
the step is at the forward-pass bound.

Usage: python bench/train_step.py --data-dir ../shared/data/few-shot [--steps 10] [--warmup 2]

The bound of a step's scoring is a bare forward of the prompt tokens of its new (prompt, example)
pairs (bench/score_throughput.py: `bound`), measured here on the very prompts the timed steps
scored, same model, dtype and threads. "at bound" is that bound's share of the whole step: the part
no scorer can remove. Scoring dominates early, while every sampled prompt is new; later steps
re-sample prompts the run has already scored, which the trainer does not score again.
"""

from __future__ import annotations

import argparse
import json
import time

from score_throughput import bound, scoring_model, timed

from pinbench.cli import _quiet_transformers
from pinbench.methods.rl.trainer import RLMethod
from pinbench.run import make_spec


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--dataset", default="sst-2")
    ap.add_argument("--presets", nargs="+", default=["pin", "rlprompt"])
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    _quiet_transformers()
    print(f"{'preset':10s} {'steps/s':>8s} {'step s':>7s} {'sample s':>9s} {'score s':>8s} {'update s':>9s} "
          f"{'new prompts':>12s} {'score/bound':>12s} {'at bound':>9s}")
    summary = {}
    for preset in args.presets:
        trainer = RLMethod(make_spec({"preset": preset, "dataset": args.dataset, "data_dir": args.data_dir,
                                     "test": False, "steps": args.warmup + args.steps, "eval_every": 10**9,
                                     "seed": args.seed}))
        for _ in range(args.warmup):
            trainer.step()
        seen = set(trainer.book.scores)
        start = time.perf_counter()
        rows = [trainer.step() for _ in range(args.steps)]
        total = time.perf_counter() - start
        scored = [p for split, p in trainer.book.scores if (split, p) not in seen and split == "train"]
        mean = {k: sum(r[k] for r in rows) / len(rows) for k in ("sample_s", "score_s", "update_s", "new_prompts")}
        # The bound of the pairs those steps scored: their prompts x the training examples, bare.
        scorer = trainer.task.scorer
        texts = trainer.task.split("train").texts
        model = scoring_model(scorer)
        bound(scorer, model, scored[:1], texts[:2])  # warm-up
        _, seconds = timed(lambda: bound(scorer, model, scored, texts))
        bound_s = seconds / args.steps
        step_s = total / args.steps
        summary[preset] = {"steps_per_s": args.steps / total, **mean, "bound_s": bound_s,
                           "score_over_bound": mean["score_s"] / bound_s if bound_s else None,
                           "bound_share_of_step": bound_s / step_s}
        print(f"{preset:10s} {args.steps / total:8.3f} {step_s:7.2f} {mean['sample_s']:9.2f} "
              f"{mean['score_s']:8.2f} {mean['update_s']:9.2f} {mean['new_prompts']:12.1f} "
              f"{mean['score_s'] / bound_s if bound_s else float('nan'):12.2f} {bound_s / step_s:9.0%}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
