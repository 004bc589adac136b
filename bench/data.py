"""Video-text training data: the toy world in memory, or a local folder in the WebVid layout.

Folder layout (what bench.toy.world.write_dataset writes, and what a WebVid subset looks like once downloaded):

    <folder>/captions.csv        columns `videoid,name` (WebVid's names; other columns are ignored)
    <folder>/videos/<videoid>.mp4

`metadata.jsonl` (one `{"video": "videos/x.mp4", "caption": "..."}` a line) is accepted instead of captions.csv.
Clips are `num_frames` consecutive frames from the start (stride `frame_stride`), resized to `size` x `size` after
a centre crop, as float (F, 3, H, W) in [0, 1].
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.errors import UserError


@dataclass(frozen=True)
class Clip:
    frames: torch.Tensor  # (F, 3, H, W) in [0, 1]
    caption: str


def _entries(folder: Path) -> list[tuple[Path, str]]:
    if (folder / "captions.csv").is_file():
        with open(folder / "captions.csv", newline="") as fh:
            rows = list(csv.DictReader(fh))
        if rows and not {"videoid", "name"} <= set(rows[0]):
            raise UserError(f"{folder}/captions.csv needs the WebVid columns 'videoid' and 'name'")
        return [(folder / "videos" / f"{r['videoid']}.mp4", r["name"]) for r in rows]
    if (folder / "metadata.jsonl").is_file():
        out = []
        for line in (folder / "metadata.jsonl").read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                out.append((folder / row["video"], row["caption"]))
        return out
    raise UserError(f"'{folder}' has neither captions.csv (videoid,name + videos/<videoid>.mp4) nor metadata.jsonl")


def fit_frames(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(F, 3, H, W) -> (F, 3, size, size): centre crop to a square, then area-resize."""
    h, w = frames.shape[-2:]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    frames = frames[..., top:top + side, left:left + side]
    if side != size:
        frames = F.interpolate(frames, size=(size, size), mode="area" if side > size else "bilinear")
    return frames.clamp(0, 1)


def read_clip(path: Path, num_frames: int, size: int, frame_stride: int = 1) -> torch.Tensor:
    import imageio.v3 as iio

    array = iio.imread(path, plugin="pyav")  # (T, H, W, 3) uint8
    frames = torch.from_numpy(array[: num_frames * frame_stride: frame_stride]).permute(0, 3, 1, 2).float() / 255
    if frames.shape[0] < num_frames:
        raise UserError(f"{path} has {frames.shape[0]} frames at stride {frame_stride}; need {num_frames}")
    return fit_frames(frames, size)


def load_folder(folder: str | Path, num_frames: int, size: int, frame_stride: int = 1,
                limit: int | None = None) -> list[Clip]:
    """Every clip of a WebVid-layout folder, decoded once into memory (toy-scale data)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"data folder '{folder}' does not exist")
    entries = _entries(folder)[:limit]
    missing = [str(p) for p, _ in entries if not p.is_file()]
    if missing:
        raise UserError(f"{len(missing)} video(s) listed but missing, e.g. {missing[0]}")
    return [Clip(read_clip(p, num_frames, size, frame_stride), caption) for p, caption in entries]


def toy_clips(n: int, seed: int, num_frames: int, size: int, start: int = 0) -> list[Clip]:
    from bench.toy.world import toy_videos

    return [Clip(s.frames, s.caption) for s in toy_videos(n, seed, num_frames, size, start=start)]
