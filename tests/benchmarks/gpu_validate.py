"""One prepared GPU validation: every method on SD 1.5 shapes (random weights built in code, fp16, no internet) at
16 frames, 512x512, 25 steps: seconds per video, peak VRAM allocated and reserved, the ratio to the bare diffusers
pipeline doing the same work (StableDiffusionPipeline for per_frame, AnimateDiffPipeline for animatediff,
TextToVideoZeroPipeline for text2video_zero), where the time goes, and the denoiser's achieved TFLOP/s (FLOPs counted
with torch.utils.flop_counter.FlopCounterMode) against the GPU's dense fp16 peak. Writes one JSON record.

    python tests/benchmarks/gpu_validate.py [--out results/gpu_validate.json] [--videos 2] [--methods a,b]
    python tests/benchmarks/gpu_validate.py --dry-run      # tiny models on CPU: the plumbing, in seconds
    python tests/benchmarks/gpu_validate.py --cpu --frames 4 --size 256 --steps 4 --videos 1   # SD 1.5 shapes, fp32 CPU

Each method (and pipeline) runs one warm-up video first (not timed; it also counts the denoiser's FLOPs: the first
call of each input shape runs under FlopCounterMode), then `--videos` timed videos, CUDA synchronised.
Designed to finish in under 8 minutes on an H100/H200.
"""
from __future__ import annotations

import argparse
import contextlib
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

# Dense fp16/bf16 tensor-core peak (TFLOP/s, no sparsity) from the vendors' data sheets, by device-name substring.
PEAK_TFLOPS = [("H200", 989.4), ("H100 PCIe", 756.0), ("H100", 989.4), ("A100", 312.0), ("L40S", 362.1),
               ("L4", 121.0), ("A10G", 70.0), ("A10", 125.0), ("RTX 4090", 165.2), ("V100", 125.0), ("T4", 65.0)]
REFERENCES = {"per_frame": "StableDiffusionPipeline", "animatediff": "AnimateDiffPipeline",
              "text2video_zero": "TextToVideoZeroPipeline"}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((tf for key, tf in PEAK_TFLOPS if key in name), None)


