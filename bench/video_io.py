"""Reading other people's videos, and the pinned rule that turns them into the run's frames.

Decoding: video files (mp4, webm, avi, mov, mkv, gif) through PyAV, frames as rgb24; a folder of PNG/JPG/WEBP/BMP
frames (natural sort of the names: 2.png before 10.png); a t2v-bench `.npy` (uint8 (F, H, W, 3)).

The conform rule (CONFORM_RULE, recorded in run.json) maps a decoded video to the run's sampling settings
(num_frames, height, width, fps), so every metric reads exactly what it reads on a generated video:
1. frame rate: when the container's rate differs from `fps` by more than 5% (GIF's 1/100 s delays turn 8 fps
   into 8.33), frame k is the source frame nearest to time k / fps
   (index round(k * src_fps / fps)); a source without a rate (frame folder, .npy) is taken at `fps`.
2. length: the first `num_frames` frames after step 1; a shorter video fails (it is never padded or looped).
3. size: a frame of another size is centre-cropped to the target aspect ratio, then resized with bilinear
   interpolation with antialiasing (torch.nn.functional.interpolate, float in [0, 1], rounded back to uint8);
   with `resize: refuse` such a video fails instead. Every resize is counted and reported.
The metrics then read the conformed frames as they read generated ones (FVD: `fvd.num_frames` consecutive frames
with its seeded offset; CLIP and flicker metrics: every frame).
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

VIDEO_EXTS = (".mp4", ".webm", ".avi", ".mov", ".mkv", ".gif")
FRAME_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
FPS_TOLERANCE = 0.05  # GIF stores delays in 1/100 s: 8 fps is written as 12 cs and reads back as 8.33 fps
CONFORM_RULE = {
    "version": 1,
    "fps": "nearest source frame to t = k / sampling.fps, index round(k * src_fps / fps), when the container "
           "rate differs from sampling.fps by more than 5%; no container rate: taken at sampling.fps",
    "length": "first sampling.num_frames frames after fps resampling; shorter videos fail",
    "size": "centre crop to the target aspect, then bilinear antialiased resize (torch interpolate) to "
            "sampling.height x sampling.width, rounded to uint8; resize: refuse fails such videos",
    "decoder": "PyAV rgb24 (video files, gif), imageio (frame folders), numpy (.npy)",
}


class DecodeError(Exception):
    """A file that cannot be read as a video (unreadable, truncated, zero frames)."""


@dataclass
class Decoded:
    frames: np.ndarray  # (F, H, W, 3) uint8
    fps: float | None


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a frame folder (its files' names and bytes in natural order)."""
    h = hashlib.sha256()
    files = frame_files(path) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _natural(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def frame_files(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FRAME_EXTS),
                  key=lambda p: _natural(p.name))


def is_frame_folder(path: Path) -> bool:
    return path.is_dir() and bool(frame_files(path))


def _rgb(array: np.ndarray) -> np.ndarray:
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3, 4):
        raise DecodeError(f"frames of shape {tuple(array.shape)} are not (F, H, W, C) with C in 1, 3, 4")
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def decode(path: Path) -> Decoded:
    """Frames and frame rate of one video; DecodeError names what is wrong."""
    try:
        if path.is_dir():
            import imageio.v3 as iio

            frames = [_rgb(np.asarray(iio.imread(p))[None])[0] for p in frame_files(path)]
            if len({f.shape for f in frames}) > 1:
                raise DecodeError("its frames differ in size")
            out, fps = (np.stack(frames) if frames else np.zeros((0, 0, 0, 3), np.uint8)), None
        elif path.suffix.lower() == ".npy":
            array = np.load(path, allow_pickle=False)
            if array.dtype != np.uint8:
                raise DecodeError(f".npy frames must be uint8 (F, H, W, 3), got {array.dtype}")
            out, fps = _rgb(array), None
        else:
            out, fps = _decode_av(path)
    except DecodeError:
        raise
    except Exception as exc:  # PyAV, imageio and numpy raise many types for a damaged file
        why = str(exc).replace(f": '{path}'", "").replace(str(path), "").strip()  # the line names the file already
        raise DecodeError(f"unreadable ({type(exc).__name__}: {why[:120]})") from None
    if out.shape[0] == 0:
        raise DecodeError("zero frames")
    return Decoded(out, fps)


def _decode_av(path: Path) -> tuple[np.ndarray, float | None]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise DecodeError("zero frames (no video stream)")
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    if not frames:
        return np.zeros((0, 0, 0, 3), np.uint8), None
    return np.stack(frames), (float(rate) if rate else None)


def conform(decoded: Decoded, num_frames: int, height: int, width: int, fps: int,
            resize: str = "fit") -> tuple[np.ndarray, dict]:
    """The pinned rule above; returns (frames (num_frames, height, width, 3) uint8, what was done)."""
    frames, src_fps = decoded.frames, decoded.fps
    note: dict = {"source_frames": int(frames.shape[0]), "source_size": [int(frames.shape[1]), int(frames.shape[2])],
                  "source_fps": src_fps}
    if src_fps is not None and abs(src_fps - fps) > FPS_TOLERANCE * fps:
        step = Fraction(src_fps).limit_denominator(1001) / fps
        idx = [round(k * step) for k in range(int(frames.shape[0] / step) + 1)]
        frames = frames[[i for i in idx if i < frames.shape[0]]]
        note["resampled_fps"] = True
    if frames.shape[0] < num_frames:
        raise DecodeError(f"has {frames.shape[0]} frames at {fps} fps, the run needs {num_frames}; "
                          f"pass --frames {frames.shape[0]} (or a config with fewer frames)")
    if frames.shape[0] > num_frames:
        note["trimmed"] = True
    frames = frames[:num_frames]
    if frames.shape[1:3] != (height, width):
        if resize == "refuse":
            raise DecodeError(f"is {frames.shape[1]}x{frames.shape[2]}, the run is {height}x{width}; pass "
                              f"--height {frames.shape[1]} --width {frames.shape[2]}, or --resize fit")
        frames = resize_frames(frames, height, width)
        note["resized"] = True
    return np.ascontiguousarray(frames), note


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre crop to height:width, then bilinear antialiased resize; uint8 in, uint8 out."""
    h, w = frames.shape[1:3]
    if h * width > w * height:  # too tall: crop rows
        ch, cw = max(1, round(w * height / width)), w
    else:
        ch, cw = h, max(1, round(h * width / height))
    top, left = (h - ch) // 2, (w - cw) // 2
    x = torch.from_numpy(frames[:, top:top + ch, left:left + cw]).permute(0, 3, 1, 2).float() / 255
    if (ch, cw) != (height, width):
        x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous().numpy()


def encode_lossless(frames: np.ndarray, path: Path, fps: int) -> None:
    """H.264 in RGB at zero loss (libx264rgb, qp 0, rgb24): bit-exact through PyAV and through decord, VBench's
    mp4 reader (checked with decord 0.6.0; that decord fails on some widths, e.g. 48 and 72, whatever the codec)."""
    from bench.store import encode_video

    encode_video(frames, path, fps, "libx264rgb", pix_fmt="rgb24", options={"qp": "0"})
