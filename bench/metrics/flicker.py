"""Temporal flickering as VBench defines it: weight-free, so it means something even on random tiny models."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from bench.api import Video
from bench.metrics.base import MeanOverVideos


def temporal_flickering(frames: torch.Tensor) -> float:
    """Mean over consecutive frame pairs of (255 - mean |f_i - f_{i+1}|) / 255, on frames quantised to 0..255
    (VBench `temporal_flickering`). frames: (F, C, H, W) in [0, 1]. Higher is better; 1 for a still video."""
    if frames.shape[0] < 2:
        raise ValueError("temporal_flickering needs at least 2 frames")
    q = (frames.clamp(0, 1) * 255).round().to(torch.float64)
    diffs = (q[1:] - q[:-1]).abs().flatten(1).mean(1)
    return float(((255.0 - diffs) / 255.0).mean())


class TemporalFlickering(MeanOverVideos):
    metric_name = "temporal_flickering"
    higher_is_better = True

    def per_video(self, videos: Sequence[Video], prompts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([temporal_flickering(v.frames) for v in videos], dtype=torch.float64)

    def describe(self) -> dict[str, Any]:
        return {"definition": "VBench: mean over consecutive pairs of (255 - mean abs pixel diff) / 255, uint8 frames",
                "weights": None}
