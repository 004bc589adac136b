"""SimDA: zero-init identity, frozen base untouched, latent-shift causality, SD1.5 parameter count, adapter files."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from bench.api import GenRequest  # noqa: E402
from bench.errors import UserError  # noqa: E402
from bench.models import tiny_components  # noqa: E402
from methods.per_frame import PerFrame  # noqa: E402
from methods.simda import SHIFTS, SimDA, SimDAAdapters, latent_shift  # noqa: E402


@pytest.fixture(scope="module")
def base():
    return tiny_components(0)


def randomize(module: torch.nn.Module, seed: int, std: float = 0.05) -> None:
    """Stand-in for training: every adapter weight non-zero, deterministic."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)


def embeds(batch: int = 2, seed: int = 3) -> torch.Tensor:
    return torch.randn(batch, 77, 32, generator=torch.Generator().manual_seed(seed))


def requests(frames: int = 4, steps: int = 2) -> list[GenRequest]:
    return [GenRequest("a", "a red ball rolling", seed=11, num_frames=frames, num_inference_steps=steps),
            GenRequest("b", "a cat walking", seed=12, num_frames=frames, num_inference_steps=steps)]


@torch.no_grad()
def test_fresh_adapters_identical_frames_reproduce_base_sampling(base):
    """Zero-init adapters + identical frame latents: the whole DDIM loop (CFG on) equals the frozen T2I per frame."""
    simda, per_frame = SimDA(base), PerFrame(base)
    req = requests(frames=4, steps=3)[0]
    latents = torch.randn(1, 4, 1, 16, 16, generator=torch.Generator().manual_seed(0)).repeat(1, 1, 4, 1, 1)
    emb = per_frame.encode_prompts(["", req.prompt])
    ours = simda.sample_latents(latents, emb, req, [req])
    ref = per_frame.sample_latents(latents, emb, req, [req])
    # fp32 summation order differs (2N duplicated keys vs N): ~1e-6 per call, amplified by CFG 7.5 over steps.
    assert (ours - ref).abs().max().item() <= 1e-4
    t = simda.make_scheduler(3).timesteps[0]
    both = torch.cat([latents] * 2)
    assert (simda.predict_noise(both, t, emb) - per_frame.predict_noise(both, t, emb)).abs().max().item() < 1e-5
    # ...while distinct frames go through latent-shift attention and differ from the per-frame T2I.
    x = torch.randn(2, 4, 5, 16, 16, generator=torch.Generator().manual_seed(1))
    t = torch.tensor(601)
    assert (simda.predict_noise(x, t, embeds()) - per_frame.predict_noise(x, t, embeds())).abs().max() > 1e-3


@torch.no_grad()
def test_base_unet_is_never_modified(base):
    before = {k: v.clone() for k, v in base.unet.state_dict().items()}
    processors = {k: type(v) for k, v in base.unet.attn_processors.items()}
    x, t = torch.randn(1, 4, 4, 16, 16, generator=torch.Generator().manual_seed(2)), torch.tensor(301)
    ref = PerFrame(base).predict_noise(x, t, embeds(1))
    simda = SimDA(base)
    randomize(simda.adapters, seed=5)
    simda.predict_noise(x, t, embeds(1))
    assert all(torch.equal(before[k], v) for k, v in base.unet.state_dict().items())
    assert {k: type(v) for k, v in base.unet.attn_processors.items()} == processors
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in base.unet.modules())
    assert torch.equal(PerFrame(base).predict_noise(x, t, embeds(1)), ref)
    # The method's UNet shares the base weights rather than copying them.
    assert all(a is b for a, b in zip(simda.unet.parameters(), base.unet.parameters()))


@torch.no_grad()
def test_latent_shift_attention_is_causal(base):
    """Fresh temporal adapters are zero, so only latent-shift attention mixes frames: it looks backwards only."""
    simda = SimDA(base)
    randomize(simda.adapters.attn, seed=7)  # non-zero spatial adapters keep the causality check meaningful
    x = torch.randn(1, 4, 6, 16, 16, generator=torch.Generator().manual_seed(4))
    y = x.clone()
    y[:, :, 4:] += torch.randn(1, 4, 2, 16, 16, generator=torch.Generator().manual_seed(5))
    t = torch.tensor(401)
    a, b = simda.predict_noise(x, t, embeds(1)), simda.predict_noise(y, t, embeds(1))
    assert (a[:, :, :4] - b[:, :, :4]).abs().max().item() < 1e-6
    assert (a[:, :, 4:] - b[:, :, 4:]).abs().max().item() > 1e-3
    # Once the temporal adapters are trained (non-zero) the model sees the next frame: SimDA is not causal.
    randomize(simda.adapters.temporal, seed=8)
    a, b = simda.predict_noise(x, t, embeds(1)), simda.predict_noise(y, t, embeds(1))
    assert (a[:, :, 3] - b[:, :, 3]).abs().max().item() > 1e-6


