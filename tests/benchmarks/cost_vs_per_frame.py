"""Seconds per video and memory of each method against per_frame, side by side in one process (not a test).

    HF_HUB_OFFLINE=1 python tests/benchmarks/cost_vs_per_frame.py [--rounds 5] [--methods simda dual_stream]

Tiny base (bench.models.tiny_components), 8 frames, 64x64 px, 4 DDIM steps, guidance 7.5 by default. Methods run
round-robin (one video each per round, first round = warm-up) so machine-load drift hits all of them alike. Memory:
the RSS a method adds when built, and the peak RSS during its generate() above the RSS just before it.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench.api import GenRequest  # noqa: E402
from bench.models import tiny_components  # noqa: E402
from bench.perf import MemoryWatch  # noqa: E402
from bench.registry import METHODS  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=["simda", "dual_stream", "animatediff"])
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up round")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--guidance", type=float, default=7.5)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)

    base = tiny_components(0)
    names = ["per_frame", *[m for m in args.methods if m != "per_frame"]]
    methods, built_mb = {}, {}
    for name in names:
        before = rss_mb()
        methods[name] = METHODS.get(name)(base)
        built_mb[name] = rss_mb() - before
    seconds: dict[str, list[float]] = {n: [] for n in names}
    peak_delta: dict[str, list[float]] = {n: [] for n in names}
    peak_abs: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds + 1):
        req = GenRequest("bench", "a corgi running on the beach", seed=100 + r, num_frames=args.frames,
                         height=args.size, width=args.size, num_inference_steps=args.steps,
                         guidance_scale=args.guidance)
        for name in names:
            before = rss_mb()
            with MemoryWatch("cpu") as watch:
                start = time.perf_counter()
                methods[name].generate([req])
                elapsed = time.perf_counter() - start
            if r == 0:
                continue  # warm-up
            seconds[name].append(elapsed)
            peak_abs[name].append(watch.result()["peak_rss_mb"])
            peak_delta[name].append(peak_abs[name][-1] - before)

    ref_s, ref_m = statistics.median(seconds["per_frame"]), statistics.median(peak_delta["per_frame"])
    rows = {}
    for name in names:
        s, m = statistics.median(seconds[name]), statistics.median(peak_delta[name])
        counts = methods[name].parameter_counts()
        rows[name] = {"sec_per_video": round(s, 3), "time_ratio": round(s / ref_s, 2),
                      "gen_peak_rss_delta_mb": round(m, 2), "gen_mem_ratio": round(m / ref_m, 2) if ref_m >= 1.0 else None,  # < 1 MB is noise
                      "gen_peak_rss_mb": round(max(peak_abs[name]), 1),
                      "built_rss_delta_mb": round(built_mb[name], 1), "added_params": counts["added"],
                      "trainable_params": counts["trainable"]}
    result = {"settings": {"frames": args.frames, "size": args.size, "steps": args.steps, "guidance": args.guidance,
                           "rounds": args.rounds, "threads": torch.get_num_threads(),
                           "load_avg": os.getloadavg()}, "methods": rows}
    print(f"{'method':<12} {'s/video':>8} {'x pf':>6} {'gen peak dRSS MB':>17} {'x pf':>6} {'built dRSS MB':>14} {'peak RSS MB':>12}")
    for name, row in rows.items():
        print(f"{name:<12} {row['sec_per_video']:>8} {row['time_ratio']:>6} {row['gen_peak_rss_delta_mb']:>17} "
              f"{str(row['gen_mem_ratio']):>6} {row['built_rss_delta_mb']:>14} {row['gen_peak_rss_mb']:>12}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
