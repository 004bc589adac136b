"""Hot paths on the tiny models: one denoising step per registered method, one update per registered metric.

Not part of the pass/fail gate (pyproject addopts has --benchmark-skip). Run with
`python -m pytest tests/benchmarks --benchmark-only` (add `--benchmark-autosave --benchmark-storage=results/.benchmarks`
to keep a JSON there (git-ignored),
or `--benchmark-json PATH`); compare saved runs with `--benchmark-compare --benchmark-compare-fail=median:25%`.
"""
from __future__ import annotations

import pytest
import torch

from bench.api import GenRequest, Video
from bench.config import load_config
from bench.registry import METHODS, METRICS

SMOKE = load_config("smoke")


def smoke_options(name: str) -> dict:
    """The options the smoke config gives a method (tiny weights), else its defaults."""
    return dict(SMOKE.methods.get(name, {}))


@pytest.fixture(scope="module")
def base():
    from bench.models import tiny_components

    return tiny_components(0)


@pytest.mark.parametrize("name", METHODS.names())
def test_generation_step(benchmark, base, name):
    """One full generate() with a single denoising step: noise, UNet (+ the method's additions), VAE decode."""
    method = METHODS.get(name)(base, **smoke_options(name))
    request = GenRequest(prompt_id="bench", prompt="a red ball bouncing", seed=0, num_frames=8, height=64, width=64,
                         num_inference_steps=1)
    benchmark.extra_info.update(method=name, frames=8, size="64x64", steps=1, device=str(base.device))
    videos = benchmark.pedantic(method.generate, args=([request],), rounds=3, warmup_rounds=1)
    assert videos[0].num_frames == 8


@pytest.mark.parametrize("name", METRICS.names())
def test_metric_update(benchmark, name):
    """One update() with two 8-frame 64x64 videos (CLIP metrics: the tiny seeded CLIP)."""
    from bench.metrics import build_metrics

    metric = build_metrics([name], SMOKE, torch.device("cpu"))[name]
    gen = torch.Generator().manual_seed(0)
    prompts = ["a red ball bouncing", "a cat walking"]

    def fresh_videos():  # new frames every round: no embedding cache can answer for the metric
        return ([Video(frames=torch.rand(8, 3, 64, 64, generator=gen), fps=8) for _ in range(2)], prompts), {}

    benchmark.extra_info.update(metric=name, videos=2, frames=8, size="64x64")
    benchmark.pedantic(metric.update, setup=fresh_videos, rounds=5, warmup_rounds=1)
    assert torch.isfinite(metric.compute())
