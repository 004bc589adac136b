"""AnimateDiff: a motion module (temporal transformers) trained once, plugged into any frozen SD-1.x UNet.

Built entirely from diffusers: `MotionAdapter` (hub id or local folder) + `UNetMotionModel.from_unet2d(base unet)`.
The `tiny` adapter matches the tiny base and has every motion-module `proj_out` zeroed, as the original AnimateDiff
initialises it (diffusers' MotionAdapter does not): the untrained module is then an exact identity.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

import torch

from bench.checkpoints import LORA_OPTIONS, checkpoint_record
from bench.errors import UserError
from bench.models import BaseComponents
from methods.attention import FrameContext
from methods.base import LatentVideoMethod
from methods.long_video import LONG_VIDEO_OPTIONS, LongVideoMixin

# The official AnimateDiff noise schedule (guoyww/AnimateDiff configs/inference/inference-v1/v2/v3.yaml and
# configs/training/v1/training.yaml: linear betas 0.00085-0.012, steps_offset 1, clip_sample false), which its
# scripts pass to DDIMScheduler(**kwargs), so DDIM's defaults fill in the rest (set_alpha_to_one true, 1000 training
# steps, "leading" spacing, epsilon prediction). SD 1.x itself uses "scaled_linear": alpha_bar at t=501 is 0.160
# here against 0.275 there.
OFFICIAL_NOISE_SCHEDULE: dict[str, Any] = {
    "num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "linear",
    "steps_offset": 1, "clip_sample": False, "set_alpha_to_one": True, "timestep_spacing": "leading",
    "prediction_type": "epsilon", "trained_betas": None,
}
OFFICIAL_NOISE_SCHEDULE_SOURCE = "official AnimateDiff (linear betas 0.00085-0.012, steps_offset 1, clip_sample false)"


def zero_motion_proj_out(adapter: torch.nn.Module) -> int:
    """Zero `proj_out` of every motion module (AnimateDiff's `zero_initialize`); returns how many were zeroed."""
    count = 0
    for name, module in adapter.named_modules():
        if name.endswith("proj_out") and "motion_modules" in name and isinstance(module, torch.nn.Linear):
            torch.nn.init.zeros_(module.weight)
            torch.nn.init.zeros_(module.bias)
            count += 1
    return count


def tiny_motion_adapter(unet_config: Any, seed: int = 0, zero_init: bool = True, max_seq_length: int = 32):
    """A random MotionAdapter shaped for `unet_config` (channel widths and layers per block must match)."""
    from diffusers import MotionAdapter

    torch.manual_seed(seed)
    adapter = MotionAdapter(block_out_channels=tuple(unet_config.block_out_channels),
                            motion_layers_per_block=unet_config.layers_per_block,
                            motion_norm_num_groups=unet_config.norm_num_groups,
                            motion_num_attention_heads=2, motion_max_seq_length=max_seq_length,
                            use_motion_mid_block=False)
    if zero_init:
        zero_motion_proj_out(adapter)
    return adapter


def load_motion_adapter(spec: str, unet_config: Any, seed: int = 0, toy_folder: str = "animatediff-motion-adapter"):
    """`toy_folder`: which shipped folder "toy" means; each method trains its own adapter on the toy world."""
    from diffusers import MotionAdapter

    from bench.models import _check_source, _from_pretrained, resolve_shipped

    if spec == "tiny":
        return tiny_motion_adapter(unet_config, seed)
    from bench.checkpoints import is_checkpoint_file, load_motion_adapter_file
    if is_checkpoint_file(spec):  # an original AnimateDiff motion module (mm_sd_v15_v2.ckpt, v3_sd15_mm.ckpt)
        return load_motion_adapter_file(spec)
    spec = resolve_shipped(spec, toy_folder)  # 'toy': the adapter trained on the toy world for the toy base
    _check_source(spec, "motion_adapter")
    return _from_pretrained(MotionAdapter, spec, "motion adapter")


def build_motion_unet(base: BaseComponents, options: dict[str, Any], toy_folder: str = "animatediff-motion-adapter"):
    """(UNetMotionModel, MotionAdapter) from the base UNet and the options motion_adapter / adapter_seed /
    zero_init_proj_out, frozen, on the base's device and dtype."""
    from diffusers import UNetMotionModel

    adapter = load_motion_adapter(options["motion_adapter"], base.unet.config, options["adapter_seed"], toy_folder)
    if options["zero_init_proj_out"]:  # start a from-scratch training run from the identity
        zero_motion_proj_out(adapter)
    try:
        unet = UNetMotionModel.from_unet2d(base.unet, adapter)
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"motion adapter '{options['motion_adapter']}' does not fit the base UNet "
                        f"({str(exc).splitlines()[0][:160]}); use an adapter made for this base family") from None
    from bench.checkpoints import fuse_lora_files, lora_specs
    fuse_lora_files(base, unet, adapter, lora_specs(options))  # MotionLoRA / v3 domain adapter, if any
    unet.to(base.device)
    if unet.dtype != base.dtype:  # skip a no-op cast: diffusers warns on every .to(dtype)
        unet.to(base.dtype)
    return unet.eval().requires_grad_(False), adapter


