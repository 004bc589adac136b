"""GroupNorm conventions of AnimateDiff-style motion UNets: the official code's, or diffusers'.

Where the two normalise over different sets of frames (read from guoyww/AnimateDiff and diffusers 0.42):

- motion module: the official `TemporalTransformer3DModel` folds frames into the batch before its GroupNorm
  (`b c f h w -> (b f) c h w`): statistics per frame, in every version. diffusers' `AnimateDiffTransformer3D`
  normalises the 5-D tensor: statistics pooled over all frames of a video.
- spatial ResNets (norm1, norm2) and conv_norm_out: the official 3-D UNet uses `InflatedGroupNorm` (per frame) when
  `use_inflated_groupnorm` is true (inference-v2.yaml, inference-v3.yaml) and torch's GroupNorm on the 5-D tensor
  (pooled over frames) when it is false (inference-v1.yaml). diffusers' 2-D ResNets see frames in the batch: always
  per frame.

`apply_norm_convention` swaps the affected GroupNorms of a diffusers UNetMotionModel for subclasses that share their
parameters (state-dict names unchanged, so weights load and save as before): `diffusers` changes nothing.
"""
from __future__ import annotations

import re
from typing import Any

import torch
from torch import nn

from bench.errors import UserError
from methods.attention import FrameContext

CONVENTIONS = ("official", "diffusers")
ADAPTER_VERSIONS = ("auto", "v1", "v2", "v3")
PER_FRAME, POOLED = "per frame", "pooled over frames"
# Official checkpoint and diffusers hub names (most specific first: "v1-5-2" also contains "v1-5").
_VERSION_NAMES = [(r"v1-5-3|v3_sd15|sd15_v3|[-_]v3\b", "v3"), (r"v1-5-2|mm_sd_v15_v2|[-_]v2\b", "v2"),
                  (r"mm_sd_v1[45]\b|v1-5|v1-4", "v1")]


class PerFrameGroupNorm(nn.GroupNorm):
    """GroupNorm on (B, C, F, H, W) with statistics per frame (frames folded into the batch)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        y = super().forward(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))
        return y.reshape(b, f, c, h, w).permute(0, 2, 1, 3, 4)


class FramePooledGroupNorm(nn.GroupNorm):
    """GroupNorm on (B*F, C, H, W), frames batch-major, with statistics pooled over each video's F frames (F from
    the FrameContext of the UNet call in flight)."""

    frame_context: FrameContext

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.frame_context.require(x.shape[0])
        bf, c, h, w = x.shape
        y = super().forward(x.reshape(bf // f, f, c, h, w).transpose(1, 2))
        return y.transpose(1, 2).reshape(bf, c, h, w)


def like(norm: nn.GroupNorm, cls: type[nn.GroupNorm], **attrs: Any) -> nn.GroupNorm:
    """A `cls` GroupNorm with the same settings that shares `norm`'s weight and bias tensors."""
    new = cls(norm.num_groups, norm.num_channels, eps=norm.eps, affine=norm.affine, device="meta")
    if norm.affine:
        new.weight, new.bias = norm.weight, norm.bias
    for key, value in attrs.items():
        setattr(new, key, value)
    return new


def infer_adapter_version(spec: str, adapter_config: Any) -> tuple[str, str]:
    """(version, why) of a motion adapter: from its official or hub name, else from its shape (a motion mid block:
    v2; 24 positions: v1, as v1 was trained; otherwise v3, whose layout the project's tiny and toy adapters share)."""
    name = str(spec).lower()
    for pattern, version in _VERSION_NAMES:
        if re.search(pattern, name):
            return version, f"name '{spec}'"
    if adapter_config.get("use_motion_mid_block"):
        return "v2", "shape: motion mid block"
    if int(adapter_config.get("motion_max_seq_length", 32)) == 24:
        return "v1", "shape: 24 positions"
    return "v3", "shape: no motion mid block, 32 positions"


def resolve_norms(convention: str, adapter_version: str, spec: str, adapter_config: Any) -> dict[str, Any]:
    """Which frames each GroupNorm pools over, for the run record."""
    if convention not in CONVENTIONS:
        raise UserError(f"norm_convention must be one of {', '.join(CONVENTIONS)} (got {convention!r})")
    if adapter_version not in ADAPTER_VERSIONS:
        raise UserError(f"adapter_version must be one of {', '.join(ADAPTER_VERSIONS)} (got {adapter_version!r})")
    version, why = (infer_adapter_version(spec, adapter_config) if adapter_version == "auto"
                    else (adapter_version, "option"))
    official = convention == "official"
    return {"norm_convention": convention, "adapter_version": version, "adapter_version_from": why,
            "motion_module_groupnorm": PER_FRAME if official else POOLED,
            "spatial_resnet_groupnorm": POOLED if official and version == "v1" else PER_FRAME}


def apply_norm_convention(unet: nn.Module, norms: dict[str, Any], context: FrameContext) -> int:
    """Swap the GroupNorms of a UNetMotionModel (in place) to follow `norms` (from `resolve_norms`); returns how
    many were swapped. Call predict within `context.frames(F)` when spatial norms pool over frames."""
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.unets.unet_motion_model import AnimateDiffTransformer3D

    swapped = 0
    pooled = dict(frame_context=context)
    for module in list(unet.modules()):
        if (isinstance(module, AnimateDiffTransformer3D) and norms["motion_module_groupnorm"] == PER_FRAME
                and type(module.norm) is nn.GroupNorm):
            module.norm = like(module.norm, PerFrameGroupNorm)
            swapped += 1
        if isinstance(module, ResnetBlock2D) and norms["spatial_resnet_groupnorm"] == POOLED:
            for attr in ("norm1", "norm2"):
                if type(getattr(module, attr)) is nn.GroupNorm:
                    setattr(module, attr, like(getattr(module, attr), FramePooledGroupNorm, **pooled))
                    swapped += 1
    if norms["spatial_resnet_groupnorm"] == POOLED and type(getattr(unet, "conv_norm_out", None)) is nn.GroupNorm:
        unet.conv_norm_out = like(unet.conv_norm_out, FramePooledGroupNorm, **pooled)
        swapped += 1
    return swapped
