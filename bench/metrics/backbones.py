"""Shared model loaders for the metrics: one cache, so two metrics on one backbone (dynamic_degree and
motion_smoothness on RAFT, clip_score and background_consistency on CLIP) load it once and, through the
per-frames caches below, run it once per video.

Every real-weights path loads through the library's own class, strictly: torchvision's RAFT classes with
`load_state_dict(strict=True)` from safetensors or `torch.load(weights_only=True)`; transformers' ViTModel with its
loading report checked for missing/unexpected keys; open_clip via ClipEmbedder. A missing file is one UserError line.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.errors import UserError

_CACHE: dict[tuple, Any] = {}


def cached(key: tuple, build: Callable[[], Any]) -> Any:
    """The object `build()` made for `key` earlier in this process, or a new one."""
    if key not in _CACHE:
        _CACHE[key] = build()
    return _CACHE[key]


def weights_file(path: str | Path, what: str, fix: str) -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"{what} weights '{path}' do not exist; {fix}")
    return p


def file_sha256(path: str | Path) -> str:
    from bench.metrics.fvd_detectors import file_sha256 as sha

    return sha(Path(path).expanduser())


def load_state_dict_file(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors or a (weights-only) torch file; a leading 'module.' is stripped."""
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        state = load_file(path)
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # pickles with code, zip errors...
            raise UserError(f"could not read '{path}' as a weights-only state dict ({str(exc).splitlines()[0][:160]})"
                            ) from None
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"'{path}' holds a {type(state).__name__}, not a state dict")
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_strict(model: nn.Module, path: Path, what: str, fix: str = "check the arch option") -> nn.Module:
    try:
        model.load_state_dict(load_state_dict_file(path), strict=True)
    except RuntimeError as exc:
        raise UserError(f"{what} weights '{path}' do not fit the architecture ({str(exc).splitlines()[0][:200]}); "
                        f"{fix}") from None
    return model


# ---------------------------------------------------------------------------------------------------------- RAFT
class FlowEstimator:
    """A torchvision RAFT and the flow of frame pairs, padded to multiples of 8 as VBench's InputPadder does
    (replicate, split evenly); keeps the flows of recent videos so two metrics on one video compute them once."""

    def __init__(self, model: nn.Module, arch: str, iters: int, weights: str, sha256: str | None,
                 device: torch.device, input_scale: int = 1):
        self.model, self.arch, self.iters, self.weights, self.sha256 = model, arch, iters, weights, sha256
        self.input_scale = input_scale  # the toy RAFT sees frames upsampled (its training resolution)
        self.device = device
        self._cache: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def describe(self) -> dict[str, Any]:
        return {"flow_model": f"torchvision.models.optical_flow.RAFT ({self.arch})", "flow_weights": self.weights,
                "flow_weights_sha256": self.sha256, "flow_iters": self.iters, "flow_input_scale": self.input_scale,
                "flow_padding": "replicate to a multiple of 8, split evenly (VBench InputPadder)"}

    @torch.no_grad()
    def flow(self, a: torch.Tensor, b: torch.Tensor, key: Any = None, source: Any = None) -> torch.Tensor:
        """Flow (N, 2, H', W') from frames a to b, (N, C, H, W) in [0, 1]; H', W' padded up to multiples of 8.
        With `key` and `source` (the tensor a and b were cut from), a repeat call returns the cached flow."""
        cache_key = (key, id(source))
        if key is not None and cache_key in self._cache and self._cache[cache_key][0] is source:
            return self._cache[cache_key][1]
        h, w = a.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        x = torch.cat([a, b]).to(self.device, torch.float32)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.pad(x * 2 - 1, pad, mode="replicate")  # torchvision RAFT takes [-1, 1]
        s = self.input_scale
        if s != 1:
            x = F.interpolate(x, scale_factor=s, mode="bilinear", align_corners=False)
        xa, xb = x.split(len(a))
        out = torch.cat([self.model(xa[i:i + 16], xb[i:i + 16], num_flow_updates=self.iters)[-1]
                         for i in range(0, len(a), 16)]).float()
        if s != 1:  # back to the frames' resolution and pixel units
            out = F.avg_pool2d(out, s) / s
        if key is not None:
            if len(self._cache) > 16:
                self._cache.clear()
            self._cache[cache_key] = (source, out)
        return out


def raft(weights: str | None, arch: str = "auto", iters: int | None = None, device: torch.device | str = "cpu"
         ) -> FlowEstimator:
    if weights is None:
        raise UserError("the flow metrics need vbench.raft: 'toy' (toy world) or a torchvision RAFT state dict file "
                        "(raft_large_C_T_SKHT_V2-ff5fadd5.pth)")
    device = torch.device(device)
    return cached(("raft", weights, arch, iters, str(device)), lambda: _load_raft(weights, arch, iters, device))


