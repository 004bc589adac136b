"""Dual-Stream Diffusion Net (Liu et al., "Dual-Stream Diffusion Net for Text-to-Video Generation", arXiv 2308.08316):
a RECONSTRUCTION, not a reproduction.

No code or weights are public, and the paper's description is high level. What the paper describes: a content
stream (the pretrained T2I as a frozen "content base unit" plus a low-rank trainable "content increment unit"), a
motion stream (a 3D-UNet denoising motion), a cross-transformer "dual-stream interaction" that aligns the two
streams in both directions, and a motion decomposer/combiner around them. What this module builds from that:

- content stream: the base UNet, run per frame, optionally with a peft LoRA (zero-initialised B) on its
  attention projections (`content_lora_rank`, 0 = off) as the content increment; the LoRA lives on a copy of the
  module tree that shares the base weights, so the base UNet itself is never modified;
- motion stream: the base UNet made into a diffusers `UNetMotionModel` with an AnimateDiff-style motion adapter
  (the `tiny` one has zeroed `proj_out`, i.e. starts as an identity). Its spatial layers *share* the frozen base
  weights (our choice: the paper trains a separate 3D-UNet; here only its temporal layers are trainable, which
  keeps the method training-efficient and costs no extra weight memory);
- interaction: at the output of every down block, of the mid block and of every up block, a bidirectional
  cross-attention block (content tokens attend to the motion tokens of the same frame and vice versa, pre-LayerNorm,
  residual, `to_out` zero-initialised). Both directions read the features from before the exchange;
- the two streams denoise the *same* latent (our choice, replacing the paper's learned motion decomposer) and their
  noise predictions are combined as (1 - motion_weight) * content + motion_weight * motion (our choice, replacing
  the paper's motion combiner).

Zero-initialised LoRA and interaction with motion_weight = 0 reproduce per_frame exactly. `config()["reconstruction"]`
lists these choices so every result carries them.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from bench.errors import UserError
from bench.models import BaseComponents
from methods.animatediff import OFFICIAL_NOISE_SCHEDULE, OFFICIAL_NOISE_SCHEDULE_SOURCE
from methods.attention import FrameContext
from methods.base import LatentVideoMethod, shared_module_copy

RECONSTRUCTION = [
    "reconstruction from the paper's text: no public code or weights",
    "content stream = frozen base UNet + optional zero-init LoRA (peft) on to_q/to_k/to_v/to_out.0 of every "
    "attention (content increment unit)",
    "motion stream = diffusers UNetMotionModel whose spatial layers share the frozen base weights; only its "
    "motion modules (AnimateDiff-style temporal transformers) are trainable",
    "interaction = bidirectional cross-attention (per frame, pre-LayerNorm, residual, zero-init to_out) after every "
    "down block, the mid block and every up block; both directions read pre-exchange features",
    "no learned motion decomposer: both streams denoise the same latent with one scheduler",
    "combiner = weighted sum of the two noise predictions: (1 - motion_weight) * content + motion_weight * motion",
]


class StreamInteraction(nn.Module):
    """Cross-attention both ways between content and motion features of one resolution, zero-initialised."""

    def __init__(self, channels: int, head_dim: int):
        from diffusers.models.attention_processor import Attention

        super().__init__()
        heads = max(1, channels // head_dim)
        self.norm_content = nn.LayerNorm(channels)
        self.norm_motion = nn.LayerNorm(channels)
        self.content_from_motion = Attention(channels, cross_attention_dim=channels, heads=heads,
                                             dim_head=channels // heads, out_bias=True)
        self.motion_from_content = Attention(channels, cross_attention_dim=channels, heads=heads,
                                             dim_head=channels // heads, out_bias=True)
        for attn in (self.content_from_motion, self.motion_from_content):
            nn.init.zeros_(attn.to_out[0].weight)  # a fresh block adds exactly zero to both streams
            nn.init.zeros_(attn.to_out[0].bias)

    def forward(self, content: torch.Tensor, motion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B*F, C, h, w) each -> same; attention runs within each frame over its h*w tokens."""
        n, c, h, w = content.shape
        tc = self.norm_content(content.flatten(2).transpose(1, 2))
        tm = self.norm_motion(motion.flatten(2).transpose(1, 2))
        dc = self.content_from_motion(tc, encoder_hidden_states=tm)
        dm = self.motion_from_content(tm, encoder_hidden_states=tc)
        back = lambda d: d.transpose(1, 2).reshape(n, c, h, w)  # noqa: E731
        return content + back(dc), motion + back(dm)


