"""Dynamic degree (VBench): the fraction of videos that move, from RAFT optical flow; and the mean flow magnitude.

Protocol (VBench vbench/dynamic_degree.py, protocol id `vbench_dynamic_degree`):
1. Resample to about 8 fps: keep every max(1, round(fps / 8))-th frame (knob `vbench.dynamic_fps`).
2. Per consecutive pair, RAFT flow on frames padded to multiples of 8 (replicate); the pair's score is the mean of
   the top int(0.05 * H' * W') flow magnitudes of the padded map.
3. A video moves when at least round(4 * F / 16) of its pairs score above 6 * min(H, W) / 256 (F = resampled
   frame count, H, W = unpadded size). The value is 1 or 0 per video; the metric is the fraction that move.

`flow_magnitude` is the mean |flow| (px per resampled frame pair, unpadded pixels) per video, mean over videos.
Weights: torchvision's RAFT class (raft_large / raft_small, or the toy RAFT); VBench itself runs princeton-vl's RAFT
code with its raft-things checkpoint, which does not load into torchvision's class, so real numbers match VBench's
only as far as the two RAFT checkpoints agree.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from bench.api import Video
from bench.metrics.base import MeanOverVideos


def resample_interval(fps: float, target_fps: float = 8.0) -> int:
    return max(1, round(fps / target_fps))


def top5_mean(magnitude: torch.Tensor) -> torch.Tensor:
    """(N, H, W) flow magnitudes -> (N,) mean of the top int(0.05 * H * W) values of each map."""
    n, h, w = magnitude.shape
    k = int(h * w * 0.05)
    if k < 1:
        return torch.full((n,), float("nan"), dtype=magnitude.dtype)
    return magnitude.flatten(1).topk(k, dim=1).values.mean(1)


def moves(pair_scores: Sequence[float], height: int, width: int, num_frames: int) -> bool:
    """VBench's count rule: at least round(4 * num_frames / 16) pair scores above 6 * min(H, W) / 256."""
    if len(pair_scores) == 0:
        return False
    threshold = 6.0 * min(height, width) / 256.0
    need = round(4 * num_frames / 16.0)
    return sum(1 for s in pair_scores if s > threshold) >= need


class _FlowMetric(MeanOverVideos):
    def __init__(self, flow: Any, target_fps: float = 8.0, **kwargs: Any):
        super().__init__(**kwargs)
        self.flow, self.target_fps = flow, target_fps

    @classmethod
    def from_run_config(cls, cfg: Any, device: torch.device) -> "_FlowMetric":
        from bench.metrics.backbones import raft

        v = cfg.vbench
        return cls(raft(v.raft, v.raft_arch, v.raft_iters, device), target_fps=v.dynamic_fps)

    def pair_flows(self, video: Video) -> tuple[torch.Tensor, torch.Tensor, int]:
        """(resampled frames (F, C, H, W) as uint8-valued floats in [0, 1], flows (F-1, 2, H', W'), interval)."""
        step = resample_interval(video.fps, self.target_fps)
        frames = video.frames[::step]
        frames = (frames.clamp(0, 1) * 255).round() / 255  # the uint8 frames a decoded mp4 gives VBench
        if len(frames) < 2:
            return frames, torch.zeros(0, 2, *frames.shape[-2:]), step
        return frames, self.flow.flow(frames[:-1], frames[1:], key=("consecutive", step),
                                      source=video.frames), step

    def describe(self) -> dict[str, Any]:
        return {"definition": self.definition, "protocol": self.protocol, "resample_fps": self.target_fps,
                "resample_rule": "every max(1, round(fps / resample_fps))-th frame", **self.flow.describe(),
                **self.extra_describe()}

    def extra_describe(self) -> dict[str, Any]:
        return {}


class DynamicDegree(_FlowMetric):
    metric_name = "dynamic_degree"
    higher_is_better = True
    protocol = "vbench_dynamic_degree"
    definition = ("fraction of videos that move: at least round(4F/16) resampled frame pairs whose mean top-5% RAFT "
                  "flow magnitude exceeds 6*min(H,W)/256")

    def per_video(self, videos: Sequence[Video], prompts: Sequence[str]) -> torch.Tensor:
        values = []
        for v in videos:
            frames, flows, _ = self.pair_flows(v)
            scores = top5_mean(flows.norm(dim=1)).tolist() if len(flows) else []
            values.append(float(moves(scores, frames.shape[-2], frames.shape[-1], len(frames))))
        return torch.tensor(values, dtype=torch.float64)

    def extra_describe(self) -> dict[str, Any]:
        return {"threshold": "6 * min(H, W) / 256 px", "count_rule": "round(4 * F / 16) pairs", "top_fraction": 0.05}


class FlowMagnitude(_FlowMetric):
    metric_name = "flow_magnitude"
    higher_is_better = True  # more motion; not a quality on its own
    protocol = "t2v_bench_flow_magnitude"
    definition = "mean |RAFT flow| in px over unpadded pixels and resampled consecutive pairs, mean over videos"

    def per_video(self, videos: Sequence[Video], prompts: Sequence[str]) -> torch.Tensor:
        values = []
        for v in videos:
            frames, flows, _ = self.pair_flows(v)
            h, w = frames.shape[-2:]
            ph, pw = flows.shape[-2] - h, flows.shape[-1] - w
            inner = flows[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]
            values.append(float(inner.norm(dim=1).mean()) if len(flows) else float("nan"))
        return torch.tensor(values, dtype=torch.float64)