def _load_raft(weights: str, arch: str, iters: int | None, device: torch.device) -> FlowEstimator:
    from torchvision.models.optical_flow import raft_large, raft_small

    if weights == "toy":
        from bench.models import portable_path
        from bench.toy.flow_model import ARCH, shipped_checkpoint, toy_raft

        if arch not in ("auto", ARCH):
            raise UserError(f"vbench.raft: 'toy' is a {ARCH}; set vbench.raft_arch to auto or {ARCH}")
        path = shipped_checkpoint()
        from safetensors import safe_open
        with safe_open(str(path), "pt") as fh:
            meta = fh.metadata() or {}
        trained_iters, scale = int(meta.get("iters", 6)), int(meta.get("input_scale", 1))
        model = load_strict(toy_raft(), path, "toy RAFT")
        arch, iters, name = ARCH, iters or trained_iters, portable_path(path)
    else:
        path = weights_file(weights, "RAFT", "pass a torchvision raft_large/raft_small state dict file, or 'toy'")
        arch = "raft_large" if arch == "auto" else arch
        if arch == "toy_raft":
            from bench.toy.flow_model import toy_raft
            model = toy_raft()
        else:
            model = {"raft_large": raft_large, "raft_small": raft_small}[arch](weights=None)
        model = load_strict(model, path, f"RAFT ({arch})")
        iters, name, scale = iters or 20, str(path.resolve()), 1
    return FlowEstimator(model.eval().requires_grad_(False).to(device), arch, iters, name, file_sha256(path), device,
                         scale)


# ---------------------------------------------------------------------------------------------------------- DINO
class FrameFeatures:
    """Per-frame features (N, D), L2-normalised, from one image backbone."""

    def __init__(self, encode: Callable[[torch.Tensor], torch.Tensor], info: dict[str, Any]):
        self.encode, self.info = encode, info

    def describe(self) -> dict[str, Any]:
        return dict(self.info)

    @torch.no_grad()
    def __call__(self, frames: torch.Tensor) -> torch.Tensor:
        return F.normalize(torch.cat([self.encode(c) for c in frames.split(32)]).float(), dim=-1)


def dino(source: str | None, device: torch.device | str = "cpu") -> FrameFeatures:
    if source is None:
        raise UserError("subject_consistency needs vbench.dino: 'toy' (toy world) or a local transformers ViT folder "
                        "(facebook/dino-vitb16)")
    device = torch.device(device)
    return cached(("dino", source, str(device)), lambda: _load_dino(source, device))


def vbench_dino_input(frames: torch.Tensor, size: int = 224) -> torch.Tensor:
    """VBench's dino_transform on video tensors: uint8 frames, Resize(shortest side 224, bilinear,
    antialias=False) (uint8 out, as torchvision rounds uint8 tensors), /255, ImageNet mean/std. No crop."""
    import torchvision.transforms.functional as TF

    q = (frames.clamp(0, 1) * 255).round().to(torch.uint8)
    if q.shape[1] == 1:
        q = q.expand(-1, 3, -1, -1)
    x = TF.resize(q, [size], antialias=False).float() / 255
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def _load_dino(source: str, device: torch.device) -> FrameFeatures:
    if source == "toy":
        from bench.models import portable_path
        from bench.toy.video_features import WEIGHTS_FILE, load_video_features, _prepare
        from bench.models import toy_weights

        net = load_video_features().to(device)
        path = toy_weights(WEIGHTS_FILE)

        def encode(x: torch.Tensor) -> torch.Tensor:  # each frame alone, a 1-frame clip
            return net(_prepare(x[:, None], net.size).to(device))

        return FrameFeatures(encode, {"features": "toy video net (bench/toy/video_features.py) on single frames, "
                                                  "pooled 64-d; a toy stand-in for DINO",
                                      "weights": portable_path(path), "weights_sha256": file_sha256(path)})
    folder = Path(source).expanduser()
    if not (folder / "config.json").is_file():
        raise UserError(f"vbench.dino '{source}' is not a transformers ViT folder (config.json missing); pass a "
                        "local facebook/dino-vitb16 folder, or 'toy'")
    from transformers import ViTModel

    model, info = ViTModel.from_pretrained(folder, add_pooling_layer=False, output_loading_info=True)
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v}
    if bad:
        raise UserError(f"DINO weights in '{source}' do not fit ViTModel strictly: {str(bad)[:200]}")
    model = model.eval().requires_grad_(False).to(device)

    def encode_vit(x: torch.Tensor) -> torch.Tensor:  # CLS token after the final norm, as DINO's own forward
        out = model(pixel_values=vbench_dino_input(x).to(device), interpolate_pos_encoding=True)
        return out.last_hidden_state[:, 0]

    weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).is_file()), None)
    return FrameFeatures(encode_vit, {"features": "transformers ViTModel CLS (last_hidden_state[:, 0])",
                                      "preprocess": "VBench dino_transform: uint8, resize shortest side 224 "
                                                    "bilinear no antialias, ImageNet mean/std, no crop",
                                      "weights": str(folder.resolve()),
                                      "weights_sha256": file_sha256(weights) if weights else None})


# ---------------------------------------------------------------------------------------------------------- CLIP
def clip_embedder(model: str, pretrained: str | None, device: torch.device | str = "cpu", seed: int = 0,
                  batch_frames: int = 64) -> Any:
    from bench.metrics.clip import ClipEmbedder

    device = torch.device(device)
    return cached(("clip", model, pretrained, str(device), seed, batch_frames),
                  lambda: ClipEmbedder(model, pretrained, device=device, seed=seed, batch_frames=batch_frames))


def run_clip(cfg: Any, device: torch.device | str) -> Any:
    """The run's CLIP (cfg.clip): clip_score, frame_consistency and background_consistency share it."""
    return clip_embedder(cfg.clip.model, cfg.clip.pretrained, device, cfg.clip.seed, cfg.clip.batch_frames)
