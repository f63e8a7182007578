"""Check that a change to the trainer keeps the prompts of a seed: record, then compare.

    python bench/same_prompts.py record OUT.json --data-dir DIR   # with the code before the change
    python bench/same_prompts.py record NEW.json --data-dir DIR   # with the code after it
    python bench/same_prompts.py compare OUT.json NEW.json

`record` trains `pin` and `rlprompt` for a few steps on SST-2 at two seeds, with exact (float32)
reward scoring so that only the change itself can move a sample, and writes the greedy prompts,
the rewards of every step and 16 prompts sampled from the trained policy. Run the "before" side
from a `git worktree` of the old commit with PYTHONPATH pointing at it.
"""

from __future__ import annotations

import argparse
import json
import sys


def record(out: str, data_dir: str, steps: int, seeds: list[int]) -> None:
    from pinbench.cli import _quiet_transformers
    from pinbench.methods.rl.trainer import RLMethod
    from pinbench.run import make_spec

    _quiet_transformers()
    result = {}
    for preset in ("pin", "rlprompt"):
        for seed in seeds:
            trainer = RLMethod(make_spec({"preset": preset, "dataset": "sst-2", "data_dir": data_dir, "test": False,
                                         "steps": steps, "eval_every": max(1, steps // 2), "seed": seed,
                                         "bf16": False}))
            run = trainer.train()
            sampled = trainer.policy.rollout(16, trainer.regularizer, trainer.config.alpha, trainer.generator)
            result[f"{preset}-{seed}"] = {
                "greedy": [r["greedy_prompt"] for r in run.history if "greedy_prompt" in r],
                "rewards": [r["reward_mean"] for r in run.history],
                "sampled": trainer.policy.decode(sampled.tokens),
            }
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


def compare(before: str, after: str) -> int:
    a, b = json.load(open(before)), json.load(open(after))
    same = True
    for key in a:
        reward = max(abs(x - y) for x, y in zip(a[key]["rewards"], b[key]["rewards"]))
        ok = a[key]["greedy"] == b[key]["greedy"] and a[key]["sampled"] == b[key]["sampled"]
        same &= ok
        print(f"{key:12s} greedy and 16 sampled prompts {'identical' if ok else 'DIFFER'}; "
              f"max |reward difference| over steps {reward:.2e}")
    return 0 if same else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record")
    rec.add_argument("out")
    rec.add_argument("--data-dir", required=True)
    rec.add_argument("--steps", type=int, default=6)
    rec.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    cmp_ = sub.add_parser("compare")
    cmp_.add_argument("before")
    cmp_.add_argument("after")
    args = ap.parse_args()
    if args.command == "record":
        record(args.out, args.data_dir, args.steps, args.seeds)
        return 0
    return compare(args.before, args.after)


if __name__ == "__main__":
    sys.exit(main())
