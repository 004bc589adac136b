"""What every metric is: a torchmetrics.Metric with sum states over videos.

Sum states (`dist_reduce_fx="sum"`, `full_state_update = False`) merge exactly across processes and shards.
`update()` also leaves the per-video values of its batch in `last_values`, which the runner writes to
samples.jsonl (they never go into list states, which would grow with the run).
"""
from __future__ import annotations

from typing import Any, ClassVar, Sequence

import torch
from torchmetrics import Metric

from bench.api import Video


class VideoMetric(Metric):
    full_state_update = False
    is_differentiable = False
    metric_name: ClassVar[str] = ""
    higher_is_better: ClassVar[bool] = True

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.last_values: list[float] | None = None

    def update(self, videos: Sequence[Video], prompts: Sequence[str]) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Protocol facts that go into run.json beside the value (model, definition, scale...)."""
        return {}


class MeanOverVideos(VideoMetric):
    """A metric whose value is the mean of one number per video."""

    def __init__(self, **kwargs: Any):
        super().__init__(**kwargs)
        self.add_state("value_sum", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("n_videos", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")

    def per_video(self, videos: Sequence[Video], prompts: Sequence[str]) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def update(self, videos: Sequence[Video], prompts: Sequence[str]) -> None:
        values = self.per_video(videos, prompts).detach().to(torch.float64).cpu()
        self.last_values = values.tolist()
        self.value_sum += values.sum().to(self.value_sum.device)
        self.n_videos += len(values)

    def compute(self) -> torch.Tensor:
        if self.n_videos == 0:
            return torch.tensor(float("nan"), dtype=torch.float64)
        return self.value_sum / self.n_videos
