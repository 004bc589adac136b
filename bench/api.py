"""The one contract between the runner and every method: GenRequest in, Video out.

Importing this module must stay cheap (no diffusers, no open_clip): the CLI imports it for `ls` and errors.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Iterable, Protocol, Sequence, runtime_checkable

import torch

from bench.errors import UserError


@dataclass(frozen=True)
class GenRequest:
    """Everything that determines one sample. Two equal requests give the same video."""

    prompt_id: str
    prompt: str
    seed: int
    num_frames: int = 8
    height: int = 64
    width: int = 64
    num_inference_steps: int = 4
    guidance_scale: float = 7.5
    negative_prompt: str | None = None
    fps: int = 8

    def __post_init__(self) -> None:
        if self.num_frames < 1:
            raise UserError(f"num_frames must be >= 1 (got {self.num_frames}); set sampling.num_frames to a positive count")
        for side in ("height", "width"):
            value = getattr(self, side)
            if value < 8 or value % 8:
                raise UserError(f"{side} must be a positive multiple of 8 (got {value}); try {max(8, round(value / 8) * 8)}")
        if self.num_inference_steps < 1:
            raise UserError(f"num_inference_steps must be >= 1 (got {self.num_inference_steps})")
        if self.fps < 1:
            raise UserError(f"fps must be >= 1 (got {self.fps})")

    def settings(self) -> tuple:
        """The fields that must agree for requests to share one batch (negative prompts need not: each item
        gets its own unconditional embedding)."""
        return (self.num_frames, self.height, self.width, self.num_inference_steps, self.guidance_scale)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Video:
    """Frames as float (F, C, H, W) in [0, 1] on CPU: the one convention every metric and writer reads."""

    frames: torch.Tensor
    fps: int = 8
    info: dict[str, Any] = field(default_factory=dict)  # e.g. stage timings; never part of the cache key

    def __post_init__(self) -> None:
        if self.frames.ndim != 4 or self.frames.shape[1] not in (1, 3):
            raise ValueError(f"Video frames must be (F, C, H, W) with C in (1, 3), got {tuple(self.frames.shape)}")

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    def to_uint8(self) -> torch.Tensor:
        """(F, H, W, C) uint8, the lossless stored form (rounding, not truncation)."""
        return (self.frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    @classmethod
    def from_uint8(cls, array: torch.Tensor, fps: int = 8) -> "Video":
        return cls(frames=array.permute(0, 3, 1, 2).float() / 255.0, fps=fps)


@runtime_checkable
class Method(Protocol):
    """A text-to-video method. Implementations live in `methods/`, one file each."""

    name: ClassVar[str]     # registry name
    version: ClassVar[str]  # bump when outputs change on purpose: it is part of every cache key

    def generate(self, requests: Sequence[GenRequest]) -> list[Video]:
        """One video per request, same order, same length. Each item's noise comes from
        torch.Generator("cpu").manual_seed(request.seed), so a batch equals the same requests one by one."""
        ...

    def config(self) -> dict[str, Any]:
        """Resolved, JSON-serialisable settings; hashed into cache keys."""
        ...

    def trainable_parameters(self) -> Iterable[torch.nn.Parameter]:
        """What the method adds or trains on top of the frozen base T2I (empty for training-free methods)."""
        ...
