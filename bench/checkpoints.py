"""The checkpoint files users have, each through diffusers' own loader (safetensors, or torch.load with
weights_only=True; never pickle code):

- original AnimateDiff motion modules (`mm_sd_v15.ckpt`, `mm_sd_v15_v2.ckpt`, `v3_sd15_mm.ckpt` layouts:
  `down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.to_q.weight`, ...)
  via `MotionAdapter.from_single_file`, with the config read off the tensor shapes so that no hub config is needed;
- a single-file personalized base (CivitAI-style LDM keys: `model.diffusion_model.*`, `first_stage_model.*`,
  `cond_stage_model.*`) via `StableDiffusionPipeline.from_single_file` with a local diffusers config folder;
- AnimateDiff MotionLoRA (LoRA on the motion modules' attention:
  `...temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_q_lora.down.weight`) and the v3
  domain-adapter LoRA (same `processor.to_q_lora.down` form on the spatial attention) via `load_lora_weights`,
  fused at their scales into the motion UNet, as the official `load_weights` adds scale * up @ down.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from bench.errors import UserError

CHECKPOINT_SUFFIXES = (".safetensors", ".ckpt", ".pt", ".pth", ".bin")
# Not readable off tensor shapes; every official SD-1.5 motion module uses these (motion_module_kwargs).
OFFICIAL_MOTION_HEADS = 8
OFFICIAL_MOTION_NORM_GROUPS = 32


def is_checkpoint_file(spec: str | Path) -> bool:
    return str(spec).lower().endswith(CHECKPOINT_SUFFIXES)


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """A state dict from .safetensors, or from .ckpt/.pt/.pth with torch.load(weights_only=True) (the official
    files nest it under 'state_dict' and may carry an 'animatediff_config' entry, dropped here)."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"checkpoint '{path}' does not exist; pass an existing .safetensors or .ckpt file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return load_file(str(path))
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickled code, not just tensors: refuse rather than execute it
        raise UserError(f"'{path}' cannot be read safely with torch.load(weights_only=True) "
                        f"({str(exc).splitlines()[0][:160]}); convert it to .safetensors") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}


def fingerprint_file(path: str | Path, limit_mb: int = 512) -> str | None:
    """sha256 (16 hex) of a weights file for records and cache keys; None above `limit_mb` (hashing a multi-GB
    base would cost more than the run it identifies; its path and size are recorded instead)."""
    from bench.models import weights_fingerprint

    path = Path(path).expanduser()
    return weights_fingerprint(path) if path.is_file() and path.stat().st_size <= limit_mb * 2**20 else None


def file_record(path: str | Path) -> dict[str, Any]:
    from bench.models import portable_path

    path = Path(path).expanduser()
    return {"path": portable_path(path), "bytes": path.stat().st_size, "sha256": fingerprint_file(path)}


# ----------------------------------------------------------------------------------------------- motion modules
_MM_KEY = re.compile(r"^(down_blocks|up_blocks)\.(\d+)\.motion_modules\.(\d+)\.temporal_transformer\.")


