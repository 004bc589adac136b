"""Per-frame baseline: every frame is an independent T2I sample (the lower bound for temporal consistency).

Option `noise: shared` gives every frame the same initial noise instead, so frames differ only through numerics:
a deterministic upper bound on consistency with zero motion.
"""
from __future__ import annotations

from typing import Any

import torch

from bench.api import GenRequest
from bench.errors import UserError
from methods.base import LatentVideoMethod


class PerFrame(LatentVideoMethod):
    name = "per_frame"
    version = "1"

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        return {"noise": "independent"}

    def __init__(self, base, **options: Any):
        super().__init__(base, **options)
        if self.options["noise"] not in ("independent", "shared"):
            raise UserError(f"per_frame option noise must be 'independent' or 'shared' (got {self.options['noise']!r})")

    def initial_noise(self, request: GenRequest, shape: tuple[int, int, int, int]) -> torch.Tensor:
        noise = super().initial_noise(request, shape)
        if self.options["noise"] == "shared":
            noise = noise[:, :1].expand_as(noise).contiguous()
        return noise

    def predict_noise(self, latents: torch.Tensor, t: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        return self.unet_per_frame(self.base.unet, latents, t, text_embeds)
