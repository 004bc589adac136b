"""Training a registered method: its `trainable_parameters()` on top of the frozen base, with the diffusion
noise-prediction loss on video latents through the method's own `predict_noise`.

What a method needs for this (the whole interface): `trainable_parameters()` (Method contract),
`predict_noise(latents (B, C, F, h, w), t, text_embeds (B, L, D))` and `encode_prompts` (LatentVideoMethod), and,
optionally, `save_trainable(folder)` to export its weights in its own loadable format (AnimateDiff writes a
MotionAdapter folder); without it the export is `trainable.safetensors` holding the parameters in
`trainable_parameters()` order.

Latents are the VAE posterior means of the clips, scaled by the VAE's scaling_factor, computed once (the VAE is
frozen); text embeddings likewise, with captions dropped to "" 10% of the time for classifier-free guidance.
Each item gets its own timestep (uniform over the schedule's training steps) and noise, DDPM forward process on the
method's own noise schedule (`noise_schedule_config()`: AnimateDiff's official one for its family, the one it samples
with), MSE between predicted and true noise. Items go through `predict_noise` one at a time because the sampler
contract passes one scalar timestep per call.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from bench.train import TrainConfig


def clips_for(cfg: TrainConfig, validation: bool):
    """Training or validation clips: the toy world (disjoint seeds) or the last `num_val` clips of a folder."""
    from bench.data import load_folder, toy_clips

    if cfg.data == "toy":
        if validation:
            return toy_clips(cfg.num_val, cfg.data_seed + 1, cfg.num_frames, cfg.size)
        return toy_clips(cfg.num_train, cfg.data_seed, cfg.num_frames, cfg.size)
    clips = load_folder(cfg.data, cfg.num_frames, cfg.size, cfg.frame_stride)
    if len(clips) <= cfg.num_val:
        from bench.errors import UserError
        raise UserError(f"{cfg.data} has {len(clips)} clips; need more than num_val={cfg.num_val}")
    return clips[-cfg.num_val:] if validation else clips[:-cfg.num_val][:cfg.num_train]


class DiffusionLoss:
    """The noise-prediction loss shared by the base T2I and every method: needs train_z/train_e, val_* tensors,
    uncond, uncond_prob, ddpm and `_mse(z, e, noise, t)`. The draw order (clips, caption drop, noise, timesteps)
    from the step's generator is fixed, so a resumed run draws what an uninterrupted one would."""

    def loss(self, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        idx = torch.randint(len(self.train_z), (batch_size,), generator=generator)
        z, e = self.train_z[idx], self.train_e[idx].clone()
        e[torch.rand(batch_size, generator=generator) < self.uncond_prob] = self.uncond  # so guidance works
        noise = torch.randn(z.shape, generator=generator)
        t = torch.randint(0, self.ddpm.config.num_train_timesteps, (batch_size,), generator=generator)
        return self._mse(z, e, noise, t)

    @torch.no_grad()
    def val_loss(self) -> float:
        return float(self._mse(self.val_z, self.val_e, self.val_noise, self.val_t))


class MethodTask(DiffusionLoss):
    uncond_prob = 0.1

    def __init__(self, name: str, cfg: TrainConfig):
        from diffusers import DDPMScheduler

        from bench.models import load_base
        from bench.registry import METHODS

        self.cfg = cfg
        self.base = load_base(cfg.base, device=cfg.device)
        self.method = METHODS.get(name)(self.base, **cfg.options)
        self._params = list(self.method.trainable_parameters())
        if not self._params:  # say so before spending time on data
            from bench.errors import UserError
            raise UserError(f"'{name}' has nothing to train (no trainable parameters); training-free methods such "
                            "as per_frame run as they are")
        for p in self._params:  # the base and everything else stays frozen
            p.requires_grad_(True)
        # The forward process on the method's own noise schedule: the one it samples with by default.
        schedule = getattr(self.method, "noise_schedule_config", None)
        self.ddpm = DDPMScheduler.from_config(schedule() if schedule else self.base.scheduler.config)
        self.train_z, self.train_e = self._encode(self.clips(validation=False))
        self.val_z, self.val_e = self._encode(self.clips(validation=True))
        self.uncond = self.method.encode_prompts([""])[0]
        g = torch.Generator("cpu").manual_seed(12345)  # fixed validation noise and timesteps
        self.val_noise = torch.randn(self.val_z.shape, generator=g)
        self.val_t = torch.randint(0, self.ddpm.config.num_train_timesteps, (len(self.val_z),), generator=g)

    @torch.no_grad()
    def _encode(self, clips) -> tuple[torch.Tensor, torch.Tensor]:
        vae = self.base.vae
        latents = []
        for clip in clips:
            x = clip.frames.to(self.base.device, self.base.dtype) * 2 - 1
            z = vae.encode(x).latent_dist.mean * vae.config.scaling_factor  # (F, C, h, w)
            latents.append(z.permute(1, 0, 2, 3))
        captions = [c.caption for c in clips]
        embeds = torch.cat([self.method.encode_prompts(captions[i:i + 64]) for i in range(0, len(captions), 64)])
        return torch.stack(latents).float(), embeds.float()

    def clips(self, validation: bool):
        return clips_for(self.cfg, validation)

    def parameters(self) -> list[torch.nn.Parameter]:
        return self._params

    def _mse(self, z: torch.Tensor, e: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        noisy = self.ddpm.add_noise(z, noise, t)
        losses = []
        for i in range(len(z)):
            pred = self.method.predict_noise(noisy[i:i + 1].to(self.base.dtype), t[i], e[i:i + 1].to(self.base.dtype))
            losses.append(F.mse_loss(pred.float(), noise[i:i + 1]))
        return torch.stack(losses).mean()

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {f"p{i:05d}": p.detach() for i, p in enumerate(self._params)}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        if len(tensors) != len(self._params):
            raise ValueError(f"checkpoint holds {len(tensors)} tensors, the method trains {len(self._params)}")
        with torch.no_grad():
            for i, p in enumerate(self._params):
                p.copy_(tensors[f"p{i:05d}"])

    def export(self, folder: Path) -> Path:
        """Writes the weights the method loads; returns their file or folder (the training record goes beside)."""
        save = getattr(self.method, "save_trainable", None)
        if save is not None:
            return save(folder)
        from safetensors.torch import save_file

        Path(folder).mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous().cpu() for k, v in self.state_tensors().items()},
                  Path(folder) / "trainable.safetensors")
        return Path(folder) / "trainable.safetensors"
