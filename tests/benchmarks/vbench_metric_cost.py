"""Cost of every metric of the toy default per video, against generation, side by side in one process (not a test);
and the toy RAFT's frame pairs per second.

    HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 python tests/benchmarks/vbench_metric_cost.py [--rounds 5] [--method animatediff]

The toy default's settings (bench/configs/toy.yaml: toy base, 8 frames, 32x32, 10 steps, guidance 4): each round
generates one video with `--method` (timed), then runs each metric's update() on it (each timed; FVD's features
only, its set statistics are per run). Round 0 is a warm-up. Medians over rounds; ratios = metric / generation.
Shared backbones (one RAFT for dynamic_degree/flow_magnitude/motion_smoothness, one CLIP for clip_score/
frame_consistency/background_consistency) compute once per video and are charged to the first metric using them,
in the config's order, as in a run.
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

from bench.api import GenRequest, Video  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--method", default="animatediff")
    ap.add_argument("--rounds", type=int, default=5, help="timed rounds after one warm-up round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    from bench.config import load_config
    from bench.metrics import build_metrics
    from bench.prompts import load_suite
    from bench.runner import Runner

    cfg = load_config("toy", {"methods": {args.method: load_config("toy").methods.get(args.method, {})}})
    runner = Runner(cfg, Path("/tmp/vbench-metric-cost-unused"), progress=False)
    method = runner.build_method(args.method)
    metrics = build_metrics(cfg.metrics, cfg, torch.device("cpu"))
    prompts = load_suite(cfg.prompts).prompts
    s = cfg.sampling
    gen: list[float] = []
    cost: dict[str, list[float]] = {name: [] for name in metrics}
    for r in range(args.rounds + 1):
        p = prompts[r % len(prompts)]
        req = GenRequest(p.id, p.text, seed=100 + r, num_frames=s.num_frames, height=s.height, width=s.width,
                         num_inference_steps=s.num_inference_steps, guidance_scale=s.guidance_scale, fps=s.fps)
        t0 = time.perf_counter()
        video = method.generate([req])[0]
        dt = time.perf_counter() - t0
        video = Video.from_uint8(video.to_uint8(), s.fps)  # what the runner scores: the stored uint8 frames
        times = {}
        for name, metric in metrics.items():
            t0 = time.perf_counter()
            metric.update([video], [p.text])
            times[name] = time.perf_counter() - t0
        if r > 0:
            gen.append(dt)
            for name, t in times.items():
                cost[name].append(t)

    flow = next((m.flow for m in metrics.values() if hasattr(m, "flow")), None)
    raft_fps = None
    if flow is not None:  # frame pairs per second of the toy RAFT on 32x32 frames, batches of 7 pairs (one video)
        frames = torch.rand(8, 3, s.height, s.width)
        flow.flow(frames[:-1], frames[1:])
        rates = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            flow.flow(frames[:-1], frames[1:])
            rates.append(7 / (time.perf_counter() - t0))
        raft_fps = statistics.median(rates)

    g = statistics.median(gen)
    result = {"method": args.method, "rounds": args.rounds, "threads": args.threads,
              "generation_sec_per_video": round(g, 4),
              "metrics_sec_per_video": {n: round(statistics.median(v), 4) for n, v in cost.items()},
              "ratio_to_generation": {n: round(statistics.median(v) / g, 3) for n, v in cost.items()},
              "all_metrics_ratio": round(sum(statistics.median(v) for v in cost.values()) / g, 3),
              "raft_pairs_per_sec": round(raft_fps, 1) if raft_fps else None,
              "raft": flow.describe() if flow is not None else None}
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
