"""The toy base T2I: SD-shaped (AutoencoderKL + CLIP text encoder + UNet2DConditionModel + the real CLIP BPE
tokenizer), small enough to train on a CPU in minutes on 32x32 toy images.

Training order: `t2v-bench train vae` (autoencoder on toy frames), then `t2v-bench train base` (UNet on the frozen
VAE's latents, text from a frozen, seeded random CLIP text encoder: its per-token states already tell the toy
vocabulary apart, and the UNet's cross-attention learns to read them). Large matrices ship as fp16 (rounded once
before the UNet is trained, so training and inference see the same values) to keep the package small; the
tokenizer/ folder is left out (3.6 MB) because `load_base("toy")` rebuilds it from open_clip's vocabulary.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from bench.models import TOY_TOKEN_LENGTH, toy_tokenizer
from bench.train import TrainConfig
from bench.train_tasks import DiffusionLoss

WEIGHTS_DIR = Path(__file__).parent / "weights"
TOY_VAE = dict(block_out_channels=(16, 32, 32), latent_channels=4, norm_num_groups=8, layers_per_block=1,
               down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, sample_size=32)
TOY_TEXT = dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                max_position_embeddings=77, projection_dim=32, bos_token_id=49406, eos_token_id=49407,
                pad_token_id=49407)
TOY_UNET = dict(block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=16, cross_attention_dim=32,
                attention_head_dim=4, sample_size=8,
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"))
TOKEN_LENGTH = TOY_TOKEN_LENGTH  # the toy world depends on the loader, never the other way (no import circle)
TEXT_SEED = 8


def round_fp16_(module: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(p.half().float())
    return module


def toy_text_encoder():
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(TEXT_SEED)
    return round_fp16_(CLIPTextModel(CLIPTextConfig(**TOY_TEXT))).eval().requires_grad_(False)




def _images(cfg: TrainConfig, n: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    from bench.toy.world import toy_images

    frames, captions = zip(*toy_images(n, seed, cfg.size))
    return torch.stack(frames) * 2 - 1, list(captions)  # VAE space [-1, 1]


class VaeTask:
    """AutoencoderKL on toy frames: MSE reconstruction + a small KL term; the export sets scaling_factor to
    1 / std of the training latents, as SD's VAE does."""

    kl_weight = 1e-5

    def __init__(self, cfg: TrainConfig):
        from diffusers import AutoencoderKL

        self.cfg = cfg
        self.vae = AutoencoderKL(**TOY_VAE).train()
        self.train_x, _ = _images(cfg, cfg.num_train, cfg.data_seed)
        self.val_x, _ = _images(cfg, cfg.num_val, cfg.data_seed + 1)

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.vae.parameters())

    def _loss(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        post = self.vae.encode(x).latent_dist
        z = post.mean + post.std * torch.randn(post.mean.shape, generator=generator) if generator else post.mean
        rec = self.vae.decode(z).sample
        return F.mse_loss(rec, x) + self.kl_weight * post.kl().mean() / z[0].numel()

    def loss(self, generator: torch.Generator, batch_size: int) -> torch.Tensor:
        idx = torch.randint(len(self.train_x), (batch_size,), generator=generator)
        return self._loss(self.train_x[idx], generator)

    @torch.no_grad()
    def val_loss(self) -> float:
        return float(F.mse_loss(self.vae.decode(self.vae.encode(self.val_x).latent_dist.mean).sample, self.val_x))

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.vae.state_dict())

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.vae.load_state_dict(tensors)

    @torch.no_grad()
    def export(self, folder: Path) -> None:
        z = torch.cat([self.vae.encode(x).latent_dist.mean for x in self.train_x.split(256)])
        self.vae.register_to_config(scaling_factor=float(1.0 / z.std()))
        self.vae.save_pretrained(folder, safe_serialization=True)


def _ddpm(scheduler_config: Any):
    """DDPM forward process on the base's own noise schedule (training adds noise the way SD was trained)."""
    from diffusers import DDPMScheduler

    return DDPMScheduler.from_config(scheduler_config)


class UNetTask(DiffusionLoss):
    """The toy T2I UNet: epsilon-prediction MSE on VAE latents of toy frames; captions dropped to "" 10% of the
    time so classifier-free guidance works."""

    uncond_prob = 0.1

    def __init__(self, cfg: TrainConfig):
        from diffusers import AutoencoderKL, UNet2DConditionModel

        from bench.models import sd_scheduler

        self.cfg = cfg
        vae_dir = cfg.vae or str(WEIGHTS_DIR / "base" / "vae")
        self.vae = AutoencoderKL.from_pretrained(vae_dir).float().eval().requires_grad_(False)
        self.text_encoder, self.tokenizer = toy_text_encoder(), toy_tokenizer()
        self.scheduler = sd_scheduler()
        self.ddpm = _ddpm(self.scheduler.config)
        self.unet = UNet2DConditionModel(**TOY_UNET).train()
        self.train_z, self.train_e = self._encode(*_images(cfg, cfg.num_train, cfg.data_seed))
        self.val_z, self.val_e = self._encode(*_images(cfg, cfg.num_val, cfg.data_seed + 1))
        self.uncond = self._embed([""])[0]
        g = torch.Generator("cpu").manual_seed(12345)  # the fixed validation noise and timesteps
        self.val_noise = torch.randn(self.val_z.shape, generator=g)
        self.val_t = torch.randint(0, self.ddpm.config.num_train_timesteps, (len(self.val_z),), generator=g)

    @torch.no_grad()
    def _embed(self, captions: list[str]) -> torch.Tensor:
        ids = self.tokenizer(captions, padding="max_length", max_length=TOKEN_LENGTH, truncation=True,
                             return_tensors="pt").input_ids
        return self.text_encoder(ids)[0]

    @torch.no_grad()
    def _encode(self, x: torch.Tensor, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.cat([self.vae.encode(c).latent_dist.mean for c in x.split(256)]) * self.vae.config.scaling_factor
        return z, self._embed(captions)

    def parameters(self) -> list[torch.nn.Parameter]:
        return list(self.unet.parameters())

    def _mse(self, z: torch.Tensor, e: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        noisy = self.ddpm.add_noise(z, noise, t)
        return F.mse_loss(self.unet(noisy, t, encoder_hidden_states=e).sample, noise)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.unet.state_dict())

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.unet.load_state_dict(tensors)

    def export(self, folder: Path) -> None:
        """The whole base folder in the diffusers layout (what `base.model: toy` loads); fp16 on disk."""
        from bench.models import BaseComponents

        folder = Path(folder)
        unet = round_fp16_(self.unet.eval())
        parts = BaseComponents(vae=self.vae, text_encoder=self.text_encoder.half(), tokenizer=self.tokenizer,
                               unet=unet.half(), scheduler=self.scheduler, source={"model": "toy"})
        tmp = folder.with_name(folder.name + ".export")
        shutil.rmtree(tmp, ignore_errors=True)
        parts.save_pretrained(tmp)
        shutil.rmtree(tmp / "tokenizer")  # rebuilt in code from open_clip's vocabulary (bench.models.toy_tokenizer)
        self.text_encoder.float(), unet.float()
        if folder.exists():
            shutil.rmtree(folder)
        tmp.rename(folder)
