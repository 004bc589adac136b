"""Harness overhead: `Runner.generate` (planning, caching, per-item writes of mp4 + lossless frames, warm-up)
against calling the same diffusers pipeline directly in a loop on the same requests, side by side in one process.

    python tests/benchmarks/harness_overhead.py [--rounds 3] [--out results/overhead.json]

Rounds interleave the two so that machine noise hits both alike; the ratio is of medians.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch


def direct_loop(method_name: str, base, method, requests) -> None:
    """What a user would write without the harness: build the diffusers pipeline, call it once per request."""
    from diffusers import AnimateDiffPipeline, StableDiffusionPipeline

    b = base
    if method_name == "animatediff":
        # as a user writes it: the pipeline folds the adapter into the 2-D UNet itself (from_unet2d)
        pipe = AnimateDiffPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet,
                                   motion_adapter=method.adapter, scheduler=b.scheduler)
    else:
        pipe = StableDiffusionPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=b.unet,
                                       scheduler=b.scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    for r in requests:
        gen = torch.Generator("cpu").manual_seed(r.seed)
        common = dict(height=r.height, width=r.width, num_inference_steps=r.num_inference_steps,
                      guidance_scale=r.guidance_scale, output_type="pt")
        if method_name == "animatediff":
            pipe(r.prompt, num_frames=r.num_frames, generator=gen, **common)
        else:
            pipe(r.prompt, num_images_per_prompt=r.num_frames, generator=gen, **common)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", default="results/overhead.json")
    args = parser.parse_args()

    from bench.config import load_config
    from bench.runner import Runner

    cfg = load_config("smoke", {"methods": {"per_frame": {}, "animatediff": {}}})
    results = {}
    for method_name in cfg.methods:
        mcfg = cfg.model_copy(update={"methods": {method_name: cfg.methods[method_name]}})
        probe = Runner(mcfg, tempfile.mkdtemp(), progress=False)
        items = probe.plan()
        base = probe.base()
        method = probe.build_method(method_name)
        direct_loop(method_name, base, method, [it.request for it in items[:1]])  # warm both paths once
        harness_s, direct_s = [], []
        for _ in range(args.rounds):
            out = Path(tempfile.mkdtemp())
            runner = Runner(mcfg, out, progress=False)
            runner._base = base  # both sides share loaded weights: loading is not what we measure
            started = time.perf_counter()
            runner.generate(items)
            harness_s.append(time.perf_counter() - started)
            shutil.rmtree(out)
            started = time.perf_counter()
            direct_loop(method_name, base, method, [it.request for it in items])
            direct_s.append(time.perf_counter() - started)
        h, d = statistics.median(harness_s), statistics.median(direct_s)
        results[method_name] = {"harness_s": harness_s, "direct_s": direct_s, "ratio_of_medians": round(h / d, 3),
                                "videos": len(items)}
        print(f"{method_name}: harness {h:.2f} s, direct {d:.2f} s, ratio {h / d:.3f} ({len(items)} videos)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"torch_threads": torch.get_num_threads(), "rounds": args.rounds,
                                          "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
