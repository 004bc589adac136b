"""Every method on the exact SD 1.5 UNet / VAE / text-encoder configs with random weights and the real AnimateDiff
adapter configs (v1, v2 with its mid block, v3): 2 frames at 64x64, 2 steps. Catches the shape bugs tiny models hide.

Slow (30 min on a shared 2-core CPU at load ~18; ~9 GB RAM peak, bf16): skipped unless T2V_BENCH_REAL_ARCH=1.

    T2V_BENCH_REAL_ARCH=1 python -m pytest -q tests/test_sd15_shapes.py
"""
import gc
import os

import pytest
import torch

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("T2V_BENCH_REAL_ARCH") != "1",
                                 reason="SD 1.5 shapes on CPU take ~30 min; set T2V_BENCH_REAL_ARCH=1")]

DTYPE = torch.bfloat16  # half the memory of float32; the shapes are what is under test
# Trainable parameters on SD 1.5 shapes in millions, from outside this code: the official releases' sizes
# (reference/methods.md: 417.1M v1/v3, 453.2M v2) and the SimDA closed form of tests/test_simda.py.
EXPECTED_TRAINABLE_M = {"animatediff_v1": 417.1, "animatediff_v2": 453.2, "animatediff_v3": 417.1, "simda": 24.86}


@pytest.fixture(scope="module")
def sd15_base():
    from bench.sd15 import sd15_components

    return sd15_components(0, "cpu", DTYPE)


def _labels():
    from bench.sd15 import SD15_METHODS

    return [m[0] for m in SD15_METHODS]


@pytest.mark.parametrize("label", _labels())
def test_every_method_generates_on_sd15_shapes(sd15_base, label):
    from bench.api import GenRequest
    from bench.registry import METHODS
    from bench.sd15 import SD15_METHODS, sd15_adapters

    _, name, options, version = next(m for m in SD15_METHODS if m[0] == label)
    with sd15_adapters(version or "v1", dtype=DTYPE):
        method = METHODS.get(name)(sd15_base, **options)
    requests = [GenRequest("p0", "a red ball rolling left", 11, num_frames=2, height=64, width=64,
                           num_inference_steps=2, guidance_scale=7.5),
                GenRequest("p1", "a blue cube", 12, num_frames=2, height=64, width=64, num_inference_steps=2,
                           guidance_scale=7.5)]
    try:
        videos = method.generate(requests)
        assert len(videos) == 2
        for video in videos:
            assert tuple(video.frames.shape) == (2, 3, 64, 64) and torch.isfinite(video.frames).all()
        assert not torch.equal(videos[0].frames, videos[1].frames)
        if label in EXPECTED_TRAINABLE_M:
            assert method.parameter_counts()["trainable"] / 1e6 == pytest.approx(EXPECTED_TRAINABLE_M[label], abs=0.06)
        if label == "animatediff_v2":  # the v2 release's mid-block motion module is there and runs
            assert method.unet.mid_block.motion_modules is not None
    finally:
        del method
        gc.collect()
