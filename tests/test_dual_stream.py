"""Dual-Stream (reconstruction): per_frame reproduction, two-way interaction, frozen base, weights, batching."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from bench.api import GenRequest  # noqa: E402
from bench.errors import UserError  # noqa: E402
from bench.models import tiny_components  # noqa: E402
from methods.base import count_parameters  # noqa: E402
from methods.dual_stream import DualStream  # noqa: E402
from methods.animatediff import OFFICIAL_NOISE_SCHEDULE  # noqa: E402
from methods.per_frame import PerFrame  # noqa: E402


@pytest.fixture(scope="module")
def base():
    return tiny_components(0)


def randomize(params, seed: int, std: float = 0.05) -> None:
    """Stand-in for training: the given tensors get deterministic non-zero values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.copy_(torch.randn(p.shape, generator=g) * std)


def motion_params(method: DualStream):
    return [p for k, p in method.named_trainable().items() if k.startswith("motion.")]


def lora_params(method: DualStream):
    return [p for k, p in method.named_trainable().items() if k.startswith("content.")]


def embeds(batch: int = 1, seed: int = 3) -> torch.Tensor:
    return torch.randn(batch, 77, 32, generator=torch.Generator().manual_seed(seed))


def requests(frames: int = 4, steps: int = 2) -> list[GenRequest]:
    return [GenRequest("a", "a red ball rolling", seed=21, num_frames=frames, num_inference_steps=steps),
            GenRequest("b", "a cat walking", seed=22, num_frames=frames, num_inference_steps=steps)]


def test_motion_off_reproduces_per_frame_exactly(base):
    """Zero-init interaction and LoRA, motion_weight=0: the videos are per_frame's, bit for bit, even with a
    trained (non-zero) motion stream."""
    method = DualStream(base, motion_weight=0.0)
    randomize(motion_params(method), seed=1)
    reqs = requests()
    ours, ref = method.generate(reqs), PerFrame(base, noise_schedule=OFFICIAL_NOISE_SCHEDULE).generate(reqs)
    for a, b in zip(ours, ref):
        assert torch.equal(a.frames, b.frames)
    # The motion stream itself is not the per-frame model (so the equality above is not vacuous).
    x, t = torch.randn(1, 4, 4, 16, 16, generator=torch.Generator().manual_seed(2)), torch.tensor(501)
    with torch.no_grad():
        _, motion = method.stream_noise(x, t, embeds())
        assert (motion - PerFrame(base).predict_noise(x, t, embeds())).abs().max() > 1e-3


@torch.no_grad()
def test_fresh_method_is_the_base_for_any_motion_weight(base):
    """Zero proj_out, zero interaction, zero LoRA B: both streams are the frozen T2I per frame."""
    x, t = torch.randn(1, 4, 4, 16, 16, generator=torch.Generator().manual_seed(3)), torch.tensor(301)
    ref = PerFrame(base).predict_noise(x, t, embeds())
    for w in (0.5, 1.0):
        assert (DualStream(base, motion_weight=w).predict_noise(x, t, embeds()) - ref).abs().max() < 1e-5


@torch.no_grad()
def test_motion_weight_mixes_the_two_streams(base):
    method = DualStream(base, motion_weight=0.25)
    randomize(motion_params(method), seed=14)
    x, t = torch.randn(1, 4, 4, 16, 16, generator=torch.Generator().manual_seed(15)), torch.tensor(201)
    content, motion = method.stream_noise(x, t, embeds())
    assert (content - motion).abs().max() > 1e-3
    assert (method.predict_noise(x, t, embeds()) - (0.75 * content + 0.25 * motion)).abs().max() < 1e-6


