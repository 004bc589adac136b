"""Aesthetic quality (VBench): the LAION aesthetic predictor on CLIP ViT-L/14 image embeddings, per frame, / 10.

VBench (vbench/aesthetic_quality.py): CLIP ViT-L/14 image features, L2-normalised, through nn.Linear(768, 1) with the
weights of LAION's sa_0_4_vit_l_14_linear.pth; score / 10 per frame; mean over a video's frames, mean over videos.
Real runs: `vbench.aesthetic_head` = that .pth (loaded strictly into nn.Linear, weights only) on the open_clip model
`vbench.aesthetic_clip_model` / `aesthetic_clip_pretrained` (ViT-L-14 / openai). Preprocessing is open_clip's own
transform; VBench's video path resizes uint8 tensors without antialiasing (recorded).
Toy runs (`aesthetic_head: toy`): a linear head on the toy CLIP trained to read blur/noise degradation
(bench/toy/quality_heads.py); it learned nothing (validation MAE = a constant predictor's), so toy numbers are
plumbing-only, labelled so in the record, and the toy default leaves this dimension out.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.nn as nn

from bench.api import Video
from bench.metrics.base import MeanOverVideos


class AestheticQuality(MeanOverVideos):
    metric_name = "aesthetic_quality"
    higher_is_better = True
    protocol = "vbench_aesthetic_quality"

    def __init__(self, embedder: Any, head: nn.Module, info: dict[str, Any], **kwargs: Any):
        super().__init__(**kwargs)
        self.embedder, self.head, self.info = embedder, head, info

    @classmethod
    def from_run_config(cls, cfg: Any, device: torch.device) -> "AestheticQuality":
        from bench.metrics import backbones

        v = cfg.vbench
        if v.aesthetic_head is None:
            from bench.errors import UserError
            raise UserError("aesthetic_quality needs vbench.aesthetic_head: 'toy' (toy world) or LAION's "
                            "sa_0_4_vit_l_14_linear.pth")
        if v.aesthetic_head == "toy":
            from bench.models import portable_path, toy_weights
            from bench.toy.quality_heads import AESTHETIC_FILE

            embedder = backbones.clip_embedder("toy", "toy", device)
            path = toy_weights(AESTHETIC_FILE)
            name, note = portable_path(path), ("plumbing-only toy stand-in: linear head on the toy CLIP trained on "
                                               "blur/noise level; its validation MAE (1.96 on 0-10) equals a constant "
                                               "predictor's (1.94): the toy CLIP does not see degradation")
        else:
            path = backbones.weights_file(v.aesthetic_head, "aesthetic head",  # before the big CLIP loads
                                          "pass LAION's sa_0_4_vit_l_14_linear.pth, or 'toy'")
            embedder = backbones.clip_embedder(v.aesthetic_clip_model, v.aesthetic_clip_pretrained, device)
            name, note = str(path.resolve()), "LAION aesthetic predictor (linear)"
        dim = embedder.model.visual.output_dim
        head = backbones.load_strict(nn.Linear(dim, 1), path, f"aesthetic head (nn.Linear({dim}, 1))")
        info = {"head": note, "plumbing_only": v.aesthetic_head == "toy", "head_weights": name,
                "head_weights_sha256": backbones.file_sha256(path),
                **{f"clip_{k}": val for k, val in embedder.describe().items()}}
        return cls(embedder, head.eval().requires_grad_(False).to(embedder.device), info)

    @torch.no_grad()
    def per_video(self, videos: Sequence[Video], prompts: Sequence[str]) -> torch.Tensor:
        return torch.tensor([float((self.head(self.embedder.image_embeddings(v.frames)).squeeze(-1) / 10).mean())
                             for v in videos], dtype=torch.float64)

    def describe(self) -> dict[str, Any]:
        return {"definition": "per frame head(L2-normalised CLIP image embedding) / 10; mean over frames and videos",
                "protocol": self.protocol, **self.info}
