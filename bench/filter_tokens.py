"""What PIN's ignorable-token filter admits: the kinds of the policy LM's top-k next tokens.

PIN keeps, at each position, the policy LM's own top-k tokens (``method.top_k``, 10,000 in the
paper) and masks the rest. Whether that removes gibberish depends on the LM and k: this prints,
for the first prompt position (after the start token) and after each ``--prefix``, the share of
whole dictionary words, word pieces, byte fragments and other tokens (punctuation, digits, code)
among the admitted tokens, against the whole vocabulary, using the naturalness module's token kinds.

    python bench/filter_tokens.py --policy-lm smollm2-135m --top-k 10000 --prefix " two two"
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import torch

from pinbench.analysis.naturalness import token_kinds
from pinbench.cli import _quiet_transformers
from pinbench.methods.rl.policy import QPolicy
from pinbench.models import load_model

KINDS = ("word", "piece", "byte", "other")


def shares(ids: list[int], tokenizer) -> dict[str, float]:
    counts = Counter(token_kinds([i], tokenizer)[0] for i in ids)
    return {k: counts[k] / len(ids) for k in KINDS}


@torch.no_grad()
def admitted(policy: QPolicy, prefix_ids: list[int], k: int) -> list[int]:
    """The policy LM's top-k next tokens after the start token and ``prefix_ids``."""
    ids = torch.tensor([[policy.start_id, *prefix_ids]])
    e = policy.lm.model.base_model(input_ids=ids).last_hidden_state[:, -1].float()
    return policy.lm_logits(e).topk(k, dim=-1).indices[0].tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy-lm", default="smollm2-135m")
    ap.add_argument("--top-k", type=int, default=10000)
    ap.add_argument("--prefix", action="append", default=[], help="text before the next position (repeatable)")
    ap.add_argument("--json", default=None, help="also write the numbers here")
    args = ap.parse_args()
    _quiet_transformers()
    lm = load_model(args.policy_lm, "causal")
    tok = lm.tokenizer
    policy = QPolicy(lm, hidden=8, prompt_length=1, top_k=args.top_k)
    rows = {"vocabulary": shares(list(range(policy.vocab_size)), tok)}
    for prefix in ["", *args.prefix]:
        ids = tok(prefix, add_special_tokens=False).input_ids if prefix else []
        rows[f"top-{args.top_k} after {prefix!r}"] = shares(admitted(policy, ids, args.top_k), tok)
    print(f"{'tokens':45s} " + " ".join(f"{k:>7s}" for k in KINDS))
    for name, row in rows.items():
        print(f"{name:45s} " + " ".join(f"{100 * row[k]:6.1f}%" for k in KINDS))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
