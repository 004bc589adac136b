"""Seconds per video of text2video_zero, magicvideo_causal and magicvideo against per_frame on the tiny base, all
in one process, plus temporal flickering on the same prompts and seeds. A measurement script, not a test.

    HF_HUB_OFFLINE=1 PYTHONPATH=. python scripts/time_issue3_methods.py [--repeats 5]

Calls are interleaved round-robin (one call of each method per round) so that load from other processes on a
shared machine hits every method alike; the median over rounds is reported, after one warm-up call each.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench.api import GenRequest
from bench.metrics.flicker import temporal_flickering
from bench.models import tiny_components
from methods.magicvideo import MagicVideo, MagicVideoCausal
from methods.per_frame import PerFrame
from methods.text2video_zero import Text2VideoZero

PROMPTS = ["a cat running on the grass", "a red fox running through fresh snow", "a paper boat drifting down a stream"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    args = parser.parse_args()

    base = tiny_components(0)
    methods = {
        "per_frame": PerFrame(base),
        "text2video_zero": Text2VideoZero(base),
        "magicvideo_causal[all_previous]": MagicVideoCausal(base),
        "magicvideo_causal[first_and_previous]": MagicVideoCausal(base, variant="first_and_previous"),
        "magicvideo[tiny, zero proj_out]": MagicVideo(base),
    }
    req = GenRequest("p0", PROMPTS[0], seed=1, num_frames=args.frames, height=64, width=64,
                     num_inference_steps=args.steps, guidance_scale=7.5)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for method in methods.values():
        method.generate([req])  # warm-up
    for _ in range(args.repeats):
        for name, method in methods.items():
            start = time.perf_counter()
            method.generate([req])
            times[name].append(time.perf_counter() - start)

    print(f"torch threads {torch.get_num_threads()}; {args.frames} frames, 64x64, {args.steps} steps, guidance 7.5, "
          f"median of {args.repeats}")
    ref = statistics.median(times["per_frame"])
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:40s} {med:7.3f} s/video   x{med / ref:5.2f} vs per_frame   (min {min(values):.3f})")

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
