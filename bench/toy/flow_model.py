"""The toy optical-flow model: torchvision's RAFT class with small widths, trained on toy-world frame pairs whose
exact flow is known (the world draws the shapes, so every pixel's displacement is analytic).

Architecture: `toy_raft()` builds `torchvision.models.optical_flow.RAFT` from torchvision's own building blocks
(FeatureEncoder, CorrBlock, UpdateBlock, MaskPredictor) with small widths and a 2-level correlation pyramid, so 32x32
frames (4x4 feature maps) work. Weights: one safetensors file, loaded strictly into that class.

Training pairs: one toy shape (the world's shapes, colours and backgrounds) at a random centre and size, moved by a
random displacement (0 to 5 px, any direction) and scaled by 1 to 1.15 between the two frames; true flow of a pixel
of frame 1 is its displacement if it lies inside the shape (coverage >= 0.5), else 0 (the background is still).
Independent per-frame noise and brightness jitter make the model ignore flicker. Validation: pairs from the toy
world's own videos (`scene_at`, consecutive frames), so the validation loss is the end-point error (px) against the
true flow of the videos the benchmark renders.
"""
from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.train import ModuleTask, TrainConfig

WEIGHTS_FILE = "flow/toy-raft.safetensors"  # under bench/toy/weights
ARCH = "toy_raft"


def toy_raft() -> nn.Module:
    """torchvision RAFT with small widths: 132k parameters, 2 correlation levels of radius 3."""
    from torchvision.models.optical_flow.raft import (RAFT, CorrBlock, FeatureEncoder, FlowHead, MaskPredictor,
                                                      MotionEncoder, RecurrentBlock, ResidualBlock, UpdateBlock)

    hidden, context, widths = 16, 16, (8, 8, 16, 24)
    corr = CorrBlock(num_levels=2, radius=3)
    motion = MotionEncoder(in_channels_corr=corr.out_channels, corr_layers=(32,), flow_layers=(16, 8),
                           out_channels=24)
    update = UpdateBlock(motion_encoder=motion,
                         recurrent_block=RecurrentBlock(input_size=motion.out_channels + context, hidden_size=hidden,
                                                        kernel_size=(3,), padding=(1,)),
                         flow_head=FlowHead(in_channels=hidden, hidden_size=32))
    return RAFT(feature_encoder=FeatureEncoder(block=ResidualBlock, layers=(*widths, 32), norm_layer=nn.InstanceNorm2d),
                context_encoder=FeatureEncoder(block=ResidualBlock, layers=(*widths, hidden + context),
                                               norm_layer=nn.BatchNorm2d),
                corr_block=corr, update_block=update,
                mask_predictor=MaskPredictor(in_channels=hidden, hidden_size=32))


def shipped_checkpoint() -> Path:
    from bench.models import toy_weights

    return toy_weights(WEIGHTS_FILE)


