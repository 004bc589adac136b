"""Long videos and FreeInit for motion-module methods, through diffusers' own implementations.

- `free_noise` (FreeNoise, Qiu et al. 2023; diffusers' AnimateDiffFreeNoiseMixin): every motion-module transformer
  block becomes diffusers' FreeNoiseTransformerBlock, which runs temporal attention on sliding windows of
  `context_length` frames every `context_stride` frames and blends overlaps with `weighting` ("pyramid", "flat",
  "delayed_reverse_sawtooth"); positions never exceed the window, so videos longer than the adapter's
  motion_max_seq_length (32) work. `noise` "shuffle_context" (diffusers' default) repeats the first window's noise
  frames shuffled within each stride, "repeat_context" repeats it, "random" keeps independent noise.
- `free_init` (FreeInit, Wu et al. 2023; diffusers' FreeInitMixin): sample, diffuse the result back to
  t = T-1 with the first round's noise, keep its low spatio-temporal frequencies (`filter` butterworth / gaussian /
  ideal, `order`, `spatial_stop`, `temporal_stop`), take high frequencies from fresh noise, sample again;
  `iterations` rounds in all (each costs a full sampling).

Options are dicts, null when off: `free_noise: {context_length: 16, context_stride: 4}`, `free_init: {iterations: 3}`.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch

from bench.errors import UserError

FREE_NOISE_DEFAULTS = {"context_length": 16, "context_stride": 4, "weighting": "pyramid", "noise": "shuffle_context"}
FREE_INIT_DEFAULTS = {"iterations": 3, "filter": "butterworth", "order": 4, "spatial_stop": 0.25,
                      "temporal_stop": 0.25}
WEIGHTINGS = ("flat", "pyramid", "delayed_reverse_sawtooth")
NOISE_TYPES = ("shuffle_context", "repeat_context", "random")
FILTERS = ("butterworth", "gaussian", "ideal")


def _resolve(name: str, value: Any, defaults: dict[str, Any]) -> dict[str, Any] | None:
    """None/False: off; True or a dict: the defaults updated by it (unknown keys refused in one line)."""
    if value in (None, False):
        return None
    value = {} if value is True else value
    if not isinstance(value, dict):
        raise UserError(f"{name} must be a mapping such as {defaults} (or null to turn it off), got {value!r}")
    unknown = sorted(set(value) - set(defaults))
    if unknown:
        raise UserError(f"{name} has no setting '{unknown[0]}'; settings: {', '.join(defaults)}")
    return {**defaults, **value}


def free_noise_settings(value: Any, max_frames: int) -> dict[str, Any] | None:
    s = _resolve("free_noise", value, FREE_NOISE_DEFAULTS)
    if s is None:
        return None
    if not 1 <= int(s["context_length"]) <= max_frames:
        raise UserError(f"free_noise.context_length={s['context_length']} must be between 1 and the adapter's "
                        f"motion_max_seq_length={max_frames}")
    if not 1 <= int(s["context_stride"]) <= int(s["context_length"]):
        raise UserError(f"free_noise.context_stride={s['context_stride']} must be between 1 and context_length")
    if s["weighting"] not in WEIGHTINGS or s["noise"] not in NOISE_TYPES:
        raise UserError(f"free_noise.weighting must be one of {', '.join(WEIGHTINGS)} and free_noise.noise one of "
                        f"{', '.join(NOISE_TYPES)}")
    return s


def free_init_settings(value: Any) -> dict[str, Any] | None:
    s = _resolve("free_init", value, FREE_INIT_DEFAULTS)
    if s is None:
        return None
    if int(s["iterations"]) < 1 or s["filter"] not in FILTERS:
        raise UserError(f"free_init.iterations must be >= 1 and free_init.filter one of {', '.join(FILTERS)}")
    if not (0 < float(s["spatial_stop"]) <= 1 and 0 < float(s["temporal_stop"]) <= 1):
        raise UserError("free_init.spatial_stop and temporal_stop must lie in (0, 1]")
    return s


def enable_free_noise(unet: Any, adapter: Any, settings: dict[str, Any]) -> None:
    """Swap the motion modules' transformer blocks for diffusers' FreeNoiseTransformerBlock (same weights),
    keeping any attention processors a method set on them (magicvideo's causal mask)."""
    from diffusers.pipelines.free_noise_utils import AnimateDiffFreeNoiseMixin

    class _Host(AnimateDiffFreeNoiseMixin):  # what the mixin reads off a pipeline
        def __init__(self):
            self.unet, self.motion_adapter = unet, adapter
            self.device, self.dtype = unet.device, unet.dtype

    processors = unet.attn_processors
    _Host().enable_free_noise(context_length=int(settings["context_length"]),
                              context_stride=int(settings["context_stride"]), weighting_scheme=settings["weighting"],
                              noise_type=settings["noise"])
    unet.set_attn_processor(processors)  # same module paths; the new blocks came with default processors


def free_noise_initial_noise(shape: tuple[int, ...], generator: torch.Generator,
                             settings: dict[str, Any]) -> torch.Tensor:
    """(C, F, h, w) float32 initial noise arranged by diffusers' FreeNoise latent preparation."""
    from diffusers.pipelines.free_noise_utils import AnimateDiffFreeNoiseMixin

    host = AnimateDiffFreeNoiseMixin()
    host._free_noise_context_length = int(settings["context_length"])
    host._free_noise_context_stride = int(settings["context_stride"])
    host._free_noise_noise_type = settings["noise"]
    host.vae_scale_factor = 1
    c, f, h, w = shape
    if settings["noise"] == "repeat_context":  # diffusers draws one window and tiles it
        window = torch.randn((1, c, min(f, host._free_noise_context_length), h, w), generator=generator)
        return host._prepare_latents_free_noise(1, c, f, h, w, torch.float32, torch.device("cpu"), generator,
                                                latents=window if window.shape[2] < f else None)[0]
    return host._prepare_latents_free_noise(1, c, f, h, w, torch.float32, torch.device("cpu"), generator)[0]


def free_init_sample(sample: Any, scheduler_config: Any, latents: torch.Tensor, requests: Sequence[Any],
                     settings: dict[str, Any]) -> torch.Tensor:
    """FreeInit around `sample(latents) -> latents` (one full sampling from unit-variance noise)."""
    from diffusers import DDPMScheduler
    from diffusers.pipelines.free_init_utils import FreeInitMixin

    filters = FreeInitMixin()
    ddpm = DDPMScheduler.from_config(scheduler_config)  # the forward process of the base's noise schedule
    initial = latents.float().clone()
    low_pass = filters._get_free_init_freq_filter((1, *latents.shape[1:]), latents.device, settings["filter"],
                                                  settings["order"], settings["spatial_stop"],
                                                  settings["temporal_stop"])
    for round_ in range(int(settings["iterations"])):
        if round_ > 0:
            t = torch.full((len(latents),), ddpm.config.num_train_timesteps - 1, dtype=torch.long)
            z_t = ddpm.add_noise(latents.float().cpu(), initial.cpu(), t).to(latents.device)
            fresh = torch.stack([torch.randn(latents.shape[1:], generator=torch.Generator("cpu").manual_seed(
                r.seed * 1_000_003 + round_)) for r in requests]).to(latents.device)
            latents = filters._apply_freq_filter(z_t, fresh, low_pass).to(initial.dtype)
        latents = sample(latents.to(initial.device))
    return latents


LONG_VIDEO_OPTIONS = {"free_noise": None, "free_init": None}


class LongVideoMixin:
    """FreeNoise and FreeInit for a LatentVideoMethod with `unet` (UNetMotionModel), `adapter` and `max_frames`."""

    def setup_long_video(self) -> None:
        self.free_noise = free_noise_settings(self.options.get("free_noise"), self.max_frames)
        self.free_init = free_init_settings(self.options.get("free_init"))
        if self.free_noise is not None:
            enable_free_noise(self.unet, self.adapter, self.free_noise)
            self.window_frames = self.free_noise["context_length"]
            self.max_frames = 10**6  # windows keep every attention within the positional table

    def long_video_record(self) -> dict[str, Any]:
        """The resolved settings (defaults filled in), for run.json."""
        return {k: v for k, v in (("free_noise", self.free_noise), ("free_init", self.free_init)) if v is not None}

    def initial_noise(self, request: Any, shape: tuple[int, int, int, int]) -> torch.Tensor:
        if self.free_noise is None:
            return super().initial_noise(request, shape)
        if shape[1] < self.window_frames:
            raise UserError(f"{self.name}: {shape[1]} frames are fewer than free_noise.context_length="
                            f"{self.window_frames}; lower context_length or raise sampling.num_frames")
        return free_noise_initial_noise(shape, torch.Generator("cpu").manual_seed(request.seed), self.free_noise)

    def sample_latents(self, latents: torch.Tensor, embeds: torch.Tensor, request: Any,
                       requests: Sequence[Any]) -> torch.Tensor:
        plain = super().sample_latents
        if self.free_init is None:
            return plain(latents, embeds, request, requests)
        schedule = self.noise_schedule_config()  # the method's own noise schedule (AnimateDiff's official one)
        return free_init_sample(lambda z: plain(z, embeds, request, requests), schedule, latents,
                                requests, self.free_init)
