"""Attention processors shared by the training-free video methods, and a safe way to swap them in.

Frame layout: a 2-D UNet sees frames folded into the batch, row = video * F + f, where "video" runs over the
batch items and, with classifier-free guidance, over both CFG halves ([uncond videos; cond videos]). Every
processor here therefore only needs F, the frames per video, to find a row's video and frame: it reads it from a
shared `FrameContext` that the method sets before each UNet call (a chunked run changes F between calls).

- `CrossFrameAttnProcessor`  (Text2Video-Zero): every frame uses the keys/values of frame 0 of its own video.
- `CausalFrameAttnProcessor` (MagicVideo-style, training-free): frame t uses keys/values of frames <= t.
- `CausalTemporalAttnProcessor` (MagicVideo temporal module): the sequence axis is time (AnimateDiff motion modules
  see (B*H*W, F, C)), so query t attends to keys <= t with a pre-softmax mask.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import torch
import torch.nn.functional as F


@dataclass
class FrameContext:
    """Frames per video of the UNet call in flight; None outside a call, so a stale value is never used."""

    num_frames: int | None = None

    @contextmanager
    def frames(self, num_frames: int) -> Iterator[None]:
        previous = self.num_frames
        self.num_frames = num_frames
        try:
            yield
        finally:
            self.num_frames = previous

    def require(self, rows: int) -> int:
        if self.num_frames is None:
            raise RuntimeError("frame attention processor called outside FrameContext.frames(...): F is unknown")
        if rows % self.num_frames:
            raise RuntimeError(f"batch of {rows} rows is not a whole number of {self.num_frames}-frame videos")
        return self.num_frames


class _FrameAttnProcessorBase:
    """The standard diffusers attention pre/post-processing (as AttnProcessor2_0 does it) around one hook,
    `attend(attn, query, key, value)`, which sees (rows, heads, tokens, head_dim) tensors."""

    def attend(self, attn: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None) -> torch.Tensor:
        if encoder_hidden_states is not None or attention_mask is not None:
            # Only self-attention without a mask is frame-structured; anything else is a wiring mistake.
            raise RuntimeError(f"{type(self).__name__} is for mask-free self-attention layers only (attn1)")
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b4, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(b4, channel, height * width).transpose(1, 2)
        rows = hidden_states.shape[0]
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)

        query, key, value = attn.to_q(hidden_states), attn.to_k(hidden_states), attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query, key, value = (x.view(rows, -1, attn.heads, head_dim).transpose(1, 2) for x in (query, key, value))
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)

        out = self.attend(attn, query, key, value)
        out = out.transpose(1, 2).reshape(rows, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(b4, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class CrossFrameAttnProcessor(_FrameAttnProcessorBase):
    """Text2Video-Zero cross-frame attention: queries stay per frame, keys/values come from frame 0 of the same
    video (same batch item, same CFG half). Output frame k thus depends only on input frames 0 and k."""

    def __init__(self, context: FrameContext):
        self.context = context

    def attend(self, attn: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        rows = key.shape[0]
        f = self.context.require(rows)

        def anchor(x: torch.Tensor) -> torch.Tensor:
            x = x.reshape(rows // f, f, *x.shape[1:])
            return x[:, :1].expand_as(x).reshape(rows, *x.shape[2:])

        return F.scaled_dot_product_attention(query, anchor(key), anchor(value), scale=attn.scale)


CAUSAL_VARIANTS = ("all_previous", "first_and_previous")


class CausalFrameAttnProcessor(_FrameAttnProcessorBase):
    """Training-free causal spatial attention: frame t attends to the tokens of frames <= t of its own video
    (`all_previous`), or of frames {0, t-1, t} (`first_and_previous`, each frame once). A frame never sees a later
    frame, so the UNet output at frame t does not depend on frames > t."""

    def __init__(self, context: FrameContext, variant: str = "all_previous"):
        if variant not in CAUSAL_VARIANTS:
            raise ValueError(f"variant must be one of {CAUSAL_VARIANTS}, got {variant!r}")
        self.context = context
        self.variant = variant

    def key_frames(self, t: int) -> list[int]:
        if self.variant == "all_previous":
            return list(range(t + 1))
        return sorted({0, max(t - 1, 0), t})  # a set: a repeated key would get double softmax weight

    def attend(self, attn: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        rows, heads, tokens, head_dim = query.shape
        f = self.context.require(rows)
        videos = rows // f
        q, k, v = (x.reshape(videos, f, heads, tokens, head_dim) for x in (query, key, value))
        outs = []
        for t in range(f):  # one attention per frame: frame t's keys are a different set of frames
            idx = self.key_frames(t)
            kt = k[:, idx].permute(0, 2, 1, 3, 4).reshape(videos, heads, len(idx) * tokens, head_dim)
            vt = v[:, idx].permute(0, 2, 1, 3, 4).reshape(videos, heads, len(idx) * tokens, head_dim)
            outs.append(F.scaled_dot_product_attention(q[:, t], kt, vt, scale=attn.scale))
        return torch.stack(outs, dim=1).reshape(rows, heads, tokens, head_dim)


class CausalTemporalAttnProcessor(_FrameAttnProcessorBase):
    """Causal temporal self-attention for AnimateDiff-shaped motion modules, whose sequence axis is time:
    query frame t sees key frames <= t (pre-softmax -inf mask, so later frames get exactly zero weight)."""

    def attend(self, attn: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(query, key, value, is_causal=True, scale=attn.scale)


# ----------------------------------------------------------------------------------------------- installing
def spatial_self_attention_layers(unet: torch.nn.Module) -> list[str]:
    """Processor keys of the spatial self-attentions (attn1), never the temporal motion modules."""
    return [k for k in unet.attn_processors if k.endswith("attn1.processor") and "motion_modules" not in k]


def temporal_attention_layers(unet: torch.nn.Module) -> list[str]:
    return [k for k in unet.attn_processors if "motion_modules" in k]


def processor_summary(unet: torch.nn.Module, replacements: Mapping[str, Any] | None = None) -> dict[str, str]:
    """{layer: processor class name} as it is (or will be, with `replacements`): JSON-safe, for config()."""
    replacements = replacements or {}
    return {k: type(replacements.get(k, v)).__name__ for k, v in sorted(unet.attn_processors.items())}


@contextmanager
def swapped_attn_processors(unet: torch.nn.Module, replacements: Mapping[str, Any]) -> Iterator[None]:
    """Install `replacements` (key -> processor) on top of the current processors and put the originals back on
    exit, also when the body raises: the base UNet is shared with other methods."""
    original = dict(unet.attn_processors)
    if not replacements:
        yield
        return
    unet.set_attn_processor({k: replacements.get(k, v) for k, v in original.items()})
    try:
        yield
    finally:
        unet.set_attn_processor(original)

