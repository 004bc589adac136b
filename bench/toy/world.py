"""The toy world: a procedural, seeded source of captioned images and videos of simple moving shapes.

One scene is a shape (circle, square, triangle, diamond) of one colour on a plain background, either moving
left/right/up/down at a constant speed, growing, or staying still. Captions follow one grammar:

    "a red circle moving left on a blue background"    (optionally "moving left slowly" / "moving left quickly")
    "a red circle growing on a blue background"
    "a red circle staying still on a blue background"

Shapes are drawn from signed distance functions with one pixel of anti-aliasing, so frames are deterministic and
the motion metric (bench/metrics/motion.py) can recover positions to sub-pixel accuracy. `write_dataset` writes the
WebVid layout that bench/train.py also reads for real data: `videos/<videoid>.mp4` + `captions.csv` with the
WebVid column names `videoid,name` (name = caption).
"""
from __future__ import annotations

import csv
import math
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import torch

WORLD_VERSION = "v1"  # bump when the world renders other videos for the same arguments (FVD references name it)
SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {"red": (0.9, 0.1, 0.1), "green": (0.1, 0.8, 0.2), "yellow": (0.95, 0.85, 0.1), "white": (0.95, 0.95, 0.95)}
BACKGROUNDS = {"black": (0.05, 0.05, 0.05), "gray": (0.5, 0.5, 0.5), "blue": (0.1, 0.2, 0.7)}
MOTIONS = ("left", "right", "up", "down", "growing", "still")
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}  # (dx, dy), y down
# Speed in fractions of the frame side per frame; the motion metric reads the same table.
BASE_SPEED = 0.06
SPEED_WORDS = {"slowly": 0.5, "": 1.0, "quickly": 1.5}
GROWTH = 1.6  # a growing shape ends GROWTH times as large (linear size) as it starts

_MOTION_RE = re.compile(r"\bmoving\s+(left|right|up|down)(?:\s+(slowly|quickly))?\b|\b(growing)\b|\b(still)\b")


@dataclass(frozen=True)
class Scene:
    shape: str
    colour: str
    background: str
    motion: str
    speed_word: str = ""
    size: float = 0.15     # half-extent, fraction of the side
    x0: float = 0.5        # start centre, fractions of the side
    y0: float = 0.5

    @property
    def caption(self) -> str:
        if self.motion in DIRECTIONS:
            verb = f"moving {self.motion}" + (f" {self.speed_word}" if self.speed_word else "")
        elif self.motion == "growing":
            verb = "growing"
        else:
            verb = "staying still"
        return f"a {self.colour} {self.shape} {verb} on a {self.background} background"

    @property
    def image_caption(self) -> str:
        return f"a {self.colour} {self.shape} on a {self.background} background"


@dataclass(frozen=True)
class MotionSpec:
    """What a caption asks for: a direction with a speed (fraction of side per frame), growth, or stillness."""

    kind: str                              # "direction" | "growing" | "still"
    direction: tuple[float, float] = (0.0, 0.0)
    speed: float = 0.0


def parse_motion(caption: str) -> MotionSpec | None:
    """The motion a caption asks for, or None when it names none."""
    m = _MOTION_RE.search(caption.lower())
    if m is None:
        return None
    if m.group(1):
        return MotionSpec("direction", DIRECTIONS[m.group(1)], BASE_SPEED * SPEED_WORDS[m.group(2) or ""])
    if m.group(3):
        return MotionSpec("growing")
    return MotionSpec("still")


def scene_at(index: int, seed: int = 0, num_frames: int = 8, motions: tuple[str, ...] = MOTIONS,
             speed_words: tuple[str, ...] = ("",)) -> Scene:
    """Scene number `index` of the world with `seed`: the same pair always gives the same scene."""
    rng = random.Random(f"toy-world/{seed}/{index}")  # str seeds hash deterministically across runs
    motion = rng.choice(motions)
    speed_word = rng.choice(speed_words) if motion in DIRECTIONS else ""
    size = rng.uniform(0.12, 0.18)
    travel = BASE_SPEED * SPEED_WORDS[speed_word] * (num_frames - 1) if motion in DIRECTIONS else 0.0
    extent = size * (GROWTH if motion == "growing" else 1.0) + 0.02
    if travel + 2 * extent > 1.0:
        raise ValueError(f"{num_frames} frames at this speed leave the frame; use fewer frames")
    lo, hi = extent, 1.0 - extent

    def start(axis_sign: float) -> float:  # leave room for the whole path along the moving axis
        if axis_sign > 0:
            return rng.uniform(lo, hi - travel)
        if axis_sign < 0:
            return rng.uniform(lo + travel, hi)
        return rng.uniform(lo, hi)

    dx, dy = DIRECTIONS.get(motion, (0.0, 0.0))
    x0, y0 = start(dx), start(dy)
    return Scene(shape=rng.choice(SHAPES), colour=rng.choice(list(COLOURS)),
                 background=rng.choice(list(BACKGROUNDS)), motion=motion, speed_word=speed_word,
                 size=size, x0=x0, y0=y0)


