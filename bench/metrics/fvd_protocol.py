"""The FVD protocols: which frames, how they are quantised, and the features they give.

`fvd_i3d_16f`: 16 consecutive frames (stride 1), uint8 quantisation by rounding, then the detector's own
preprocessing (I3D: 224x224 squash resize, bilinear, no antialias, [-1, 1]). Shorter videos are an error.
`fvd_smoke_<T>f`: the same pipeline with T frames (default: the run's frame count) for the random smoke detector,
so short CPU runs can exercise FVD end to end. Its numbers are labelled smoke and never comparable.
`fvd_toy_<T>f`: the same with the toy world's trained video feature net (bench/toy/video_features.py); comparable
with other toy-world runs only.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import torch

from bench.api import Video
from bench.errors import UserError
from bench.metrics.fvd_detectors import Detector

OFFSET_RULES = ("random", "first")
OFFSET_RULE_TEXT = {
    "random": "offset = int.from_bytes(sha256(b'fvd-offset-v1:<seed>:' + uint8 frames)[:8], 'little') "
              "mod (F - T + 1): seeded, per-video content hash, independent of order and sharding",
    "first": "offset = 0 (the first T frames)",
}
RANGE_TOLERANCE = 1e-6  # float frames may overshoot [0, 1] by rounding only


@dataclass(frozen=True)
class FvdProtocol:
    id: str
    num_frames: int
    smoke: bool = False
    stride: int = 1

    def describe(self) -> dict[str, Any]:
        return {"protocol": self.id, "num_frames": self.num_frames, "frame_stride": self.stride,
                "quantisation": "uint8, round(clamp(x, 0, 1) * 255)", "smoke": self.smoke}


I3D_16F = FvdProtocol("fvd_i3d_16f", 16)


SHORT_KINDS = ("smoke", "toy")  # detectors with no fixed clip length: protocol fvd_<kind>_<T>f


def smoke_protocol(num_frames: int, kind: str = "smoke") -> FvdProtocol:
    """The T-frame protocol of a small CPU detector (`kind` smoke or toy)."""
    if num_frames < 1:
        raise UserError(f"fvd.num_frames must be >= 1 (got {num_frames})")
    return FvdProtocol(f"fvd_{kind}_{num_frames}f", num_frames, smoke=kind == "smoke")


def resolve_protocol(name: str, detector: Detector, num_frames: int | None = None) -> FvdProtocol:
    """'auto' -> fvd_<kind>_<T>f for the smoke and toy detectors, fvd_i3d_16f otherwise; checks the pairing."""
    if name == "auto":
        name = f"fvd_{detector.kind}" if detector.kind in SHORT_KINDS else I3D_16F.id
    match = re.fullmatch(r"fvd_(smoke|toy)(?:_(\d+)f)?", name)
    if match:
        kind = match.group(1)
        if detector.kind != kind:
            fit = f"fvd_{detector.kind}" if detector.kind in SHORT_KINDS else I3D_16F.id
            raise UserError(f"protocol '{name}' is for the {kind} detector only; the {detector.kind} detector uses "
                            f"{fit}")
        frames = int(match.group(2)) if match.group(2) else num_frames
        if frames is None:
            raise UserError(f"the fvd_{kind} protocol needs a frame count: set fvd.num_frames (fvd-stats: "
                            f"--num-frames) or use fvd_{kind}_<T>f")
        return smoke_protocol(frames, kind)
    if name == I3D_16F.id:
        if detector.kind in SHORT_KINDS:
            raise UserError(f"fvd_i3d_16f needs a real I3D detector (fvd.detector: path to weights); the "
                            f"{detector.kind} detector goes with fvd.protocol: fvd_{detector.kind}")
        if num_frames not in (None, 16):
            raise UserError(f"fvd_i3d_16f uses exactly 16 frames (fvd.num_frames is {num_frames}); unset it")
        return I3D_16F
    raise UserError(f"unknown FVD protocol '{name}': choose from auto, fvd_i3d_16f, fvd_smoke(_<T>f), "
                    "fvd_toy(_<T>f)")


def clip_offset(frames: torch.Tensor, num_frames: int, rule: str, seed: int) -> int:
    """Start frame of the clip taken from uint8 frames (F, ...); see OFFSET_RULE_TEXT."""
    spare = frames.shape[0] - num_frames
    if rule not in OFFSET_RULES:
        raise UserError(f"unknown fvd.offset_rule '{rule}': choose from {', '.join(OFFSET_RULES)}")
    if spare <= 0 or rule == "first":
        return 0
    digest = hashlib.sha256(f"fvd-offset-v1:{seed}:".encode())
    digest.update(frames.contiguous().numpy().tobytes())
    return int.from_bytes(digest.digest()[:8], "little") % (spare + 1)


def uint8_clip(frames: torch.Tensor, protocol: FvdProtocol, rule: str, seed: int) -> tuple[torch.Tensor, int]:
    """uint8 (F, H, W, C) -> ((3, T, H, W) uint8 clip, offset)."""
    n = frames.shape[0]
    if n < protocol.num_frames:
        hint = ("set sampling.num_frames >= 16, or use the smoke protocol (fvd.protocol: fvd_smoke) for short "
                "smoke runs" if protocol.id == I3D_16F.id else "lower fvd.num_frames or raise sampling.num_frames")
        raise UserError(f"FVD protocol {protocol.id} needs {protocol.num_frames} consecutive frames, the video has "
                        f"{n}: {hint}")
    offset = clip_offset(frames, protocol.num_frames, rule, seed)
    clip = frames[offset:offset + protocol.num_frames]
    if clip.shape[-1] == 1:
        clip = clip.expand(-1, -1, -1, 3)
    return clip.permute(3, 0, 1, 2).contiguous(), offset


def video_to_uint8(video: Video) -> torch.Tensor:
    """Checks the [0, 1] float convention, then quantises by rounding: (F, H, W, C) uint8."""
    frames = video.frames
    if not frames.is_floating_point():
        raise UserError(f"video frames must be float in [0, 1], got dtype {frames.dtype}")
    lo, hi = float(frames.min()), float(frames.max())
    if not (lo >= -RANGE_TOLERANCE and hi <= 1 + RANGE_TOLERANCE):  # also catches NaN
        raise UserError(f"video frames must lie in [0, 1] (got min {lo:.4g}, max {hi:.4g}); a method returning "
                        "[-1, 1] or 0..255 must convert with (x + 1) / 2 or x / 255")
    return video.to_uint8()


def _batches(clips: Iterable[torch.Tensor], batch_size: int) -> Iterator[torch.Tensor]:
    """Stacks consecutive clips of one shape into batches of at most batch_size."""
    pending: list[torch.Tensor] = []
    for clip in clips:
        if pending and (len(pending) == batch_size or clip.shape != pending[0].shape):
            yield torch.stack(pending)
            pending = []
        pending.append(clip)
    if pending:
        yield torch.stack(pending)


def clip_features(clips: Iterable[torch.Tensor], detector: Detector, batch_size: int = 4) -> torch.Tensor:
    """Features (N, D) float64 of uint8 (3, T, H, W) clips, batched."""
    out = [detector.features(batch) for batch in _batches(clips, batch_size)]
    return torch.cat(out) if out else torch.zeros(0, detector.num_features, dtype=torch.float64)
