"""Feature detectors for FVD: uint8 clips (B, 3, T, H, W) in, float64 features (B, D) out.

Three kinds, recorded with the file's sha256 in every FVD result:
- `i3d_state_dict`: our InceptionI3d (bench/metrics/i3d.py) with a piergiaj-layout state dict (e.g.
  `rgb_imagenet.pt`), loaded with `torch.load(weights_only=True)` (no code runs). We squash-resize to 224x224
  (bilinear, align_corners=False, no antialias) and map 0..255 to [-1, 1] by 2x/255-1, as the TF reference.
- `i3d_torchscript`: StyleGAN-V's `i3d_torchscript.pt`, called as StyleGAN-V does:
  `model(uint8 clips, rescale=True, resize=True, return_features=True)` (resize and rescale happen inside).
  A TorchScript archive carries code, so it is loaded only when the user names this kind.
- `smoke`: a tiny seeded random Conv3d network for CPU plumbing checks. Its numbers are never comparable with
  published FVD.
- `toy`: the toy world's trained 3-D conv net (bench/toy/video_features.py; `fvd.detector: toy` = the shipped
  safetensors file). Its FVD means something inside the toy world only.
"""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.errors import UserError
from bench.metrics.i3d import InceptionI3d

KINDS = ("auto", "i3d_state_dict", "i3d_torchscript", "smoke", "toy")
STYLEGAN_V_KWARGS = {"rescale": True, "resize": True, "return_features": True}
SMOKE_DIM = 64


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def is_torchscript_archive(path: str | Path) -> bool:
    """TorchScript zips hold a `code/` folder and `constants.pkl`; plain torch.save zips do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any("/code/" in n or n.endswith("/constants.pkl") for n in zf.namelist())


def squash_resize(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, size, size): bilinear, align_corners=False, no antialias, no crop."""
    if frames.shape[-2:] == (size, size):
        return frames
    return F.interpolate(frames, size=(size, size), mode="bilinear", align_corners=False, antialias=False)


def _clips_to_input(clips: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    """uint8 (B, 3, T, H, W) -> float32 (B, 3, T, size, size) in [-1, 1]."""
    if clips.dtype != torch.uint8 or clips.ndim != 5 or clips.shape[1] != 3:
        raise ValueError(f"detectors take uint8 (B, 3, T, H, W) clips, got {clips.dtype} {tuple(clips.shape)}")
    b, c, t, h, w = clips.shape
    x = clips.to(device).permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w).float()
    x = squash_resize(x, size)  # resize on 0..255 then rescale: linear, so the order is immaterial
    x = x * (2.0 / 255.0) - 1.0
    return x.reshape(b, t, c, size, size).permute(0, 2, 1, 3, 4).contiguous()


class Detector:
    """Base: `features(clips)`; subclasses set kind, sha256, source, num_features, comparable, preprocess."""

    kind = ""
    comparable = True
    preprocess = ""

    def __init__(self, source: str, sha256: str, num_features: int, device: torch.device | str = "cpu"):
        self.source, self.sha256, self.num_features = source, sha256, num_features
        self.device = torch.device(device)

    def _forward(self, clips: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def features(self, clips: torch.Tensor) -> torch.Tensor:
        """uint8 (B, 3, T, H, W) -> float64 (B, D) on CPU."""
        out = self._forward(clips)
        if out.ndim != 2 or out.shape[1] != self.num_features:
            raise UserError(f"FVD detector '{self.source}' returned shape {tuple(out.shape)}, expected "
                            f"(B, {self.num_features}); is it really an I3D feature extractor?")
        return out.detach().to("cpu", torch.float64)

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "sha256": self.sha256,
                "num_features": self.num_features, "preprocess": self.preprocess}


