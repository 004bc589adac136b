"""Motion fidelity: did the shape move the way the caption asked? Weight-free, made for the toy world.

Per frame, the background colour is the per-channel median of the frame's one-pixel border; foreground pixels
count by their distance from it (RGB Euclidean, [0, 1] scale), ramping from 0 at threshold/2 to 1 at the frame's
farthest pixel (a frame whose farthest pixel is nearer than `threshold` has no foreground); the shape's position is
the coverage-weighted centroid and its size the square root of the covered area. Each consecutive frame pair then scores in [0, 1]:

- "moving left/right/up/down [slowly|quickly]": max(0, cos(step, direction)) * min(r, 1/r), r = |step| / speed,
  speed from the caption (bench.toy.world.BASE_SPEED x SPEED_WORDS), lengths as fractions of the frame side;
- "growing": min(g, 1/g) for g = log(size ratio) / log(GROWTH^(1/(F-1))) when the shape grew, else 0;
- "still": max(0, 1 - |step| / BASE_SPEED).

A pair where either frame has no foreground scores 0 (the shape vanished). The video's score is the mean over its
pairs. A caption with no motion word gets NaN in `last_values` and is left out of the mean (and of `n`).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import torch

from bench.api import Video
from bench.metrics.base import MeanOverVideos
from bench.toy.world import BASE_SPEED, GROWTH, parse_motion


def track(frames: torch.Tensor, threshold: float = 0.25) -> tuple[torch.Tensor, torch.Tensor]:
    """frames (F, C, H, W) in [0, 1] -> centroids (F, 2) as (x, y) fractions of the side (NaN where no
    foreground) and sizes (F,) = sqrt(foreground area) / side."""
    f, c, h, w = frames.shape
    frames = frames.float()
    border = torch.cat([frames[:, :, 0, :], frames[:, :, -1, :], frames[:, :, :, 0], frames[:, :, :, -1]], dim=2)
    bg = border.median(dim=2).values.view(f, c, 1, 1)
    dist = (frames - bg).pow(2).sum(1).sqrt() / math.sqrt(c / 3)  # same scale for grey and RGB
    # Soft coverage: ramps from threshold/2 to the frame's strongest foreground pixel, so anti-aliased edges count
    # fractionally and sizes change smoothly (a hard mask quantises a 5-pixel shape's area too coarsely).
    peak = dist.flatten(1).max(1).values.view(f, 1, 1)
    low = threshold / 2
    weight = ((dist - low) / (peak - low).clamp_min(1e-6)).clamp(0, 1)
    weight[peak.view(f) < threshold] = 0.0
    area = weight.flatten(1).sum(1)
    ys = (torch.arange(h, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, dtype=torch.float32) + 0.5) / w
    cx = (weight.sum(1) * xs).sum(1) / area
    cy = (weight.sum(2) * ys).sum(1) / area
    centroids = torch.stack([cx, cy], 1)
    centroids[area == 0] = float("nan")
    return centroids, area.sqrt() / math.sqrt(h * w)


def motion_fidelity(frames: torch.Tensor, caption: str, threshold: float = 0.25) -> float:
    """Score in [0, 1] of one video against its caption; NaN when the caption names no motion."""
    spec = parse_motion(caption)
    if spec is None:
        return float("nan")
    if frames.shape[0] < 2:
        raise ValueError("motion fidelity needs at least 2 frames")
    centroids, sizes = track(frames, threshold)
    steps = centroids[1:] - centroids[:-1]
    present = ~steps.isnan().any(1) & (sizes[1:] > 0) & (sizes[:-1] > 0)
    length = steps.norm(dim=1)
    if spec.kind == "direction":
        direction = torch.tensor(spec.direction)
        cos = (steps @ direction) / length.clamp_min(1e-8)
        ratio = length / spec.speed
        scores = cos.clamp_min(0) * torch.minimum(ratio, 1 / ratio.clamp_min(1e-8))
    elif spec.kind == "growing":
        per_step = math.log(GROWTH) / (frames.shape[0] - 1)
        g = torch.log(sizes[1:].clamp_min(1e-8) / sizes[:-1].clamp_min(1e-8)) / per_step
        scores = torch.where(g > 0, torch.minimum(g, 1 / g.clamp_min(1e-8)), torch.zeros_like(g))
    else:
        scores = (1 - length / BASE_SPEED).clamp_min(0)
    scores = torch.where(present, scores.nan_to_num(0.0), torch.zeros_like(scores))
    return float(scores.mean())


class MotionFidelity(MeanOverVideos):
    metric_name = "motion_fidelity"
    higher_is_better = True

    def __init__(self, threshold: float = 0.25, **kwargs: Any):
        super().__init__(**kwargs)
        self.threshold = threshold

    def per_video(self, videos: Sequence[Video], prompts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([motion_fidelity(v.frames, p, self.threshold) for v, p in zip(videos, prompts)],
                            dtype=torch.float64)

    def update(self, videos: Sequence[Video], prompts: Sequence[str]) -> None:
        values = self.per_video(videos, prompts)
        self.last_values = values.tolist()
        keep = ~values.isnan()  # captions without a motion word do not count
        self.value_sum += values[keep].sum().to(self.value_sum.device)
        self.n_videos += int(keep.sum())

    @staticmethod
    def group_of(prompt: str) -> str | None:
        """The run record also gives the mean per kind of motion asked for: translation, growing, still."""
        spec = parse_motion(prompt)
        return None if spec is None else ("translation" if spec.kind == "direction" else spec.kind)

    def describe(self) -> dict[str, Any]:
        return {"definition": "per consecutive frame pair, agreement of the foreground centroid step (or size "
                              "growth) with the caption's motion; mean over pairs and videos; captions without a "
                              "motion word excluded", "threshold": self.threshold, "weights": None}
