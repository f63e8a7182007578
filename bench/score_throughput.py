"""Scored (prompt, example) pairs per second, and how far scoring is from the forward-pass bound.

The workload is one training step of PIN/RLPrompt on a few-shot task: P random 5-token prompts
(as a fresh policy samples them) x the E training examples. Same model, same pairs, one run:

    naive         one full forward per pair, full-vocabulary head, then the verbalizer columns
    batched       all pairs padded into batches, verbalizer rows of the head only (no KV cache)
    fast          batched + each input's key/value cache computed once and shared by its prompts
    fast (bf16)   fast with a bfloat16 copy of the weights (the training default)
    ..., warm     the inputs' caches already built (every training step after the first)

The bound is what scoring cannot beat: a bare forward pass of only the tokens that depend on the
prompt (the prompt tokens of every pair plus any template text up to the scored position), with
no input prefix at all, in padded batches, same weights dtype and threads, plus the verbalizer
rows of the head. `ratio` is scoring time / bound time of the same dtype.

Usage: python bench/score_throughput.py --data-dir ../shared/data/few-shot [--prompts 16] [--examples 32]
"""

from __future__ import annotations

import argparse
import copy
import json
import time

import torch

from pinbench.cli import _quiet_transformers
from pinbench.tasks.classification.data import get_dataset, read_split
from pinbench.models import load_model
from pinbench.tasks.classification.scoring import VerbalizerScorer


def random_prompts(tokenizer, n: int, length: int, seed: int) -> list[str]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, tokenizer.vocab_size, (n, length), generator=gen)
    return [tokenizer.decode(row) for row in ids.tolist()]


def scoring_model(scorer: VerbalizerScorer) -> torch.nn.Module:
    """The weights the scorer runs; a bf16 copy for pinbench before 0.2, whose scorer had no weight
    copy (it ran under autocast), so that before/after runs have the same bound."""
    if hasattr(scorer, "model"):
        return scorer.model
    return copy.deepcopy(scorer.lm.model).to(torch.bfloat16) if scorer.bf16 else scorer.lm.model


def timed(fn, repeat: int = 1, before=None) -> tuple[torch.Tensor, float]:
    """The result and the fastest of ``repeat`` timed calls (``before`` runs untimed before each):
    this VM's timings vary by +-20% from call to call, the minimum much less."""
    best = float("inf")
    for _ in range(repeat):
        if before is not None:
            before()
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return out, best


@torch.no_grad()
def bound(scorer: VerbalizerScorer, model: torch.nn.Module, prompts: list[str], texts: list[str],
          batch_tokens: int = 4096) -> torch.Tensor:
    """A bare forward of each pair's prompt-dependent tokens (no prefix), verbalizer logits at the
    last one. Rows are the pairs; all rows of one prompt are equal, which the model does not know."""
    rows = [scorer._ids(scorer.suffix_pieces, "", p) or [scorer.pad_id] for p in prompts for _ in texts]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))  # batches of similar length: little padding
    per_batch = max(1, batch_tokens // max(len(r) for r in rows))
    w = model.get_output_embeddings().weight[scorer.label_ids]
    out = []
    for start in range(0, len(order), per_batch):
        batch = [rows[i] for i in order[start:start + per_batch]]
        width = max(len(r) for r in batch)
        ids = torch.full((len(batch), width), scorer.pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for r, toks in enumerate(batch):
            ids[r, : len(toks)] = torch.tensor(toks)
            mask[r, : len(toks)] = 1
        hidden = model.base_model(input_ids=ids, attention_mask=mask).last_hidden_state
        last = hidden[torch.arange(len(batch)), mask.sum(1) - 1]
        out.append(last @ w.T)
    return torch.cat(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--dataset", default="sst-2")
    ap.add_argument("--task-lm", default="smollm2-135m")
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--examples", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--skip-naive", action="store_true", help="leave out the slow naive path")
    ap.add_argument("--repeat", type=int, default=3, help="time each path (but naive and batched) N times, keep the fastest")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    _quiet_transformers()

    lm = load_model(args.task_lm, "causal")
    spec = get_dataset(args.dataset)
    texts = read_split(spec, "train", 13, args.data_dir).texts[: args.examples]
    prompts = random_prompts(lm.tokenizer, args.prompts, 5, args.seed)
    new_prompts = random_prompts(lm.tokenizer, args.prompts, 5, args.seed + 1)
    pairs = len(prompts) * len(texts)

    fp32 = VerbalizerScorer(lm, spec)
    bf16 = VerbalizerScorer(lm, spec, bf16=True)
    bf16_model = scoring_model(bf16)
    for scorer in (fp32, bf16):  # warm-up (thread pools, allocator, the bf16 copy)
        scorer.score(prompts[:1], texts[:2], use_cache=False)
    runs, n = {}, args.repeat
    _, runs["bound (fp32)"] = timed(lambda: bound(fp32, lm.model, prompts, texts), n)
    _, runs["bound (bf16)"] = timed(lambda: bound(bf16, bf16_model, prompts, texts), n)
    naive = None
    if not args.skip_naive:
        naive, runs["naive"] = timed(lambda: fp32.score_naive(prompts, texts))
    batched, runs["batched"] = timed(lambda: fp32.score(prompts, texts, use_cache=False))
    # cold: the inputs' caches are built inside the timed call (a run's first step)
    fast, runs["fast (fp32)"] = timed(lambda: fp32.score(prompts, texts), n, fp32.clear_cache)
    _, runs["fast (fp32), warm"] = timed(lambda: fp32.score(new_prompts, texts), n)
    fast_bf16, runs["fast (bf16)"] = timed(lambda: bf16.score(prompts, texts), n, bf16.clear_cache)
    _, runs["fast (bf16), warm"] = timed(lambda: bf16.score(new_prompts, texts), n)

    print(f"{args.task_lm} on {args.dataset}: {len(prompts)} prompts x {len(texts)} examples = {pairs} pairs, "
          f"{torch.get_num_threads()} threads, fastest of {n}")
    base = runs.get("naive")
    print(f"{'path':22s} {'seconds':>8s} {'pairs/s':>9s} {'x naive':>8s} {'/ bound':>8s}")
    for name, seconds in runs.items():
        dtype = "bf16" if "bf16" in name else "fp32"
        ratio = seconds / runs[f"bound ({dtype})"]
        speedup = f"{base / seconds:8.1f}" if base else f"{'-':>8s}"
        print(f"{name:22s} {seconds:8.2f} {pairs / seconds:9.1f} {speedup} {ratio:8.2f}")
    reference = naive if naive is not None else batched
    moved = (fast_bf16 - fast).abs()
    flips = int((fast_bf16.argmax(-1) != fast.argmax(-1)).sum())
    print(f"max |p_fast - p_{'naive' if naive is not None else 'batched'}| = {(fast - reference).abs().max():.2e} (fp32); "
          f"bf16 weights vs fp32: max |dp| = {moved.max():.3f}, mean {moved.mean():.4f}, "
          f"{flips} of {pairs} predictions flipped")
    print(json.dumps({"pairs": pairs, "pairs_per_s": {k: round(pairs / v, 1) for k, v in runs.items()},
                      "ratio_to_bound": {k: round(v / runs[f"bound ({'bf16' if 'bf16' in k else 'fp32'})"], 2)
                                         for k, v in runs.items()},
                      "bf16_max_dp": round(float(moved.max()), 4), "bf16_flips": flips}))


if __name__ == "__main__":
    main()
