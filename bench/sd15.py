"""Stable Diffusion 1.5 shapes with random weights, built in code (no downloads): the exact UNet, VAE and CLIP
text-encoder configs of stable-diffusion-v1-5 and the AnimateDiff motion-adapter configs of the guoyww releases.

Used by the slow real-architecture test (shape bugs that tiny models hide) and tests/benchmarks/gpu_validate.py.
Random adapters reach the methods through `sd15_adapters(version)`, which makes the motion-adapter spec
`sd15-random` build one in memory instead of loading a folder.
"""
from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

from bench.models import BaseComponents, clip_bpe_tokenizer, sd_scheduler

# stable-diffusion-v1-5/stable-diffusion-v1-5: unet/config.json, vae/config.json, text_encoder/config.json
SD15_UNET = dict(sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
                 block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                 norm_num_groups=32, norm_eps=1e-5, act_fn="silu", center_input_sample=False, flip_sin_to_cos=True,
                 freq_shift=0, downsample_padding=1, mid_block_scale_factor=1,
                 down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                   "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
SD15_VAE = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
                layers_per_block=2, norm_num_groups=32, act_fn="silu", sample_size=512, scaling_factor=0.18215,
                down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
SD15_TEXT = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                 num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=768,
                 layer_norm_eps=1e-5, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)

# guoyww/animatediff-motion-adapter-v1-5 (v1), -v1-5-2 (v2: with the mid-block motion module), -v1-5-3 (v3)
_ADAPTER = dict(block_out_channels=(320, 640, 1280, 1280), motion_layers_per_block=2,
                motion_mid_block_layers_per_block=1, motion_num_attention_heads=8, motion_norm_num_groups=32)
SD15_MOTION_ADAPTERS = {
    "v1": {**_ADAPTER, "motion_max_seq_length": 24, "use_motion_mid_block": False},
    "v2": {**_ADAPTER, "motion_max_seq_length": 32, "use_motion_mid_block": True},
    "v3": {**_ADAPTER, "motion_max_seq_length": 32, "use_motion_mid_block": False},
}
RANDOM_ADAPTER_SPEC = "sd15-random"


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Build modules directly in `dtype` (half the peak memory of building in float32 and casting)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def sd15_components(seed: int = 0, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32) -> BaseComponents:
    """The SD 1.5 base (860M UNet, 84M VAE, 123M text encoder) with seeded random weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    with torch.device(device), default_dtype(dtype):
        parts = BaseComponents(vae=AutoencoderKL(**SD15_VAE), text_encoder=CLIPTextModel(CLIPTextConfig(**SD15_TEXT)),
                               tokenizer=clip_bpe_tokenizer(), unet=UNet2DConditionModel(**SD15_UNET),
                               scheduler=sd_scheduler(), source={"model": "sd15-random", "seed": seed})
    return parts.to(device, dtype)


def sd15_motion_adapter(version: str, seed: int = 0, device: torch.device | str = "cpu",
                        dtype: torch.dtype = torch.float32):
    from diffusers import MotionAdapter

    torch.manual_seed(seed)
    with torch.device(device), default_dtype(dtype):
        return MotionAdapter(**SD15_MOTION_ADAPTERS[version])


@contextlib.contextmanager
def sd15_adapters(version: str, device: torch.device | str = "cpu",
                  dtype: torch.dtype = torch.float32) -> Iterator[None]:
    """Within the block, `motion_adapter: sd15-random` is a random adapter with that release's config."""
    import methods.animatediff as animatediff

    original = animatediff.load_motion_adapter

    def load(spec: str, unet_config: Any, seed: int = 0, *args: Any, **kwargs: Any):
        if spec == RANDOM_ADAPTER_SPEC:
            return sd15_motion_adapter(version, seed, device, dtype)
        return original(spec, unet_config, seed, *args, **kwargs)

    animatediff.load_motion_adapter = load
    try:
        yield
    finally:
        animatediff.load_motion_adapter = original


# Every method on SD 1.5 shapes: (label, registry name, options, adapter release or None).
SD15_METHODS = [
    ("per_frame", "per_frame", {}, None),
    ("animatediff_v1", "animatediff", {"motion_adapter": RANDOM_ADAPTER_SPEC}, "v1"),
    ("animatediff_v2", "animatediff", {"motion_adapter": RANDOM_ADAPTER_SPEC}, "v2"),
    ("animatediff_v3", "animatediff", {"motion_adapter": RANDOM_ADAPTER_SPEC}, "v3"),
    ("text2video_zero", "text2video_zero", {}, None),
    ("causal_cross_frame", "causal_cross_frame", {}, None),
    ("magicvideo", "magicvideo", {"motion_adapter": RANDOM_ADAPTER_SPEC}, "v1"),
    ("simda", "simda", {}, None),
    ("dual_stream", "dual_stream", {"motion_adapter": RANDOM_ADAPTER_SPEC}, "v1"),
]