class FlopCounter:
    """Wraps a method's predict_noise: counts FLOPs of the first call of every input shape under FlopCounterMode
    (slow, so only in the warm-up video) and adds them up per video."""

    def __init__(self, fn: Callable):
        self.fn, self.per_shape, self.video_flops, self.counting = fn, {}, 0, True

    def __call__(self, latents: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        key = (tuple(latents.shape), *(tuple(a.shape) for a in args if isinstance(a, torch.Tensor)))
        if key not in self.per_shape and self.counting:
            from torch.utils.flop_counter import FlopCounterMode

            with FlopCounterMode(display=False) as counter:
                out = self.fn(latents, *args, **kwargs)
            self.per_shape[key] = counter.get_total_flops()
        else:
            out = self.fn(latents, *args, **kwargs)
        self.video_flops += self.per_shape.get(key, 0)
        return out


def memory_reset(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def memory_peaks(device: torch.device) -> dict[str, float | None]:
    if device.type != "cuda":
        return {"peak_cuda_allocated_mb": None, "peak_cuda_reserved_mb": None}
    return {"peak_cuda_allocated_mb": round(torch.cuda.max_memory_allocated(device) / 2**20, 1),
            "peak_cuda_reserved_mb": round(torch.cuda.max_memory_reserved(device) / 2**20, 1)}


def timed_videos(run_one: Callable[[int], Any], n: int, device: torch.device) -> tuple[list[float], list[Any]]:
    seconds, outs = [], []
    for k in range(n):
        sync(device)
        started = time.perf_counter()
        outs.append(run_one(k))
        sync(device)
        seconds.append(time.perf_counter() - started)
    return seconds, outs


def breakdown(infos: list[dict], wall: list[float]) -> dict[str, Any]:
    """Shares of the timed videos' wall time: denoiser forward, scheduler (loop minus forward), text, VAE."""
    total = sum(wall)
    parts = {"denoiser": sum(i.get("denoiser_seconds", 0.0) for i in infos),
             "scheduler": sum(i.get("denoise_seconds", 0.0) - i.get("denoiser_seconds", 0.0) for i in infos),
             "text_encoding": sum(i.get("encode_seconds", 0.0) for i in infos),
             "vae_decode": sum(i.get("decode_seconds", 0.0) for i in infos)}
    parts["other"] = max(0.0, total - sum(parts.values()))
    return {k: round(v / total, 4) for k, v in parts.items()} if total > 0 else {}


def reference_pipeline(kind: str, base: Any, method: Any):
    from diffusers import AnimateDiffPipeline, StableDiffusionPipeline, TextToVideoZeroPipeline

    b = base
    common = dict(vae=b.vae, text_encoder=b.text_encoder, tokenizer=b.tokenizer, scheduler=b.scheduler)
    if kind == "animatediff":
        pipe = AnimateDiffPipeline(unet=method.unet, motion_adapter=method.adapter, **common)
    elif kind == "per_frame":
        pipe = StableDiffusionPipeline(unet=b.unet, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False, **common)
    else:
        pipe = TextToVideoZeroPipeline(unet=b.unet, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False, **common)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def call_reference(kind: str, pipe: Any, request: Any, method: Any) -> None:
    r = request
    generator = torch.Generator("cpu").manual_seed(r.seed)
    common = dict(height=r.height, width=r.width, num_inference_steps=r.num_inference_steps,
                  guidance_scale=r.guidance_scale, generator=generator)
    if kind == "animatediff":
        pipe(r.prompt, num_frames=r.num_frames, output_type="pt", **common)
    elif kind == "per_frame":
        pipe(r.prompt, num_images_per_prompt=r.num_frames, output_type="pt", **common)
    else:  # the same t0/t1 indices as the method at this step count; all frames at once, as ours
        info = method.schedule(r.num_inference_steps)
        pipe(r.prompt, video_length=r.num_frames, t0=info["t0"], t1=info["t1"], **common)


def validate_method(label: str, name: str, options: dict, version: str | None, base: Any, args: argparse.Namespace,
                    device: torch.device, dtype: torch.dtype, peak: float | None) -> dict[str, Any]:
    from bench.api import GenRequest
    from bench.registry import METHODS
    from bench.sd15 import default_dtype, sd15_adapters

    requests = [GenRequest(f"p{k}", f"a red ball rolling to the left, photo {k}", 100 + k, num_frames=args.frames,
                           height=args.size, width=args.size, num_inference_steps=args.steps,
                           guidance_scale=7.5) for k in range(args.videos + 1)]
    memory_reset(device)
    build = contextlib.nullcontext() if args.dry_run else sd15_adapters(version or "v1", device, dtype)
    started = time.perf_counter()
    with build, torch.device(device), default_dtype(dtype):
        method = METHODS.get(name)(base, **options)
    built_s = time.perf_counter() - started
    counter = FlopCounter(method.predict_noise)
    method.predict_noise = counter
    method.generate(requests[:1])  # warm-up + FLOP count
    flops_per_video, counter.counting = counter.video_flops, False
    seconds, outs = timed_videos(lambda k: method.generate([requests[k + 1]])[0], args.videos, device)
    infos = [v.info for v in outs]
    out: dict[str, Any] = {"method": name, "options": options, "adapter_release": version,
                           "build_seconds": round(built_s, 2), "sec_per_video": round(statistics.median(seconds), 4),
                           "sec_per_video_all": [round(s, 4) for s in seconds], **memory_peaks(device),
                           "time_breakdown": breakdown(infos, seconds)}
    denoiser_s = statistics.median(i["denoiser_seconds"] for i in infos)
    achieved = flops_per_video / denoiser_s / 1e12 if denoiser_s > 0 else None
    out.update(denoiser_tflop_per_video=float(f"{flops_per_video / 1e12:.4g}"),
               denoiser_tflops_per_s=float(f"{achieved:.4g}") if achieved else None,
               fraction_of_peak=round(achieved / peak, 4) if achieved and peak else None)
    kind = name if name in REFERENCES else None
    if kind:
        saved = base.unet.attn_processors  # TextToVideoZeroPipeline installs its own processors on the base UNet
        try:
            pipe = reference_pipeline(kind, base, method)
            memory_reset(device)
            call_reference(kind, pipe, requests[0], method)  # warm-up
            ref_s, _ = timed_videos(lambda k: call_reference(kind, pipe, requests[k + 1], method), args.videos, device)
            out.update(reference=REFERENCES[kind], reference_sec_per_video=round(statistics.median(ref_s), 4),
                       ratio_to_reference=round(out["sec_per_video"] / statistics.median(ref_s), 4),
                       reference_memory=memory_peaks(device))
        finally:
            base.unet.set_attn_processor(saved)
    del method, outs
    memory_reset(device)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/gpu_validate.json")
    parser.add_argument("--videos", type=int, default=2, help="timed videos per method (after one warm-up)")
    parser.add_argument("--methods", help="comma-separated labels (default: all, see bench/sd15.py SD15_METHODS)")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--dry-run", action="store_true", help="tiny random models on CPU, 2 frames 16x16, 2 steps")
    parser.add_argument("--cpu", action="store_true", help="SD 1.5 shapes on the CPU in fp32 (no GPU: time shares "
                        "and ratios at real architectures; use small --frames/--size/--steps)")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    from bench.sd15 import RANDOM_ADAPTER_SPEC, SD15_METHODS, sd15_components
    from bench.store import environment

    if args.dry_run:
        from bench.models import tiny_components

        torch.set_num_threads(1)
        device, dtype = torch.device("cpu"), torch.float32
        args.frames, args.size, args.steps, args.videos = 2, 16, 2, 1
        base = tiny_components(0)
        plan = [(label, name, {k: ("tiny" if v == RANDOM_ADAPTER_SPEC else v) for k, v in opts.items()}, version)
                for label, name, opts, version in SD15_METHODS]
    elif args.cpu:
        device, dtype = torch.device("cpu"), torch.float32
        base = sd15_components(0, device, dtype)
        plan = SD15_METHODS
    else:
        if not torch.cuda.is_available():
            raise SystemExit("gpu_validate needs a CUDA GPU (or --dry-run on CPU)")
        device, dtype = torch.device("cuda"), torch.float16
        torch.backends.cuda.matmul.allow_tf32 = True
        # The VAE stays fp16 here (random weights do not overflow): StableDiffusionPipeline would not upcast it,
        # and both sides must do the same work. Runs of the harness upcast it (accel.vae_upcast: auto).
        base = sd15_components(0, device, dtype)
        plan = SD15_METHODS
    wanted = set(args.methods.split(",")) if args.methods else None
    peak = peak_tflops(device)
    record: dict[str, Any] = {
        "schema": "t2v-bench/gpu_validate/1", "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "dry_run": args.dry_run, "env": environment(device),
        "settings": {"num_frames": args.frames, "height": args.size, "width": args.size,
                     "num_inference_steps": args.steps, "guidance_scale": 7.5, "dtype": str(dtype).removeprefix("torch."),
                     "vae_dtype": str(base.vae.dtype).removeprefix("torch."), "timed_videos": args.videos,
                     "weights": "random (bench/sd15.py configs)" if not args.dry_run else "tiny random"},
        "gpu_peak_dense_fp16_tflops": peak, "methods": {}}
    for label, name, options, version in plan:
        if wanted and label not in wanted:
            continue
        result = validate_method(label, name, options, version, base, args, device, dtype, peak)
        record["methods"][label] = result
        ratio = result.get("ratio_to_reference")
        print(f"{label:18s} {result['sec_per_video']:8.3f} s/video  "
              f"alloc {result['peak_cuda_allocated_mb']} MB  denoiser {result['time_breakdown'].get('denoiser')}  "
              f"{result['denoiser_tflops_per_s']} TFLOP/s" + (f"  x{ratio} vs {result['reference']}" if ratio else ""),
              flush=True)
    record["wall_seconds"] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out} ({record['wall_seconds']} s)")
    return record


if __name__ == "__main__":
    main()
