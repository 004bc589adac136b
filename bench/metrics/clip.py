"""CLIP score and CLIP frame consistency on open_clip.

clip_score:                  per video, mean over frames of 100 * cos(text, frame); mean over videos (no clamp).
frame_consistency:           per video, mean over consecutive frame pairs of cos(frame_i, frame_i+1).
frame_consistency_allpairs:  per video, mean over all pairs i != j of cos(frame_i, frame_j) (Tune-A-Video style).
Preprocessing is open_clip's own config for the model (resize shortest side, centre crop, normalise), applied to
tensors. Model name, pretrained tag and QuickGELU are recorded: they change the numbers.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from bench.api import Video
from bench.errors import UserError
from bench.metrics.base import MeanOverVideos

TINY_CLIP = "t2v-bench-tiny-clip"


def clip_resize_crop(frames: torch.Tensor, image_size: tuple[int, int], interpolation: str = "bicubic") -> torch.Tensor:
    """open_clip's 'shortest' resize + centre crop on (N, C, H, W) float frames in [0, 1]: a square target uses
    torchvision's Resize(shortest side) (long side int()-truncated), a non-square one open_clip's ResizeKeepRatio
    (both sides round()ed); then torchvision's CenterCrop (offset rounded). Antialiased like PIL; clamped to [0, 1]
    as PIL's uint8 images are."""
    import torchvision.transforms.functional as TF
    from torchvision.transforms import InterpolationMode

    mode = InterpolationMode.BILINEAR if interpolation == "bilinear" else InterpolationMode.BICUBIC
    h, w = frames.shape[-2:]
    th, tw = image_size
    if th == tw:
        size = [th]
    else:
        ratio = min(h / th, w / tw)
        size = [round(h / ratio), round(w / ratio)]
    out = TF.resize(frames, size, interpolation=mode, antialias=True)
    if out.shape[-2:] != frames.shape[-2:]:
        out = out.clamp(0, 1)
    return TF.center_crop(out, [th, tw])


class ClipEmbedder:
    """An open_clip model with tensor preprocessing; keeps the image embeddings of recent videos so that
    several metrics over the same frames encode them once."""

    def __init__(self, model: str = "ViT-B-32-quickgelu", pretrained: str | None = "openai",
                 device: torch.device | str = "cpu", seed: int = 0, batch_frames: int = 64):
        import open_clip

        self.model_name, self.pretrained, self.seed = model, pretrained, seed
        self.device = torch.device(device)
        self.batch_frames = batch_frames
        if model in ("toy", "t2v-bench-toy-clip"):  # the toy-world CLIP the project trains and ships
            from bench.toy.clip_model import register, shipped_checkpoint

            self.model_name = register()
            if pretrained in (None, "toy"):
                self.pretrained = pretrained = str(shipped_checkpoint())
            model = self.model_name
        if model in ("tiny", TINY_CLIP):
            open_clip.add_model_config(Path(__file__).with_name(f"{TINY_CLIP}.json"))
            self.model_name, self.pretrained = TINY_CLIP, None
            torch.manual_seed(seed)  # seeded random weights: deterministic plumbing values
        elif pretrained and (pretrained.startswith((".", "/", "~")) or pretrained.endswith((".pt", ".bin", ".safetensors"))) \
                and not Path(pretrained).expanduser().is_file():
            raise UserError(f"CLIP checkpoint '{pretrained}' does not exist; pass an open_clip pretrained tag "
                            f"(e.g. 'openai') or an existing checkpoint file")
        if self.model_name not in open_clip.list_models():
            from bench.errors import did_you_mean
            raise UserError(f"unknown open_clip model '{model}': {did_you_mean(model, open_clip.list_models())}")
        try:
            self.model = open_clip.create_model(self.model_name, pretrained=self.pretrained, device=self.device)
        except RuntimeError as exc:
            raise UserError(f"could not load CLIP '{model}' pretrained='{pretrained}' ({str(exc).splitlines()[0][:200]}); "
                            "offline, pass a local checkpoint path as clip.pretrained") from None
        self.model.eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(self.model_name)
        cfg = open_clip.get_model_preprocess_cfg(self.model)
        size = cfg["size"]
        self.image_size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
        self.mean = torch.tensor(cfg["mean"], device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg["std"], device=self.device).view(1, 3, 1, 1)
        self.interpolation = cfg.get("interpolation", "bicubic")
        self.quick_gelu = bool(getattr(self.model, "quick_gelu", False) or "quickgelu" in self.model_name)
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def describe(self) -> dict[str, Any]:
        pretrained, sha = self.pretrained, None
        if pretrained and Path(pretrained).expanduser().is_file():  # a local checkpoint: name it by content too
            from bench.metrics.fvd_detectors import file_sha256
            from bench.models import portable_path

            pretrained, sha = portable_path(pretrained), file_sha256(Path(pretrained).expanduser())
        return {"model": self.model_name, "pretrained": pretrained, "pretrained_sha256": sha,
                "quick_gelu": self.quick_gelu,
                "seed": self.seed if self.pretrained is None else None,
                "preprocess": f"torchvision resize shortest side (long side int()) {self.interpolation} antialias, "
                              f"center crop (offset round()) "
                              f"{self.image_size[0]}x{self.image_size[1]}, CLIP mean/std"}

    def preprocess(self, frames: torch.Tensor) -> torch.Tensor:
        """(N, C, H, W) in [0, 1] -> model input, as open_clip's transform does to images: torchvision's own resize
        and centre crop on tensors, so the output size truncates and the crop offset rounds exactly as there."""
        frames = frames.to(self.device, torch.float32)
        if frames.shape[1] == 1:
            frames = frames.expand(-1, 3, -1, -1)
        frames = clip_resize_crop(frames, self.image_size, self.interpolation)
        return (frames - self.mean) / self.std

    @torch.no_grad()
    def image_embeddings(self, frames: torch.Tensor) -> torch.Tensor:
        """L2-normalised embeddings (N, D) of frames (N, C, H, W) in [0, 1]."""
        cached = self._cache.get(id(frames))
        if cached is not None and cached[0] is frames:
            return cached[1]
        out = torch.cat([self.model.encode_image(self.preprocess(chunk)).float()
                         for chunk in frames.split(self.batch_frames)])
        out = F.normalize(out, dim=-1)
        if len(self._cache) > 32:
            self._cache.clear()
        self._cache[id(frames)] = (frames, out)
        return out

    @torch.no_grad()
    def text_embeddings(self, prompts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(prompts)).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1)


