"""The denoising loop every method shares; a method supplies `predict_noise` (and, if it needs to, its own
initial latents or a whole `sample_latents`).

Latents are (B, C, F, h, w) throughout, frames folded batch-major (row = b * F + f) when a 2-D UNet needs them,
as diffusers' UNetMotionModel does. Each item's noise comes from its own CPU generator seeded with
`request.seed`, drawn in float32 as (C, F, h, w), so a sample never depends on the batch it ran in, on the device,
or on the dtype.
"""
from __future__ import annotations

import copy
import hashlib
import inspect
from pathlib import Path
from typing import Any, ClassVar, Iterable, Sequence

import torch

from bench.api import GenRequest, Video
from bench.errors import UserError
from bench.models import BaseComponents
from bench.perf import timed

# sampling.scheduler name -> (diffusers class, fixed config keys). Every one is built with `from_config` on the
# method's resolved noise schedule, so only the sampler changes, never the schedule the model was trained on.
SCHEDULERS: dict[str, tuple[str, dict[str, Any]]] = {
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_ancestral": ("EulerAncestralDiscreteScheduler", {}),
    "dpmpp": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++"}),
    "lcm": ("LCMScheduler", {}),
}
# Options every LatentVideoMethod takes: the sampler (the runner fills them from `sampling.scheduler`/`eta` unless
# the method's own options set them) and `noise_schedule`, an override of the method's default noise schedule:
# a mapping of scheduler config keys, or "base" for the base T2I's own schedule.
COMMON_OPTIONS: dict[str, Any] = {"scheduler": "ddim", "eta": 0.0, "noise_schedule": None}
STEP_NOISE_RULE = "torch.Generator('cpu').manual_seed(int(sha256(f'{seed}/step-noise').hexdigest()[:15], 16)) per item"


def step_noise_seed(seed: int) -> int:
    """Seed of an item's own stream for stochastic sampler steps: apart from its initial-noise stream."""
    return int(hashlib.sha256(f"{seed}/step-noise".encode()).hexdigest()[:15], 16)


