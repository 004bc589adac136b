"""Harness overhead: `Runner.generate` (planning, caching, per-item writes of mp4 + lossless frames, warm-up)
against calling the same diffusers pipeline directly in a loop on the same requests, side by side in one process.

    python tests/benchmarks/harness_overhead.py [--rounds 5] [--config toy|smoke] [--threads 1] [--out results/overhead.json]

Rounds interleave the two (and alternate which goes first) so that machine noise hits both alike. Three
estimators: the ratio of medians, the median of the per-round ratios (adjacent runs meet similar load), and the
ratio of minimums (timeit's rule: noise only ever adds time, so the fastest round is the closest to the work
itself); plus, inside each harness round, the share of its wall time spent outside `method.generate` (planning,
caching, handing videos to the writer, waiting for it). Both sides run at batch size 1 on the config's sizes (default: the embedded default, `toy`); each harness
round is a fresh run (a fresh text-embedding cache), sharing only the loaded weights.
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
        # the motion UNet the method built (from_unet2d of the same adapter): building models is outside both sides
        pipe = AnimateDiffPipeline(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, unet=method.unet,
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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--config", default="toy")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the writer thread is extra)")
    parser.add_argument("--max-videos", type=int, help="only the first N requests of the plan (per method)")
    parser.add_argument("--out", default="results/overhead.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from bench.config import load_config
    from bench.runner import Runner

    base_cfg = load_config(args.config, {"batch_size": 1, "device": "cpu"})
    cfg = base_cfg.model_copy(update={"methods": {m: base_cfg.methods.get(m, {}) for m in ("per_frame", "animatediff")}})
    results = {}
    for method_name in cfg.methods:
        mcfg = cfg.model_copy(update={"methods": {method_name: cfg.methods[method_name]}})
        probe = Runner(mcfg, tempfile.mkdtemp(), progress=False)
        items = probe.plan()[:args.max_videos]
        base = probe.base()
        method = probe.build_method(method_name)
        direct_loop(method_name, base, method, [it.request for it in items[:1]])  # warm both paths once
        harness_s, direct_s = [], []

        harness_cpu, direct_cpu, inside = [], [], []

        def harness() -> None:
            out = Path(tempfile.mkdtemp())
            runner = Runner(mcfg, out, progress=False)
            runner._base = base  # both sides share loaded weights and built models: loading is not measured
            runner.build_method = lambda name: method
            if hasattr(base, "text_cache"):
                from bench.text_cache import TextEmbeddingCache
                base.text_cache = TextEmbeddingCache()  # a new run encodes its prompts anew
            spent = [0.0]
            generate = method.generate

            def timed(requests):  # time inside the method: the rest of the round is the harness's own
                t = time.perf_counter()
                try:
                    return generate(requests)
                finally:
                    spent[0] += time.perf_counter() - t

            method.generate = timed
            started, cpu = time.perf_counter(), time.process_time()
            try:
                runner.generate(items)
            finally:
                method.generate = generate
            inside.append(spent[0])
            harness_s.append(time.perf_counter() - started)
            harness_cpu.append(time.process_time() - cpu)  # all threads: the writer's work counts too
            shutil.rmtree(out)

        def direct() -> None:
            started, cpu = time.perf_counter(), time.process_time()
            direct_loop(method_name, base, method, [it.request for it in items])
            direct_s.append(time.perf_counter() - started)
            direct_cpu.append(time.process_time() - cpu)

        for k in range(args.rounds):
            for side in ((harness, direct) if k % 2 == 0 else (direct, harness)):
                side()
        h, d = statistics.median(harness_s), statistics.median(direct_s)
        # On a shared machine load drifts between rounds: the ratio within each adjacent pair is steadier, and CPU
        # time (all threads) shows the work added whatever the load.
        paired = statistics.median(a / b for a, b in zip(harness_s, direct_s))
        cpu_ratio = statistics.median(harness_cpu) / statistics.median(direct_cpu)
        min_ratio = min(harness_s) / min(direct_s)
        outside = statistics.median((h_s - i_s) / i_s for h_s, i_s in zip(harness_s, inside))
        results[method_name] = {"harness_s": harness_s, "direct_s": direct_s, "ratio_of_medians": round(h / d, 3),
                                "median_paired_ratio": round(paired, 3), "cpu_ratio_of_medians": round(cpu_ratio, 3),
                                "ratio_of_minimums": round(min_ratio, 3),
                                "harness_own_share": round(outside, 4), "inside_method_s": inside,
                                "harness_cpu_s": harness_cpu, "direct_cpu_s": direct_cpu, "videos": len(items)}
        print(f"{method_name}: harness {h:.2f} s, direct {d:.2f} s, ratio {h / d:.3f}, paired {paired:.3f}, "
              f"of minimums {min_ratio:.3f}, cpu {cpu_ratio:.3f}, harness's own time {outside:.2%} of the method's "
              f"({len(items)} videos)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"torch_threads": torch.get_num_threads(), "rounds": args.rounds,
                                          "config": args.config, "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
