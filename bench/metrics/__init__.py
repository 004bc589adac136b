"""Metrics: each a torchmetrics.Metric with sum states (see base.py). `build_metrics` wires shared models."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bench.registry import METRICS

if TYPE_CHECKING:  # reports read quality_score's constants without loading torch
    import torch


def build_metrics(names: list[str], cfg: Any, device: torch.device) -> dict[str, Any]:
    """Instantiate the named metrics for a RunConfig; metrics on one backbone share it (bench.metrics.backbones:
    one open_clip model for the CLIP metrics, one RAFT for the flow metrics)."""
    metrics: dict[str, Any] = {}
    for name in names:
        cls = METRICS.get(name)
        if name.startswith(("clip_", "frame_consistency")):
            from bench.metrics.backbones import run_clip
            metrics[name] = cls(run_clip(cfg, device))
        elif hasattr(cls, "from_run_config"):
            metrics[name] = cls.from_run_config(cfg, device)
        else:
            metrics[name] = cls()
    return metrics