class LatentVideoMethod:
    """Base for methods built on a Stable-Diffusion-style latent T2I."""

    name: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    decode_chunk_size: int = 16
    stage_seconds: dict[str, float]  # synchronised stage timers of the current generate() call

    # The noise schedule the method's weights were trained with, as scheduler config keys set on top of the base
    # T2I's scheduler config ({}: the base's own). It is the default for both sampling and `t2v-bench train`.
    noise_schedule: ClassVar[dict[str, Any]] = {}
    noise_schedule_source: ClassVar[str] = "the base T2I's scheduler config"

    def __init__(self, base: BaseComponents, **options: Any):
        allowed = {**self.option_defaults(), **COMMON_OPTIONS}
        unknown = set(options) - set(allowed)
        if unknown:
            from bench.errors import did_you_mean
            bad = sorted(unknown)[0]
            raise UserError(f"method '{self.name}' has no option '{bad}': {did_you_mean(bad, allowed)}")
        self.base = base
        self.options = {**allowed, **options}
        self.stage_seconds = {}
        self._check_sampler_options()

    # ------------------------------------------------------------------ what a method overrides
    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        return {}

    def predict_noise(self, latents: torch.Tensor, t: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """latents (B, C, F, h, w), text_embeds (B, L, D) -> noise prediction (B, C, F, h, w)."""
        raise NotImplementedError

    def initial_noise(self, request: GenRequest, shape: tuple[int, int, int, int]) -> torch.Tensor:
        """(C, F, h, w) float32 on CPU from the request's own generator: frames drawn independently."""
        generator = torch.Generator("cpu").manual_seed(request.seed)
        return torch.randn(shape, generator=generator, dtype=torch.float32)

    def config(self) -> dict[str, Any]:
        return {"method": self.name, "version": self.version, "base": self.base.source, "options": self.options}

    def trainable_parameters(self) -> Iterable[torch.nn.Parameter]:
        return []

    # A method that loads trained weights names the option that points at them; 'toy' there means the file or
    # folder `toy_weights` under bench/toy/weights, and 'tiny' (or empty) means fresh weights.
    weights_option: ClassVar[str | None] = None
    toy_weights: ClassVar[str] = ""

    def trained_weights(self) -> Path | None:
        """The local file or folder of trained weights this instance loaded (None: untrained, or a hub id)."""
        from bench.models import resolve_shipped

        spec = self.options.get(self.weights_option) if self.weights_option else None
        if not spec or spec == "tiny":
            return None
        return Path(resolve_shipped(str(spec), self.toy_weights)).expanduser()

    def training_cost(self) -> dict[str, Any] | None:
        """What training the loaded weights cost, from the record `t2v-bench train` left beside them (None when
        there is none, or it belongs to other weights)."""
        from bench.models import read_training_record

        path = self.trained_weights()
        return read_training_record(path) if path is not None and path.exists() else None

    def added_parameters(self) -> Iterable[torch.nn.Parameter]:
        """Parameters the method uses at inference on top of the base T2I. By default what it trains; a method that
        also holds frozen extra modules overrides this. Copies of base weights do not count as added."""
        return self.trainable_parameters()

    def parameter_counts(self) -> dict[str, int]:
        """{"trainable", "added", "base", "total"}: base = vae + text_encoder + unet, total = base + added, every
        count deduplicated (a tensor shared by several modules counts once)."""
        base_params = [p for m in (self.base.vae, self.base.text_encoder, self.base.unet) for p in m.parameters()]
        base_ids = {id(p) for p in base_params}
        added = count_parameters(p for p in self.added_parameters() if id(p) not in base_ids)
        base = count_parameters(base_params)
        return {"trainable": count_parameters(self.trainable_parameters()), "added": added, "base": base,
                "total": base + added}

    # ------------------------------------------------------------------ shared machinery
    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def dtype(self) -> torch.dtype:
        return self.base.dtype

    def fold_frames(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, F, h, w) -> (B*F, C, h, w), batch-major."""
        b, c, f, h, w = latents.shape
        return latents.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w)

    def unet_per_frame(self, unet: Any, latents: torch.Tensor, t: torch.Tensor,
                       text_embeds: torch.Tensor) -> torch.Tensor:
        """A 2-D UNet over every frame: fold (B, C, F, h, w) into the batch, repeat each video's text per frame."""
        num_frames = latents.shape[2]
        out = unet(self.fold_frames(latents), t, encoder_hidden_states=text_embeds.repeat_interleave(num_frames, 0)).sample
        return self.unfold_frames(out, num_frames)

    @staticmethod
    def unfold_frames(x: torch.Tensor, num_frames: int) -> torch.Tensor:
        """(B*F, C, h, w) -> (B, C, F, h, w)."""
        bf, c, h, w = x.shape
        return x.reshape(bf // num_frames, num_frames, c, h, w).permute(0, 2, 1, 3, 4)

    @torch.no_grad()
    def encode_prompts(self, prompts: Sequence[str]) -> torch.Tensor:
        cache = self.base.text_cache  # the runner's: each text is encoded once per run
        if cache is not None:
            return cache.embed(self.base.text_encoder, prompts, self.device, self.dtype, self._encode_texts)
        return self._encode_texts(prompts)

    def _encode_texts(self, prompts: Sequence[str]) -> torch.Tensor:
        tok = self.base.tokenizer(list(prompts), padding="max_length", max_length=self.base.tokenizer.model_max_length,
                                  truncation=True, return_tensors="pt")
        return self.base.text_encoder(tok.input_ids.to(self.device))[0].to(self.dtype)

    def latent_shape(self, request: GenRequest) -> tuple[int, int, int, int]:
        f = self.base.vae_scale_factor
        return (self.base.unet.config.in_channels, request.num_frames, request.height // f, request.width // f)

    # ------------------------------------------------------------------ noise schedule and sampler
    def _check_sampler_options(self) -> None:
        o = self.options
        if o["scheduler"] not in SCHEDULERS:
            raise UserError(f"{self.name}: unknown scheduler {o['scheduler']!r}; choose from {', '.join(SCHEDULERS)}")
        o["eta"] = float(o["eta"])
        if o["eta"] < 0 or (o["eta"] and o["scheduler"] != "ddim"):
            raise UserError(f"{self.name}: eta={o['eta']} needs scheduler ddim and eta >= 0 (DDIM's noise share; "
                            "euler_ancestral and lcm are stochastic by design); set eta: 0 or scheduler: ddim")
        ns = o["noise_schedule"]
        if ns is not None and ns != "base" and not isinstance(ns, dict):
            raise UserError(f"{self.name}: noise_schedule must be a mapping of scheduler config keys (e.g. "
                            f"{{beta_schedule: scaled_linear}}) or 'base' (got {ns!r})")

    def noise_schedule_config(self) -> dict[str, Any]:
        """The resolved noise schedule, for sampling and training: the base's scheduler config, then the method's
        default schedule, then the `noise_schedule` option ("base": the base's own, unchanged)."""
        base_cfg = {k: v for k, v in self.base.scheduler.config.items() if not k.startswith("_")}
        override = self.options["noise_schedule"]
        if override == "base":
            return base_cfg
        return {**base_cfg, **self.noise_schedule, **(override or {})}

    def new_scheduler(self):
        """A fresh scheduler of the `scheduler` option's kind on the resolved noise schedule (no timesteps set)."""
        import diffusers

        class_name, fixed = SCHEDULERS[self.options["scheduler"]]
        try:
            return getattr(diffusers, class_name).from_config(self.noise_schedule_config(), **fixed)
        except (TypeError, ValueError) as exc:
            raise UserError(f"{self.name}: cannot build {class_name} from the noise schedule "
                            f"({str(exc).splitlines()[0][:160]}); check the noise_schedule option") from None

    def make_scheduler(self, steps: int):
        scheduler = self.new_scheduler()  # fresh each call: schedulers carry per-call state
        scheduler.set_timesteps(steps, device=self.device)
        return scheduler

    def scheduler_record(self) -> dict[str, Any]:
        """The resolved scheduler for run.json: class, full config, eta, where the noise schedule came from."""
        scheduler = self.new_scheduler()
        override = self.options["noise_schedule"]
        source = ("the noise_schedule option: the base's own" if override == "base" else
                  f"{self.noise_schedule_source}" + (" + the noise_schedule option" if override else ""))
        config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in scheduler.config.items()
                  if not k.startswith("_")}
        return {"name": self.options["scheduler"], "class": type(scheduler).__name__, "eta": self.options["eta"],
                "noise_schedule_from": source, "config": config,
                **({"step_noise": STEP_NOISE_RULE} if self.options["scheduler"] in ("euler_ancestral", "lcm")
                   or self.options["eta"] else {})}

    def setup_record(self) -> dict[str, Any]:
        """What the run record shows per method beside its options: the resolved scheduler (subclasses add)."""
        return {"scheduler": self.scheduler_record()}

    def step_kwargs(self, scheduler: Any, requests: Sequence[GenRequest]) -> dict[str, Any]:
        """Extra arguments of `scheduler.step` for one sampling run: eta (DDIM) and one CPU generator per item, so a
        stochastic sampler draws each item's noise from that item's own stream and a batch equals its singles."""
        params = inspect.signature(scheduler.step).parameters
        kwargs: dict[str, Any] = {}
        if "eta" in params:
            kwargs["eta"] = self.options["eta"]
        if "generator" in params:
            kwargs["generator"] = [torch.Generator("cpu").manual_seed(step_noise_seed(r.seed)) for r in requests]
        return kwargs

    def guided_noise(self, latents: torch.Tensor, t: torch.Tensor, embeds: torch.Tensor, scheduler: Any,
                     guidance_scale: float) -> torch.Tensor:
        """One classifier-free-guided noise prediction. `embeds` is [uncond; cond] when guidance is on."""
        do_cfg = guidance_scale > 1.0
        model_in = torch.cat([latents, latents]) if do_cfg else latents
        model_in = scheduler.scale_model_input(model_in, t)
        with timed(self.stage_seconds, "denoiser_seconds", self.device):
            noise = self.predict_noise(model_in, t, embeds)
        if do_cfg:
            uncond, cond = noise.chunk(2)
            noise = uncond + guidance_scale * (cond - uncond)
        return noise

    def sample_latents(self, latents: torch.Tensor, embeds: torch.Tensor, request: GenRequest,
                       requests: Sequence[GenRequest]) -> torch.Tensor:
        """Plain DDIM-style sampling from the initial latents over all steps."""
        scheduler = self.make_scheduler(request.num_inference_steps)
        step_kwargs = self.step_kwargs(scheduler, requests)
        latents = latents * scheduler.init_noise_sigma
        for t in scheduler.timesteps:
            noise = self.guided_noise(latents, t, embeds, scheduler, request.guidance_scale)
            latents = scheduler.step(noise, t, latents, **step_kwargs).prev_sample
        return latents

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """(B, C, F, h, w) latents -> (B, F, 3, H, W) float32 frames in [0, 1] on CPU."""
        b, _, f = latents.shape[:3]
        flat = (self.fold_frames(latents) / self.base.vae.config.scaling_factor).to(self.base.vae.dtype)
        images = torch.cat([self.base.vae.decode(chunk).sample for chunk in flat.split(self.decode_chunk_size)])
        images = (images.float() / 2 + 0.5).clamp(0, 1).cpu()
        return images.reshape(b, f, *images.shape[1:])

    @torch.no_grad()
    def generate(self, requests: Sequence[GenRequest]) -> list[Video]:
        if not requests:
            return []
        first = requests[0]
        if any(r.settings() != first.settings() for r in requests):
            # Different sizes cannot share a tensor: run each setting group on its own, keep the order.
            return [video for r in requests for video in self.generate([r])]
        stages = self.stage_seconds = {}  # guided_noise adds the denoiser's share of denoise_seconds
        with timed(stages, "encode_seconds", self.device):
            cond = self.encode_prompts([r.prompt for r in requests])
            if first.guidance_scale > 1.0:
                uncond = self.encode_prompts([r.negative_prompt or "" for r in requests])
                embeds = torch.cat([uncond, cond])
            else:
                embeds = cond
        shape = self.latent_shape(first)
        latents = torch.stack([self.initial_noise(r, shape) for r in requests]).to(self.device, self.dtype)
        with timed(stages, "denoise_seconds", self.device):
            latents = self.sample_latents(latents, embeds, first, requests)
        with timed(stages, "decode_seconds", self.device):
            frames = self.decode(latents)
        per_item = {k: v / len(requests) for k, v in stages.items()}
        return [Video(frames=frames[i], fps=r.fps, info=dict(per_item)) for i, r in enumerate(requests)]


def count_parameters(params: Iterable[torch.nn.Parameter]) -> int:
    seen: set[int] = set()
    total = 0
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            total += p.numel()
    return total


def shared_module_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A new module tree whose parameters and buffers are the original tensors: hooks, processors or injected
    layers set on the copy leave the original module untouched, and no weight memory is duplicated."""
    memo = {id(t): t for t in (*module.parameters(), *module.buffers())}
    return copy.deepcopy(module, memo)
