"""Throughput at the paper suites' shapes on one GPU, with random weights (nothing downloaded, no
Ray), and the device-hours each paper suite would take at those speeds.

Every model is built from its config with random weights (``PINBENCH_SMOKE_MODELS=1``,
``pinbench/smoke.py``): same architecture and size, so the same time per forward as the hub
weights. What is measured, through pinbench's own code:

  fsc_scoring     few-shot scoring (VerbalizerScorer) of 16 prompts x 32 examples (SST-2's 16-shot
                  training split) by RoBERTa-large in float32 (paper-fsc's task.bf16: false): pairs/s
                  cold (a run's first call) and warm (every later step), and the ratio to the bound:
                  a bare forward of the encoder over the same pairs' token ids in one padded batch
                  (a ratio well above 1 on a GPU says the scorer's batches, task.max_batch_tokens,
                  are too small for it)
  pin_step        one `pin` training step on it with the OPT-125M policy (16 prompts; replay warm-up
                  off so that every timed step updates on a replay batch of 256): ms, split into
                  sampling, scoring and the update
  generation      style transfer's sampling (StyleGenerator): 16 (prompt, input) pairs x 128 samples
                  (4 x 32) per OPT task LM (125M, 350M, 1.3B), tokens/s; random weights almost never
                  emit the closing quote, so every sample runs to the length limit: an upper bound
                  of the tokens a real step generates; and the reward's BERTScore (RoBERTa-large,
                  layer 17) of the 2,048 samples
  clip            the inversion reward: CLIP ViT-H/14 text features of 32 eight-token prompts
                  (steps/s), a full `pin` inversion step (OPT-350M policy) and a PEZ step

Then the projection (pinbench.cost): each paper suite's model set-ups get a step time from these
numbers (classification: the pin step's sampling and update plus 16 prompts x 16 x classes
examples at the warm pairs/s, per dataset), times their trials' steps, times resources.gpu.

Usage (a CUDA machine; Ray need not be installed):
    python bench/gpu_paper_shapes.py [--out bench/gpu_paper_shapes.json] [--repeat 3]
    python bench/gpu_paper_shapes.py --dry-run --out /tmp/shapes.json   # CPU, tiny models: the code path
Then: pinbench sweep suites/paper-fsc.yaml --dry-run --step-times bench/gpu_paper_shapes.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("PINBENCH_SMOKE_MODELS", "1")  # before any pinbench model loads
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PAPER_SUITES = ("suites/paper-fsc.yaml", "suites/paper-tst.yaml", "suites/paper-inversion.yaml")
TASK_LMS = ("facebook/opt-125m", "facebook/opt-350m", "facebook/opt-1.3b")
WORDS = ("the food was great and the staff were friendly but the room was small and a bit noisy at night "
         "we would come back again for the view service price location movie plot actors story").split()


@dataclass(frozen=True)
class Shapes:
    """The workload sizes: the papers' (default) or the dry run's."""

    prompts: int = 16
    examples: int = 32
    gen_pairs: int = 16
    gen_samples: int = 128
    clip_prompts: int = 32
    clip_prompt_tokens: int = 8
    steps: int = 3
    warmup: int = 1

    @classmethod
    def dry(cls) -> "Shapes":
        return cls(prompts=4, examples=4, gen_pairs=2, gen_samples=4, clip_prompts=4, steps=1, warmup=1)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str, repeat: int = 1, before=None):
    """(result, fastest of ``repeat`` calls in seconds), the device synchronised around each call."""
    best, out = float("inf"), None
    for _ in range(repeat):
        if before is not None:
            before()
        sync(device)
        start = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return out, best


def sentences(n: int, seed: int, words: int = 18) -> list[str]:
    gen = torch.Generator().manual_seed(seed)
    return [" ".join(WORDS[i] for i in torch.randint(len(WORDS), (words,), generator=gen).tolist()) + " ."
            for _ in range(n)]


def random_prompts(tokenizer, n: int, length: int, seed: int) -> list[str]:
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1000, 30000, (n, length), generator=gen)
    return [tokenizer.decode(row).strip() or "prompt" for row in ids.tolist()]


def few_shot_root(per_class: int) -> Path:
    """An SST-2 split of ``per_class`` examples per class in every split (the real sentences when
    pinbench's data rule finds them, else made-up ones of SST-2's length) in a temp directory."""
    from pinbench.errors import DataError
    from pinbench.tasks.classification.data import get_dataset, read_split

    spec = get_dataset("sst-2")
    root = Path(tempfile.mkdtemp(prefix="shapes-few-shot-"))
    for i, split in enumerate(("train", "dev", "test")):
        try:
            examples = read_split(spec, split, 13).examples
        except DataError:
            examples = ()
        rows = []
        for label in (0, 1):
            texts = [e.text for e in examples if e.label == label][:per_class]
            texts += sentences(per_class - len(texts), seed=10 * i + label)
            rows += [f"{t}\t{label}" for t in texts]
        folder = root / "sst-2" / "16-13"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{split}.tsv").write_text("sentence\tlabel\n" + "\n".join(rows) + "\n")
    return root


def target_image() -> Path:
    from PIL import Image

    path = Path(tempfile.mkdtemp(prefix="shapes-image-")) / "target.png"
    pixels = torch.randint(0, 256, (224, 224, 3), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    Image.fromarray(pixels.numpy(), "RGB").save(path)
    return path


def mean_rows(rows: list[dict]) -> dict:
    keys = ("sample_s", "score_s", "update_s")
    out = {k: sum(r.get(k) or 0.0 for r in rows) / len(rows) for k in keys}
    out["step_s"] = sum(out.values())
    return out


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


@torch.no_grad()
def bare_forward(scorer, prompts: list[str], texts: list[str]) -> torch.Tensor:
    """The bound: the encoder body alone over every pair's token ids, as the scorer builds them,
    in one padded batch (no batching budget, no head), then the verbalizer rows at the mask."""
    from pinbench.batching import pad_right

    rows = [scorer.full_ids(p, t) for p in prompts for t in texts]
    ids, mask = pad_right([r for r, _ in rows], scorer.pad_id)
    device = scorer.lm.device
    hidden = scorer.body(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
    at = hidden[torch.arange(len(rows), device=device), torch.tensor([i for _, i in rows], device=device)]
    return at @ scorer.model.get_output_embeddings().weight[scorer.label_ids.to(device)].T


def measure_fsc_scoring(device: str, shapes: Shapes, repeat: int) -> dict:
    from pinbench.models import load_model
    from pinbench.tasks.classification.data import get_dataset, read_split
    from pinbench.tasks.classification.scoring import VerbalizerScorer

    lm = load_model("roberta-large", "masked", device=device)
    spec = get_dataset("sst-2")
    root = few_shot_root(max(1, shapes.examples // 2))
    texts = read_split(spec, "train", 13, root).texts[: shapes.examples]
    prompts = random_prompts(lm.tokenizer, shapes.prompts, 5, 0)
    fresh = random_prompts(lm.tokenizer, shapes.prompts, 5, 1)
    scorer = VerbalizerScorer(lm, spec)
    scorer.score(prompts[:1], texts[:2])  # warm-up
    pairs = len(prompts) * len(texts)
    _, cold = timed(lambda: scorer.score(prompts, texts), device, repeat, scorer.clear_cache)
    _, warm = timed(lambda: scorer.score(fresh, texts), device, repeat)
    bare_forward(scorer, prompts[:1], texts[:2])
    _, bare = timed(lambda: bare_forward(scorer, prompts, texts), device, repeat)
    return {"model": "roberta-large", "dtype": "float32", "prompts": len(prompts), "examples": len(texts),
            "pairs": pairs, "cold_s": cold, "warm_s": warm, "bound_s": bare,
            "pairs_per_s_cold": pairs / cold, "pairs_per_s_warm": pairs / warm, "pairs_per_s_bound": pairs / bare,
            "ratio_to_bound_cold": cold / bare, "ratio_to_bound_warm": warm / bare}


def trainer_steps(values: dict, shapes: Shapes) -> dict:
    """Mean sampling, scoring and update seconds of ``shapes.steps`` steps after the warm-up."""
    from pinbench.run import make_spec

    spec = make_spec({**values, "run.steps": shapes.warmup + shapes.steps + 1, "run.eval_every": 10**6,
                      "run.test": False}, "gpu_paper_shapes")
    method = spec.method_class(spec)
    device = spec.run.device
    for _ in range(shapes.warmup):
        method.step()
    rows = []
    for _ in range(shapes.steps):
        sync(device)
        t0 = time.perf_counter()
        row = method.step()
        sync(device)
        rows.append({**row, "wall_s": time.perf_counter() - t0})
    out = mean_rows(rows) if "sample_s" in rows[0] else {}
    out["wall_s"] = sum(r["wall_s"] for r in rows) / len(rows)
    out["measured_steps"] = len(rows)
    return out


def measure_pin_step(device: str, shapes: Shapes) -> dict:
    root = few_shot_root(max(1, shapes.examples // 2))
    values = {"preset": "pin", "task.dataset": "sst-2", "task.data_dir": str(root), "task.task_lm": "roberta-large",
              "task.task_lm_kind": "masked", "task.bf16": False, "method.policy_lm": "facebook/opt-125m",
              "method.replay_warmup": False, "method.prompts_per_step": max(2, shapes.prompts), "run.device": device}
    out = trainer_steps(values, shapes)
    return {"policy_lm": "facebook/opt-125m", "task_lm": "roberta-large", "prompts": shapes.prompts,
            "examples": shapes.examples, **out, "step_ms": 1000 * out["wall_s"]}


def measure_generation(device: str, shapes: Shapes, repeat: int) -> dict:
    from pinbench.models import load_model
    from pinbench.tasks.style_transfer.generation import StyleGenerator, max_new_tokens
    from pinbench.tasks.style_transfer.scorers import BertScorer

    inputs = sentences(shapes.gen_pairs, seed=3, words=12)
    out = {"pairs": shapes.gen_pairs, "samples_per_pair": shapes.gen_samples, "models": {}}
    outputs = []
    for name in TASK_LMS:
        lm = load_model(name, "causal", device=device)
        gen = StyleGenerator(lm, top_k=10, lower=True, bf16=False)
        prompts = random_prompts(lm.tokenizer, shapes.gen_pairs, 5, 2)
        pairs = list(zip(prompts, inputs))
        gen.sample_pairs(pairs[:1], 2, torch.Generator().manual_seed(0))  # warm-up
        outputs, seconds = timed(lambda: gen.sample_pairs(pairs, shapes.gen_samples, torch.Generator().manual_seed(1)),
                                 device, repeat)
        limit = sum(max_new_tokens(len(lm.tokenizer(x).input_ids)) for x in inputs) * shapes.gen_samples
        out["models"][name] = {"seconds": seconds, "tokens_at_limit": limit, "tokens_per_s": limit / seconds,
                               "samples_per_s": shapes.gen_pairs * shapes.gen_samples / seconds}
        del lm, gen
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
    from pinbench.models import clear_cache

    clear_cache()
    layers = 17 if not os.environ.get("PINBENCH_SMOKE_SHRINK") else 2
    scorer = BertScorer("roberta-large", layer=layers, baseline=0.83122575, device=device)
    flat = [o or "empty" for outs in outputs for o in outs]
    refs = [x for x, outs in zip(inputs, outputs) for _ in outs]
    scorer.f1(flat[:2], refs[:2])
    _, reward_s = timed(lambda: scorer.f1(flat, refs), device, repeat)
    out["bertscore"] = {"pairs": len(flat), "seconds": reward_s, "layer": layers}
    clear_cache()
    return out


def measure_clip(device: str, shapes: Shapes, repeat: int) -> dict:
    from pinbench.models import clear_cache, load_model
    from pinbench.tasks.inversion.clip import ClipScorer

    name = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
    image = target_image()
    clip = ClipScorer(load_model(name, "clip", device=device))
    images = clip.image_features([image])
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 40000, (shapes.clip_prompts, shapes.clip_prompt_tokens), generator=gen)
    prompts = [clip.tokenizer.decode(r) for r in ids.tolist()]
    clip.cosine(prompts[:2], images)
    _, score_s = timed(lambda: clip.cosine(prompts, images), device, repeat)
    base = {"task": "inversion", "task.clip_model": name, "task.image": str(image), "task.eval_clip_model": None,
            "run.device": device}
    pin = trainer_steps({**base, "preset": "pin", "method.policy_lm": "facebook/opt-350m",
                         "method.replay_warmup": False, "method.prompts_per_step": max(2, shapes.clip_prompts)}, shapes)
    pez = trainer_steps({**base, "preset": "pez"}, shapes)
    clear_cache()
    return {"model": name, "prompts": shapes.clip_prompts, "score_s": score_s, "steps_per_s": 1 / score_s,
            "pin_step": pin, "pez_step": pez}


# ---------------------------------------------------------------------------------------------
# Projection
# ---------------------------------------------------------------------------------------------


def setup_entries(results: dict, shapes: Shapes) -> list[dict]:
    """Step time estimates for every model set-up of the paper suites (pinbench.cost's JSON)."""
    from pinbench.smoke import group_setups
    from pinbench.suite import load_suite
    from pinbench.tasks.classification.data import get_dataset

    entries = []
    scoring, pin = results.get("fsc_scoring"), results.get("pin_step")
    gen, clip = results.get("generation"), results.get("clip")
    pair_s = 1 / scoring["pairs_per_s_warm"] if scoring else None
    policy_s = (pin["sample_s"] + pin["update_s"]) if pin else None
    for path in PAPER_SUITES:
        suite = load_suite(REPO / path)
        for setup in group_setups(suite):
            entry = {"suite": suite.name, "task": setup.task, "method": setup.method, "models": setup.models,
                     "presets": setup.presets}
            datasets = sorted({t.spec.task_config.dataset for t in setup.trials}) if setup.task == "classification" else []
            if setup.task == "classification" and pair_s is not None and setup.method in ("rl", "random_search"):
                extra = policy_s if setup.method == "rl" and policy_s is not None else 0.0
                by = {d: extra + 16 * 16 * get_dataset(d).num_classes * pair_s for d in datasets}
                entry.update(step_s=by.get("sst-2", next(iter(by.values()))), step_s_by_dataset=by,
                             eval_s=16 * 2 * pair_s,
                             how="policy sampling + update of the pin step, and 16 prompts x 16 x classes "
                                 "training examples at the warm scoring rate")
            elif setup.task == "style_transfer" and gen is not None and policy_s is not None:
                lm = setup.models.get("task.task_lm")
                g = gen["models"].get(lm)
                if g is not None:
                    scale = 16 * 128 / (gen["pairs"] * gen["samples_per_pair"])  # paper shapes from the measured
                    reward = gen["bertscore"]["seconds"] * scale
                    entry.update(step_s=g["seconds"] * scale + reward + policy_s, eval_s=g["seconds"] * scale + reward,
                                 how="16 (prompt, input) pairs x 128 samples (pin; rlprompt samples 8 x 128) at the "
                                     "measured generation rate (to the length limit), their BERTScore, and the "
                                     "pin step's policy sampling + update")
            elif setup.task == "inversion" and clip is not None:
                step = clip["pin_step"] if setup.method == "rl" else clip["pez_step"]
                entry.update(step_s=step.get("step_s") or step["wall_s"], eval_s=clip["score_s"] / clip["prompts"],
                             how="a measured full step (pin: OPT-350M policy, 32 prompts; pez: its gradient "
                                 "step), and an evaluation as one prompt's share of the CLIP scoring")
            entries.append(entry)
    return entries


def projection(entries: list[dict]) -> dict:
    """Per paper suite: hours and device-hours per set-up (pinbench.cost.project) and totals."""
    from pinbench.cost import StepTime, project
    from pinbench.suite import load_suite

    times = [StepTime(e["task"], e["method"], e["models"], e["step_s"], e.get("eval_s", 0.0),
                      e.get("step_s_by_dataset") or {}, "gpu_paper_shapes") for e in entries if e.get("step_s")]
    out = {}
    for path in PAPER_SUITES:
        suite = load_suite(REPO / path)
        frame = project(suite, times)
        covered = frame[frame["source"] != ""]
        out[suite.name] = {"setups": frame.to_dict("records"), "trial_hours": float(covered["hours"].sum()),
                           "device_hours": float(covered["device_hours"].sum()),
                           "gpu_per_trial": float(suite.resources.get("gpu") or 0),
                           "measured_setups": f"{len(covered)}/{len(frame)}"}
    return out


def plain(value):
    """``value`` as strict JSON: NaN (a set-up without a measurement) as null, numpy numbers as floats."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, bool, int)) or value is None:
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return None if math.isnan(number) else number


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return platform.processor() or platform.machine()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default=None, help="cuda (default when available) or cpu")
    ap.add_argument("--dry-run", action="store_true", help="tiny models and shapes on CPU: checks the code path")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "gpu_paper_shapes.json")
    ap.add_argument("--repeat", type=int, default=3, help="time each measurement N times, keep the fastest")
    ap.add_argument("--only", nargs="+", choices=("fsc_scoring", "pin_step", "generation", "clip"), default=None)
    args = ap.parse_args(argv)
    if args.dry_run:
        os.environ["PINBENCH_SMOKE_SHRINK"] = "1"
    device = args.device or ("cuda" if torch.cuda.is_available() and not args.dry_run else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here; pass --dry-run (or --device cpu) to run on CPU", file=sys.stderr)
        return 2
    shapes = Shapes.dry() if args.dry_run else Shapes()
    repeat = 1 if args.dry_run else args.repeat
    from pinbench.cli import _quiet_transformers

    _quiet_transformers()
    parts = args.only or ["fsc_scoring", "pin_step", "generation", "clip"]
    results: dict = {"device": device_name(device), "torch": torch.__version__, "dry_run": args.dry_run,
                     "shapes": asdict(shapes), "random_weights": True}
    runners = {"fsc_scoring": lambda: measure_fsc_scoring(device, shapes, repeat),
               "pin_step": lambda: measure_pin_step(device, shapes),
               "generation": lambda: measure_generation(device, shapes, repeat),
               "clip": lambda: measure_clip(device, shapes, repeat)}
    for part in parts:
        start = time.perf_counter()
        results[part] = runners[part]()
        if device.startswith("cuda"):
            results[part]["cuda_peak_gb"] = torch.cuda.max_memory_allocated() / 2**30
            torch.cuda.reset_peak_memory_stats()
        print(f"{part}: {time.perf_counter() - start:.1f} s  " + json.dumps(results[part], default=float)[:400], flush=True)
    results["setups"] = setup_entries(results, shapes)
    results["projection"] = projection(results["setups"])
    for name, p in results["projection"].items():
        print(f"{name}: {p['trial_hours']:,.1f} trial-hours, {p['device_hours']:,.1f} GPU-hours at "
              f"{p['gpu_per_trial']:g} GPU per trial (set-ups measured: {p['measured_setups']})")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(plain(results), indent=1) + "\n")
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
