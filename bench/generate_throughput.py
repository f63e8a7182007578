"""Generated tokens per second of the style-transfer sampler, and how far it is from the forward bound.

The workload is a style-transfer reward call: P random 5-token prompts (as a fresh policy samples
them) x I Yelp dev inputs (every prompt on every input), n samples per pair, top-k 10. Same model,
same pairs, same seed: the shared and reference paths of a dtype generate the very same tokens:

    shared        StyleGenerator: each pair's prefix run once, its KV cache copied to its n samples
    reference     use_cache_sharing=False: the prefix run once per sample
    ... (bf16)    the same with a bfloat16 copy of the weights

The bound is what generation cannot beat with this model: the P x I prefixes run once (one batch),
then ceil(G / B) bare decode steps of batch B = P x I x n rows with a KV cache that starts at the
mean prefix length, G = the tokens the sampler generated: every row busy at every step, no
sampling, stopping or bookkeeping (the same forward call as the sampler's, mask and positions). `ratio` is sampler time / bound time of the same dtype; the
sampler's extra is mostly the tail, steps where few long samples are left.

Timing: one untimed round (outputs, step counts, warm-up), then --repeat rounds that run every path
in turn; each path keeps its fastest round. On a machine shared with other jobs, pass --threads 1:
with more threads than free cores every parallel region waits for a descheduled thread, and a
decode step gets ~10x slower (measured here: 1 token/s instead of 11 at batch 2).

Usage: python bench/generate_throughput.py --data-dir ../shared/data/style-transfer [--prompts 4]
       [--inputs 2] [--samples 16] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import torch

from score_throughput import random_prompts, timed

from pinbench.cli import _quiet_transformers
from pinbench.models import load_model
from pinbench.tasks.style_transfer.generation import StyleGenerator, _preallocate


@torch.no_grad()
def bound(gen: StyleGenerator, pairs: list[tuple[str, str]], rows: int, tokens: int) -> None:
    """The pairs' prefixes (all cut or padded to the mean prefix length) once, their caches copied
    to the pairs' rows, then ceil(tokens / rows) decode steps of ``rows`` rows."""
    model = gen.model
    prefixes = [gen.prefix_ids(p, x) for p, x in pairs]
    length = round(sum(len(p) for p in prefixes) / len(prefixes))
    ids = torch.full((len(pairs), length), gen.pad_id, dtype=torch.long)
    for r, p in enumerate(prefixes):
        ids[r, : min(len(p), length)] = torch.tensor(p[:length])
    cache = model(input_ids=ids, use_cache=True, logits_to_keep=1).cache
    steps = math.ceil(tokens / rows)
    _preallocate(cache, steps)  # in-place cache writes, as the sampler's
    cache.batch_repeat_interleave(rows // len(pairs))
    token = torch.full((rows, 1), gen.pad_id, dtype=torch.long)
    # The sampler's call: a 2D mask with a padded column (a chunk's prefixes differ in length) and
    # explicit positions. With no mask at all transformers runs grouped-query attention through
    # another kernel, ~25% slower per step in bf16 here: not a bound.
    mask = torch.ones(rows, length + steps, dtype=torch.long)
    mask[:, 0] = 0
    for step in range(steps):
        model(input_ids=token, attention_mask=mask[:, : length + step + 1],
              position_ids=torch.full((rows, 1), length + step), cache=cache, use_cache=True)


def record_steps(gen: StyleGenerator) -> tuple[list[int], object]:
    """Rows of every one-token-per-row forward pass of the sampler (a hook; remove it after)."""
    rows: list[int] = []

    def hook(module, args, kwargs):
        if kwargs["input_ids"].shape[1] == 1:
            rows.append(kwargs["input_ids"].shape[0])

    return rows, gen.model.base_model.register_forward_pre_hook(hook, with_kwargs=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True, help="the style-transfer data root (holds yelp/clean/)")
    ap.add_argument("--task-lm", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--inputs", type=int, default=2, help="first lines of sentiment.dev.0.clean")
    ap.add_argument("--samples", type=int, default=16, help="samples per (prompt, input)")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="timed rounds after an untimed one; each round runs every path once, in turn "
                         "(a busy machine's load then weighs on all paths alike); the fastest round counts")
    ap.add_argument("--skip-bf16", action="store_true", help="leave out the bf16 paths")
    args = ap.parse_args()
    load = os.getloadavg()  # timings on a shared machine mean little without it
    if args.threads:
        torch.set_num_threads(args.threads)
    _quiet_transformers()

    lm = load_model(args.task_lm, "causal")
    path = Path(args.data_dir) / "yelp" / "clean" / "sentiment.dev.0.clean"
    inputs = [line.strip() for line in path.read_text().splitlines()[: args.inputs]]
    prompts = random_prompts(lm.tokenizer, args.prompts, 5, args.seed)
    pairs = [(p, x) for p in prompts for x in inputs]
    rows = len(pairs) * args.samples
    dtypes = ["fp32"] + ([] if args.skip_bf16 else ["bf16"])
    gens = {d: StyleGenerator(lm, top_k=args.top_k, bf16=d == "bf16") for d in dtypes}

    def sampler(dtype: str, share: bool):
        return lambda: gens[dtype].generate_ids(pairs, args.samples, torch.Generator().manual_seed(args.seed),
                                                use_cache_sharing=share)

    # Untimed round: the outputs, the decode steps, and warm-up (oneDNN builds kernels per new shape).
    ids, steps, tokens, paths = {}, {}, {}, {}
    for d in dtypes:
        counted, hook = record_steps(gens[d])
        try:
            ids[f"shared ({d})"] = sampler(d, True)()
        finally:
            hook.remove()
        ids[f"reference ({d})"] = sampler(d, False)()
        generated = sum(len(s) for per_pair in ids[f"shared ({d})"] for s in per_pair)
        steps[d] = (len(counted), sum(counted) / max(len(counted), 1))
        paths.update({f"shared ({d})": sampler(d, True), f"reference ({d})": sampler(d, False),
                      f"bound ({d})": lambda d=d, g=generated: bound(gens[d], pairs, rows, g)})
        tokens.update(dict.fromkeys((f"shared ({d})", f"reference ({d})", f"bound ({d})"), generated))
        paths[f"bound ({d})"]()
    runs = dict.fromkeys(paths, float("inf"))
    for _ in range(args.repeat):
        for name, fn in paths.items():
            runs[name] = min(runs[name], timed(fn)[1])

    print(f"{args.task_lm}: {len(prompts)} prompts x {len(inputs)} inputs x {args.samples} samples = {rows} rows, "
          f"top-k {args.top_k}, {torch.get_num_threads()} threads, fastest of {args.repeat} rounds; "
          f"load average before: {' '.join(f'{x:.1f}' for x in load)}, after: "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for d, (count, mean_rows) in steps.items():
        print(f"shared ({d}): {tokens[f'shared ({d})']} tokens in {count} one-token forward passes, "
              f"{mean_rows:.1f} rows each (bound: {math.ceil(tokens[f'shared ({d})'] / rows)} of {rows})")
    print(f"{'path':18s} {'seconds':>8s} {'tokens/s':>9s} {'/ bound':>8s} {'x ref':>6s}")
    for name, seconds in runs.items():
        d = "bf16" if "bf16" in name else "fp32"
        speedup = runs[f"reference ({d})"] / seconds
        print(f"{name:18s} {seconds:8.2f} {tokens[name] / seconds:9.1f} {seconds / runs[f'bound ({d})']:8.2f} "
              f"{speedup:6.2f}")
    print(json.dumps({
        "rows": rows, "tokens": {d: tokens[f"shared ({d})"] for d in dtypes},
        "tokens_per_s": {k: round(tokens[k] / v, 1) for k, v in runs.items()},
        "ratio_to_bound": {k: round(v / runs[f"bound ({'bf16' if 'bf16' in k else 'fp32'})"], 2) for k, v in runs.items()},
        "shared_speedup": {d: round(runs[f"reference ({d})"] / runs[f"shared ({d})"], 2) for d in dtypes},
        "reference_same_outputs": {d: ids[f"reference ({d})"] == ids[f"shared ({d})"] for d in dtypes},
        "load_before": [round(x, 2) for x in load],
    }))


if __name__ == "__main__":
    main()
