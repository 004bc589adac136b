"""MagicVideo-style causal methods on tiny random components: exact causality at module and UNet level, prefix
consistency of generation, identity of the zero-initialised temporal module, batching, processor hygiene."""
from __future__ import annotations

import pytest
import torch

from bench.api import GenRequest
from bench.errors import UserError
from bench.models import tiny_components
from methods.attention import CausalFrameAttnProcessor, FrameContext, swapped_attn_processors
from methods.causal_cross_frame import CausalCrossFrame
from methods.magicvideo import MagicVideo, frame_major_noise
from methods.norms import PerFrameGroupNorm, like
from methods.animatediff import OFFICIAL_NOISE_SCHEDULE
from methods.per_frame import PerFrame

PROMPT = "a paper boat drifting down a stream"
VARIANTS = ["all_previous", "first_and_previous"]


@pytest.fixture(scope="module")
def base():
    return tiny_components(0)


@pytest.fixture(scope="module")
def trained(base):
    """A MagicVideo whose temporal module is not the identity (random proj_out), shared by the causality tests."""
    method = MagicVideo(base)
    randomize_proj_out(method)
    return method


def make_request(frames: int = 4, seed: int = 2, steps: int = 2, guidance: float = 7.5, prompt: str = PROMPT) -> GenRequest:
    return GenRequest("p", prompt, seed=seed, num_frames=frames, num_inference_steps=steps, guidance_scale=guidance)


def randomize_proj_out(method: MagicVideo, seed: int = 0) -> None:
    """Give the temporal module real (non-identity) output weights, so causality tests test something."""
    gen = torch.Generator().manual_seed(seed)
    for name, module in method.unet.named_modules():
        if name.endswith("proj_out") and "motion_modules" in name:
            module.weight.copy_(torch.randn(module.weight.shape, generator=gen) * 0.2)
            module.bias.copy_(torch.randn(module.bias.shape, generator=gen) * 0.2)


def first_spatial_self_attention(unet):
    return unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1


def latents_and_embeds(method, frames: int, batch: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 4, frames, 16, 16, generator=gen)
    emb = torch.randn(batch, 77, 32, generator=gen)
    return x, emb


def swapped(method: CausalCrossFrame):
    return swapped_attn_processors(method.base.unet, method.processors)


# ----------------------------------------------------------------------------------------------- module level
@pytest.mark.parametrize("variant", VARIANTS)
def test_causal_spatial_attention_module_ignores_future_frames(base, variant):
    attn = first_spatial_self_attention(base.unet)
    original = attn.processor
    context = FrameContext()
    frames, videos, tokens = 5, 3, 16
    x = torch.randn(videos * frames, tokens, attn.query_dim, generator=torch.Generator().manual_seed(0))
    attn.set_processor(CausalFrameAttnProcessor(context, variant))
    try:
        with torch.no_grad(), context.frames(frames):
            out = attn(x)
            for t in range(frames - 1):
                bumped = x.clone().view(videos, frames, tokens, -1)
                bumped[:, t + 1:] += torch.randn(bumped[:, t + 1:].shape, generator=torch.Generator().manual_seed(t))
                out_b = attn(bumped.view_as(x)).view(videos, frames, tokens, -1)
                ref = out.view(videos, frames, tokens, -1)
                assert torch.equal(out_b[:, :t + 1], ref[:, :t + 1]), t  # exactly: no path from the future
                assert (out_b[:, t + 1] - ref[:, t + 1]).abs().max() > 1e-4
            bumped = x.clone().view(videos, frames, tokens, -1)
            bumped[:, 0] += 1.0  # the past does reach later frames: this is attention across frames
            out_b = attn(bumped.view_as(x)).view(videos, frames, tokens, -1)
            assert torch.all((out_b - out.view_as(out_b)).abs().amax(dim=(2, 3)) > 1e-4)
            if variant == "first_and_previous":  # the sparse form: frame 3 sees {0, 2, 3}, not frame 1
                bumped = x.clone().view(videos, frames, tokens, -1)
                bumped[:, 1] += 1.0
                out_b = attn(bumped.view_as(x)).view(videos, frames, tokens, -1)
                assert torch.equal(out_b[:, 3], out.view(videos, frames, tokens, -1)[:, 3])
    finally:
        attn.set_processor(original)


