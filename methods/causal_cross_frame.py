"""Training-free causal cross-frame attention (`causal_cross_frame`; registered as `magicvideo_causal` before).

Every spatial self-attention (attn1) of the frozen T2I lets frame t attend to the tokens of frames <= t of its own
video (`variant: all_previous`), or of frames {0, t-1, t} (`first_and_previous`, the sparse form): the
Tune-A-Video / Text2Video-Zero family of cross-frame attention tricks, made causal. It trains nothing and adds no
temporal layer, so it is not MagicVideo (whose directed attention is a trained temporal module: `magicvideo`).
Works on any T2I; the attention processors are swapped in for sampling and put back afterwards, also on error.
Noise is drawn frame-major (methods.magicvideo.frame_major_noise), so generation is prefix-consistent.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from bench.api import GenRequest
from bench.errors import UserError
from bench.models import BaseComponents
from methods.attention import (CAUSAL_VARIANTS, CausalFrameAttnProcessor, FrameContext, processor_summary,
                               spatial_self_attention_layers, swapped_attn_processors)
from methods.base import LatentVideoMethod
from methods.magicvideo import NOISE_DRAW, frame_major_noise


class CausalCrossFrame(LatentVideoMethod):
    name = "causal_cross_frame"
    version = "1"

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        return {"variant": "all_previous"}

    def __init__(self, base: BaseComponents, **options: Any):
        super().__init__(base, **options)
        if self.options["variant"] not in CAUSAL_VARIANTS:
            raise UserError(f"causal_cross_frame variant must be one of {', '.join(CAUSAL_VARIANTS)} "
                            f"(got {self.options['variant']!r})")
        self.context = FrameContext()
        self.processors = {k: CausalFrameAttnProcessor(self.context, self.options["variant"])
                           for k in spatial_self_attention_layers(base.unet)}

    def config(self) -> dict[str, Any]:
        return {**super().config(), "noise_draw": NOISE_DRAW,
                "attn_processors": processor_summary(self.base.unet, self.processors)}

    def initial_noise(self, request: GenRequest, shape: tuple[int, int, int, int]) -> torch.Tensor:
        return frame_major_noise(request, shape)

    def predict_noise(self, latents: torch.Tensor, t: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        num_frames = latents.shape[2]
        with self.context.frames(num_frames):
            return self.unet_per_frame(self.base.unet, latents, t, text_embeds)

    def sample_latents(self, latents: torch.Tensor, embeds: torch.Tensor, request: GenRequest,
                       requests: Sequence[GenRequest]) -> torch.Tensor:
        # The base UNet is shared with other methods: our processors live only for this sampling run.
        with swapped_attn_processors(self.base.unet, self.processors):
            return super().sample_latents(latents, embeds, request, requests)
