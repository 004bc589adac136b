"""Reference videos for FVD: reading a folder of videos, the UCF-101 layout, and a procedural smoke set.

A "video" on disk is a video file (mp4, avi, webm, mov, mkv via PyAV; gif via imageio) or a folder that directly
holds its frames as PNG/JPG (sorted by name). Everything is read as uint8 (F, H, W, 3).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import Iterator

import torch

from bench.api import Video
from bench.errors import UserError

VIDEO_EXTS = (".mp4", ".avi", ".webm", ".mov", ".mkv", ".gif")
FRAME_EXTS = (".png", ".jpg", ".jpeg")

UCF101_CLASSES: tuple[str, ...] = (
    "ApplyEyeMakeup", "ApplyLipstick", "Archery", "BabyCrawling", "BalanceBeam", "BandMarching", "BaseballPitch",
    "Basketball", "BasketballDunk", "BenchPress", "Biking", "Billiards", "BlowDryHair", "BlowingCandles",
    "BodyWeightSquats", "Bowling", "BoxingPunchingBag", "BoxingSpeedBag", "BreastStroke", "BrushingTeeth",
    "CleanAndJerk", "CliffDiving", "CricketBowling", "CricketShot", "CuttingInKitchen", "Diving", "Drumming",
    "Fencing", "FieldHockeyPenalty", "FloorGymnastics", "FrisbeeCatch", "FrontCrawl", "GolfSwing", "Haircut",
    "Hammering", "HammerThrow", "HandstandPushups", "HandstandWalking", "HeadMassage", "HighJump", "HorseRace",
    "HorseRiding", "HulaHoop", "IceDancing", "JavelinThrow", "JugglingBalls", "JumpingJack", "JumpRope", "Kayaking",
    "Knitting", "LongJump", "Lunges", "MilitaryParade", "Mixing", "MoppingFloor", "Nunchucks", "ParallelBars",
    "PizzaTossing", "PlayingCello", "PlayingDaf", "PlayingDhol", "PlayingFlute", "PlayingGuitar", "PlayingPiano",
    "PlayingSitar", "PlayingTabla", "PlayingViolin", "PoleVault", "PommelHorse", "PullUps", "Punch", "PushUps",
    "Rafting", "RockClimbingIndoor", "RopeClimbing", "Rowing", "SalsaSpin", "ShavingBeard", "Shotput",
    "SkateBoarding", "Skiing", "Skijet", "SkyDiving", "SoccerJuggling", "SoccerPenalty", "StillRings",
    "SumoWrestling", "Surfing", "Swing", "TableTennisShot", "TaiChi", "TennisSwing", "ThrowDiscus",
    "TrampolineJumping", "Typing", "UnevenBars", "VolleyballSpiking", "WalkingWithDog", "WallPushups",
    "WritingOnBoard", "YoYo",
)


def ucf101_prompt_text(class_name: str) -> str:
    """'ApplyEyeMakeup' -> 'apply eye makeup' (split at lower->upper case changes, lower-cased)."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", class_name).lower()


def _is_frame_folder(path: Path) -> bool:
    return path.is_dir() and any(p.suffix.lower() in FRAME_EXTS for p in path.iterdir())


def list_videos(ref_dir: str | Path, max_per_folder: int | None = None) -> list[Path]:
    """Video files and frame folders under `ref_dir` (recursive), sorted; at most `max_per_folder` per parent."""
    root = Path(ref_dir).expanduser()
    if not root.is_dir():
        raise UserError(f"reference folder '{ref_dir}' does not exist")
    found: list[Path] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        for entry in sorted(folder.iterdir()):
            if entry.is_file() and entry.suffix.lower() in VIDEO_EXTS:
                found.append(entry)
            elif entry.is_dir():
                if _is_frame_folder(entry):
                    found.append(entry)  # a folder of frames is one video: do not descend into it
                else:
                    stack.append(entry)
    found.sort()
    if max_per_folder is not None:
        kept: list[Path] = []
        per_parent: dict[Path, int] = {}
        for path in found:
            n = per_parent.get(path.parent, 0)
            if n < max_per_folder:
                kept.append(path)
                per_parent[path.parent] = n + 1
        found = kept
    if not found:
        raise UserError(f"no videos under '{ref_dir}': expected {', '.join(VIDEO_EXTS)} files or folders of "
                        f"{'/'.join(FRAME_EXTS)} frames")
    return found


def _to_rgb(frames: torch.Tensor) -> torch.Tensor:
    """(F, H, W[, C]) uint8 -> (F, H, W, 3): grey repeated, alpha dropped."""
    if frames.ndim == 3:
        frames = frames.unsqueeze(-1)
    if frames.shape[-1] == 1:
        frames = frames.expand(-1, -1, -1, 3)
    return frames[..., :3].contiguous()


