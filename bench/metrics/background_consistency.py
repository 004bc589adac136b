"""Background consistency (VBench): the subject-consistency formula on CLIP image features.

VBench uses OpenAI CLIP ViT-B/32; here it is the run's open_clip model (`clip:`), shared with clip_score and
frame_consistency (one model, one encoding per video). Preprocessing follows open_clip's own transform (PIL
semantics: antialiased bicubic resize, centre crop); VBench's video path resizes uint8 tensors without antialiasing,
a difference recorded in `describe()`.
"""
from __future__ import annotations

from typing import Any

import torch

from bench.metrics.subject_consistency import FramePairConsistency


class _ClipFeatures:
    def __init__(self, embedder: Any):
        self.embedder = embedder

    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        return self.embedder.image_embeddings(frames)

    def describe(self) -> dict[str, Any]:
        return {**self.embedder.describe(),
                "vbench_difference": "VBench resizes uint8 tensors with antialias=False; this uses open_clip's "
                                     "transform (antialiased)"}


class BackgroundConsistency(FramePairConsistency):
    metric_name = "background_consistency"
    protocol = "vbench_background_consistency"

    @classmethod
    def from_run_config(cls, cfg: Any, device: torch.device) -> "BackgroundConsistency":
        from bench.metrics.backbones import run_clip

        return cls(_ClipFeatures(run_clip(cfg, device)))
