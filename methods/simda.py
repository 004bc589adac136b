"""SimDA (Xing et al., "SimDA: Simple Diffusion Adapter for Efficient Video Generation", CVPR 2024).

A frozen SD-style T2I made into a video model by small trainable adapters plus a parameter-free attention change,
following the official code (ChenHsing/SimDA, `simda/models/attention.py`, `unet_blocks.py`):

- spatial adapters in every spatial `BasicTransformerBlock`: `x + up(gelu(down(x)))` wrapped around the
  self-attention output, and `up(gelu(down(h)))` in parallel to the feed-forward, fed the un-normalised block
  input; `up` is zero-initialised, so both start as identity / zero;
- temporal adapters before every spatial `Transformer2DModel`: 1x1x1 conv down to C*ratio channels, a depthwise
  convolution over frames (kernel 3), 1x1x1 conv back up (zero-initialised), plus the skip;
- latent-shift attention replacing spatial self-attention: queries are the frame's own tokens, keys and values
  come from [previous frame, own frame] (frame 0 uses itself) after the latent shift of the official code (inside
  each 4x4 token cell, the token at (r, c) is taken from `SHIFTS[r][c]` frames earlier).

The base UNet is never modified: the method runs its own copy of the module tree whose parameters *are* the
base's (no extra weight memory), and all hooks and processors live on that copy. Adapter weights save to and load
from safetensors and fit any base UNet of the same architecture (e.g. a personalized SD 1.5 checkpoint).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from bench.errors import UserError
from bench.models import BaseComponents
from methods.base import LatentVideoMethod, shared_module_copy

# Official shift table (ChenHsing/SimDA simda/models/attention.py): frames-back for the token at (row % 4, col % 4).
SHIFTS = ((4, 3, 2, 1), (3, 2, 1, 0), (2, 1, 0, 0), (1, 2, 3, 4))
ATTENTION_MODES = ("latent_shift", "sparse_causal", "self")
# Options that change the adapters' function without changing tensor shapes: checked against a file's metadata.
_ARCH_OPTIONS = ("spatial_ratio", "temporal_ratio", "temporal_kernel", "temporal_activation")


class SpatialAdapter(nn.Module):
    """Bottleneck MLP; `fc2` zero-initialised so a fresh adapter adds exactly nothing."""

    def __init__(self, dim: int, ratio: float, skip: bool):
        super().__init__()
        hidden = max(1, int(dim * ratio))
        self.skip = skip
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        delta = self.fc2(F.gelu(self.fc1(x)))
        return x + delta if self.skip else delta


class TemporalAdapter(nn.Module):
    """1x1x1 down, depthwise conv over frames, 1x1x1 up (zero-initialised), residual. Works on (B*F, C, h, w)."""

    def __init__(self, channels: int, ratio: float, kernel: int, activation: str):
        super().__init__()
        hidden = max(1, int(channels * ratio))
        self.down = nn.Conv3d(channels, hidden, 1)
        self.conv = nn.Conv3d(hidden, hidden, (kernel, 1, 1), padding=(kernel // 2, 0, 0), groups=hidden)
        self.up = nn.Conv3d(hidden, channels, 1)
        self.activation = activation
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor, num_frames: int) -> torch.Tensor:
        bf, c, h, w = x.shape
        video = x.reshape(bf // num_frames, num_frames, c, h, w).transpose(1, 2)  # (B, C, F, h, w)
        mid = self.conv(self.down(video))
        if self.activation == "gelu":
            mid = F.gelu(mid)
        delta = self.up(mid).transpose(1, 2).reshape(bf, c, h, w)
        return x + delta


def _key(name: str) -> str:
    return name.replace(".", "_")  # ModuleDict keys cannot hold dots


def spatial_transformers(unet: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, Transformer2DModel) for every spatial transformer of the UNet, in module order."""
    from diffusers.models.transformers.transformer_2d import Transformer2DModel

    return [(name, m) for name, m in unet.named_modules() if isinstance(m, Transformer2DModel)]


class SimDAAdapters(nn.Module):
    """Every trainable SimDA module for one UNet, keyed by where it sits, so a state dict fits any UNet of the
    same architecture."""

    def __init__(self, unet: nn.Module, spatial_ratio: float = 0.25, temporal_ratio: float = 0.5,
                 temporal_kernel: int = 3, temporal_activation: str = "none"):
        super().__init__()
        self.attn = nn.ModuleDict()
        self.ff = nn.ModuleDict()
        self.temporal = nn.ModuleDict()
        for name, transformer in spatial_transformers(unet):
            self.temporal[_key(name)] = TemporalAdapter(transformer.config.in_channels, temporal_ratio,
                                                        temporal_kernel, temporal_activation)
            for k, block in enumerate(transformer.transformer_blocks):
                dim = block.attn1.to_q.in_features
                self.attn[_key(f"{name}.{k}")] = SpatialAdapter(dim, spatial_ratio, skip=True)
                self.ff[_key(f"{name}.{k}")] = SpatialAdapter(dim, spatial_ratio, skip=False)