def read_video(path: str | Path, max_frames: int | None = None) -> torch.Tensor:
    """uint8 (F, H, W, 3) frames of a video file or a folder of frames; at most `max_frames` from the start."""
    path = Path(path)
    if path.is_dir():
        import imageio.v3 as iio

        files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_EXTS)[:max_frames]
        frames = [_to_rgb(torch.from_numpy(iio.imread(p)).unsqueeze(0))[0] for p in files]
        if len({tuple(f.shape) for f in frames}) > 1:
            raise UserError(f"frames in '{path}' differ in size; every frame of a video must have one size")
        out = torch.stack(frames) if frames else torch.empty(0, 0, 0, 3, dtype=torch.uint8)
    elif path.suffix.lower() == ".gif":
        import imageio.v3 as iio

        out = _to_rgb(torch.from_numpy(iio.imread(path, index=None, mode="RGB")))[:max_frames]
    else:
        import av

        frames = []
        try:
            with av.open(str(path)) as container:
                for frame in container.decode(video=0):
                    frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")))
                    if max_frames is not None and len(frames) >= max_frames:
                        break
        except av.error.FFmpegError as exc:
            raise UserError(f"could not decode '{path}' ({exc})") from None
        out = torch.stack(frames) if frames else torch.empty(0, 0, 0, 3, dtype=torch.uint8)
    if out.shape[0] == 0:
        raise UserError(f"'{path}' has no frames")
    return out


def ucf101_videos(root: str | Path, max_per_class: int | None = None,
                  split_list: str | Path | None = None) -> list[Path]:
    """UCF-101 clips `root/<ClassName>/v_*.avi` (root may also be the folder holding `UCF-101/`), sorted by class
    then name. `split_list` (e.g. ucfTrainTestlist/testlist01.txt) keeps only the listed clips."""
    root = Path(root).expanduser()
    if (root / "UCF-101").is_dir():
        root = root / "UCF-101"
    if not root.is_dir():
        raise UserError(f"UCF-101 folder '{root}' does not exist; pass the folder holding the 101 class folders")
    classes = [d for d in sorted(root.iterdir()) if d.is_dir()]
    if not classes:
        raise UserError(f"'{root}' has no class folders; expected UCF-101/<ClassName>/v_*.avi")
    wanted: set[str] | None = None
    if split_list is not None:
        lines = Path(split_list).read_text().split()
        wanted = {Path(tok).name for tok in lines if tok.endswith(".avi")}
    out: list[Path] = []
    for cls_dir in classes:
        clips = sorted(p for p in cls_dir.glob("v_*.avi") if wanted is None or p.name in wanted)
        out.extend(clips[:max_per_class] if max_per_class is not None else clips)
    if not out:
        raise UserError(f"no v_*.avi clips under '{root}'" + (f" listed in '{split_list}'" if split_list else ""))
    return out


PROCEDURAL_VERSION = "v1"  # bump when procedural_video draws other frames: FVD references name it


def _video_generator(seed: int, index: int) -> torch.Generator:
    key = hashlib.sha256(f"procedural-{PROCEDURAL_VERSION}:{seed}:{index}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(key[:8], "little"))


def procedural_video(index: int, seed: int = 0, num_frames: int = 8, height: int = 64, width: int = 64,
                     fps: int = 8) -> Video:
    """A deterministic clip: 1-3 coloured squares/circles moving in straight lines (bouncing off the borders)
    over a vertical two-colour gradient. Same (index, seed, size) -> same frames on every machine."""
    g = _video_generator(seed, index)
    rand = lambda *shape: torch.rand(shape, generator=g, dtype=torch.float64)  # noqa: E731
    top, bottom = rand(3), rand(3)
    ramp = torch.linspace(0, 1, height, dtype=torch.float64).view(1, height, 1)
    background = (top.view(3, 1, 1) * (1 - ramp) + bottom.view(3, 1, 1) * ramp).expand(3, height, width)
    ys = torch.arange(height, dtype=torch.float64).view(height, 1) + 0.5
    xs = torch.arange(width, dtype=torch.float64).view(1, width) + 0.5
    n_shapes = int(torch.randint(1, 4, (1,), generator=g))
    shapes = []
    for _ in range(n_shapes):
        radius = (0.08 + 0.12 * float(rand(1))) * min(height, width)
        pos = rand(2) * torch.tensor([height, width], dtype=torch.float64)
        vel = (rand(2) - 0.5) * 0.25 * min(height, width)  # pixels per frame
        shapes.append((bool(rand(1) < 0.5), radius, pos, vel, rand(3)))
    frames = torch.empty(num_frames, 3, height, width, dtype=torch.float64)
    limits = torch.tensor([height, width], dtype=torch.float64)
    for t in range(num_frames):
        frame = background.clone()
        for is_circle, radius, pos, vel, colour in shapes:
            # bounce: reflect the unbounded straight-line position into [0, limit]
            raw = (pos + vel * t) % (2 * limits)
            cy, cx = torch.where(raw > limits, 2 * limits - raw, raw).tolist()
            if is_circle:
                mask = (ys - cy) ** 2 + (xs - cx) ** 2 <= radius ** 2
            else:
                mask = ((ys - cy).abs() <= radius) & ((xs - cx).abs() <= radius)
            frame = torch.where(mask, colour.view(3, 1, 1), frame)
        frames[t] = frame
    return Video(frames=frames.float(), fps=fps, info={"procedural": {"index": index, "seed": seed}})


def procedural_videos(n: int, seed: int = 0, num_frames: int = 8, height: int = 64, width: int = 64,
                      fps: int = 8) -> Iterator[Video]:
    for index in range(n):
        yield procedural_video(index, seed, num_frames, height, width, fps)
