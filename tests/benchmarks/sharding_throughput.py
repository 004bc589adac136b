"""Throughput of a sharded generate stage: N processes (torchrun, one torch thread each) against 1 process
(N torch threads), side by side on the same machine, rounds interleaved.

    python tests/benchmarks/sharding_throughput.py [--procs 2] [--rounds 2] [--samples 2] [--out results/sharding.json]

Reports wall seconds of the whole command and `videos_per_hour_total` from run.json (generation loop only).
On a GPU machine, run with --procs <number of GPUs>: each process takes one GPU.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(procs: int, out: Path, samples: int) -> tuple[float, float]:
    threads = "1" if procs > 1 else str(os.cpu_count() or 1)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": threads}
    args = ["-m", "bench.cli", "generate", "--no-progress", "--samples", str(samples), "--out", str(out)]
    cmd = [sys.executable, *(["-m", "torch.distributed.run", "--nproc_per_node", str(procs),
                              "--master_port", "29655"] if procs > 1 else []), *args]
    started = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    record = json.loads((out / "run.json").read_text())
    total = sum(e["perf"].get("videos_per_hour_total", 0) for e in record["methods"].values()) / len(record["methods"])
    return wall, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--out", default="results/sharding.json")
    args = parser.parse_args()
    results: dict[str, list] = {"1": [], str(args.procs): []}
    for _ in range(args.rounds):
        for procs in (1, args.procs):
            with tempfile.TemporaryDirectory() as tmp:
                results[str(procs)].append(run(procs, Path(tmp) / "run", args.samples))
    summary = {k: {"wall_s_median": statistics.median(w for w, _ in v),
                   "videos_per_hour_total_median": statistics.median(t for _, t in v)} for k, v in results.items()}
    many, one = summary[str(args.procs)], summary["1"]
    summary["throughput_ratio_loop"] = round(many["videos_per_hour_total_median"] / one["videos_per_hour_total_median"], 3)
    summary["wall_ratio_1_over_n"] = round(one["wall_s_median"] / many["wall_s_median"], 3)
    print(json.dumps(summary, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"raw": results, **summary}, indent=2))


if __name__ == "__main__":
    main()