def _assign(module: nn.Module, name: str, tensor: torch.Tensor) -> None:
    parent_name, _, leaf = name.rpartition(".")
    parent = module.get_submodule(parent_name) if parent_name else module
    if leaf in parent._parameters:
        parent._parameters[leaf] = tensor
    else:
        parent._buffers[leaf] = tensor


def motion_stream(unet: nn.Module, adapter: nn.Module) -> nn.Module:
    """A UNetMotionModel built on the meta device whose spatial tensors are the base UNet's and whose motion-module
    tensors are the adapter's: nothing is copied, nothing in `unet` changes."""
    from diffusers import UNetMotionModel

    with torch.device("meta"):
        model = UNetMotionModel.from_unet2d(unet, adapter, load_weights=False)
    own = dict(model.named_parameters())
    own.update(model.named_buffers())
    for name, tensor in [*unet.named_parameters(), *unet.named_buffers()]:
        if name in own:
            _assign(model, name, tensor)
    for name, tensor in [*adapter.named_parameters(), *adapter.named_buffers()]:
        if name in own:
            _assign(model, name, tensor)
    missing = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if missing:
        raise UserError(f"dual_stream: the motion adapter does not cover the motion UNet ({missing[0]} and "
                        f"{len(missing) - 1} more); use an adapter made for this base family")
    return model


