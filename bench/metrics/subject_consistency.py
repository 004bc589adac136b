"""Subject consistency (VBench): DINO features of each frame against the first and the previous frame.

VBench's formula (vbench/subject_consistency.py): features L2-normalised; for each frame i >= 1,
s_i = (max(0, cos(f_{i-1}, f_i)) + max(0, cos(f_0, f_i))) / 2; a video's value is the mean of its s_i; the
dimension is the sum of all s_i over the sum of the pair counts (a frame-weighted mean, which VBench reports).
Sum states (s-sum, pair count) make it merge exactly across processes.
Real runs: DINO ViT-B/16 as a transformers ViTModel folder (`vbench.dino`); toy runs: the toy video net on single
frames (a stand-in that sees shape, colour and background; labelled as such in the record).
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from bench.api import Video
from bench.metrics.base import VideoMetric


def first_and_previous(features: torch.Tensor) -> tuple[float, int]:
    """(sum over frames i >= 1 of s_i, number of such frames) for L2-normalised features (F, D)."""
    if features.shape[0] < 2:
        raise ValueError("consistency needs at least 2 frames")
    f = features.to(torch.float64)
    prev = (f[1:] * f[:-1]).sum(-1).clamp_min(0)
    first = (f[1:] * f[:1]).sum(-1).clamp_min(0)
    return float(((prev + first) / 2).sum()), f.shape[0] - 1


class FramePairConsistency(VideoMetric):
    """VBench's first-and-previous consistency on the features of `features(frames)`."""

    higher_is_better = True
    full_state_update = False

    def __init__(self, features: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.features = features
        self.add_state("sim_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n_pairs", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.add_state("n_videos", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def update(self, videos: Sequence[Video], prompts: Sequence[str]) -> None:
        values = []
        for v in videos:
            total, pairs = first_and_previous(self.features(v.frames))
            values.append(total / pairs)
            self.sim_sum += total
            self.n_pairs += pairs
            self.n_videos += 1
        self.last_values = values

    def compute(self) -> torch.Tensor:
        if self.n_pairs == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.sim_sum / self.n_pairs

    def describe(self) -> dict[str, Any]:
        return {"definition": "per frame i>=1: (max(0,cos(f_i-1,f_i)) + max(0,cos(f_0,f_i)))/2; sum over all "
                              "frames / number of frame pairs (VBench, frame-weighted)",
                "protocol": self.protocol, **self.features.describe()}


class SubjectConsistency(FramePairConsistency):
    metric_name = "subject_consistency"
    protocol = "vbench_subject_consistency"

    @classmethod
    def from_run_config(cls, cfg: Any, device: torch.device) -> "SubjectConsistency":
        from bench.metrics.backbones import dino

        return cls(dino(cfg.vbench.dino, device))
