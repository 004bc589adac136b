"""Imaging quality (VBench): MUSIQ (SPAQ-trained) per frame, / 100; mean over frames, mean over videos.

Real MUSIQ is not supported: VBench builds it with `pyiqa.archs.musiq_arch.MUSIQ`, and pyiqa (0.1.16) does not
install cleanly as a library dependency: its requirements include bitsandbytes, facexlib, datasets, tensorboard,
openai-clip, transformers>=5, and the dev tools pre-commit, ruff, yapf and pytest. Giving `vbench.musiq` is one clear
error. Toy runs use a small conv net trained on the toy world's blur/noise level (bench/toy/quality_heads.py), a
stand-in on the same 0-100 scale; it is no better than a constant yet (validation MAE 19.0 vs 19.4), so its
numbers are plumbing-only, labelled so in the record, and the toy default leaves this dimension out.
VBench's preprocessing (mode 'longer'): frames whose longer side exceeds 512 are resized to 512 on it (no
antialias); the toy net takes frames at their own size.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from bench.api import Video
from bench.errors import UserError
from bench.metrics.base import MeanOverVideos


class ImagingQuality(MeanOverVideos):
    metric_name = "imaging_quality"
    higher_is_better = True
    protocol = "t2v_bench_toy_imaging"

    def __init__(self, net: torch.nn.Module, info: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.net, self.info = net, info

    @classmethod
    def from_run_config(cls, cfg: Any, device: torch.device) -> "ImagingQuality":
        from bench.metrics import backbones

        if cfg.vbench.musiq is not None:
            raise UserError("vbench.musiq: MUSIQ is not supported (pyiqa does not install cleanly: it requires "
                            "bitsandbytes, facexlib, dev tools...); leave imaging_quality out of real runs")
        from bench.models import portable_path, toy_weights
        from bench.toy.quality_heads import IMAGING_FILE, ToyImagingNet

        def build() -> tuple[torch.nn.Module, dict[str, Any]]:
            path = toy_weights(IMAGING_FILE)
            net = backbones.load_strict(ToyImagingNet(), path, "toy imaging net")
            return net.eval().requires_grad_(False).to(device), {
                "model": "plumbing-only toy stand-in: small conv net trained on the toy world's blur/noise level, "
                         "0-100 scale; validation MAE 19.0 = a constant predictor's 19.4 (600 CPU steps)",
                "plumbing_only": True,
                "weights": portable_path(path), "weights_sha256": backbones.file_sha256(path),
                "vbench_protocol": "MUSIQ-SPAQ via pyiqa (not supported)"}

        return cls(*backbones.cached(("toy-imaging", str(device)), build))

    @torch.no_grad()
    def per_video(self, videos: Sequence[Video], prompts: Sequence[str]) -> torch.Tensor:
        device = next(self.net.parameters()).device
        return torch.tensor([float((self.net(v.frames.float().to(device)) / 100).mean()) for v in videos],
                            dtype=torch.float64)

    def describe(self) -> dict[str, Any]:
        return {"definition": "per frame quality / 100; mean over frames and videos", "protocol": self.protocol,
                **self.info}
