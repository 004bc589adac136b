"""Motion smoothness: how well the even frames predict the odd ones through frame interpolation.

VBench (vbench/motion_smoothness.py) interpolates the midpoint of every pair of consecutive even frames
(0-2, 2-4, ...) with AMT-S and scores (255 - mean |odd frame - interpolated|) / 255 on uint8 frames, averaged over
the interpolated frames (no fps resampling). Two protocols:

- `vbench_amt_s` (`vbench.amt_s: PATH`, VBench's amt-s.pth): VBench's own, with t2v-bench's implementation of the
  AMT-S network (bench/metrics/amt.py, same state-dict keys, loaded strictly; checked against VBench's vendored code
  to 1e-14 in float64) and VBench's padding, timestep, scale and uint8 conversion; frames >= 128 px a side.
- `t2v_bench_raft_warp` (without `vbench.amt_s`): VBench's frame selection and score with the run's RAFT as the
  interpolator: flows F01 = RAFT(I0, I1) and F10 = RAFT(I1, I0) between the even frames, the midpoint's backward
  flows by the linear-motion approximation (Jiang et al., Super SloMo, t = 1/2): Ft0 = (-F01 + F10) / 4,
  Ft1 = (F01 - F10) / 4, and It = (warp(I0, Ft0) + warp(I1, Ft1)) / 2 (bilinear backward warping, border padding),
  quantised to uint8. Comparable across runs of this protocol, not with VBench's AMT-S numbers.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn.functional as F

from bench.api import Video
from bench.metrics.base import MeanOverVideos


def backward_warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """image (N, C, H, W) sampled at x + flow(x) (flow (N, 2, H, W) in px, (dx, dy)); bilinear, border padding."""
    n, _, h, w = image.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=flow.dtype, device=flow.device),
                            torch.arange(w, dtype=flow.dtype, device=flow.device), indexing="ij")
    gx = (xs + flow[:, 0]) * 2 / max(w - 1, 1) - 1
    gy = (ys + flow[:, 1]) * 2 / max(h - 1, 1) - 1
    return F.grid_sample(image, torch.stack([gx, gy], -1), mode="bilinear", padding_mode="border", align_corners=True)


def midpoint(i0: torch.Tensor, i1: torch.Tensor, f01: torch.Tensor, f10: torch.Tensor) -> torch.Tensor:
    """The t = 1/2 frame between i0 and i1 from their bidirectional flows (linear-motion approximation)."""
    ft0 = (-f01 + f10) / 4
    ft1 = (f01 - f10) / 4
    return (backward_warp(i0, ft0) + backward_warp(i1, ft1)) / 2


def vfi_score(odd: torch.Tensor, predicted: torch.Tensor) -> float:
    """VBench: (255 - mean over frames of mean |odd - predicted|) / 255 on uint8 frames; inputs in [0, 1]."""
    q = lambda x: (x.clamp(0, 1) * 255).round().to(torch.float64)  # noqa: E731
    diff = (q(odd) - q(predicted)).abs().flatten(1).mean(1).mean()
    return float((255.0 - diff) / 255.0)


class MotionSmoothness(MeanOverVideos):
    metric_name = "motion_smoothness"
    higher_is_better = True
    protocol = "t2v_bench_raft_warp"

    def __init__(self, flow: Any, **kwargs: Any):
        super().__init__(**kwargs)
        self.flow = flow

    @classmethod
    def from_run_config(cls, cfg: Any, device: torch.device) -> "MotionSmoothness":
        from bench.metrics.backbones import raft

        v = cfg.vbench
        if v.amt_s is not None:  # VBench's own protocol
            from bench.metrics.amt import AmtMotionSmoothness
            return AmtMotionSmoothness.from_file(v.amt_s, device)
        return cls(raft(v.raft, v.raft_arch, v.raft_iters, device))

    def interpolate(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(odd frames that have a prediction, their predictions): each from the even frames on either side."""
        even = frames[0::2]
        odd = frames[1::2][:len(even) - 1]
        a, b = even[:-1], even[1:]
        flows = self.flow.flow(torch.cat([a, b]), torch.cat([b, a]))
        h, w = frames.shape[-2:]
        ph, pw = flows.shape[-2] - h, flows.shape[-1] - w
        flows = flows[..., ph // 2:ph // 2 + h, pw // 2:pw // 2 + w]  # the unpadded frame's pixels
        n = len(a)
        mid = midpoint(a.to(flows.device, flows.dtype), b.to(flows.device, flows.dtype), flows[:n], flows[n:])
        return odd, mid.cpu()

    def per_video(self, videos: Sequence[Video], prompts: Sequence[str]) -> torch.Tensor:
        values = []
        for v in videos:
            if v.frames.shape[0] < 3:  # no odd frame between two even ones: nothing to score (VBench asserts)
                values.append(float("nan"))
                continue
            frames = (v.frames.clamp(0, 1) * 255).round() / 255
            odd, pred = self.interpolate(frames)
            values.append(vfi_score(odd, pred))
        return torch.tensor(values, dtype=torch.float64)

    def update(self, videos: Sequence[Video], prompts: Sequence[str]) -> None:
        values = self.per_video(videos, prompts)
        self.last_values = values.tolist()
        keep = ~values.isnan()  # videos under 3 frames have no score and do not count
        self.value_sum += values[keep].sum().to(self.value_sum.device)
        self.n_videos += int(keep.sum())

    def describe(self) -> dict[str, Any]:
        return {"definition": "even frames interpolate the odd ones (RAFT bidirectional flow, linear-motion midpoint "
                              "warp); (255 - mean abs uint8 diff) / 255, mean over interpolated frames and videos",
                "protocol": self.protocol, "vbench_protocol": "vbench_amt_s (set vbench.amt_s)",
                "resample_fps": None, **self.flow.describe()}