def test_causal_temporal_module_ignores_future_frames_and_stock_groupnorm_leaks(trained):
    module = trained.unet.down_blocks[0].motion_modules[0]
    assert isinstance(module.norm, PerFrameGroupNorm)
    frames, batch, t = 6, 2, 2
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(batch * frames, module.in_channels, 8, 8, generator=gen)
    bumped = x.clone().view(batch, frames, *x.shape[1:])
    bumped[:, t + 1:] += torch.randn(bumped[:, t + 1:].shape, generator=gen)
    bumped = bumped.view_as(x)

    def delta():
        with torch.no_grad():
            a = module(x, num_frames=frames).view(batch, frames, *x.shape[1:])
            b = module(bumped, num_frames=frames).view(batch, frames, *x.shape[1:])
        return (a - b).abs().flatten(2).amax(2)  # (batch, frames)

    causal = delta()
    assert torch.all(causal[:, : t + 1] == 0) and torch.all(causal[:, t + 1:] > 1e-4)
    with torch.no_grad():  # ... while frame 0 does reach every later frame
        past = x.clone().view(batch, frames, *x.shape[1:])
        past[:, 0] += torch.randn(past[:, 0].shape, generator=gen)  # not a constant: the norm would remove it
        moved = module(past.view_as(x), num_frames=frames) - module(x, num_frames=frames)
    assert torch.all(moved.view(batch, frames, -1).abs().amax(2) > 1e-4)
    # The same test catches diffusers' stock GroupNorm, which pools over frames: the past sees the future.
    causal_norm = module.norm
    module.norm = like(causal_norm, torch.nn.GroupNorm)
    try:
        assert delta()[:, : t + 1].max() > 1e-4
    finally:
        module.norm = causal_norm


# ----------------------------------------------------------------------------------------------- UNet level
@pytest.mark.parametrize("form", ["causal_all_previous", "causal_first_and_previous", "temporal"])
def test_unet_output_at_frame_t_ignores_later_frames(base, trained, form):
    if form == "temporal":
        method = trained
        run = method.predict_noise
    else:
        method = CausalCrossFrame(base, variant=form.removeprefix("causal_"))

        def run(x, t, emb):
            with swapped(method):
                return method.predict_noise(x, t, emb)
    frames, t = 5, 1
    x, emb = latents_and_embeds(method, frames)
    future, past = x.clone(), x.clone()
    future[:, :, t + 1:] += 1.0
    past[:, :, 0] += 1.0
    with torch.no_grad():
        a, b, c = (run(v, torch.tensor(501), emb) for v in (x, future, past))
    per_frame = (a - b).abs().amax(dim=(1, 3, 4))  # (B, F)
    assert torch.all(per_frame[:, : t + 1] == 0)
    assert torch.all(per_frame[:, t + 1:] > 1e-4)
    assert torch.all((a - c).abs().amax(dim=(1, 3, 4)) > 1e-5)  # frame 0 reaches every frame: not per-frame


# ----------------------------------------------------------------------------------------------- generation
def test_frame_major_noise_does_not_depend_on_frame_count():
    short, long = frame_major_noise(make_request(3), (4, 3, 16, 16)), frame_major_noise(make_request(6), (4, 6, 16, 16))
    assert torch.equal(long[:, :3], short)


@pytest.mark.parametrize("variant", VARIANTS)
def test_causal_generation_is_prefix_consistent(base, variant):
    method = CausalCrossFrame(base, variant=variant)
    short = method.generate([make_request(frames=3)])[0].frames
    long = method.generate([make_request(frames=5)])[0].frames
    assert (long[:3] - short).abs().max() <= 1e-4
    assert (long[1:] - long[:-1]).abs().max() > 1e-3  # frames differ: not trivially consistent


def test_temporal_module_generation_is_prefix_consistent(trained):
    method = trained
    short = method.generate([make_request(frames=3)])[0].frames
    long = method.generate([make_request(frames=5)])[0].frames
    assert (long[:3] - short).abs().max() <= 1e-4


