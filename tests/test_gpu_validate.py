"""tests/benchmarks/gpu_validate.py --dry-run: tiny models on CPU through every code path of the GPU validation."""
import importlib.util
import json
from pathlib import Path

import torch

SCRIPT = Path(__file__).parent / "benchmarks" / "gpu_validate.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_validate", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_dry_run_writes_one_record_with_every_method(tmp_path):
    from bench.models import tiny_components
    from bench.sd15 import SD15_METHODS
    from torch.utils.flop_counter import FlopCounterMode

    out = tmp_path / "gpu.json"
    load_script().main(["--dry-run", "--out", str(out)])
    record = json.loads(out.read_text())
    assert record["dry_run"] and record["settings"]["num_frames"] == 2
    assert list(record["methods"]) == [m[0] for m in SD15_METHODS]
    for label, r in record["methods"].items():
        assert r["sec_per_video"] > 0 and r["denoiser_tflop_per_video"] > 0, label
        assert 0 < r["time_breakdown"]["denoiser"] <= 1
    for label, ref in (("per_frame", "StableDiffusionPipeline"), ("animatediff_v2", "AnimateDiffPipeline"),
                       ("text2video_zero", "TextToVideoZeroPipeline")):
        assert record["methods"][label]["reference"] == ref and record["methods"][label]["ratio_to_reference"] > 0

    # per_frame's FLOPs per video: one guided UNet call per step on (2 x frames) latents, counted here directly
    s = record["settings"]
    base = tiny_components(0)
    h = s["height"] // base.vae_scale_factor
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        base.unet(torch.zeros(2 * s["num_frames"], 4, h, h), torch.tensor(500),
                  encoder_hidden_states=torch.zeros(2 * s["num_frames"], 77, 32))
    expected = counter.get_total_flops() * s["num_inference_steps"] / 1e12
    assert record["methods"]["per_frame"]["denoiser_tflop_per_video"] == float(f"{expected:.4g}")
