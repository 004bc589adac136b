"""Toy stand-ins for VBench's aesthetic and imaging quality: heads trained on a quality signal the toy world can
render exactly, a frame's degradation by blur and noise.

A training frame is a toy-world frame blurred (Gaussian, sigma b in [0, 1.5] px, b = 0 half the time) and noised
(Gaussian, std s in [0, 0.15], s = 0 half the time); its quality is q = 1 - (b / 1.5 + s / 0.15) / 2 in [0, 1].
- `aesthetic-head`: a linear head on the toy CLIP's L2-normalised image embeddings, as LAION's predictor is a linear
  head on CLIP ViT-L/14 embeddings, trained to output 10 q (LAION's 0-10 scale; aesthetic_quality divides by 10).
- `imaging-head`: a small conv net on pixels trained to output 100 q (MUSIQ's 0-100 scale; imaging_quality divides
  by 100). Validation loss: mean absolute error on the scale's units.
These measure degradation, not beauty: the record labels them toy stand-ins.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.train import ModuleTask, TrainConfig

AESTHETIC_FILE = "quality/toy-aesthetic-head.safetensors"  # under bench/toy/weights
IMAGING_FILE = "quality/toy-imaging-net.safetensors"
MAX_BLUR, MAX_NOISE = 1.5, 0.15


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) blurred per image with sigma (N,) px (0 = unchanged); 7x7 separable kernel, reflect padding."""
    r = torch.arange(-3, 4, dtype=x.dtype)
    k = torch.exp(-r[None] ** 2 / (2 * sigma.clamp_min(1e-3)[:, None] ** 2))
    k = torch.where(sigma[:, None] > 0, k, (r[None] == 0).to(x.dtype))
    k = k / k.sum(1, keepdim=True)
    n, c, h, w = x.shape
    y = F.pad(x.reshape(1, n * c, h, w), (3, 3, 3, 3), mode="reflect")
    kx = k.repeat_interleave(c, 0).view(n * c, 1, 1, 7)
    ky = k.repeat_interleave(c, 0).view(n * c, 1, 7, 1)
    y = F.conv2d(F.conv2d(y, kx, groups=n * c), ky, groups=n * c)
    return y.view(n, c, h, w)


def degraded_frames(n: int, seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """n degraded toy frames (N, 3, H, W) in [0, 1] and their quality q (N,) in [0, 1]."""
    from bench.toy.world import toy_images

    frames = torch.stack([f for f, _ in toy_images(n, seed, size)])
    g = torch.Generator().manual_seed(seed)
    blur = torch.rand(n, generator=g) * MAX_BLUR * (torch.rand(n, generator=g) < 0.5)
    noise = torch.rand(n, generator=g) * MAX_NOISE * (torch.rand(n, generator=g) < 0.5)
    x = gaussian_blur(frames, blur) + noise.view(n, 1, 1, 1) * torch.randn(frames.shape, generator=g)
    q = 1 - (blur / MAX_BLUR + noise / MAX_NOISE) / 2
    return x.clamp(0, 1), q


class ToyImagingNet(nn.Module):
    """(N, 3, H, W) in [0, 1] -> (N,) quality on MUSIQ's 0-100 scale; any size (global pooling)."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
                                  nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.SiLU())
        self.head = nn.Linear(2 * width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x * 2 - 1).mean(dim=(2, 3))).squeeze(-1)


class _HeadTask(ModuleTask):
    scale: float
    file: str

    def __init__(self, cfg: TrainConfig):
        x, q = degraded_frames(cfg.num_train, cfg.data_seed, cfg.size)
        vx, vq = degraded_frames(cfg.num_val, cfg.data_seed + 1, cfg.size)
        self.train_x, self.train_y = self.inputs(x), q * self.scale
        self.val_x, self.val_y = self.inputs(vx), vq * self.scale

    def inputs(self, frames: torch.Tensor) -> torch.Tensor:
        return frames

    def parameters(self) -> list[nn.Parameter]:
        return list(self.model.parameters())

    def loss(self, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        idx = torch.randint(len(self.train_x), (batch_size,), generator=generator)
        return F.mse_loss(self.model(self.train_x[idx]).squeeze(-1) / self.scale, self.train_y[idx] / self.scale)

    @torch.no_grad()
    def val_loss(self) -> float:
        """Mean absolute error on the validation frames, in the scale's units (0-10 or 0-100)."""
        self.model.eval()
        try:
            return float((self.model(self.val_x).squeeze(-1) - self.val_y).abs().mean())
        finally:
            self.model.train()

    def export(self, folder: Path) -> Path:
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / Path(self.file).name
        save_file({k: v.detach().contiguous() for k, v in self.model.state_dict().items()}, path,
                  metadata={"val_mae": f"{self.val_loss():.4f}", "scale": str(self.scale)})
        return path


class AestheticHeadTask(_HeadTask):
    """`t2v-bench train aesthetic-head`: nn.Linear(D, 1) on toy CLIP embeddings, 0-10 scale."""

    scale, file = 10.0, AESTHETIC_FILE

    def __init__(self, cfg: TrainConfig):
        from bench.metrics.backbones import clip_embedder

        self.clip = clip_embedder("toy", "toy")
        super().__init__(cfg)
        self.model = nn.Linear(self.train_x.shape[1], 1)

    def inputs(self, frames: torch.Tensor) -> torch.Tensor:
        return self.clip.image_embeddings(frames).cpu()


class ImagingHeadTask(_HeadTask):
    """`t2v-bench train imaging-head`: ToyImagingNet on pixels, 0-100 scale."""

    scale, file = 100.0, IMAGING_FILE

    def __init__(self, cfg: TrainConfig):
        super().__init__(cfg)
        self.model = ToyImagingNet()