def test_zero_initialised_temporal_module_reproduces_per_frame(base):
    method, per_frame = MagicVideo(base), PerFrame(base, noise_schedule=OFFICIAL_NOISE_SCHEDULE)
    x, emb = latents_and_embeds(method, frames=4)
    with torch.no_grad():
        torch.testing.assert_close(method.predict_noise(x, torch.tensor(501), emb),
                                   per_frame.predict_noise(x, torch.tensor(501), emb), atol=1e-5, rtol=0)
        req = make_request(frames=4)
        embeds = torch.cat([per_frame.encode_prompts([""]), per_frame.encode_prompts([req.prompt])])
        noise = frame_major_noise(req, per_frame.latent_shape(req))[None]
        ours = per_frame.decode(method.sample_latents(noise, embeds, req, [req]))
        theirs = per_frame.decode(per_frame.sample_latents(noise, embeds, req, [req]))
    assert (ours - theirs).abs().max() <= 1e-4
    randomize_proj_out(method)  # and the check can fail: a trained module changes the output
    with torch.no_grad():
        assert (method.predict_noise(x, torch.tensor(501), emb)
                - per_frame.predict_noise(x, torch.tensor(501), emb)).abs().max() > 1e-3


@pytest.mark.parametrize("guidance", [7.5, 1.0])
def test_causal_batch_equals_single_requests(base, guidance):
    method = CausalCrossFrame(base)
    reqs = [make_request(frames=3, seed=7, guidance=guidance), make_request(frames=3, seed=8, guidance=guidance,
                                                                  prompt="a lighthouse at dusk")]
    batched = method.generate(reqs)
    for req, video in zip(reqs, batched):
        assert (video.frames - method.generate([req])[0].frames).abs().max() <= 1e-4


# ----------------------------------------------------------------------------------------------- hygiene
def test_processors_restored_after_success_and_error(base, monkeypatch):
    original = {k: type(v) for k, v in base.unet.attn_processors.items()}
    method = CausalCrossFrame(base)
    summary = method.config()["attn_processors"]
    assert all((name == "CausalFrameAttnProcessor") == k.endswith("attn1.processor") for k, name in summary.items())
    method.generate([make_request(frames=2)])
    assert {k: type(v) for k, v in base.unet.attn_processors.items()} == original

    def boom(*args, **kwargs):
        assert any(isinstance(p, CausalFrameAttnProcessor) for p in base.unet.attn_processors.values())
        raise RuntimeError("boom")

    monkeypatch.setattr(method, "predict_noise", boom)
    with pytest.raises(RuntimeError, match="boom"):
        method.generate([make_request(frames=2)])
    assert {k: type(v) for k, v in base.unet.attn_processors.items()} == original


def test_trainable_parameters_are_the_temporal_module(base):
    method = MagicVideo(base)
    params = list(method.trainable_parameters())
    names = [n for n, _ in method.unet.named_parameters() if "motion_modules." in n]
    assert len(params) == len(names) > 0
    base_ids = {id(p) for p in base.unet.parameters()}
    assert not any(id(p) in base_ids for p in params)
    assert list(CausalCrossFrame(base).trainable_parameters()) == []
    processors = method.config()["attn_processors"]
    assert all((name == "CausalTemporalAttnProcessor") == ("motion_modules" in k) for k, name in processors.items())


def test_bad_options_and_too_many_frames_are_user_errors(base):
    with pytest.raises(UserError, match="variant"):
        CausalCrossFrame(base, variant="bidirectional")
    method = MagicVideo(base)
    x, emb = latents_and_embeds(method, frames=method.max_frames + 1, batch=1)
    with pytest.raises(UserError, match="motion_max_seq_length"):
        method.predict_noise(x, torch.tensor(1), emb)


def test_registered_and_the_old_name_warns(caplog):
    from bench.registry import METHODS

    assert METHODS.get("causal_cross_frame") is CausalCrossFrame
    assert METHODS.get("magicvideo") is MagicVideo
    assert "magicvideo_causal" not in METHODS.names()
    METHODS._warned.discard("magicvideo_causal")  # it warns once per process; an earlier test may have used it
    with caplog.at_level("WARNING", logger="t2v_bench"):
        assert METHODS.get("magicvideo_causal") is CausalCrossFrame
    assert "now called 'causal_cross_frame'" in caplog.text