def motion_adapter_config(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """A MotionAdapter config read off an original motion-module state dict's shapes."""
    blocks: dict[int, set[int]] = {}
    layers: set[int] = set()
    for key in state_dict:
        m = _MM_KEY.match(key)
        if m and m.group(1) == "down_blocks":
            blocks.setdefault(int(m.group(2)), set()).add(int(m.group(3)))
        t = re.search(r"\.temporal_transformer\.transformer_blocks\.(\d+)\.", key)
        if t:
            layers.add(int(t.group(1)))
    if not blocks:
        raise UserError("this file holds no AnimateDiff motion modules (no 'down_blocks.N.motion_modules.N."
                        "temporal_transformer.*' keys); pass an original motion module such as mm_sd_v15_v2.ckpt")
    channels = [int(state_dict[f"down_blocks.{i}.motion_modules.0.temporal_transformer.norm.weight"].shape[0])
                for i in sorted(blocks)]
    pe = next(v for k, v in state_dict.items() if k.endswith("pos_encoder.pe"))
    return {"block_out_channels": channels, "motion_layers_per_block": len(blocks[min(blocks)]),
            "motion_transformer_layers_per_block": len(layers), "motion_mid_block_layers_per_block": 1,
            "motion_num_attention_heads": OFFICIAL_MOTION_HEADS, "motion_norm_num_groups": OFFICIAL_MOTION_NORM_GROUPS,
            "motion_max_seq_length": int(pe.shape[1]),
            "use_motion_mid_block": any(k.startswith("mid_block.motion_modules.") for k in state_dict)}


def load_motion_adapter_file(path: str | Path):
    """An original AnimateDiff motion-module file as a diffusers MotionAdapter (`MotionAdapter.from_single_file`,
    whose key mapping drops the fixed sinusoidal `pos_encoder.pe`; diffusers recomputes the same table)."""
    from diffusers import MotionAdapter

    state = read_checkpoint(path)
    config = motion_adapter_config(state)
    with tempfile.TemporaryDirectory() as folder:  # a local config: no hub lookup, works with HF_HUB_OFFLINE=1
        Path(folder, "config.json").write_text(json.dumps({"_class_name": "MotionAdapter", **config}))
        try:
            return MotionAdapter.from_single_file(state, config=folder, local_files_only=True)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise UserError(f"motion module '{path}' does not load as a MotionAdapter "
                            f"({str(exc).splitlines()[0][:200]})") from None


# ----------------------------------------------------------------------------------------------- LoRA files
def motion_lora_to_diffusers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official MotionLoRA keys onto diffusers' motion-module names (the renames of diffusers'
    convert_animatediff_checkpoint_to_diffusers), keeping the `processor.to_q_lora.down` LoRA form that
    diffusers' loader reads."""
    from diffusers.loaders.single_file_utils import convert_animatediff_checkpoint_to_diffusers

    return convert_animatediff_checkpoint_to_diffusers(state_dict)


