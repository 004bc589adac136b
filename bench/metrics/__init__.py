"""Metrics: each a torchmetrics.Metric with sum states (see base.py). `build_metrics` wires shared models."""
from __future__ import annotations

from typing import Any

import torch

from bench.registry import METRICS


def build_metrics(names: list[str], cfg: Any, device: torch.device) -> dict[str, Any]:
    """Instantiate the named metrics for a RunConfig; CLIP metrics share one open_clip model."""
    metrics: dict[str, Any] = {}
    embedder = None
    for name in names:
        cls = METRICS.get(name)
        if name.startswith(("clip_", "frame_consistency")):
            if embedder is None:
                from bench.metrics.clip import ClipEmbedder
                embedder = ClipEmbedder(cfg.clip.model, cfg.clip.pretrained, device=device, seed=cfg.clip.seed,
                                        batch_frames=cfg.clip.batch_frames)
            metrics[name] = cls(embedder)
        elif hasattr(cls, "from_run_config"):
            metrics[name] = cls.from_run_config(cfg, device)
        else:
            metrics[name] = cls()
    return metrics
