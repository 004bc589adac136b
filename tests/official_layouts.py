"""Writers of the official file layouts, for tests: each maps a diffusers model's state dict onto the key names
the original code saves (AnimateDiff motion modules and MotionLoRA, LDM single-file SD checkpoints, kohya LoRA),
written here from the published layouts so that the loaders under test are checked against an independent
mapping, not against their own inverse."""
from __future__ import annotations

import math
import re

import torch


def sinusoid(max_len: int, dim: int) -> torch.Tensor:
    """The official PositionalEncoding table, (1, max_len, dim)."""
    pos = torch.arange(max_len).unsqueeze(1)
    div = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    pe = torch.zeros(1, max_len, dim)
    pe[0, :, 0::2] = torch.sin(pos * div)
    pe[0, :, 1::2] = torch.cos(pos * div)
    return pe


def official_motion_module(adapter_state: dict[str, torch.Tensor], max_len: int) -> dict[str, torch.Tensor]:
    """diffusers MotionAdapter keys -> mm_sd_v15_v2.ckpt / v3_sd15_mm.ckpt keys (VanillaTemporalModule:
    temporal_transformer.{norm, proj_in, transformer_blocks.N.{attention_blocks.{0,1}, norms.{0,1}, ff, ff_norm},
    proj_out}, with a pos_encoder.pe table in each attention block)."""
    out = {}
    for key, value in adapter_state.items():
        if key.endswith("pos_embed.pe"):
            continue
        head, rest = re.match(r"^(.*\.motion_modules\.\d+)\.(.*)$", key).groups()
        for new, old in (("attention_blocks.0.", "attn1."), ("attention_blocks.1.", "attn2."), ("norms.0.", "norm1."),
                         ("norms.1.", "norm2."), ("ff_norm.", "norm3.")):
            rest = rest.replace(old, new)
        out[f"{head}.temporal_transformer.{rest}"] = value.clone()
        m = re.match(r"^(.*attention_blocks\.\d\.)to_q\.weight$", rest)
        if m:
            out[f"{head}.temporal_transformer.{m.group(1)}pos_encoder.pe"] = sinusoid(max_len, value.shape[1])
    return out


def _resnet(prefix: str, new: str, state: dict, out: dict, names: dict[str, str]) -> None:
    """Copy every key under `prefix` to `new`, renaming its first component through `names`."""
    for key, value in state.items():
        if key.startswith(prefix + "."):
            first, dot, tail = key[len(prefix) + 1:].partition(".")
            out[f"{new}.{names.get(first, first)}{dot}{tail}"] = value.clone()


UNET_RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1",
               "norm2": "out_layers.0", "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}


def ldm_unet(unet) -> dict[str, torch.Tensor]:
    """diffusers UNet2DConditionModel -> LDM `model.diffusion_model.*` (openaimodel.UNetModel) keys."""
    sd, cfg, out = unet.state_dict(), unet.config, {}
    layers = cfg.layers_per_block
    p = "model.diffusion_model"
    simple = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
              "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    for old, new in simple.items():
        for suffix in ("weight", "bias"):
            out[f"{p}.{new}.{suffix}"] = sd[f"{old}.{suffix}"].clone()
    for i in range(len(cfg.block_out_channels)):
        for j in range(layers):
            idx = 1 + i * (layers + 1) + j
            _resnet(f"down_blocks.{i}.resnets.{j}", f"{p}.input_blocks.{idx}.0", sd, out, UNET_RESNET)
            _resnet(f"down_blocks.{i}.attentions.{j}", f"{p}.input_blocks.{idx}.1", sd, out, {})
        _resnet(f"down_blocks.{i}.downsamplers.0.conv", f"{p}.input_blocks.{(i + 1) * (layers + 1)}.0.op", sd, out, {})
        for j in range(layers + 1):
            idx = i * (layers + 1) + j
            _resnet(f"up_blocks.{i}.resnets.{j}", f"{p}.output_blocks.{idx}.0", sd, out, UNET_RESNET)
            _resnet(f"up_blocks.{i}.attentions.{j}", f"{p}.output_blocks.{idx}.1", sd, out, {})
        has_attn = any(k.startswith(f"up_blocks.{i}.attentions.") for k in sd)
        last = i * (layers + 1) + layers
        _resnet(f"up_blocks.{i}.upsamplers.0.conv", f"{p}.output_blocks.{last}.{2 if has_attn else 1}.conv", sd, out, {})
    _resnet("mid_block.resnets.0", f"{p}.middle_block.0", sd, out, UNET_RESNET)
    _resnet("mid_block.attentions.0", f"{p}.middle_block.1", sd, out, {})
    _resnet("mid_block.resnets.1", f"{p}.middle_block.2", sd, out, UNET_RESNET)
    return out


VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
VAE_ATTN = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out": "proj_out"}


def ldm_vae(vae) -> dict[str, torch.Tensor]:
    """diffusers AutoencoderKL -> LDM `first_stage_model.*` keys (mid attention as 1x1 convs)."""
    sd, out, p = vae.state_dict(), {}, "first_stage_model"
    n = len(vae.config.block_out_channels)
    for part in ("encoder", "decoder"):
        for old, new in (("conv_in", "conv_in"), ("conv_out", "conv_out"), ("conv_norm_out", "norm_out")):
            for s in ("weight", "bias"):
                out[f"{p}.{part}.{new}.{s}"] = sd[f"{part}.{old}.{s}"].clone()
        for j in range(2):
            _resnet(f"{part}.mid_block.resnets.{j}", f"{p}.{part}.mid.block_{j + 1}", sd, out, VAE_RESNET)
        for key, value in sd.items():
            m = re.match(rf"^{part}\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out)(?:\.0)?\.(weight|bias)$", key)
            if m:
                w = value.clone()
                if m.group(2) == "weight" and m.group(1) != "group_norm":
                    w = w[:, :, None, None]
                out[f"{p}.{part}.mid.attn_1.{VAE_ATTN[m.group(1)]}.{m.group(2)}"] = w
        blocks = "down_blocks" if part == "encoder" else "up_blocks"
        for i in range(n):
            ldm_i = i if part == "encoder" else n - 1 - i
            where = "down" if part == "encoder" else "up"
            for key in sd:
                m = re.match(rf"^{part}\.{blocks}\.{i}\.resnets\.(\d+)\.", key)
                if m:
                    _resnet(f"{part}.{blocks}.{i}.resnets.{m.group(1)}", f"{p}.{part}.{where}.{ldm_i}.block.{m.group(1)}",
                            {key: sd[key]}, out, VAE_RESNET)
            sampler = "downsamplers" if part == "encoder" else "upsamplers"
            for s in ("weight", "bias"):
                key = f"{part}.{blocks}.{i}.{sampler}.0.conv.{s}"
                if key in sd:
                    out[f"{p}.{part}.{where}.{ldm_i}.{where}sample.conv.{s}"] = sd[key].clone()
    for name in ("quant_conv", "post_quant_conv"):
        for s in ("weight", "bias"):
            out[f"{p}.{name}.{s}"] = sd[f"{name}.{s}"].clone()
    return out


def ldm_text_encoder(text_encoder) -> dict[str, torch.Tensor]:
    """transformers CLIPTextModel -> LDM `cond_stage_model.transformer.*` (FrozenCLIPEmbedder) keys."""
    # LDM files name the HF CLIPTextModel's keys with their text_model. prefix (newer transformers drop it)
    return {f"cond_stage_model.transformer.{'' if k.startswith('text_model.') else 'text_model.'}{k}": v.clone()
            for k, v in text_encoder.state_dict().items()}


def kohya_lora(module_name: str, down: torch.Tensor, up: torch.Tensor, alpha: float,
               prefix: str = "lora_unet") -> dict[str, torch.Tensor]:
    """One layer of a kohya/A1111 LoRA: lora_unet_<module path with _>.{lora_down,lora_up}.weight + .alpha."""
    stem = f"{prefix}_{module_name.replace('.', '_')}"
    return {f"{stem}.lora_down.weight": down, f"{stem}.lora_up.weight": up, f"{stem}.alpha": torch.tensor(alpha)}