class _FrameContext:
    """Per-call facts the processors need but diffusers does not pass: frames per video and the latent size."""

    num_frames: int = 1
    height: int = 0
    width: int = 0

    def grid(self, tokens: int) -> tuple[int, int]:
        """The (h, w) token grid at this resolution: the latent size halved (rounding up, as the UNet's stride-2
        convs do) until it holds `tokens` tokens."""
        h, w = self.height, self.width
        while h * w > tokens:
            h, w = (h + 1) // 2, (w + 1) // 2
        if h * w != tokens:
            raise RuntimeError(f"simda: cannot place {tokens} tokens on a grid from latent {self.height}x{self.width}")
        return h, w


def latent_shift(x: torch.Tensor, num_frames: int, h: int, w: int) -> torch.Tensor:
    """(B*F, h*w, C) tokens -> same shape, each token replaced by the one SHIFTS frames earlier (if it exists)."""
    bf, n, c = x.shape
    grid = x.reshape(bf // num_frames, num_frames, h, w, c)
    out = grid.clone()
    for r in range(4):
        for col in range(4):
            s = SHIFTS[r][col]
            if 0 < s < num_frames:
                out[:, s:, r::4, col::4] = grid[:, :-s, r::4, col::4]
    return out.reshape(bf, n, c)


class LatentShiftAttnProcessor:
    """Spatial self-attention with keys/values from [previous frame, own frame] (frame 0: itself twice), with the
    optional latent shift, followed by the SimDA attention adapter. Plain object (not an nn.Module) so the adapter
    is registered once, in SimDAAdapters."""

    def __init__(self, context: _FrameContext, adapter: SpatialAdapter, mode: str):
        self.context = context
        self.adapter = adapter
        self.mode = mode

    def __call__(self, attn: Any, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                 attention_mask: torch.Tensor | None = None, temb: torch.Tensor | None = None,
                 **kwargs: Any) -> torch.Tensor:
        if (encoder_hidden_states is not None or attention_mask is not None or attn.spatial_norm is not None
                or attn.group_norm is not None or hidden_states.ndim != 3):
            raise RuntimeError("simda: latent-shift attention supports SD-style spatial self-attention only")
        residual = hidden_states
        bf, n, _ = hidden_states.shape
        f = self.context.num_frames
        kv_tokens = hidden_states
        if self.mode == "latent_shift" and f > 1:
            kv_tokens = latent_shift(hidden_states, f, *self.context.grid(n))
        k, v = attn.to_k(kv_tokens), attn.to_v(kv_tokens)
        if self.mode != "self" and f > 1:
            prev = (torch.arange(f, device=k.device) - 1).clamp(min=0)  # frame 0 takes itself as "previous"

            def with_previous(z: torch.Tensor) -> torch.Tensor:
                z = z.reshape(bf // f, f, n, -1)
                return torch.cat([z[:, prev], z], dim=2).reshape(bf, 2 * n, -1)

            k, v = with_previous(k), with_previous(v)
        q = attn.to_q(hidden_states)
        head_dim = q.shape[-1] // attn.heads
        q, k, v = (z.reshape(bf, -1, attn.heads, head_dim).transpose(1, 2) for z in (q, k, v))
        if attn.norm_q is not None:
            q, k = attn.norm_q(q), attn.norm_k(k)
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(bf, n, attn.heads * head_dim)
        out = attn.to_out[1](attn.to_out[0](out.to(q.dtype)))
        if attn.residual_connection:
            out = out + residual
        out = out / attn.rescale_output_factor
        return self.adapter(out)


class SimDA(LatentVideoMethod):
    name = "simda"
    version = "1"
    weights_option = "adapter_weights"
    toy_weights = "simda-adapters.safetensors"  # what `adapter_weights: toy` loads (bench/toy/weights/<this>)

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        return {
            "spatial_ratio": 0.25,          # spatial adapter bottleneck = dim * ratio (official mlp_ratio)
            "temporal_ratio": 0.5,          # temporal adapter bottleneck = channels * ratio (official C/2)
            "temporal_kernel": 3,           # frames seen by the depthwise temporal conv (odd)
            "temporal_activation": "none",  # the official code has none; the paper may use GELU
            "attention": "latent_shift",    # latent_shift (official) | sparse_causal (no shift) | self (ablation)
            "adapter_weights": None,        # safetensors from save_adapters(); None = fresh zero-init adapters
            "adapter_seed": 0,              # init of the non-zero adapter layers
        }

    def __init__(self, base: BaseComponents, **options: Any):
        super().__init__(base, **options)
        o = self.options
        if o["attention"] not in ATTENTION_MODES:
            raise UserError(f"simda option attention must be one of {', '.join(ATTENTION_MODES)} "
                            f"(got {o['attention']!r})")
        if o["temporal_activation"] not in ("none", "gelu"):
            raise UserError(f"simda option temporal_activation must be 'none' or 'gelu' "
                            f"(got {o['temporal_activation']!r})")
        if int(o["temporal_kernel"]) < 1 or int(o["temporal_kernel"]) % 2 == 0:
            raise UserError(f"simda option temporal_kernel must be a positive odd number (got {o['temporal_kernel']})")
        for key in ("spatial_ratio", "temporal_ratio"):
            if not 0 < float(o[key]) <= 4:
                raise UserError(f"simda option {key} must be in (0, 4] (got {o[key]})")
        self.unet = shared_module_copy(base.unet)
        self.context = _FrameContext()
        with torch.random.fork_rng(devices=[]):  # seeded init that leaves the global RNG as it was
            torch.manual_seed(int(o["adapter_seed"]))
            self.adapters = SimDAAdapters(self.unet, **{k: o[k] for k in _ARCH_OPTIONS})
        self.adapter_sha256: str | None = None
        if o["adapter_weights"]:
            self.load_adapters(o["adapter_weights"])
        self.adapters.to(self.device, self.dtype).eval()
        self._wire()

    # ------------------------------------------------------------------ wiring onto the copy
    def _wire(self) -> None:
        for name, transformer in spatial_transformers(self.unet):
            transformer.register_forward_pre_hook(self._temporal_hook(self.adapters.temporal[_key(name)]),
                                                  with_kwargs=True)
            for k, block in enumerate(transformer.transformer_blocks):
                key = _key(f"{name}.{k}")
                block.attn1.set_processor(LatentShiftAttnProcessor(self.context, self.adapters.attn[key],
                                                                   self.options["attention"]))
                self._wire_parallel_ff(block, self.adapters.ff[key])

    def _temporal_hook(self, adapter: TemporalAdapter):
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
            if args:
                return (adapter(args[0], self.context.num_frames), *args[1:]), kwargs
            kwargs["hidden_states"] = adapter(kwargs["hidden_states"], self.context.num_frames)
            return args, kwargs
        return hook

    @staticmethod
    def _wire_parallel_ff(block: nn.Module, adapter: SpatialAdapter) -> None:
        """h = ff(norm3(h)) + h + adapter(h): the adapter reads the un-normalised h, which only norm3 sees, so
        norm3's input is held for the ff hook of the same block."""
        held: list[torch.Tensor] = []

        def keep_input(module: nn.Module, args: tuple) -> None:
            held[:] = [args[0]]

        def add_adapter(module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
            if not held:
                raise RuntimeError("simda: feed-forward ran without its norm3 input (chunked feed-forward?)")
            return output + adapter(held.pop())

        block.norm3.register_forward_pre_hook(keep_input)
        block.ff.register_forward_hook(add_adapter)

    # ------------------------------------------------------------------ method contract
    def predict_noise(self, latents: torch.Tensor, t: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        num_frames = latents.shape[2]
        self.context.num_frames, self.context.height, self.context.width = num_frames, *latents.shape[-2:]
        return self.unet_per_frame(self.unet, latents, t, text_embeds)

    def trainable_parameters(self) -> Iterable[nn.Parameter]:
        return self.adapters.parameters()

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["adapter_weights_sha256"] = self.adapter_sha256  # the path alone does not pin the weights
        return cfg

    # ------------------------------------------------------------------ weights
    def save_adapters(self, path: str | Path) -> Path:
        """Write every adapter tensor (float32) to a safetensors file, with the architecture options as metadata."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.adapters.state_dict().items()}
        meta = {"method": self.name, "options": json.dumps({k: self.options[k] for k in _ARCH_OPTIONS})}
        save_file(tensors, str(path), metadata=meta)
        return path

    def save_trainable(self, folder: str | Path) -> Path:
        """Export for `t2v-bench train`: <folder>/simda-adapters.safetensors, usable as `adapter_weights`."""
        return self.save_adapters(Path(folder) / self.toy_weights)

    def load_adapters(self, path: str | Path) -> None:
        from safetensors import safe_open
        from safetensors.torch import load_file

        from bench.models import resolve_shipped

        path = Path(resolve_shipped(path, self.toy_weights)).expanduser()
        if not path.is_file():
            raise UserError(f"simda adapter_weights '{path}' does not exist; write one with SimDA.save_adapters()")
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        saved = json.loads(meta.get("options", "{}"))
        clash = {k: (saved[k], self.options[k]) for k in _ARCH_OPTIONS if k in saved and saved[k] != self.options[k]}
        if clash:
            raise UserError(f"simda adapter_weights '{path}' were saved with other adapter options "
                            f"(file vs now: {clash}); set the same options")
        state = load_file(str(path))
        try:
            self.adapters.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise UserError(f"simda adapter_weights '{path}' do not fit this base UNet "
                            f"({str(exc).splitlines()[0][:160]}); use adapters trained on this architecture") from None
        self.adapter_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