def diffusers_motion_lora_to_official(peft_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The inverse, for exporting a LoRA trained here with PEFT (`...attn1.to_q.lora_A.weight`) in the official
    MotionLoRA layout (`...temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_q_lora.down
    .weight`), so that shipped files go through the same loader as downloaded ones."""
    out = {}
    for key, value in peft_state.items():
        m = re.match(r"^(.*\.motion_modules\.\d+)\.(transformer_blocks\.\d+)\.attn(\d)\.(to_q|to_k|to_v|to_out\.0)"
                     r"\.lora_(A|B)\.weight$", key)
        if m is None:
            raise ValueError(f"not a motion-module attention LoRA key: {key}")
        proj = "to_out" if m.group(4) == "to_out.0" else m.group(4)
        half = "down" if m.group(5) == "A" else "up"
        out[f"{m.group(1)}.temporal_transformer.{m.group(2)}.attention_blocks.{int(m.group(3)) - 1}"
            f".processor.{proj}_lora.{half}.weight"] = value.detach().contiguous().cpu()
    return out


# AnimateDiff options: a MotionLoRA path (or a list of them, as the official motion_module_lora_configs), its scale
# (or one per file), and the v3 domain-adapter LoRA with its scale. 'toy:<direction>' names a shipped toy MotionLoRA.
LORA_OPTIONS = {"motion_lora": None, "motion_lora_scale": 1.0, "domain_adapter_lora": None, "domain_adapter_scale": 1.0}
TOY_MOTION_LORAS = "motion-loras"  # bench/toy/weights/motion-loras/<direction>.safetensors


def resolve_lora_path(spec: str) -> Path:
    from bench.models import toy_weights

    if str(spec).startswith("toy:"):
        return toy_weights(f"{TOY_MOTION_LORAS}/{str(spec)[4:]}.safetensors")
    path = Path(str(spec)).expanduser()
    if not path.is_file():
        raise UserError(f"LoRA file '{spec}' does not exist; pass a .safetensors/.ckpt file or toy:<direction>")
    return path


def lora_specs(options: dict[str, Any]) -> list[dict[str, Any]]:
    """[{"path", "scale", "kind"}] from the LoRA options (missing options: none)."""
    out = []
    motion = options.get("motion_lora")
    if motion:
        paths = [motion] if isinstance(motion, str) else list(motion)
        scales = options.get("motion_lora_scale", 1.0)
        scales = [scales] * len(paths) if isinstance(scales, (int, float)) else list(scales)
        if len(scales) != len(paths):
            raise UserError(f"motion_lora_scale has {len(scales)} values for {len(paths)} motion_lora files; give one "
                            "scale, or one per file")
        out += [{"path": resolve_lora_path(p), "spec": str(p), "scale": float(s), "kind": "motion"}
                for p, s in zip(paths, scales)]
    if options.get("domain_adapter_lora"):
        out.append({"path": resolve_lora_path(options["domain_adapter_lora"]), "spec": str(options["domain_adapter_lora"]),
                    "scale": float(options.get("domain_adapter_scale", 1.0)), "kind": "domain_adapter"})
    return out


def checkpoint_record(options: dict[str, Any]) -> dict[str, Any]:
    """What the run.json records about the checkpoint files a motion-module method loaded: the motion-module
    file and each LoRA with its scale, by content (sha256) as well as by path."""
    record: dict[str, Any] = {}
    adapter = str(options.get("motion_adapter", ""))
    if is_checkpoint_file(adapter):
        record["motion_adapter_file"] = file_record(adapter)
    loras = [{**file_record(s["path"]), "kind": s["kind"], "scale": s["scale"], "option": s["spec"]}
             for s in lora_specs(options)]
    if loras:
        record["loras"] = loras
    return record


def fuse_lora_files(components: Any, unet: Any, adapter: Any, loras: list[dict[str, Any]]) -> None:
    """Fuse MotionLoRA / domain-adapter LoRA files into the motion UNet in place, each at its scale, with
    diffusers' AnimateDiffPipeline.load_lora_weights (a pipeline around the existing modules, nothing copied).
    `loras`: [{"path", "scale", "kind": "motion" | "domain_adapter"}]."""
    from diffusers import AnimateDiffPipeline

    if not loras:
        return
    pipe = AnimateDiffPipeline(vae=components.vae, text_encoder=components.text_encoder,
                               tokenizer=components.tokenizer, unet=unet, motion_adapter=adapter,
                               scheduler=components.scheduler)
    names, scales = [], []
    for i, lora in enumerate(loras):
        state = read_checkpoint(lora["path"])
        if lora["kind"] == "motion":
            if not any(".motion_modules." in k for k in state):
                raise UserError(f"motion_lora '{lora['path']}' has no motion-module keys; is it a domain adapter or "
                                "a base LoRA? (domain_adapter_lora / base.lora)")
            state = motion_lora_to_diffusers(state)
        state = {f"unet.{k}": v for k, v in state.items()}  # the UNet's share of a pipeline LoRA
        name = f"{lora['kind']}_{i}"
        try:
            pipe.load_lora_weights(state, adapter_name=name)
        except (ValueError, KeyError, RuntimeError) as exc:
            raise UserError(f"could not load LoRA '{lora['path']}' ({str(exc).splitlines()[0][:200]})") from None
        names.append(name)
        scales.append(float(lora["scale"]))
    if names:
        pipe.set_adapters(names, adapter_weights=scales)
        pipe.fuse_lora(components=["unet"], lora_scale=1.0, adapter_names=names)
        pipe.unload_lora_weights()


# ----------------------------------------------------------------------------------------------- single-file base
DEFAULT_BASE_CONFIG = "stable-diffusion-v1-5/stable-diffusion-v1-5"


def load_single_file_base(path: str | Path, config: str | None = None):
    """A CivitAI-style single-file SD-1.x checkpoint (LDM keys) as a StableDiffusionPipeline, through
    `StableDiffusionPipeline.from_single_file`. It needs the diffusers config of the model family: `config` is a
    local diffusers folder (model_index.json + component configs + tokenizer) or a hub id; offline
    (HF_HUB_OFFLINE=1) the hub id must already be in the local cache."""
    from diffusers import StableDiffusionPipeline

    config = config or DEFAULT_BASE_CONFIG
    local = Path(config).expanduser()
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    kwargs: dict[str, Any] = {"config": str(local) if local.is_dir() else config,
                              "local_files_only": local.is_dir() or offline,
                              "safety_checker": None, "requires_safety_checker": False}
    try:
        return StableDiffusionPipeline.from_single_file(str(Path(path).expanduser()), **kwargs)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"could not load single-file base '{path}' with config '{config}' ({first[:200]}); set "
                        "base.config to a local diffusers folder of the same family (model_index.json, unet/, vae/, "
                        "text_encoder/, tokenizer/, scheduler/)") from None
