"""Peak memory of pinbench's commands at real data sizes, children included.

Each command runs as a child process; a sampler sums the resident set size (RSS) of the child
and all its descendants (Ray's raylet and workers in a sweep) every 50 ms and keeps the largest
sum, and the largest single process. Rows:

    eval sst-2 / agnews test at 500 examples and the full split (1,821 and 7,600), exact and bf16
    a training run that scores its best prompt on SST-2's test split (exact)
    the quickstart sweep (`make demo`'s; --sweep-steps shortens it)

then the slope of eval's peak in MB per 1,000 examples, per dataset and dtype (a least-squares
line through the sizes). Bounded scoring keeps the slope at what the predictions need (tens of MB
per 1,000 examples); the peaks stay at the model plus the scorer's token budget.

Usage: python bench/memory.py [--data-dir ../shared/data] [--skip-sweep] [--sweep-steps 50]
       [--only eval|train|sweep] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
PINBENCH = [sys.executable, "-m", "pinbench.cli"]


def measure(argv: list[str], env: dict | None = None, interval: float = 0.05) -> dict:
    """Run ``argv``; its wall time, exit code and the peak RSS of its process tree (sum and largest
    single process), in MB."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    peak = {"tree": 0, "single": 0}
    stop = threading.Event()

    def sample():
        root = psutil.Process(proc.pid)
        while not stop.is_set():
            try:
                procs = [root] + root.children(recursive=True)
            except psutil.NoSuchProcess:
                return
            rss = []
            for p in procs:
                try:
                    rss.append(p.memory_info().rss)
                except psutil.Error:
                    pass
            peak["tree"] = max(peak["tree"], sum(rss))
            peak["single"] = max(peak["single"], max(rss, default=0))
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    stop.set()
    sampler.join()
    return {"rc": proc.returncode, "wall_s": time.perf_counter() - start, "peak_mb": peak["tree"] / 2**20,
            "largest_process_mb": peak["single"] / 2**20, "output_tail": output[-2000:]}


def truncated_root(data_dir: Path, dataset: str, rows: int, into: Path) -> Path:
    """A few-shot data root whose ``dataset`` seed-13 test split keeps its first ``rows`` examples."""
    src = data_dir / "few-shot" / dataset / "16-13"
    dst = into / f"{dataset}-{rows}" / "few-shot" / dataset / "16-13"
    dst.mkdir(parents=True, exist_ok=True)
    for split in ("train", "dev"):
        shutil.copy(src / f"{split}.tsv", dst)
    lines = (src / "test.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    header = 1 if lines and lines[0].lower().startswith(("sentence", "text", "label")) else 0
    (dst / "test.tsv").write_text("".join(lines[: header + rows]), encoding="utf-8")
    return dst.parents[2]


def split_size(data_dir: Path, dataset: str) -> int:
    lines = (data_dir / "few-shot" / dataset / "16-13" / "test.tsv").read_text(encoding="utf-8").splitlines()
    return len(lines) - (1 if lines and lines[0].lower().startswith(("sentence", "text", "label")) else 0)


def slope(points: list[tuple[int, float]]) -> float:
    """Least-squares MB per 1,000 examples."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    return 1000 * sum((x - mx) * (y - my) for x, y in points) / sxx if sxx else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=REPO.parent / "shared" / "data", help="a data root")
    ap.add_argument("--task-lm", default="smollm2-135m")
    ap.add_argument("--only", choices=["eval", "train", "sweep"], action="append",
                    help="run only these rows (repeatable)")
    ap.add_argument("--skip-sweep", action="store_true", help="leave out the quickstart sweep")
    ap.add_argument("--sweep-steps", type=int, default=50, help="run.steps of the quickstart sweep")
    ap.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = ap.parse_args()
    only = set(args.only or ["eval", "train", "sweep"]) - ({"sweep"} if args.skip_sweep else set())
    rows, scratch = [], Path(tempfile.mkdtemp(prefix="pinbench-bench-memory-"))

    def run(name: str, argv: list[str], examples: int | None = None, **extra) -> None:
        result = measure(argv, env=extra.pop("env", None))
        row = {"row": name, "examples": examples, **extra, **{k: v for k, v in result.items() if k != "output_tail"}}
        rows.append(row)
        print(f"{name:44s} n={examples or '-':>5} {result['wall_s']:7.1f} s {result['peak_mb']:8.0f} MB"
              f" (largest process {result['largest_process_mb']:.0f} MB) rc={result['rc']}", flush=True)
        if result["rc"] != 0:
            print(result["output_tail"], file=sys.stderr)

    try:
        if "eval" in only:
            for dataset, prompt in (("sst-2", "It was"), ("agnews", "Topic:")):
                full = split_size(args.data_dir, dataset)
                for n in (500, full):
                    root = args.data_dir if n == full else truncated_root(args.data_dir, dataset, n, scratch)
                    for bf16 in (False, True):
                        argv = PINBENCH + ["eval", "--dataset", dataset, "--split-seed", "13", "--split", "test",
                                           "--prompt", prompt, "--task-lm", args.task_lm,
                                           "--data-dir", str(root / "few-shot")] + (["--bf16"] if bf16 else [])
                        run(f"eval {dataset} test{' --bf16' if bf16 else ''}", argv, n, dataset=dataset,
                            dtype="bf16" if bf16 else "fp32")
        if "train" in only:
            argv = PINBENCH + ["train", "--preset", "pin", "--dataset", "sst-2", "--split-seed", "13", "--steps", "3",
                               "--eval-every", "3", "--data-dir", str(args.data_dir / "few-shot"),
                               "--out", str(scratch / "train")]
            run("train pin 3 steps + test scoring", argv, split_size(args.data_dir, "sst-2"))
        if "sweep" in only:
            suite = scratch / "quickstart.yaml"
            text = (REPO / "suites" / "quickstart.yaml").read_text()
            suite.write_text(text.replace("run.steps: 50", f"run.steps: {args.sweep_steps}"))
            run(f"sweep quickstart ({args.sweep_steps} steps)",
                PINBENCH + ["sweep", str(suite), "--results", str(scratch / "results")],
                env={"PINBENCH_DATA_DIR": str(args.data_dir)})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    print()
    print(f"{'command':44s} {'examples':>8s} {'wall s':>7s} {'peak MB':>8s}")
    for r in rows:
        print(f"{r['row']:44s} {r['examples'] or '-':>8} {r['wall_s']:7.1f} {r['peak_mb']:8.0f}")
    evals = [r for r in rows if r["row"].startswith("eval") and r["rc"] == 0]
    for dataset in dict.fromkeys(r["dataset"] for r in evals):
        for dtype in ("fp32", "bf16"):
            pts = [(r["examples"], r["peak_mb"]) for r in evals if r["dataset"] == dataset and r["dtype"] == dtype]
            if len(pts) >= 2:
                print(f"slope, eval {dataset} {dtype}: {slope(pts):.1f} MB per 1,000 examples")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0 if all(r["rc"] == 0 for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