class _ClipMetric(MeanOverVideos):
    def __init__(self, embedder: ClipEmbedder, **kwargs: Any):
        super().__init__(**kwargs)
        self.embedder = embedder

    def describe(self) -> dict[str, Any]:
        return {"definition": self.definition, **self.embedder.describe()}


class ClipScore(_ClipMetric):
    metric_name = "clip_score"
    higher_is_better = True
    definition = "mean over frames of 100*cos(text, frame), mean over videos; no clamp"

    def per_video(self, videos: Sequence[Video], prompts: Sequence[str]) -> torch.Tensor:
        text = self.embedder.text_embeddings(prompts)
        return torch.stack([100.0 * (self.embedder.image_embeddings(v.frames) @ text[i]).mean()
                            for i, v in enumerate(videos)])


def consecutive_similarity(emb: torch.Tensor) -> torch.Tensor:
    if emb.shape[0] < 2:
        raise UserError("frame consistency needs at least 2 frames per video; raise sampling.num_frames")
    return (emb[1:] * emb[:-1]).sum(-1).mean()


def all_pairs_similarity(emb: torch.Tensor) -> torch.Tensor:
    n = emb.shape[0]
    if n < 2:
        raise UserError("frame consistency needs at least 2 frames per video; raise sampling.num_frames")
    sim = emb @ emb.T
    return (sim.sum() - sim.diagonal().sum()) / (n * (n - 1))


class FrameConsistency(_ClipMetric):
    metric_name = "frame_consistency"
    higher_is_better = True
    definition = "mean over consecutive frame pairs of cos(CLIP image emb), mean over videos"

    def per_video(self, videos: Sequence[Video], prompts: Sequence[str]) -> torch.Tensor:
        return torch.stack([consecutive_similarity(self.embedder.image_embeddings(v.frames)) for v in videos])


class FrameConsistencyAllPairs(_ClipMetric):
    metric_name = "frame_consistency_allpairs"
    higher_is_better = True
    definition = "mean over all frame pairs i != j of cos(CLIP image emb), mean over videos"

    def per_video(self, videos: Sequence[Video], prompts: Sequence[str]) -> torch.Tensor:
        return torch.stack([all_pairs_similarity(self.embedder.image_embeddings(v.frames)) for v in videos])
