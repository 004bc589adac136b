"""Seconds per video of text2video_zero, causal_cross_frame and magicvideo against per_frame on the tiny base, all
in one process, plus temporal flickering on the same prompts and seeds. A measurement script, not a test.

    HF_HUB_OFFLINE=1 PYTHONPATH=. python tests/benchmarks/method_timing_issue3.py [--repeats 5]

Calls are interleaved round-robin (one call of each method per round) so that load from other processes on a
shared machine hits every method alike; the median over rounds is reported, after one warm-up call each. Wall time
and process CPU time are both reported: on a busy shared machine the CPU time (with --threads 1, where it is not
inflated by idle-spinning worker threads) is the steadier basis for ratios.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.api import GenRequest
from bench.metrics.flicker import temporal_flickering
from bench.models import tiny_components
from methods.causal_cross_frame import CausalCrossFrame
from methods.magicvideo import MagicVideo
from methods.per_frame import PerFrame
from methods.text2video_zero import Text2VideoZero

PROMPTS = ["a cat running on the grass", "a red fox running through fresh snow", "a paper boat drifting down a stream"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch default)")
    parser.add_argument("--no-flicker", action="store_true", help="skip the flickering table")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    base = tiny_components(0)
    methods = {
        "per_frame": PerFrame(base),
        "text2video_zero": Text2VideoZero(base),
        "causal_cross_frame[all_previous]": CausalCrossFrame(base),
        "causal_cross_frame[first_and_previous]": CausalCrossFrame(base, variant="first_and_previous"),
        "magicvideo[tiny, zero proj_out]": MagicVideo(base),
    }
    req = GenRequest("p0", PROMPTS[0], seed=1, num_frames=args.frames, height=64, width=64,
                     num_inference_steps=args.steps, guidance_scale=7.5)
    times: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for method in methods.values():
        method.generate([req])  # warm-up
    for _ in range(args.repeats):
        for name, method in methods.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            method.generate([req])
            times[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)

    print(f"torch threads {torch.get_num_threads()}; {args.frames} frames, 64x64, {args.steps} steps, guidance 7.5, "
          f"median of {args.repeats}")
    ref, ref_cpu = statistics.median(times["per_frame"]), statistics.median(cpu["per_frame"])
    for name in methods:
        med, med_cpu = statistics.median(times[name]), statistics.median(cpu[name])
        print(f"{name:40s} wall {med:7.3f} s/video  x{med / ref:5.2f}   cpu {med_cpu:7.3f} s/video  "
              f"x{med_cpu / ref_cpu:5.2f} vs per_frame   (wall min {min(times[name]):.3f})")
    if args.no_flicker:
        return

    print("\ntemporal_flickering (higher = steadier; 1 - mean abs frame diff):")
    ablations = {"text2video_zero[no cross-frame attn]": Text2VideoZero(base, cross_frame_attention=False),
                 "text2video_zero[no motion]": Text2VideoZero(base, motion_field_strength_x=0,
                                                               motion_field_strength_y=0)}
    for name, method in {**methods, **ablations}.items():
        scores = []
        for seed, prompt in enumerate(PROMPTS):
            r = GenRequest(f"p{seed}", prompt, seed=seed, num_frames=args.frames, num_inference_steps=args.steps)
            scores.append(temporal_flickering(method.generate([r])[0].frames))
        print(f"{name:40s} " + "  ".join(f"{s:.4f}" for s in scores) + f"   mean {statistics.mean(scores):.4f}")


if __name__ == "__main__":
    main()