class DualStream(LatentVideoMethod):
    name = "dual_stream"
    version = "2"  # 2: AnimateDiff's official noise schedule and GroupNorm conventions by default
    weights_option = "weights"
    toy_weights = "dual-stream.safetensors"  # what `weights: toy` loads (bench/toy/weights/<this>)
    # Its motion stream is AnimateDiff's: sample (and train) on AnimateDiff's official schedule by default.
    noise_schedule = OFFICIAL_NOISE_SCHEDULE
    noise_schedule_source = OFFICIAL_NOISE_SCHEDULE_SOURCE

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        return {
            "motion_weight": 0.5,          # share of the motion stream in the combined noise prediction
            "motion_adapter": "tiny",      # "tiny" (zero proj_out), or an AnimateDiff MotionAdapter folder / hub id
            "zero_init_proj_out": False,   # zero a loaded adapter's proj_out (start training from the identity)
            "interaction": True,           # the cross-attention interaction blocks (False = independent streams)
            "interaction_head_dim": 64,    # channels per head in the interaction attention
            "content_lora_rank": 4,        # rank of the content-increment LoRA; 0 = no LoRA
            "weights": None,               # safetensors from save_weights(); None = fresh (zero-init) modules
            "adapter_seed": 0,             # init of the non-zero new layers
            "norm_convention": "official",  # motion-stream GroupNorms as AnimateDiff's code, or "diffusers"
            "adapter_version": "auto",     # which AnimateDiff version's conventions (methods/norms.py)
        }

    def __init__(self, base: BaseComponents, **options: Any):
        from methods.animatediff import load_motion_adapter, zero_motion_proj_out

        super().__init__(base, **options)
        o = self.options
        if not 0.0 <= float(o["motion_weight"]) <= 1.0:
            raise UserError(f"dual_stream option motion_weight must be in [0, 1] (got {o['motion_weight']})")
        if int(o["content_lora_rank"]) < 0 or int(o["interaction_head_dim"]) < 1:
            raise UserError("dual_stream options content_lora_rank must be >= 0 and interaction_head_dim >= 1")
        for key in ("class_embed_type", "addition_embed_type", "encoder_hid_dim_type"):
            if base.unet.config.get(key) is not None:
                raise UserError(f"dual_stream supports SD-1.x/2.x-style UNets only (this one sets {key})")
        if base.unet.config.get("center_input_sample"):
            raise UserError("dual_stream supports SD-1.x/2.x-style UNets only (this one sets center_input_sample)")

        with torch.random.fork_rng(devices=[]):  # seeded init that leaves the global RNG as it was
            torch.manual_seed(int(o["adapter_seed"]))
            self.adapter = load_motion_adapter(o["motion_adapter"], base.unet.config, int(o["adapter_seed"]))
            self.content = shared_module_copy(base.unet)
            if int(o["content_lora_rank"]) > 0:
                from peft import LoraConfig

                rank = int(o["content_lora_rank"])
                self.content.add_adapter(LoraConfig(r=rank, lora_alpha=rank, init_lora_weights=True,
                                                    target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
            widths = list(base.unet.config.block_out_channels)
            levels = ([f"down_{i}" for i in range(len(widths))] + ["mid"] +
                      [f"up_{i}" for i in range(len(widths))])
            channels = widths + [widths[-1]] + widths[::-1]
            self.interaction = nn.ModuleDict({
                level: StreamInteraction(ch, int(o["interaction_head_dim"])) for level, ch in zip(levels, channels)
            }) if o["interaction"] else None
        if o["zero_init_proj_out"]:
            zero_motion_proj_out(self.adapter)
        self.adapter.eval().requires_grad_(False)
        self._to_base_device(self.adapter)
        try:
            self.motion = motion_stream(base.unet, self.adapter)
        except (ValueError, RuntimeError) as exc:
            raise UserError(f"motion adapter '{o['motion_adapter']}' does not fit the base UNet "
                            f"({str(exc).splitlines()[0][:160]}); use an adapter made for this base family") from None
        from methods.norms import apply_norm_convention, resolve_norms

        self.frame_context = FrameContext()  # F for motion-stream norms that pool over frames (v1, official)
        self.norms = resolve_norms(o["norm_convention"], o["adapter_version"], o["motion_adapter"], self.adapter.config)
        apply_norm_convention(self.motion, self.norms, self.frame_context)  # the motion stream's own modules only
        self.motion.eval()
        self.content.eval()
        self._to_base_device(self.content)  # moves only the LoRA tensors: the shared base ones are already there
        if self.interaction is not None:
            self._to_base_device(self.interaction.eval())
        self.max_frames = int(self.adapter.config.motion_max_seq_length)
        self.weights_sha256: str | None = None
        if o["weights"]:
            self.load_weights(o["weights"])

    def _to_base_device(self, module: nn.Module) -> None:
        module.to(self.device)
        if any(p.dtype != self.dtype for p in module.parameters()):  # skip no-op casts: diffusers warns on them
            module.to(self.dtype)

    # ------------------------------------------------------------------ the joint forward
    def stream_noise(self, latents: torch.Tensor, t: torch.Tensor,
                     text_embeds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Both streams, block by block with the interaction between them -> (content, motion) noise, each
        (B, C, F, h, w). The content path calls the same UNet modules in the same order as
        UNet2DConditionModel.forward, so with zero interaction it is the per-frame T2I, bit for bit."""
        num_frames = latents.shape[2]
        if num_frames > self.max_frames:
            raise UserError(f"dual_stream: {num_frames} frames exceed the motion adapter's "
                            f"motion_max_seq_length={self.max_frames}; lower sampling.num_frames")
        c, m, inter = self.content, self.motion, self.interaction
        x = self.fold_frames(latents)
        ehs = text_embeds.repeat_interleave(num_frames, 0)
        # Both streams share the base time embedding, so one per-row embedding serves both.
        emb = c.time_embedding(c.get_time_embed(sample=x, timestep=t), None)
        if c.time_embed_act is not None:
            emb = c.time_embed_act(emb)
        cross = dict(encoder_hidden_states=ehs, attention_mask=None, cross_attention_kwargs=None)
        frames = dict(num_frames=num_frames)

        def exchange(level: str, hc: torch.Tensor, hm: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return inter[level](hc, hm) if inter is not None else (hc, hm)

        hc, hm = c.conv_in(x), m.conv_in(x)
        skips_c, skips_m = (hc,), (hm,)
        for i, (bc, bm) in enumerate(zip(c.down_blocks, m.down_blocks)):
            if getattr(bc, "has_cross_attention", False):
                hc, rc = bc(hidden_states=hc, temb=emb, encoder_attention_mask=None, **cross)
                hm, rm = bm(hidden_states=hm, temb=emb, **cross, **frames)
            else:
                hc, rc = bc(hidden_states=hc, temb=emb)
                hm, rm = bm(hidden_states=hm, temb=emb, **frames)
            skips_c, skips_m = skips_c + rc, skips_m + rm
            hc, hm = exchange(f"down_{i}", hc, hm)

        hc = c.mid_block(hc, emb, encoder_attention_mask=None, **cross)
        hm = m.mid_block(hm, emb, **cross, **(frames if hasattr(m.mid_block, "motion_modules") else {}))
        hc, hm = exchange("mid", hc, hm)

        # Latent sizes that do not divide by the total upsampling need explicit upsample sizes (as in diffusers).
        forward_upsample_size = any(s % 2 ** c.num_upsamplers for s in x.shape[-2:])
        upsample_size = None
        for i, (bc, bm) in enumerate(zip(c.up_blocks, m.up_blocks)):
            n = len(bc.resnets)
            res_c, skips_c = skips_c[-n:], skips_c[:-n]
            res_m, skips_m = skips_m[-n:], skips_m[:-n]
            if i < len(c.up_blocks) - 1 and forward_upsample_size:
                upsample_size = skips_c[-1].shape[2:]
            if getattr(bc, "has_cross_attention", False):
                hc = bc(hidden_states=hc, temb=emb, res_hidden_states_tuple=res_c, upsample_size=upsample_size,
                        encoder_attention_mask=None, **cross)
                hm = bm(hidden_states=hm, temb=emb, res_hidden_states_tuple=res_m, upsample_size=upsample_size,
                        **cross, **frames)
            else:
                hc = bc(hidden_states=hc, temb=emb, res_hidden_states_tuple=res_c, upsample_size=upsample_size)
                hm = bm(hidden_states=hm, temb=emb, res_hidden_states_tuple=res_m, upsample_size=upsample_size,
                        **frames)
            hc, hm = exchange(f"up_{i}", hc, hm)

        outs = []
        for unet, h in ((c, hc), (m, hm)):
            if unet.conv_norm_out is not None:
                h = unet.conv_act(unet.conv_norm_out(h))
            outs.append(self.unfold_frames(unet.conv_out(h), num_frames))
        return outs[0], outs[1]

    def predict_noise(self, latents: torch.Tensor, t: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        with self.frame_context.frames(latents.shape[2]):
            content, motion = self.stream_noise(latents, t, text_embeds)
        w = float(self.options["motion_weight"])
        return (1.0 - w) * content + w * motion

    # ------------------------------------------------------------------ accounting and weights
    def named_trainable(self) -> dict[str, nn.Parameter]:
        """Every trainable tensor under a stable name: motion modules, interaction blocks, content LoRA."""
        named = {f"motion.{k}": p for k, p in self.motion.named_parameters() if "motion_modules." in k}
        if self.interaction is not None:
            named.update({f"interaction.{k}": p for k, p in self.interaction.named_parameters()})
        named.update({f"content.{k}": p for k, p in self.content.named_parameters() if "lora_" in k})
        return named

    def trainable_parameters(self) -> Iterable[nn.Parameter]:
        return self.named_trainable().values()

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        cfg["reconstruction"] = list(RECONSTRUCTION)
        cfg["weights_sha256"] = self.weights_sha256
        cfg["norms"] = self.norms
        return cfg

    def setup_record(self) -> dict[str, Any]:
        return {**super().setup_record(), "norms": self.norms}

    def save_weights(self, path: str | Path) -> Path:
        """Every trainable tensor (float32) to one safetensors file."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        save_file({k: p.detach().to("cpu", torch.float32).contiguous() for k, p in self.named_trainable().items()},
                  str(path), metadata={"method": self.name})
        return path

    def save_trainable(self, folder: str | Path) -> Path:
        """Export for `t2v-bench train`: <folder>/dual-stream.safetensors, usable as `weights`."""
        return self.save_weights(Path(folder) / self.toy_weights)

    def load_weights(self, path: str | Path) -> None:
        from safetensors.torch import load_file

        from bench.models import resolve_shipped

        path = Path(resolve_shipped(path, self.toy_weights)).expanduser()
        if not path.is_file():
            raise UserError(f"dual_stream weights '{path}' do not exist; write them with DualStream.save_weights()")
        state, named = load_file(str(path)), self.named_trainable()
        if set(state) != set(named) or any(state[k].shape != named[k].shape for k in named):
            odd = sorted(set(state) ^ set(named)) or [k for k in named if state[k].shape != named[k].shape]
            raise UserError(f"dual_stream weights '{path}' do not fit these options and base UNet (first mismatch: "
                            f"{odd[0]}); use the same content_lora_rank, interaction and motion adapter shape")
        with torch.no_grad():
            for k, p in named.items():
                p.copy_(state[k])
        self.weights_sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
