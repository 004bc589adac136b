"""Text2Video-Zero (Khachatryan et al., ICCV 2023): a frozen T2I made into a video generator with no training.

Our own adapter on the shared base components (any SD-style UNet with an integer-timestep scheduler such as
DDIM); it does not use diffusers' deprecated `TextToVideoZeroPipeline`, but reproduces it (tests check parity):

1. Frame 0's latent is DDIM-denoised alone, with CFG, from the first timestep to T1 = timesteps[-t1-1], then on
   to T0 = timesteps[-t0-1].
2. Motion dynamics: copy k of x_T0 is warped by a global translation k * (motion_field_strength_x, _y), the flow
   defined on a 512 x 512 grid and resampled to latent size (nearest, reflection padding), as diffusers does:
   positive strengths move content toward -x / -y, by strength * latent_size / 512 latent pixels per frame.
3. Each warped latent is DDPM-forwarded from T0 to T1 with fresh noise.
4. All frames (frame 0 from step 1, not re-noised) are denoised jointly from T1 with cross-frame attention on the
   spatial self-attentions: every frame uses the keys/values of frame 0 (`methods.attention.CrossFrameAttnProcessor`).

Noise draw order (per request, from torch.Generator("cpu").manual_seed(request.seed), float32): first the usual
(C, F, h, w) draw of `LatentVideoMethod.initial_noise`, of which only frame 0 is used as x_T; then one (F-1, C, h, w)
draw, the forward noise of frames 1..F-1 in order. This is the order diffusers' pipeline uses when handed frame 0
as `latents` and the same generator, which is what makes the parity test possible. The forward noise travels in
the initial-latent tensor (frames 1..F-1) so the shared `generate` keeps batching and timing as is.

t0/t1 for any step count and spacing: the paper's values are the timesteps 881 (T0) and 941 (T1) (t0=44, t1=47 at
50 DDIM steps). Each is mapped to the nearest timestep of the sampler's actual timestep list (index counted from the
end), then t1 = min(N-1, max(1, t1)) and t0 = min(t1-1, t0). With "leading" spacing this is the closed form
t = round((T - steps_offset) / (num_train_timesteps // N)): N=50 gives (44, 47), N=4 gives (2, 3), N=2 gives (0, 1);
"trailing", "linspace" and LCM's timesteps map by their own lists. Samplers with float timesteps (Euler) are
refused: T0/T1 index the training noise schedule. Explicit `t0`/`t1` indices override the mapping. The resolved
indices and timesteps go into every Video.info.

Long videos: `chunk_size` > 0 denoises frames 1..F-1 in chunks of chunk_size-1, each with frame 0 prepended as the
anchor. Frame 0's trajectory and all forward noise are computed once, and frame k depends only on frames 0 and k,
so a chunked run gives the same video as a one-shot run (up to float reduction order): chunks only bound memory.
(The official code re-draws noise per chunk, so its chunked videos differ from one-shot ones.)

Left out: background smoothing (the official `smooth_bg` option needs a salient-object detector that is not
released and its code path does not run as published), and token merging (ToMe, an external package).
"""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
import torch.nn.functional as F

from bench.api import GenRequest, Video
from bench.errors import UserError
from bench.models import BaseComponents
from methods.attention import (CrossFrameAttnProcessor, FrameContext, processor_summary,
                               spatial_self_attention_layers, swapped_attn_processors)
from methods.base import LatentVideoMethod

FLOW_GRID = 512  # the motion field is defined on a 512 x 512 grid (SD's pixel size), then resampled to latents


def resolve_t0_t1(timesteps: Sequence[int], t0_timestep: int = 881, t1_timestep: int = 941,
                  t0: int | None = None, t1: int | None = None) -> tuple[int, int]:
    """Indices counted from the end of `timesteps` (diffusers' t0/t1): explicit ones, or those of the timesteps
    nearest t0_timestep / t1_timestep in the actual list (any spacing)."""
    steps = [int(t) for t in timesteps]
    n = len(steps)
    if n < 2:
        raise UserError("text2video_zero needs num_inference_steps >= 2 (T1 must come after at least one step "
                        "before T0); raise sampling.num_inference_steps")

    def from_end(target: int) -> int:
        nearest = min(range(n), key=lambda i: (abs(steps[i] - target), i))  # a tie: the larger timestep
        return n - 1 - nearest

    if t1 is None:
        t1 = min(n - 1, max(1, from_end(t1_timestep)))
    if t0 is None:
        t0 = min(t1 - 1, max(0, from_end(t0_timestep)))
    if not 0 <= t0 < t1 <= n - 1:
        raise UserError(f"text2video_zero needs 0 <= t0 < t1 <= num_inference_steps-1 (got t0={t0}, t1={t1}, "
                        f"{n} steps); leave t0/t1 unset to map them from t0_timestep/t1_timestep")
    return int(t0), int(t1)


