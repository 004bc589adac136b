"""AMT-S, the frame interpolator VBench's motion_smoothness uses (Li et al., "AMT: All-Pairs Multi-Field
Transforms for Efficient Frame Interpolation", CVPR 2023), written for t2v-bench from the published architecture.

The module tree (and so every state-dict key) is that of VBench's `networks.AMT-S.Model` with its AMT-S.yaml
settings (corr_radius 3, corr_lvls 4, num_flows 3), so VBench's `amt-s.pth` loads with `strict=True`. In short:
a RAFT-style context encoder (84-d features at 1/8) gives a bidirectional all-pairs correlation pyramid; an
IFRNet-style pyramid encoder (20/32/44/56 channels at 1/2 ... 1/16) feeds a coarse-to-fine decoder that predicts
the flows from the middle frame to both inputs and a middle-frame feature; at 1/8, 1/4 and 1/2 an update block
refines them from correlations looked up along the flows (scaled to 0 -> 1 and 1 -> 0 by the linear-motion rule);
the last decoder emits three flow pairs with blend masks and residuals, and a small conv merges the three warps.

Checked outside the repo against VBench's vendored AMT-S (never committed here): random weights from this module
loaded strictly into VBench's, same frames: max |diff| 1.7e-14 in float64, 1.1e-5 in float32; VBench's motion_score
pipeline end to end (InputPadder, tensor2img, score) against `AmtMotionSmoothness`: scores agree to 4.5e-7.

VBench's uint8 conversion truncates x * 255, so float32 round-off (the network subtracts and re-adds the frames'
mean) drops some pixels one level even when the prediction is exact: a still video that AMT-S predicts perfectly
scores about 1 - 0.4 / 255, not 1. Kept, since it is VBench's number.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.errors import UserError
from bench.metrics.motion_smoothness import MotionSmoothness, backward_warp

CORR_RADIUS, CORR_LEVELS, NUM_FLOWS = 3, 4, 3  # VBench's AMT-S.yaml
PYRAMID = (20, 32, 44, 56)
SIDE = 20  # channels of the residual blocks' side branch
PAD_TO = 16  # VBench: InputPadder(divisor=int(16 / scale)), scale 1


def _resize(x: torch.Tensor, factor: float) -> torch.Tensor:
    return F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)


def _lrelu(x: torch.Tensor) -> torch.Tensor:
    return F.leaky_relu(x, 0.1)


def _conv_prelu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.PReLU(cout))


def _conv_lrelu_conv(cin: int, mid: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, mid, 3, 1, 1), nn.LeakyReLU(0.1), nn.Conv2d(mid, cout, 3, 1, 1))


# ------------------------------------------------------------------------------------------- context features
class _Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1, each instance-normalised (no affine) and ReLU'd, plus a (projected) skip."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        mid = cout // 4
        self.conv1, self.conv2, self.conv3 = nn.Conv2d(cin, mid, 1), nn.Conv2d(mid, mid, 3, stride, 1), \
            nn.Conv2d(mid, cout, 1)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride), nn.InstanceNorm2d(cout)) \
            if stride != 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = x
        for conv in (self.conv1, self.conv2, self.conv3):
            y = F.relu(F.instance_norm(conv(y)))
        return F.relu(y + (x if self.downsample is None else self.downsample(x)))


class _ContextEncoder(nn.Module):
    """Features at 1/8 resolution for the correlation volume."""

    def __init__(self, dim: int = 84):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, 7, 2, 3)
        widths, strides = (32, 64, 96), (1, 2, 2)
        cin = 32
        for i, (w, s) in enumerate(zip(widths, strides), 1):
            self.add_module(f"layer{i}", nn.Sequential(_Bottleneck(cin, w, s), _Bottleneck(w, w, 1)))
            cin = w
        self.conv2 = nn.Conv2d(cin, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.instance_norm(self.conv1(x)))
        return self.conv2(self.layer3(self.layer2(self.layer1(x))))


class _Pyramid(nn.Module):
    """Four stride-2 stages of two conv+PReLU each: features at 1/2, 1/4, 1/8, 1/16."""

    def __init__(self, widths: tuple[int, ...] = PYRAMID):
        super().__init__()
        cin = 3
        for i, w in enumerate(widths, 1):
            self.add_module(f"pyramid{i}", nn.Sequential(_conv_prelu(cin, w, 2), _conv_prelu(w, w)))
            cin = w
        self.depth = len(widths)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i in range(1, self.depth + 1):
            x = getattr(self, f"pyramid{i}")(x)
            out.append(x)
        return out


# ------------------------------------------------------------------------------------------------- decoders
class _SideResBlock(nn.Module):
    """A residual block whose last `side` channels pass through an extra conv between the main convs (IFRNet)."""

    def __init__(self, ch: int, side: int = SIDE):
        super().__init__()
        self.side = side
        self.conv1, self.conv3 = _conv_prelu(ch, ch), _conv_prelu(ch, ch)
        self.conv2, self.conv4 = _conv_prelu(side, side), _conv_prelu(side, side)
        self.conv5 = nn.Conv2d(ch, ch, 3, 1, 1)
        self.prelu = nn.PReLU(ch)

    def _with_side(self, x: torch.Tensor, conv: nn.Module) -> torch.Tensor:
        return torch.cat([x[:, :-self.side], conv(x[:, -self.side:])], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv3(self._with_side(self.conv1(x), self.conv2))
        return self.prelu(x + self.conv5(self._with_side(y, self.conv4)))


class _Decoder(nn.Module):
    """conv+PReLU, side residual block, 2x transposed conv: one pyramid level up."""

    def __init__(self, cin: int, mid: int, cout: int):
        super().__init__()
        self.convblock = nn.Sequential(_conv_prelu(cin, mid), _SideResBlock(mid), nn.ConvTranspose2d(mid, cout, 4, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convblock(x)


# ---------------------------------------------------------------------------------------- correlation, update
class _BidirCorrelation:
    """All-pairs feature correlation (scaled by 1/sqrt(dim)) as a 4-level avg-pooled pyramid, in both directions;
    looked up in a (2r+1)^2 window around given pixel coordinates (bilinear, zeros outside)."""

    def __init__(self, f0: torch.Tensor, f1: torch.Tensor, levels: int = CORR_LEVELS, radius: int = CORR_RADIUS):
        b, c, h, w = f0.shape
        corr = (f0.flatten(2).transpose(1, 2) @ f1.flatten(2)) / math.sqrt(c)  # (b, h*w of f0, h*w of f1)
        fwd = corr.reshape(b * h * w, 1, h, w)
        bwd = corr.transpose(1, 2).reshape(b * h * w, 1, h, w)
        self.fwd, self.bwd = [fwd], [bwd]
        for _ in range(levels - 1):
            self.fwd.append(F.avg_pool2d(self.fwd[-1], 2, 2))
            self.bwd.append(F.avg_pool2d(self.bwd[-1], 2, 2))
        d = torch.linspace(-radius, radius, 2 * radius + 1, device=f0.device)
        # window element (i, j) sits at x offset d[i], y offset d[j] (RAFT's channel order)
        self.window = torch.stack(torch.meshgrid(d, d, indexing="ij"), -1).view(1, 2 * radius + 1, 2 * radius + 1, 2)

    @staticmethod
    def _sample(volume: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
        h, w = volume.shape[-2:]
        grid = torch.stack([points[..., 0] * 2 / (w - 1) - 1, points[..., 1] * 2 / (h - 1) - 1], -1)
        return F.grid_sample(volume, grid, align_corners=True)

    def _lookup(self, pyramid: list[torch.Tensor], coords: torch.Tensor) -> torch.Tensor:
        b, _, h, w = coords.shape
        centre = coords.permute(0, 2, 3, 1).reshape(b * h * w, 1, 1, 2)
        out = [self._sample(vol, centre / 2 ** lvl + self.window).view(b, h, w, -1) for lvl, vol in enumerate(pyramid)]
        return torch.cat(out, -1).permute(0, 3, 1, 2)

    def __call__(self, coords0: torch.Tensor, coords1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._lookup(self.fwd, coords0), self._lookup(self.bwd, coords1)


class _Update(nn.Module):
    """Residual update of the flow pair and the middle-frame feature from correlations and flows, computed at 1/8
    (inputs at a finer level are resized down by `scale` and the deltas back up)."""

    def __init__(self, feat_dim: int, scale: int | None = None, hidden: int = 76, flow_dim: int = 20,
                 corr_dim: int = 64, fc_dim: int = 68):
        super().__init__()
        self.scale = scale
        corr_planes = 2 * CORR_LEVELS * (2 * CORR_RADIUS + 1) ** 2
        self.convc1 = nn.Conv2d(corr_planes, corr_dim, 1)
        self.convf1 = nn.Conv2d(4, 2 * flow_dim, 7, padding=3)
        self.convf2 = nn.Conv2d(2 * flow_dim, flow_dim, 3, padding=1)
        self.conv = nn.Conv2d(corr_dim + flow_dim, fc_dim, 3, padding=1)
        self.gru = _conv_lrelu_conv(fc_dim + 4 + feat_dim, hidden, hidden)  # named so in AMT; no recurrence
        self.feat_head = _conv_lrelu_conv(hidden, hidden, feat_dim)
        self.flow_head = _conv_lrelu_conv(hidden, hidden, 4)

    def forward(self, feat: torch.Tensor, flow: torch.Tensor, corr: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.scale is not None:
            feat = _resize(feat, 1 / self.scale)
        motion = torch.cat([_lrelu(self.convc1(corr)), _lrelu(self.convf2(_lrelu(self.convf1(flow))))], 1)
        hidden = self.gru(torch.cat([_lrelu(self.conv(motion)), flow, feat], 1))
        d_feat, d_flow = self.feat_head(hidden), self.flow_head(hidden)
        if self.scale is not None:
            d_feat, d_flow = _resize(d_feat, self.scale), self.scale * _resize(d_flow, self.scale)
        return d_feat, d_flow


# ------------------------------------------------------------------------------------------------------ model
class AMTS(nn.Module):
    """AMT-S: `forward(img0, img1, embt)` -> the frame at time embt in (0, 1), (B, 3, H, W) in [0, 1]; H and W
    multiples of 16 (see `AmtInterpolator` for VBench's padding)."""

    def __init__(self, num_flows: int = NUM_FLOWS):
        super().__init__()
        self.num_flows = num_flows
        c1, c2, c3, c4 = PYRAMID
        self.feat_encoder = _ContextEncoder(84)
        self.encoder = _Pyramid(PYRAMID)
        self.decoder4 = _Decoder(2 * c4 + 1, 2 * c4, c3 + 4)
        self.decoder3 = _Decoder(3 * c3 + 4, 3 * c3, c2 + 4)
        self.decoder2 = _Decoder(3 * c2 + 4, 3 * c2, c1 + 4)
        self.decoder1 = _Decoder(3 * c1 + 4, 3 * c1, 8 * num_flows)  # flows 2n + 2n, masks n, residuals 3n
        self.update4, self.update3, self.update2 = _Update(c3), _Update(c2, 2), _Update(c1, 4)
        self.comb_block = nn.Sequential(nn.Conv2d(3 * num_flows, 6 * num_flows, 3, 1, 1), nn.PReLU(6 * num_flows),
                                        nn.Conv2d(6 * num_flows, 3, 3, 1, 1))

    @staticmethod
    def _decode_input(ft: torch.Tensor, f0: torch.Tensor, f1: torch.Tensor, flow0: torch.Tensor,
                      flow1: torch.Tensor) -> torch.Tensor:
        return torch.cat([ft, backward_warp(f0, flow0), backward_warp(f1, flow1), flow0, flow1], 1)

    def forward(self, img0: torch.Tensor, img1: torch.Tensor, embt: torch.Tensor, scale_factor: float = 1.0
                ) -> torch.Tensor:
        mean = torch.cat([img0, img1], 2).mean((1, 2, 3), keepdim=True)  # per sample, over both frames
        img0, img1 = img0 - mean, img1 - mean
        x0, x1 = (img0, img1) if scale_factor == 1.0 else (_resize(img0, scale_factor), _resize(img1, scale_factor))
        b, _, h, w = x0.shape
        embt = embt.expand(b, 1, 1, 1)
        ys, xs = torch.meshgrid(torch.arange(h // 8, device=x0.device), torch.arange(w // 8, device=x0.device),
                                indexing="ij")
        grid = torch.stack([xs, ys]).float().expand(b, -1, -1, -1)
        corr = _BidirCorrelation(*self.feat_encoder(torch.cat([x0, x1])).chunk(2))
        feats = [f.chunk(2) for f in self.encoder(torch.cat([x0, x1]))]  # [(f0, f1)] at 1/2 ... 1/16

        f0, f1 = feats[3]
        out = self.decoder4(torch.cat([f0, f1, embt.expand(-1, -1, *f0.shape[2:])], 1))
        flow0, flow1, ft = out[:, :2], out[:, 2:4], out[:, 4:]
        for update, down, level in ((self.update4, 1, 2), (self.update3, 2, 1), (self.update2, 4, 0)):
            # refine at this level from correlations along the flows, scaled to 0 -> 1 and 1 -> 0
            fl0, fl1 = (flow0, flow1) if down == 1 else (_resize(flow0, 1 / down) / down, _resize(flow1, 1 / down) / down)
            c0, c1 = corr(grid + fl1 / embt, grid + fl0 / (1 - embt))
            d_ft, d_flow = update(ft, torch.cat([fl0, fl1], 1), torch.cat([c0, c1], 1))
            flow0, flow1, ft = flow0 + d_flow[:, :2], flow1 + d_flow[:, 2:], ft + d_ft
            # one level finer
            f0, f1 = feats[level]
            decoder = (self.decoder1, self.decoder2, self.decoder3)[level]
            out = decoder(self._decode_input(ft, f0, f1, flow0, flow1))
            up0, up1 = 2 * _resize(flow0, 2.0), 2 * _resize(flow1, 2.0)
            if level:
                flow0, flow1, ft = out[:, :2] + up0, out[:, 2:4] + up1, out[:, 4:]
        n = self.num_flows
        d0, d1, mask, res = out.split([2 * n, 2 * n, n, 3 * n], 1)
        flow0, flow1, mask = d0 + up0.repeat(1, n, 1, 1), d1 + up1.repeat(1, n, 1, 1), torch.sigmoid(mask)
        if scale_factor != 1.0:
            s = 1 / scale_factor
            flow0, flow1, mask, res = _resize(flow0, s) * s, _resize(flow1, s) * s, _resize(mask, s), _resize(res, s)
        return self._merge(img0, img1, flow0, flow1, mask, res, mean).clamp(0, 1)

    def _merge(self, img0: torch.Tensor, img1: torch.Tensor, flow0: torch.Tensor, flow1: torch.Tensor,
               mask: torch.Tensor, res: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """The n flow pairs' blended warps (+ residual, + the mean taken off), averaged plus a learned correction."""
        b, _, h, w = flow0.shape
        n = self.num_flows
        per_flow = lambda x, c: x.reshape(b * n, c, h, w)  # noqa: E731
        warped = (per_flow(mask, 1) * backward_warp(img0.repeat_interleave(n, 0), per_flow(flow0, 2))
                  + (1 - per_flow(mask, 1)) * backward_warp(img1.repeat_interleave(n, 0), per_flow(flow1, 2))
                  + mean.repeat_interleave(n, 0) + per_flow(res, 3)).reshape(b, n, 3, h, w)
        return warped.mean(1) + self.comb_block(warped.reshape(b, 3 * n, h, w))


# ---------------------------------------------------------------------------------------- loading, the metric
MIN_SIDE = 128  # below this (after padding) the 1/64 correlation level is 1 px wide and AMT-S returns NaN


class AmtInterpolator:
    """An AMT-S on a device and the midpoints of consecutive frames, padded and unpadded as VBench does."""

    def __init__(self, model: nn.Module, weights: str = "", sha256: str | None = None,
                 device: torch.device | str = "cpu", pairs_per_call: int = 4):
        self.model, self.weights, self.sha256 = model, weights, sha256
        self.device, self.pairs_per_call = torch.device(device), pairs_per_call

    def describe(self) -> dict[str, Any]:
        return {"interpolator": "AMT-S (bench.metrics.amt.AMTS; the module tree of VBench's networks.AMT-S.Model "
                                "with corr_radius 3, corr_lvls 4, num_flows 3)",
                "amt_weights": self.weights, "amt_weights_sha256": self.sha256, "embt": 0.5, "scale_factor": 1.0,
                "padding": f"replicate to a multiple of {PAD_TO}, split evenly (VBench InputPadder)",
                "prediction_to_uint8": "x * 255, clipped to [0, 255], truncated (VBench tensor2img)",
                "min_side": MIN_SIDE}

    @torch.no_grad()
    def midpoints(self, frames: torch.Tensor) -> torch.Tensor:
        """(N - 1, 3, H, W) uint8 levels / 255: the t = 1/2 frame of each consecutive pair of `frames` (N, 3, H, W),
        float in [0, 1] on uint8 levels."""
        h, w = frames.shape[-2:]
        ph, pw = (-h) % PAD_TO, (-w) % PAD_TO
        if min(h + ph, w + pw) < MIN_SIDE:
            raise UserError(f"motion_smoothness (AMT-S) needs frames at least {MIN_SIDE} px on each side (got {h}x{w}; "
                            "AMT-S's correlation pyramid degenerates below); remove vbench.amt_s for the RAFT warp "
                            "protocol")
        padded = F.pad(frames.float(), (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2), mode="replicate")
        embt = torch.full((1, 1, 1, 1), 0.5, device=self.device)
        preds = []
        for i in range(0, len(padded) - 1, self.pairs_per_call):
            chunk = padded[i:i + self.pairs_per_call + 1].to(self.device)
            preds.append(self.model(chunk[:-1], chunk[1:], embt).cpu())
        pred = torch.cat(preds)[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]
        return (pred * 255.0).clamp(0, 255).to(torch.uint8).to(torch.float64) / 255


def load_amt_s(path: str | Path, device: torch.device | str = "cpu") -> AmtInterpolator:
    """AMT-S from VBench's amt-s.pth (the trainer's dict, weights under 'state_dict', read with weights_only=True)
    or a .safetensors / plain state dict, loaded strictly, on `device`."""
    from bench.metrics import backbones

    device = torch.device(device)

    def build() -> AmtInterpolator:
        p = backbones.weights_file(path, "AMT-S", "pass VBench's amt-s.pth (pretrained/amt_model/download.sh: "
                                                  "huggingface.co/lalala125/AMT) or remove vbench.amt_s")
        model = backbones.load_strict(AMTS(), p, "AMT-S", fix="pass VBench's AMT-S checkpoint (amt-s.pth), not "
                                                               "AMT-L/AMT-G/IFRNet")
        return AmtInterpolator(model.eval().requires_grad_(False).to(device), str(p.resolve()),
                               backbones.file_sha256(p), device)

    return backbones.cached(("amt_s", str(path), str(device)), build)


class AmtMotionSmoothness(MotionSmoothness):
    """VBench's motion_smoothness with AMT-S: the even frames, replicate-padded to a multiple of 16, interpolate the
    midpoints (embt = 1/2, scale_factor 1); each prediction is unpadded and turned to uint8 as VBench's tensor2img
    does (x * 255, clipped, truncated), then scored against the odd frames by (255 - mean |diff|) / 255."""

    protocol = "vbench_amt_s"

    def __init__(self, amt: AmtInterpolator, **kwargs: Any):
        super().__init__(flow=None, **kwargs)
        self.amt = amt

    @classmethod
    def from_file(cls, path: str, device: torch.device) -> "AmtMotionSmoothness":
        return cls(load_amt_s(path, device))

    def interpolate(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if frames.shape[1] == 1:
            frames = frames.expand(-1, 3, -1, -1)  # VBench reads RGB
        even = frames[0::2]
        return frames[1::2][:len(even) - 1], self.amt.midpoints(even)

    def describe(self) -> dict[str, Any]:
        return {"definition": "even frames interpolate the odd ones (AMT-S at t = 1/2); (255 - mean abs uint8 diff) "
                              "/ 255, mean over interpolated frames and videos",
                "protocol": self.protocol, "resample_fps": None, **self.amt.describe()}