def _shape_frame(shape: str, fg: torch.Tensor, bg: torch.Tensor, cx: float, cy: float, r: float, size: int,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(3, size, size) frame and its (size, size) coverage, drawn as bench.toy.world draws shapes."""
    from bench.toy.world import _sdf

    coords = torch.arange(size, dtype=torch.float32) + 0.5
    y, x = torch.meshgrid(coords - cy, coords - cx, indexing="ij")
    cover = (0.5 - _sdf(shape, x, y, r)).clamp(0, 1)
    return bg.view(3, 1, 1) + (fg - bg).view(3, 1, 1) * cover, cover


def _true_flow(cover: torch.Tensor, cx: float, cy: float, dx: float, dy: float, scale: float) -> torch.Tensor:
    """(2, H, W) flow of frame 1: a shape pixel p goes to c + d + scale * (p - c); background pixels stay."""
    h, w = cover.shape
    ys, xs = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
    inside = (cover >= 0.5).float()
    return torch.stack([dx + (scale - 1) * (xs - cx), dy + (scale - 1) * (ys - cy)]) * inside


def random_pair(g: torch.Generator, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A training pair (2 frames (3, H, W) in [0, 1]) and its true flow (2, H, W), all randomness from g."""
    from bench.toy.world import BACKGROUNDS, COLOURS, SHAPES

    u = lambda lo, hi: lo + (hi - lo) * float(torch.rand((), generator=g))  # noqa: E731
    pick = lambda seq: seq[int(torch.randint(len(seq), (), generator=g))]  # noqa: E731
    shape, fg, bg = pick(SHAPES), torch.tensor(pick(list(COLOURS.values()))), torch.tensor(pick(list(BACKGROUNDS.values())))
    r = u(0.1, 0.2) * size
    cx, cy = u(0.2, 0.8) * size, u(0.2, 0.8) * size
    kind = u(0, 1)
    speed = 0.0 if kind < 0.2 else u(0, 5)
    angle = u(0, 2 * math.pi)
    dx, dy = speed * math.cos(angle), speed * math.sin(angle)
    if kind > 0.5 and u(0, 1) < 0.5:  # axis-aligned, as the world's captions move
        dx, dy = (round(math.cos(angle)) * speed, 0.0) if abs(math.cos(angle)) > 0.7 else (0.0, math.copysign(speed, dy))
    scale = u(1.0, 1.15) if u(0, 1) < 0.3 else 1.0
    f1, cover = _shape_frame(shape, fg, bg, cx, cy, r, size)
    f2, _ = _shape_frame(shape, fg, bg, cx + dx, cy + dy, r * scale, size)
    frames = []
    for f in (f1, f2):  # flicker the flow must ignore: noise and brightness, independent per frame
        sigma, gain = u(0, 0.05), u(-0.05, 0.05)
        frames.append((f + gain + sigma * torch.randn(f.shape, generator=g)).clamp(0, 1))
    return frames[0], frames[1], _true_flow(cover, cx, cy, dx, dy, scale)


def world_pairs(n_pairs: int, seed: int, size: int = 32, num_frames: int = 8
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Consecutive frame pairs of toy-world videos (every motion and speed word) and their true flow:
    (N, 3, H, W) x2 and (N, 2, H, W)."""
    from bench.toy.world import (BACKGROUNDS, BASE_SPEED, COLOURS, DIRECTIONS, GROWTH, SPEED_WORDS, render_frame,
                                 scene_at)

    a, b, flows = [], [], []
    index = 0
    while len(a) < n_pairs:
        index += 1
        try:
            scene = scene_at(index, seed, num_frames, speed_words=tuple(SPEED_WORDS))
        except ValueError:  # a quick scene whose path would leave the frame
            continue
        dx, dy = DIRECTIONS.get(scene.motion, (0.0, 0.0))
        step = BASE_SPEED * SPEED_WORDS[scene.speed_word] * size  # px per frame
        growing = scene.motion == "growing"
        growth = GROWTH ** (1 / max(1, num_frames - 1)) if growing else 1.0
        t = index % (num_frames - 1)
        cx, cy = scene.x0 * size + dx * step * t, scene.y0 * size + dy * step * t
        r = scene.size * size * growth ** t
        _, cover = _shape_frame(scene.shape, torch.tensor(COLOURS[scene.colour]),
                                torch.tensor(BACKGROUNDS[scene.background]), cx, cy, r, size)
        a.append(render_frame(scene, float(t), size, num_frames))
        b.append(render_frame(scene, float(t + 1), size, num_frames))
        flows.append(_true_flow(cover, cx, cy, dx * step, dy * step, growth))
    return torch.stack(a), torch.stack(b), torch.stack(flows)


def upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    return x if scale == 1 else F.interpolate(x, scale_factor=scale, mode="bilinear", align_corners=False)


def downsample_flow(flow: torch.Tensor, scale: int) -> torch.Tensor:
    """Flow of upsampled frames -> flow at the original resolution (area-averaged, px divided by the scale)."""
    return flow if scale == 1 else F.avg_pool2d(flow, scale) / scale


def end_point_error(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean over pixels of |pred - true| (Euclidean, px); (N, 2, H, W) inputs."""
    return (pred - true).norm(dim=1).mean()


class FlowTask(ModuleTask):
    """`t2v-bench train flow`: the toy RAFT with RAFT's sequence loss (gamma-weighted L1 over the updates)."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.model = toy_raft().train()
        self.iters = int(cfg.options.get("iters", 6))
        self.gamma = float(cfg.options.get("gamma", 0.8))
        self.scale = int(cfg.options.get("input_scale", 2))  # frames are upsampled this much before RAFT
        self.fg_weight = float(cfg.options.get("fg_weight", 10.0))  # moving pixels are few: weigh them up
        self.val = world_pairs(cfg.num_val, cfg.data_seed + 1, cfg.size, cfg.num_frames)

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.model.parameters())

    def loss(self, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        a, b, flow = map(torch.stack, zip(*(random_pair(generator, self.cfg.size) for _ in range(batch_size))))
        preds = self.predict(a, b, all_updates=True)
        weight = 1 + self.fg_weight * (flow.norm(dim=1, keepdim=True) > 0).float()
        n = len(preds)
        return sum(self.gamma ** (n - i - 1) * ((p - flow).abs() * weight).sum() / (2 * weight.sum())
                   for i, p in enumerate(preds))

    def predict(self, a: torch.Tensor, b: torch.Tensor, all_updates: bool = False):
        """Flow at the frames' resolution: RAFT on frames upsampled `input_scale` times, flow scaled back."""
        up = lambda x: upsample(x * 2 - 1, self.scale)  # noqa: E731
        preds = [downsample_flow(p, self.scale) for p in self.model(up(a), up(b), num_flow_updates=self.iters)]
        return preds if all_updates else preds[-1]

    @torch.no_grad()
    def val_loss(self) -> float:
        """End-point error (px) on toy-world video pairs against their true flow."""
        self.model.eval()
        try:
            a, b, flow = self.val
            return float(end_point_error(self.predict(a, b), flow))
        finally:
            self.model.train()

    def export(self, folder: Path) -> Path:
        """<folder>/toy-raft.safetensors (fp32; with the architecture and update count in its metadata)."""
        from safetensors.torch import save_file

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / Path(WEIGHTS_FILE).name
        save_file({k: v.detach().contiguous() for k, v in self.model.state_dict().items()}, path,
                  metadata={"arch": ARCH, "iters": str(self.iters), "input_scale": str(self.scale),
                            "val_epe_px": f"{self.val_loss():.4f}"})
        return path