def translation_grid(frame_id: int, strength_x: float, strength_y: float, h: int, w: int,
                     device: torch.device) -> torch.Tensor:
    """grid_sample coordinates (1, h, w, 2) for a translation by frame_id * strength on the 512 grid."""
    ys, xs = torch.meshgrid(torch.arange(FLOW_GRID, device=device), torch.arange(FLOW_GRID, device=device),
                            indexing="ij")
    coords = torch.stack([xs, ys]).float()[None]  # (1, 2, 512, 512): x first, as grid_sample wants
    coords[:, 0] += strength_x * frame_id
    coords[:, 1] += strength_y * frame_id
    coords = coords / FLOW_GRID * 2.0 - 1.0
    # Bilinear resampling of the (affine) coordinate field to latent size: the same sample points diffusers uses.
    coords = F.interpolate(coords, size=(h, w), mode="bilinear", align_corners=False)
    return coords.permute(0, 2, 3, 1)


def warp_latents(latents: torch.Tensor, frame_ids: Sequence[int], strength_x: float,
                 strength_y: float) -> torch.Tensor:
    """latents (B, C, h, w) of frame 0 -> (B, C, len(frame_ids), h, w): copy k translated for frame frame_ids[k]."""
    b, c, h, w = latents.shape
    out = []
    for fid in frame_ids:
        grid = translation_grid(fid, strength_x, strength_y, h, w, latents.device)
        # Sample in float32 (nearest sampling copies values, so casting back is lossless): half-precision
        # coordinates would shift the rounding of the nearest neighbour.
        out.append(F.grid_sample(latents.float(), grid.expand(b, -1, -1, -1), mode="nearest",
                                 padding_mode="reflection", align_corners=False).to(latents.dtype))
    return torch.stack(out, dim=2) if out else latents.new_zeros(b, c, 0, h, w)