class I3DStateDictDetector(Detector):
    kind = "i3d_state_dict"
    preprocess = ("uint8 -> squash resize 224x224 bilinear (align_corners=False, no antialias) -> 2x/255-1; "
                  "InceptionI3d 400-d logits averaged over time")

    def __init__(self, net: InceptionI3d, source: str, sha256: str, device: torch.device | str = "cpu"):
        super().__init__(source, sha256, net.num_features, device)
        self.net = net.to(self.device).eval().requires_grad_(False)

    def _forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net(_clips_to_input(clips, 224, self.device))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "note": "comparable only with FVDs made with this sha256: piergiaj's "
                "rgb_imagenet.pt is not the tf.hub FVD I3D; converted tf.hub weights (VideoGPT/TATS "
                "i3d_pretrained_400.pt) or StyleGAN-V's TorchScript are the published-number detectors"}


class I3DTorchScriptDetector(Detector):
    kind = "i3d_torchscript"
    preprocess = "uint8 (B,3,T,H,W) passed as is; resize and [-1,1] rescale inside the TorchScript (StyleGAN-V call)"

    def __init__(self, module: torch.jit.ScriptModule, source: str, sha256: str, device: torch.device | str = "cpu",
                 num_features: int = 400):
        super().__init__(source, sha256, num_features, device)
        self.module = module.to(self.device).eval()

    def _forward(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dtype != torch.uint8:
            raise ValueError("the StyleGAN-V TorchScript expects uint8 clips (rescale=True maps 0..255 to [-1, 1])")
        return self.module(clips.to(self.device), **STYLEGAN_V_KWARGS).float()

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "call_kwargs": dict(STYLEGAN_V_KWARGS)}


class SmokeVideoNet(nn.Module):
    """Two strided Conv3d layers, global average pool, linear projection; weights from a seeded generator."""

    SIZE = 32

    def __init__(self, dim: int = SMOKE_DIM, seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):  # default layer init draws from the global RNG: keep it untouched
            self.conv1 = nn.Conv3d(3, 16, 3, stride=(1, 2, 2), padding=1)
            self.conv2 = nn.Conv3d(16, 32, 3, stride=2, padding=1)
            self.proj = nn.Linear(32, dim)
        gen = torch.Generator().manual_seed(seed)  # own generator: never touches the global RNG
        with torch.no_grad():
            for name, p in self.named_parameters():
                fan_in = p[0].numel() if p.ndim > 1 else 1
                scale = (2.0 / fan_in) ** 0.5 if p.ndim > 1 else 0.1
                p.copy_(torch.randn(p.shape, generator=gen) * scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.proj(x.mean(dim=(2, 3, 4)))


class SmokeDetector(Detector):
    kind = "smoke"
    comparable = False
    preprocess = "uint8 -> squash resize 32x32 bilinear -> 2x/255-1; seeded random Conv3d net (not I3D)"

    def __init__(self, seed: int = 0, device: torch.device | str = "cpu"):
        net = SmokeVideoNet(SMOKE_DIM, seed)
        digest = hashlib.sha256(f"smoke-conv3d-v1-seed{seed}".encode())
        for key, tensor in net.state_dict().items():
            digest.update(key.encode())
            digest.update(tensor.numpy().tobytes())
        super().__init__(f"smoke:seed={seed}", digest.hexdigest(), SMOKE_DIM, device)
        self.net = net.to(self.device).eval().requires_grad_(False)

    def _forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.net(_clips_to_input(clips, SmokeVideoNet.SIZE, self.device))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "label": "smoke (random weights, not comparable)"}


class ToyDetector(Detector):
    kind = "toy"
    preprocess = "uint8 -> x/255 -> area resize 32x32 -> toy video net (pooled 64-d features)"

    def __init__(self, path: str | Path, device: torch.device | str = "cpu"):
        from bench.toy.video_features import load_video_features

        from bench.models import portable_path

        net = load_video_features(path, device)
        super().__init__(portable_path(path), file_sha256(path), net.dim, device)
        self.path = Path(path)
        self.net = net

    def _forward(self, clips: torch.Tensor) -> torch.Tensor:
        from bench.toy.video_features import video_features

        videos = clips.permute(0, 2, 1, 3, 4).float() / 255.0  # (B, 3, T, H, W) -> (B, T, 3, H, W) in [0, 1]
        return video_features(self.net, videos)

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "label": "toy world (comparable with toy-world runs only)"}


