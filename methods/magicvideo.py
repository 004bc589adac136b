"""MagicVideo-style causal ("directed") temporal modelling (Zhou et al., arXiv 2211.11018).

MagicVideo has no public code or weights; what is built here is its causal temporal attention, the part that
defines it among the methods benchmarked, on top of a frozen SD-style T2I. (The training-free causal cross-frame
attention on the spatial self-attention, once `magicvideo_causal`, is not MagicVideo: it is
methods/causal_cross_frame.py.)

- `magicvideo` (temporal module, trainable): temporal transformer layers after the spatial blocks, built from
  diffusers' `UNetMotionModel` + `MotionAdapter` scaffold, made causal by (a) a causal processor on the motion
  modules' attn1/attn2 (query frame t sees key frames <= t) and (b) a per-frame GroupNorm in place of the motion
  module's GroupNorm (diffusers' pools statistics over all frames, which would leak the future into the past; the
  official AnimateDiff code normalises per frame too). With
  `proj_out` zeroed the untrained module is an exact identity (the output equals per_frame's). It can start from an
  AnimateDiff motion adapter (hub id or folder) instead of `tiny` (a random adapter shaped for the base UNet).

Noise draw order (also causal_cross_frame's): per request, from torch.Generator("cpu").manual_seed(request.seed),
float32, drawn frame-major as (F, C, h, w) and permuted to (C, F, h, w). Frame f's noise then does not depend on
F, and with causal attention a video of F + k frames starts with the same F frames as a video of F frames:
generation is prefix-consistent, the property causality buys. (The shared default draws (C, F, h, w), whose frame
f changes with F.) Noise schedule: AnimateDiff's official one (inherited), like the GroupNorm conventions, so
magicvideo and animatediff differ in the temporal attention mask (and this draw order) only.

Left out (paper details with no public reference, see methods.md section 4): the frame-wise adaptors (per-frame
scale and bias after each conv), the FPS embedding, the parallel spatial + temporal branch arrangement (we insert
the temporal layers sequentially, as AnimateDiff does), the post-softmax mask variant, keyframe interpolation,
super-resolution and the VideoVAE.
"""
from __future__ import annotations

from typing import Any

import torch

from bench.api import GenRequest
from bench.errors import UserError
from bench.models import BaseComponents
from methods.animatediff import AnimateDiff
from methods.attention import CausalTemporalAttnProcessor, processor_summary, temporal_attention_layers
from methods.norms import PER_FRAME, POOLED, PerFrameGroupNorm, like

NOISE_DRAW = "frame-major: randn((F, C, h, w)) from the request's generator, permuted to (C, F, h, w)"


def frame_major_noise(request: GenRequest, shape: tuple[int, int, int, int]) -> torch.Tensor:
    """(C, F, h, w) float32 on CPU where frame f's noise is the f-th (C, h, w) block of the request's stream."""
    c, f, h, w = shape
    generator = torch.Generator("cpu").manual_seed(request.seed)
    return torch.randn((f, c, h, w), generator=generator, dtype=torch.float32).permute(1, 0, 2, 3).contiguous()


def make_motion_modules_causal(unet: torch.nn.Module) -> int:
    """Per-frame GroupNorm in every AnimateDiff temporal transformer (if the norm convention has not put it there
    already) and causal processors on its attentions. Returns how many temporal transformers there are."""
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    count = 0
    for module in unet.modules():
        if isinstance(module, AnimateDiffTransformer3D):
            if not isinstance(module.norm, PerFrameGroupNorm):
                module.norm = like(module.norm, PerFrameGroupNorm)
            count += 1
    temporal = set(temporal_attention_layers(unet))
    unet.set_attn_processor({k: (CausalTemporalAttnProcessor() if k in temporal else v)
                             for k, v in unet.attn_processors.items()})
    return count


class MagicVideo(AnimateDiff):
    """AnimateDiff's temporal transformers made directed: per-frame GroupNorm and causal temporal attention.
    Options as AnimateDiff's: motion_adapter "tiny" = random, proj_out zeroed (identity at start); a hub id or
    folder = start from AnimateDiff weights (their proj_out kept unless zero_init_proj_out)."""

    name = "magicvideo"
    version = "2"  # 2: AnimateDiff's official noise schedule (inherited) and retrained toy adapter
    # Its own toy adapter: trained through the causal modules, so AnimateDiff's (bidirectional) one is not it.
    # The inherited save_trainable exports a plain MotionAdapter folder (the swapped norms keep their names);
    # causality is re-applied at load.
    toy_weights = "magicvideo-motion-adapter"

    def __init__(self, base: BaseComponents, **options: Any):
        super().__init__(base, **options)
        if self.norms["spatial_resnet_groupnorm"] == POOLED:
            raise UserError("magicvideo is causal, but a v1 adapter's official spatial GroupNorm pools over frames "
                            "(frame t would see later frames); set norm_convention: diffusers or adapter_version: v3")
        self.num_temporal_layers = make_motion_modules_causal(self.unet)
        # Causality needs per-frame statistics, whatever the convention: the motion norms are per frame here.
        self.norms = {**self.norms, "motion_module_groupnorm": PER_FRAME + " (causal: always)"}

    def config(self) -> dict[str, Any]:
        return {**super().config(), "noise_draw": NOISE_DRAW, "attn_processors": processor_summary(self.unet)}

    def initial_noise(self, request: GenRequest, shape: tuple[int, int, int, int]) -> torch.Tensor:
        return frame_major_noise(request, shape)