class Text2VideoZero(LatentVideoMethod):
    name = "text2video_zero"
    version = "1"

    @classmethod
    def option_defaults(cls) -> dict[str, Any]:
        return {
            "motion_field_strength_x": 12.0,
            "motion_field_strength_y": 12.0,
            "t0_timestep": 881,  # T0 of the paper: where the motion warp is applied
            "t1_timestep": 941,  # T1 of the paper: where the joint, cross-frame denoising starts
            "t0": None,  # explicit index from the end of the timesteps (overrides t0_timestep)
            "t1": None,
            "chunk_size": 0,  # frames per joint-denoising chunk including the frame-0 anchor; 0 = all at once
            "cross_frame_attention": True,  # False: the paper's "no cross-frame attention" ablation
            "forward_alphas": "reference",  # "reference": prod(alphas[T0:T1]) as the official code; "exact": abar ratio
        }

    def __init__(self, base: BaseComponents, **options: Any):
        super().__init__(base, **options)
        o = self.options
        for key in ("motion_field_strength_x", "motion_field_strength_y"):
            o[key] = float(o[key])
        if o["chunk_size"] == 1 or o["chunk_size"] < 0:
            raise UserError(f"text2video_zero chunk_size must be 0 (off) or >= 2 (frame 0 plus at least one more); "
                            f"got {o['chunk_size']}")
        if o["forward_alphas"] not in ("reference", "exact"):
            raise UserError("text2video_zero forward_alphas must be 'reference' or 'exact' "
                            f"(got {o['forward_alphas']!r})")
        if (o["t0"] is None) != (o["t1"] is None):
            raise UserError("text2video_zero: set both t0 and t1, or neither")
        probe = self.make_scheduler(2)
        if not hasattr(probe, "alphas_cumprod") or not hasattr(probe, "betas") or probe.timesteps.is_floating_point():
            raise UserError(f"text2video_zero needs a sampler with integer timesteps on a DDPM noise schedule (T0/T1 "
                            f"index it); scheduler {self.options['scheduler']!r} is not one: use ddim, dpmpp or lcm")
        self.context = FrameContext()
        layers = spatial_self_attention_layers(base.unet) if o["cross_frame_attention"] else []
        self.processors = {k: CrossFrameAttnProcessor(self.context) for k in layers}

    # ------------------------------------------------------------------ bookkeeping
    def schedule(self, num_steps: int) -> dict[str, Any]:
        """Resolved t0/t1 indices and their timesteps for `num_steps` steps."""
        o = self.options
        timesteps = self.make_scheduler(num_steps).timesteps
        t0, t1 = resolve_t0_t1(timesteps.tolist(), o["t0_timestep"], o["t1_timestep"], o["t0"], o["t1"])
        return {"t0": t0, "t1": t1, "T0": int(timesteps[-t0 - 1]), "T1": int(timesteps[-t1 - 1]),
                "frame0_alone_steps": len(timesteps) - t0 - 1, "joint_steps": t1 + 1}

    def config(self) -> dict[str, Any]:
        return {**super().config(),
                "t0_t1_mapping": ("t = index from the end of the nearest actual timestep to T = t0_timestep, "
                                  "t1_timestep; t1 = min(N-1, max(1, t1)), t0 = min(t1-1, t0); explicit t0/t1 "
                                  "override"),
                # Explicit indices may be invalid at 50 steps (they are checked per request): show the mapping only.
                "t0_t1_at_50_steps": self.schedule(50) if self.options["t1"] is None else "explicit t0/t1",
                "attn_processors": processor_summary(self.base.unet, self.processors)}

    @torch.no_grad()
    def generate(self, requests: Sequence[GenRequest]) -> list[Video]:
        videos = super().generate(requests)
        for request, video in zip(requests, videos):
            video.info.update(self.schedule(request.num_inference_steps))
        return videos

    # ------------------------------------------------------------------ sampling
    def initial_noise(self, request: GenRequest, shape: tuple[int, int, int, int]) -> torch.Tensor:
        """(C, F, h, w): frame 0 = x_T of frame 0; frames 1..F-1 = their DDPM forward noise (see module doc)."""
        c, f, h, w = shape
        generator = torch.Generator("cpu").manual_seed(request.seed)
        x_t = torch.randn(shape, generator=generator, dtype=torch.float32)[:, :1]
        eps = torch.randn((f - 1, c, h, w), generator=generator, dtype=torch.float32)
        return torch.cat([x_t, eps.permute(1, 0, 2, 3)], dim=1)

    def predict_noise(self, latents: torch.Tensor, t: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        num_frames = latents.shape[2]
        with self.context.frames(num_frames):
            return self.unet_per_frame(self.base.unet, latents, t, text_embeds)

    def denoise(self, latents: torch.Tensor, timesteps: torch.Tensor, embeds: torch.Tensor, scheduler: Any,
                guidance_scale: float, step_kwargs: dict[str, Any]) -> torch.Tensor:
        for t in timesteps:
            noise = self.guided_noise(latents, t, embeds, scheduler, guidance_scale)
            latents = scheduler.step(noise, t, latents, **step_kwargs).prev_sample
        return latents

    def forward_diffuse(self, latents: torch.Tensor, eps: torch.Tensor, t_from: int, t_to: int,
                        scheduler: Any) -> torch.Tensor:
        """DDPM forward from timestep t_from to t_to > t_from in one jump."""
        if self.options["forward_alphas"] == "reference":
            # The official code and diffusers use prod(alphas[T0:T1]) = abar[T1-1] / abar[T0-1] (off by one step).
            alpha = torch.prod(1.0 - scheduler.betas[t_from:t_to])
        else:
            alpha = scheduler.alphas_cumprod[t_to] / scheduler.alphas_cumprod[t_from]
        alpha = alpha.to(latents.device, torch.float32)
        return (alpha.sqrt() * latents.float() + (1 - alpha).sqrt() * eps.float()).to(latents.dtype)

    def sample_latents(self, latents: torch.Tensor, embeds: torch.Tensor, request: GenRequest,
                       requests: Sequence[GenRequest]) -> torch.Tensor:
        with swapped_attn_processors(self.base.unet, self.processors):
            return self._sample(latents, embeds, request, requests)

    def _sample(self, latents: torch.Tensor, embeds: torch.Tensor, request: GenRequest,
                requests: Sequence[GenRequest]) -> torch.Tensor:
        o = self.options
        info = self.schedule(request.num_inference_steps)
        t0, t1 = info["t0"], info["t1"]
        scheduler = self.make_scheduler(request.num_inference_steps)
        timesteps = scheduler.timesteps
        kw = self.step_kwargs(scheduler, requests)  # per-item generators: a stochastic sampler keeps batch == singles
        num_frames = latents.shape[2]
        gs = request.guidance_scale

        # 1. Frame 0 alone down to T1, then on to T0. The scheduler state at T1 is kept for the joint stage
        #    (multistep schedulers carry history), as the reference pipeline does.
        x0 = latents[:, :, :1] * scheduler.init_noise_sigma
        x0_t1 = self.denoise(x0, timesteps[: -t1 - 1], embeds, scheduler, gs, kw)
        scheduler_at_t1 = copy.deepcopy(scheduler)
        if num_frames > 1:
            x0_t0 = self.denoise(x0_t1, timesteps[-t1 - 1: -t0 - 1], embeds, scheduler, gs, kw)
            # 2.-3. Translate copies of x_T0 frame by frame, then forward-diffuse them to T1 with their own noise.
            warped = warp_latents(x0_t0[:, :, 0], range(1, num_frames), o["motion_field_strength_x"],
                                  o["motion_field_strength_y"])
            rest_t1 = self.forward_diffuse(warped, latents[:, :, 1:], info["T0"], info["T1"], scheduler)
        else:
            rest_t1 = latents[:, :, 1:]

        # 4. Joint denoising from T1, in chunks that each carry frame 0 as the cross-frame anchor.
        joint = timesteps[-t1 - 1:]
        step = (o["chunk_size"] - 1) if o["chunk_size"] else max(num_frames - 1, 1)
        chunks = [list(range(s, min(s + step, num_frames - 1))) for s in range(0, num_frames - 1, step)] or [[]]
        frame0, others = None, []
        for chunk in chunks:
            x = torch.cat([x0_t1, rest_t1[:, :, chunk]], dim=2)
            x = self.denoise(x, joint, embeds, copy.deepcopy(scheduler_at_t1), gs, kw)
            frame0 = x[:, :, :1] if frame0 is None else frame0
            others.append(x[:, :, 1:])
        return torch.cat([frame0, *others], dim=2)