class AnimateDiff(LongVideoMixin, LatentVideoMethod):
    name = "animatediff"
    version = "2"  # 2: official noise schedule and GroupNorm conventions by default
    noise_schedule = OFFICIAL_NOISE_SCHEDULE
    noise_schedule_source = OFFICIAL_NOISE_SCHEDULE_SOURCE
    weights_option = "motion_adapter"
    toy_weights = "animatediff-motion-adapter"  # what `motion_adapter: toy` loads (bench/toy/weights/<this>)

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        # norm_convention: "official" (GroupNorms as guoyww/AnimateDiff, per adapter_version) or "diffusers"
        # (UNetMotionModel as is); adapter_version "auto" reads it from the adapter's name or shape (methods/norms.py)
        return {"motion_adapter": "tiny", "adapter_seed": 0, "zero_init_proj_out": False,
                "norm_convention": "official", "adapter_version": "auto", **LORA_OPTIONS, **LONG_VIDEO_OPTIONS}

    def __init__(self, base: BaseComponents, **options: Any):
        from methods.norms import apply_norm_convention, resolve_norms

        super().__init__(base, **options)
        o = self.options
        self.unet, self.adapter = build_motion_unet(base, o, self.toy_weights)
        self.max_frames = int(self.adapter.config.motion_max_seq_length)
        self.frame_context = FrameContext()
        self.norms = resolve_norms(o["norm_convention"], o["adapter_version"], o["motion_adapter"], self.adapter.config)
        apply_norm_convention(self.unet, self.norms, self.frame_context)
        self.setup_long_video()

    def setup_record(self) -> dict[str, Any]:
        return {**super().setup_record(), "norms": self.norms}

    def config(self) -> dict[str, Any]:
        cfg = super().config()
        if self.options["motion_adapter"] == "toy":  # same name, retrainable weights: key on their content
            from bench.models import weights_fingerprint
            cfg["motion_adapter_sha256"] = weights_fingerprint(self.trained_weights())
        cfg.update(checkpoint_record(self.options), **self.long_video_record())
        cfg["norms"] = self.norms
        return cfg

    def predict_noise(self, latents: torch.Tensor, t: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        num_frames = latents.shape[2]
        if num_frames > self.max_frames:
            raise UserError(f"{self.name}: {num_frames} frames exceed the motion adapter's "
                            f"motion_max_seq_length={self.max_frames}; lower sampling.num_frames")
        with self.frame_context.frames(num_frames):
            return self.unet(latents, t, encoder_hidden_states=text_embeds.repeat_interleave(num_frames, 0)).sample

    def trainable_parameters(self) -> Iterable[torch.nn.Parameter]:
        return (p for name, p in self.unet.named_parameters() if "motion_modules." in name)

    def save_trainable(self, folder: str | Path) -> Path:
        """The trained motion modules as a MotionAdapter folder (safetensors): usable as `motion_adapter: <folder>`."""
        self.unet.save_motion_modules(str(folder), safe_serialization=True)
        return Path(folder)
