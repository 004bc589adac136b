"""Temporal flickering as VBench defines it: weight-free, so it means something even on random tiny models.

`temporal_flickering` follows VBench's rule: only videos of prompts tagged as static scenes count (VBench scores
this dimension on its static-scene prompt list; here the suite's tags, `vbench.static_tags`, default static/still),
so a method cannot win it by not moving. `temporal_flickering_all` is the same formula over every prompt.
"""
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


DEFINITION = "VBench: mean over consecutive pairs of (255 - mean abs pixel diff) / 255, uint8 frames"


class TemporalFlickering(MeanOverVideos):
    """Every prompt's videos (the pre-VBench-rule variant)."""

    metric_name = "temporal_flickering_all"
    higher_is_better = True

    def per_video(self, videos: Sequence[Video], prompts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([temporal_flickering(v.frames) for v in videos], dtype=torch.float64)

    def describe(self) -> dict[str, Any]:
        return {"definition": DEFINITION + "; every prompt", "weights": None}


class TemporalFlickeringStatic(MeanOverVideos):
    """VBench's rule: only prompts whose suite tags mark a static scene; others get NaN and are left out."""

    metric_name = "temporal_flickering"
    higher_is_better = True

    def __init__(self, static_prompts: set[str], static_tags: Sequence[str] = ("static", "still"), **kwargs: Any):
        super().__init__(**kwargs)
        self.static_prompts, self.static_tags = set(static_prompts), tuple(static_tags)

    @classmethod
    def from_run_config(cls, cfg: Any, device: torch.device) -> "TemporalFlickeringStatic":
        from bench.prompts import load_suite

        tags = set(cfg.vbench.static_tags)
        return cls({p.text for p in load_suite(cfg.prompts).prompts if tags & set(p.tags)}, cfg.vbench.static_tags)

    def per_video(self, videos: Sequence[Video], prompts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([temporal_flickering(v.frames) if p in self.static_prompts else float("nan")
                             for v, p in zip(videos, prompts)], dtype=torch.float64)

    def update(self, videos: Sequence[Video], prompts: Sequence[str]) -> None:
        values = self.per_video(videos, prompts)
        self.last_values = values.tolist()
        keep = ~values.isnan()
        self.value_sum += values[keep].sum().to(self.value_sum.device)
        self.n_videos += int(keep.sum())

    def describe(self) -> dict[str, Any]:
        return {"definition": DEFINITION + "; only prompts tagged as static scenes (VBench's rule)",
                "static_tags": list(self.static_tags), "n_static_prompts": len(self.static_prompts), "weights": None}