def _unwrap_state_dict(obj: Any, path: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise UserError(f"'{path}' is not an I3D state dict (a mapping of parameter names to tensors)")
    if obj and all(k.startswith("module.") for k in obj):  # saved from DataParallel
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def load_i3d_state_dict(path: str | Path) -> InceptionI3d:
    """Our InceptionI3d with a piergiaj-layout state dict loaded strictly (weights_only: no code runs)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the user's file
        raise UserError(f"could not read '{path}' as a weights-only state dict ({str(exc).splitlines()[0][:160]})") from None
    state = _unwrap_state_dict(obj, str(path))
    logits = state.get("logits.conv3d.weight")
    net = InceptionI3d(num_classes=int(logits.shape[0]) if logits is not None else 400)
    for key, value in net.state_dict().items():
        # checkpoints from PyTorch < 0.4.1 (rgb_imagenet.pt's era) have no BatchNorm step counter; it is unused
        # at eval, so fill it rather than reject the file
        if key.endswith(".num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    missing, unexpected = set(net.state_dict()) - set(state), set(state) - set(net.state_dict())
    if missing or unexpected:
        raise UserError(f"'{path}' does not match the piergiaj InceptionI3d layout: {len(missing)} missing keys "
                        f"(e.g. {sorted(missing)[:3]}), {len(unexpected)} unexpected (e.g. {sorted(unexpected)[:3]})")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UserError(f"'{path}' has I3D keys but wrong shapes: {str(exc).splitlines()[-1].strip()[:200]}") from None
    return net.eval()


def load_detector(spec: str, kind: str = "auto", device: torch.device | str = "cpu", seed: int = 0) -> Detector:
    """`spec` is 'smoke', 'toy' or a file. kind 'auto' recognises state dicts; TorchScript needs
    kind='i3d_torchscript', a toy video net file kind='toy'."""
    if kind not in KINDS:
        from bench.errors import did_you_mean
        raise UserError(f"unknown FVD detector kind '{kind}': {did_you_mean(kind, KINDS)}")
    if spec == "smoke" or kind == "smoke":
        if spec != "smoke" or kind not in ("auto", "smoke"):
            raise UserError("the smoke detector takes no file: set fvd.detector: smoke and fvd.detector_kind: auto")
        return SmokeDetector(seed=seed, device=device)
    if spec == "toy" or kind == "toy":
        from bench.models import resolve_shipped
        from bench.toy.video_features import WEIGHTS_FILE

        path = Path(resolve_shipped(spec, WEIGHTS_FILE)).expanduser()
        if not path.is_file():
            raise UserError(f"toy video feature file '{spec}' does not exist; use fvd.detector: toy for the shipped "
                            "one, or train one with `t2v-bench train video-features`")
        return ToyDetector(path, device)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UserError(f"FVD detector file '{spec}' does not exist; pass a path to rgb_imagenet.pt-style I3D "
                        "weights or StyleGAN-V's i3d_torchscript.pt (with fvd.detector_kind: i3d_torchscript), "
                        "or fvd.detector: smoke | toy for the CPU setups")
    sha = file_sha256(path)
    torchscript = is_torchscript_archive(path)
    if torchscript and kind != "i3d_torchscript":
        raise UserError(f"'{spec}' is a TorchScript archive, which runs code when loaded; if you trust it (e.g. "
                        "StyleGAN-V's i3d_torchscript.pt), set fvd.detector_kind: i3d_torchscript")
    if kind == "i3d_torchscript":
        if not torchscript:
            raise UserError(f"'{spec}' is not a TorchScript archive; use fvd.detector_kind: auto for a state dict")
        return I3DTorchScriptDetector(torch.jit.load(str(path), map_location="cpu"), str(path), sha, device)
    return I3DStateDictDetector(load_i3d_state_dict(path), str(path), sha, device)