@torch.no_grad()
def test_interaction_exchanges_features_both_ways(base):
    method = DualStream(base)
    randomize(motion_params(method), seed=4)  # a motion stream that mixes frames
    x = torch.randn(1, 4, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    y = x.clone()
    y[:, :, 3] += 1.0
    t = torch.tensor(601)
    frame0 = lambda z: [s[:, :, 0] for s in method.stream_noise(z, t, embeds())]  # noqa: E731

    (cx, mx), (cy, my) = frame0(x), frame0(y)
    assert torch.equal(cx, cy)  # no interaction: the content stream is per-frame
    assert (mx - my).abs().max() > 1e-4  # the motion stream sees frame 3 from frame 0

    # motion -> content: frame 0 of the content stream now depends on frame 3.
    randomize([p for k, p in method.interaction.named_parameters() if "content_from_motion" in k], seed=6)
    (cx2, mx2), (cy2, _) = frame0(x), frame0(y)
    assert (cx2 - cy2).abs().max() > 1e-5
    assert torch.equal(mx2, mx)  # the other direction is still zero

    # content -> motion: a trained content increment reaches the motion stream.
    randomize(lora_params(method), seed=7)
    _, mx3 = frame0(x)
    assert torch.equal(mx3, mx)  # motion_from_content still zero-init
    randomize([p for k, p in method.interaction.named_parameters() if "motion_from_content" in k], seed=8)
    _, mx4 = frame0(x)
    assert (mx4 - mx).abs().max() > 1e-5


@torch.no_grad()
def test_base_unet_is_never_modified(base):
    before = {k: v.clone() for k, v in base.unet.state_dict().items()}
    processors = {k: type(v) for k, v in base.unet.attn_processors.items()}
    module_types = [type(m) for m in base.unet.modules()]
    method = DualStream(base)
    randomize(method.trainable_parameters(), seed=9)
    x = torch.randn(1, 4, 4, 16, 16, generator=torch.Generator().manual_seed(10))
    method.predict_noise(x, torch.tensor(401), embeds())
    assert all(torch.equal(before[k], v) for k, v in base.unet.state_dict().items())
    assert {k: type(v) for k, v in base.unet.attn_processors.items()} == processors
    assert [type(m) for m in base.unet.modules()] == module_types  # no LoRA layers injected into the base
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in base.unet.modules())
    # Both streams run on the base weights themselves (no copies).
    assert method.motion.conv_in.weight is base.unet.conv_in.weight
    assert method.content.conv_in.weight is base.unet.conv_in.weight


def test_trainable_parameters_and_reconstruction_record(base):
    method = DualStream(base)
    named = method.named_trainable()
    motion = {k for k in named if k.startswith("motion.")}
    assert motion and all("motion_modules." in k for k in motion)
    assert count_parameters(named[k] for k in motion) == count_parameters(method.adapter.parameters())
    assert any(k.startswith("interaction.") for k in named) and any("lora_" in k for k in named)
    assert not any(k.startswith("content.") for k in DualStream(base, content_lora_rank=0).named_trainable())
    assert not any(k.startswith("interaction.") for k in DualStream(base, interaction=False).named_trainable())
    cfg = method.config()
    assert cfg["method"] == "dual_stream" and cfg["options"]["motion_weight"] == 0.5
    assert any("reconstruction" in line for line in cfg["reconstruction"]) and len(cfg["reconstruction"]) >= 5


@torch.no_grad()
def test_weights_save_and_load(base, tmp_path):
    trained = DualStream(base)
    randomize(trained.trainable_parameters(), seed=11)
    path = trained.save_weights(tmp_path / "dual.safetensors")
    loaded = DualStream(base, weights=str(path))
    x, t = torch.randn(1, 4, 4, 16, 16, generator=torch.Generator().manual_seed(12)), torch.tensor(701)
    out = loaded.predict_noise(x, t, embeds())
    assert torch.equal(out, trained.predict_noise(x, t, embeds()))
    assert (out - DualStream(base).predict_noise(x, t, embeds())).abs().max() > 1e-4
    assert loaded.config()["weights_sha256"] and DualStream(base).config()["weights_sha256"] is None
    with pytest.raises(UserError):
        DualStream(base, weights=str(path), content_lora_rank=2)


def test_options_are_checked(base):
    with pytest.raises(UserError):
        DualStream(base, motion_weight=1.5)
    with pytest.raises(UserError):
        DualStream(base, motion_wieght=0.5)
    with pytest.raises(UserError):
        DualStream(base).predict_noise(torch.zeros(1, 4, 33, 16, 16), torch.tensor(1), embeds())


def test_batch_equals_one_by_one_and_seed_determinism(base):
    method = DualStream(base)
    randomize(method.trainable_parameters(), seed=13)
    reqs = requests()
    batch = method.generate(reqs)
    single = [method.generate([r])[0] for r in reqs]
    for a, b in zip(batch, single):
        assert (a.frames - b.frames).abs().max().item() <= 1e-4
    assert torch.equal(method.generate(reqs[:1])[0].frames, single[0].frames)
    assert (batch[0].frames - batch[1].frames).abs().max() > 1e-3