def test_latent_shift_follows_the_official_table():
    f, h, w = 6, 8, 8
    x = torch.arange(f, dtype=torch.float32).view(1, f, 1, 1, 1).expand(1, f, h, w, 1).reshape(f, h * w, 1)
    out = latent_shift(x, f, h, w).reshape(f, h, w)
    for r in range(h):
        for c in range(w):
            s = SHIFTS[r % 4][c % 4]
            expected = [frame - s if frame >= s and s < f else frame for frame in range(f)]
            assert out[:, r, c].tolist() == expected


@torch.no_grad()
def test_attention_modes_differ(base):
    x, t = torch.randn(1, 4, 5, 16, 16, generator=torch.Generator().manual_seed(6)), torch.tensor(501)
    outs = {mode: SimDA(base, attention=mode).predict_noise(x, t, embeds(1)) for mode in ("latent_shift",
                                                                                          "sparse_causal", "self")}
    assert (outs["latent_shift"] - outs["sparse_causal"]).abs().max() > 1e-4
    assert (outs["sparse_causal"] - outs["self"]).abs().max() > 1e-4
    with pytest.raises(UserError):
        SimDA(base, attention="full")
    with pytest.raises(UserError):
        SimDA(base, adapter_ratio=0.5)


def test_sd15_trainable_parameters_match_paper_scale():
    """On the real SD 1.5 UNet architecture (meta device, no weights): 16 transformer locations -> 24.86M."""
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(cross_attention_dim=768)
        adapters = SimDAAdapters(unet)
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert len(adapters.temporal) == 16 and len(adapters.attn) == len(adapters.ff) == 16
    # Spatial: 2 x (D*D/4 + D/4 + D/4*D + D) per block; temporal: C*C/2 + C/2 + 3*C/2 + C/2 + C/2*C + C.
    widths = [320] * 5 + [640] * 5 + [1280] * 6
    assert count(adapters.attn) + count(adapters.ff) == sum(2 * (d * d // 2 + d // 4 + d) for d in widths)
    assert count(adapters.temporal) == sum(c * c + c // 2 + 3 * c // 2 + c // 2 + c for c in widths)
    assert count(adapters) == 24_855_680
    assert abs(count(adapters) - 24e6) / 24e6 < 0.05  # the paper: "fine-tunes only 24M out of 1.1B"


@torch.no_grad()
def test_adapters_save_and_load_into_a_personalized_base(base, tmp_path):
    trained = SimDA(base)
    randomize(trained.adapters, seed=9)
    path = trained.save_adapters(tmp_path / "simda.safetensors")

    personalized = tiny_components(5)  # same architecture, different weights
    loaded = SimDA(personalized, adapter_weights=str(path))
    for k, v in trained.adapters.state_dict().items():
        assert torch.equal(loaded.adapters.state_dict()[k], v)
    assert loaded.config()["adapter_weights_sha256"] and SimDA(personalized).config()["adapter_weights_sha256"] is None

    x, t = torch.randn(1, 4, 4, 16, 16, generator=torch.Generator().manual_seed(7)), torch.tensor(701)
    in_memory = SimDA(personalized)
    in_memory.adapters.load_state_dict(trained.adapters.state_dict())
    out = loaded.predict_noise(x, t, embeds(1))
    assert torch.equal(out, in_memory.predict_noise(x, t, embeds(1)))
    assert (out - SimDA(personalized).predict_noise(x, t, embeds(1))).abs().max() > 1e-4  # the weights matter
    assert (out - trained.predict_noise(x, t, embeds(1))).abs().max() > 1e-4  # and so does the base

    with pytest.raises(UserError):
        SimDA(personalized, adapter_weights=str(path), spatial_ratio=0.5)  # shapes differ
    with pytest.raises(UserError):
        SimDA(personalized, adapter_weights=str(path), temporal_activation="gelu")  # same shapes, other function
    with pytest.raises(UserError):
        SimDA(personalized, adapter_weights=str(tmp_path / "missing.safetensors"))


def test_batch_equals_one_by_one_and_seed_determinism(base):
    simda = SimDA(base)
    randomize(simda.adapters, seed=10)
    reqs = requests()
    batch = simda.generate(reqs)
    single = [simda.generate([r])[0] for r in reqs]
    for a, b in zip(batch, single):
        assert (a.frames - b.frames).abs().max().item() <= 1e-4
    assert torch.equal(simda.generate(reqs[:1])[0].frames, single[0].frames)
    assert (batch[0].frames - batch[1].frames).abs().max() > 1e-3
