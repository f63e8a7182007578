"""Scored (prompt, example) pairs per second: naive path vs pinbench's fast path.

The workload is one training step of PIN/RLPrompt on a few-shot task: P random 5-token prompts
(as a fresh policy samples them) x the E training examples. Same model, same pairs, one run:

    naive         one full forward per pair, full-vocabulary head, then the verbalizer columns
    batched       all pairs padded into batches, verbalizer rows of the head only (no KV cache)
    fast          batched + each input's key/value cache computed once and reused for every prompt
    fast (bf16)   fast under bfloat16 autocast (the CLI default)

Usage: python bench/score_throughput.py --data-dir ../shared/data/few-shot [--prompts 16] [--examples 32]
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from pinbench.cli import _quiet_transformers
from pinbench.data import get_dataset, read_split
from pinbench.models import load_model
from pinbench.scoring import VerbalizerScorer


def random_prompts(tokenizer, n: int, length: int, seed: int) -> list[str]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, tokenizer.vocab_size, (n, length), generator=gen)
    return [tokenizer.decode(row) for row in ids.tolist()]


def timed(fn) -> tuple[torch.Tensor, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--dataset", default="sst-2")
    ap.add_argument("--task-lm", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--examples", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    _quiet_transformers()

    lm = load_model(args.task_lm, "causal")
    spec = get_dataset(args.dataset)
    texts = read_split(spec, "train", 13, args.data_dir).texts[: args.examples]
    prompts = random_prompts(lm.tokenizer, args.prompts, 5, args.seed)
    pairs = len(prompts) * len(texts)

    fp32 = VerbalizerScorer(lm, spec)
    bf16 = VerbalizerScorer(lm, spec, bf16=True)
    fp32.score(prompts[:1], texts[:2], use_cache=False)  # warm-up (thread pools, allocator)
    runs = {}
    naive, runs["naive"] = timed(lambda: fp32.score_naive(prompts, texts))
    batched, runs["batched"] = timed(lambda: fp32.score(prompts, texts, use_cache=False))
    fp32._kv_cache.clear()
    fast, runs["fast"] = timed(lambda: fp32.score(prompts, texts))
    fast_bf16, runs["fast (bf16)"] = timed(lambda: bf16.score(prompts, texts))
    # A later training step reuses the inputs' caches: only the prompts are new.
    new_prompts = random_prompts(lm.tokenizer, args.prompts, 5, args.seed + 1)
    _, runs["fast (bf16), cache warm"] = timed(lambda: bf16.score(new_prompts, texts))

    print(f"{args.task_lm} on {args.dataset}: {len(prompts)} prompts x {len(texts)} examples = {pairs} pairs, "
          f"{torch.get_num_threads()} threads")
    print(f"{'path':28s} {'seconds':>8s} {'pairs/s':>9s} {'x naive':>8s}")
    for name, seconds in runs.items():
        print(f"{name:28s} {seconds:8.2f} {pairs / seconds:9.1f} {runs['naive'] / seconds:8.1f}")
    print(f"max |p_fast - p_naive| = {(fast - naive).abs().max():.2e} (fp32), "
          f"{(fast_bf16 - naive).abs().max():.2e} (bf16); |p_batched - p_naive| = {(batched - naive).abs().max():.2e}")
    print(json.dumps({"pairs": pairs, **{k: round(pairs / v, 2) for k, v in runs.items()}}))


if __name__ == "__main__":
    main()
