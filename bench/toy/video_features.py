"""A small video feature extractor for FVD in the toy world: a 3-D conv net trained to classify the toy videos'
motion, shape, colour and background, whose pooled penultimate activations are the features.

Use: `net = load_video_features()` (the shipped weights) and `video_features(net, videos)` with videos
(B, F, C, H, W) float in [0, 1] (any F >= 2, any size: frames are area-resized to 32x32) -> (B, 64) features.
Weights: one safetensors file + the architecture in its metadata.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.toy.world import BACKGROUNDS, COLOURS, MOTIONS, SHAPES
from bench.train import TrainConfig

WEIGHTS_FILE = "video-features/toy-video-features.safetensors"  # under bench/toy/weights
HEADS = {"motion": MOTIONS, "shape": SHAPES, "colour": tuple(COLOURS), "background": tuple(BACKGROUNDS)}


class ToyVideoNet(nn.Module):
    """(B, 3, F, 32, 32) -> (B, dim). Time is pooled globally, so any clip length >= 2 works."""

    def __init__(self, width: int = 16, dim: int = 64, size: int = 32):
        super().__init__()
        self.size, self.dim = size, dim

        def block(cin: int, cout: int, stride: tuple[int, int, int]) -> nn.Sequential:
            return nn.Sequential(nn.Conv3d(cin, cout, 3, stride=stride, padding=1), nn.GroupNorm(4, cout), nn.SiLU())

        self.body = nn.Sequential(block(3, width, (1, 2, 2)), block(width, 2 * width, (1, 2, 2)),
                                  block(2 * width, 4 * width, (2, 2, 2)), block(4 * width, dim, (1, 2, 2)))
        self.heads = nn.ModuleDict({name: nn.Linear(dim, len(classes)) for name, classes in HEADS.items()})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x * 2 - 1).mean(dim=(2, 3, 4))


def _prepare(videos: torch.Tensor, size: int) -> torch.Tensor:
    """(B, F, C, H, W) in [0, 1] -> (B, 3, F, size, size)."""
    b, f, c, h, w = videos.shape
    x = videos.float().reshape(b * f, c, h, w)
    if c == 1:
        x = x.expand(-1, 3, -1, -1)
    if (h, w) != (size, size):
        x = F.interpolate(x, size=(size, size), mode="area" if min(h, w) >= size else "bilinear")
    return x.reshape(b, f, 3, size, size).permute(0, 2, 1, 3, 4)


@torch.no_grad()
def video_features(net: ToyVideoNet, videos: torch.Tensor, batch: int = 32) -> torch.Tensor:
    """(B, F, C, H, W) in [0, 1] -> (B, D) float64 features (FVD statistics want float64)."""
    device = next(net.parameters()).device
    out = [net(_prepare(chunk, net.size).to(device)).double().cpu() for chunk in videos.split(batch)]
    return torch.cat(out)


def load_video_features(path: str | Path | None = None, device: str | torch.device = "cpu") -> ToyVideoNet:
    """The extractor from a safetensors file (default: the shipped toy weights), in eval mode, frozen."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    if path is None:
        from bench.models import toy_weights
        path = toy_weights(WEIGHTS_FILE)
    with safe_open(str(path), framework="pt") as fh:
        arch = json.loads((fh.metadata() or {}).get("arch", "{}"))
    net = ToyVideoNet(**arch)
    net.load_state_dict({k: v.float() for k, v in load_file(str(path)).items()})
    return net.to(device).eval().requires_grad_(False)


class VideoFeaturesTask:
    def __init__(self, cfg: TrainConfig):
        from bench.toy.world import toy_videos

        self.net = ToyVideoNet(size=cfg.size)

        def data(n: int, seed: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
            samples = list(toy_videos(n, seed, cfg.num_frames, cfg.size))
            x = _prepare(torch.stack([s.frames for s in samples]), cfg.size)
            labels = {name: torch.tensor([classes.index(getattr(s.scene, "colour" if name == "colour" else name))
                                          for s in samples]) for name, classes in HEADS.items()}
            return x, labels

        self.train_x, self.train_y = data(cfg.num_train, cfg.data_seed)
        self.val_x, self.val_y = data(cfg.num_val, cfg.data_seed + 1)

    def parameters(self) -> list[nn.Parameter]:
        return list(self.net.parameters())

    def _loss(self, x: torch.Tensor, y: dict[str, torch.Tensor]) -> torch.Tensor:
        feats = self.net(x)
        return sum(F.cross_entropy(head(feats), y[name]) for name, head in self.net.heads.items())

    def loss(self, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        idx = torch.randint(len(self.train_x), (batch_size,), generator=generator)
        return self._loss(self.train_x[idx], {k: v[idx] for k, v in self.train_y.items()})

    @torch.no_grad()
    def val_loss(self) -> float:
        return float(self._loss(self.val_x, self.val_y))

    @torch.no_grad()
    def val_accuracy(self) -> dict[str, float]:
        feats = self.net(self.val_x)
        return {name: float((head(feats).argmax(1) == self.val_y[name]).float().mean())
                for name, head in self.net.heads.items()}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.net.state_dict())

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.net.load_state_dict(tensors)

    def export(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arch = {"width": self.net.body[0][0].out_channels, "dim": self.net.dim, "size": self.net.size}
        meta = {"arch": json.dumps(arch), "accuracy": json.dumps(self.val_accuracy())}
        save_file({k: v.contiguous() for k, v in self.net.state_dict().items()}, folder / Path(WEIGHTS_FILE).name,
                  metadata=meta)