def _sdf(shape: str, x: torch.Tensor, y: torch.Tensor, r: float) -> torch.Tensor:
    """Signed distance (pixels, negative inside) of a shape centred at the origin with half-extent r."""
    if shape == "circle":
        return torch.sqrt(x * x + y * y) - r
    if shape == "square":
        return torch.maximum(x.abs(), y.abs()) - r * 0.85
    if shape == "diamond":
        return (x.abs() + y.abs() - r * 1.15) / math.sqrt(2)
    if shape == "triangle":  # equilateral, apex up, centroid at the origin: max of the three edge half-planes
        slanted = (math.sqrt(3.0) / 2) * x.abs() - y / 2 - r / 2
        return torch.maximum(slanted, y - r / 2)
    raise ValueError(f"unknown shape '{shape}'; choose from {', '.join(SHAPES)}")


def render_frame(scene: Scene, t: float, size: int = 32, num_frames: int = 8) -> torch.Tensor:
    """Frame at time t (in frames since the start) as (3, size, size) float in [0, 1]; a growing shape grows by
    the same factor every frame, reaching GROWTH at the last of `num_frames`."""
    dx, dy = DIRECTIONS.get(scene.motion, (0.0, 0.0))
    step = BASE_SPEED * SPEED_WORDS[scene.speed_word]
    cx = (scene.x0 + dx * step * t) * size
    cy = (scene.y0 + dy * step * t) * size
    radius = scene.size * size
    if scene.motion == "growing":
        radius *= GROWTH ** (t / max(1, num_frames - 1))
    coords = torch.arange(size, dtype=torch.float32) + 0.5  # pixel centres
    y, x = torch.meshgrid(coords - cy, coords - cx, indexing="ij")
    cover = (0.5 - _sdf(scene.shape, x, y, radius)).clamp(0, 1)  # one pixel of anti-aliasing
    fg = torch.tensor(COLOURS[scene.colour]).view(3, 1, 1)
    bg = torch.tensor(BACKGROUNDS[scene.background]).view(3, 1, 1)
    return bg + (fg - bg) * cover


def render_video(scene: Scene, num_frames: int = 8, size: int = 32) -> torch.Tensor:
    """(F, 3, size, size) float in [0, 1]."""
    return torch.stack([render_frame(scene, float(t), size, num_frames) for t in range(num_frames)])


@dataclass(frozen=True)
class ToySample:
    index: int
    caption: str
    frames: torch.Tensor  # (F, 3, H, W) in [0, 1]
    scene: Scene


def toy_videos(n: int, seed: int = 0, num_frames: int = 8, size: int = 32, start: int = 0,
               motions: tuple[str, ...] = MOTIONS) -> Iterator[ToySample]:
    for i in range(start, start + n):
        scene = scene_at(i, seed, num_frames, motions)
        yield ToySample(i, scene.caption, render_video(scene, num_frames, size), scene)


def toy_images(n: int, seed: int = 0, size: int = 32, start: int = 0) -> Iterator[tuple[torch.Tensor, str]]:
    """Single frames with captions for the T2I base: a random frame of a random scene, captioned either with
    the video caption (so motion words are known text) or the plain image caption."""
    for i in range(start, start + n):
        scene = scene_at(i, seed, 8)
        rng = random.Random(f"toy-image/{seed}/{i}")
        frame = render_frame(scene, float(rng.randrange(8)), size)
        yield frame, (scene.caption if rng.random() < 0.5 else scene.image_caption)


def write_dataset(folder: str | Path, n: int, seed: int = 0, num_frames: int = 8, size: int = 32,
                  fps: int = 8) -> Path:
    """Write `n` toy videos in the WebVid layout: videos/<videoid>.mp4 and captions.csv (videoid,name)."""
    import imageio.v3 as iio

    folder = Path(folder)
    (folder / "videos").mkdir(parents=True, exist_ok=True)
    rows = []
    for sample in toy_videos(n, seed, num_frames, size):
        vid = f"toy{seed:03d}-{sample.index:06d}"
        array = (sample.frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
        iio.imwrite(folder / "videos" / f"{vid}.mp4", array, fps=fps, codec="libx264", plugin="pyav")
        rows.append({"videoid": vid, "name": sample.caption, **{f"scene_{k}": v for k, v in asdict(sample.scene).items()}})
    with open(folder / "captions.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder
