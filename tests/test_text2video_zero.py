"""Text2Video-Zero adapter on tiny random components: schedule mapping, warping, cross-frame attention, batching,
chunking, processor hygiene, and parity with diffusers' deprecated TextToVideoZeroPipeline."""
from __future__ import annotations

import copy
import math

import pytest
import torch

from bench.api import GenRequest
from bench.errors import UserError
from bench.metrics.flicker import temporal_flickering
from bench.models import tiny_components
from methods.attention import CrossFrameAttnProcessor, FrameContext, spatial_self_attention_layers
from methods.per_frame import PerFrame
from methods.text2video_zero import Text2VideoZero, resolve_t0_t1, warp_latents

PROMPT = "a red fox running through fresh snow"


@pytest.fixture(scope="module")
def base():
    return tiny_components(0)


@pytest.fixture(scope="module")
def shared(base):
    """One default video reused by several tests (tiny models are cheap, a 2-core CI box is not)."""
    req = make_request(frames=4, steps=4)
    return req, Text2VideoZero(base).generate([req])[0]


def make_request(seed: int = 3, frames: int = 4, steps: int = 3, guidance: float = 7.5, prompt: str = PROMPT) -> GenRequest:
    return GenRequest("p", prompt, seed=seed, num_frames=frames, num_inference_steps=steps, guidance_scale=guidance)


def processor_types(unet) -> dict[str, type]:
    return {k: type(v) for k, v in unet.attn_processors.items()}


# ----------------------------------------------------------------------------------------------- t0 / t1
def test_t0_t1_mapping_hits_paper_timesteps_and_is_valid_for_any_step_count(base):
    method = Text2VideoZero(base)
    at50 = method.schedule(50)
    assert (at50["t0"], at50["t1"], at50["T0"], at50["T1"]) == (44, 47, 881, 941)
    assert method.schedule(2)["t0"] == 0 and method.schedule(2)["t1"] == 1
    assert (method.schedule(4)["t0"], method.schedule(4)["t1"]) == (2, 3)
    steps_offset = base.scheduler.config.steps_offset
    for n in range(2, 101):
        t0, t1 = resolve_t0_t1(method.make_scheduler(n).timesteps.tolist())
        assert 0 <= t0 < t1 <= n - 1, n
        # with "leading" spacing the list mapping is the closed form (ties rounded up, to the larger timestep)
        stride = 1000 // n
        assert t1 == min(n - 1, max(1, math.floor((941 - steps_offset) / stride + 0.5))), n
    with pytest.raises(UserError, match="num_inference_steps >= 2"):
        resolve_t0_t1([1])
    assert resolve_t0_t1(list(range(10)), t0=3, t1=5) == (3, 5)  # explicit indices win
    with pytest.raises(UserError, match="t0 < t1"):
        resolve_t0_t1([751, 501, 251, 1], t0=3, t1=3)
    cfg = method.config()
    assert cfg["t0_t1_at_50_steps"]["T1"] == 941 and "t0_t1_mapping" in cfg


@pytest.mark.parametrize("spacing", ["trailing", "linspace"])
def test_t0_t1_map_by_the_actual_timesteps_for_other_spacings(base, spacing):
    method = Text2VideoZero(base, noise_schedule={"timestep_spacing": spacing})
    for n in (4, 10, 50):
        timesteps = method.make_scheduler(n).timesteps.tolist()
        info = method.schedule(n)
        assert timesteps[-info["t1"] - 1] == info["T1"] and timesteps[-info["t0"] - 1] == info["T0"]
        if n == 50:  # room for both: each is the list's closest timestep to the paper's
            assert abs(info["T1"] - 941) == min(abs(t - 941) for t in timesteps)
            assert abs(info["T0"] - 881) == min(abs(t - 881) for t in timesteps)
    # "trailing" at 50 steps: 999, 979, 959, 939, ...: the closed form for "leading" would pick 959, not 939
    if spacing == "trailing":
        assert method.schedule(50)["T1"] == 939


def test_float_timestep_samplers_are_refused_in_one_line(base):
    with pytest.raises(UserError, match="integer timesteps"):
        Text2VideoZero(base, scheduler="euler")


def test_bad_options_are_user_errors(base):
    with pytest.raises(UserError, match="chunk_size"):
        Text2VideoZero(base, chunk_size=1)
    with pytest.raises(UserError, match="forward_alphas"):
        Text2VideoZero(base, forward_alphas="approx")
    with pytest.raises(UserError, match="both t0 and t1"):
        Text2VideoZero(base, t0=1)


# ----------------------------------------------------------------------------------------------- warping
def test_zero_motion_field_leaves_latents_unchanged():
    x = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(0))
    warped = warp_latents(x, [1, 2, 5], 0.0, 0.0)
    assert warped.shape == (2, 4, 3, 16, 16)
    for k in range(3):
        assert torch.equal(warped[:, :, k], x)


def test_warp_sign_and_displacement_follow_diffusers_convention():
    # strength s on the 512 grid moves content by s * latent_size / 512 per frame toward -x / -y:
    # s=32 on 16 latent px is one latent pixel per frame.
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 8, 8] = 1.0
    moved_x = warp_latents(x, [2], 32.0, 0.0)[0, 0, 0]
    moved_y = warp_latents(x, [3], 0.0, 32.0)[0, 0, 0]
    assert moved_x[8, 6] == 1.0 and moved_x.sum() == 1.0
    assert moved_y[5, 8] == 1.0 and moved_y.sum() == 1.0


# ----------------------------------------------------------------------------------------------- cross-frame attention
def test_cross_frame_unet_frame_k_depends_only_on_frames_0_and_k(base):
    unet = base.unet
    original = processor_types(unet)
    context = FrameContext()
    procs = {k: CrossFrameAttnProcessor(context) for k in spatial_self_attention_layers(unet)}
    frames, videos = 4, 4  # 2 batch items x 2 CFG halves, rows = video * F + f
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(videos * frames, 4, 16, 16, generator=gen)
    emb = torch.randn(videos, 77, 32, generator=gen).repeat_interleave(frames, 0)
    t = torch.tensor(501)
    saved = dict(unet.attn_processors)
    unet.set_attn_processor({k: procs.get(k, v) for k, v in saved.items()})
    try:
        with torch.no_grad(), context.frames(frames):
            out = unet(x, t, encoder_hidden_states=emb).sample
            bumped = x.clone()
            bumped[1 * frames + 2] += 1.0  # frame 2 of video 1
            out_bumped = unet(bumped, t, encoder_hidden_states=emb).sample
        with torch.no_grad(), context.frames(1):
            alone = unet(x[::frames], t, encoder_hidden_states=emb[::frames]).sample  # every video's frame 0 alone
    finally:
        unet.set_attn_processor(saved)
    changed = (out_bumped - out).flatten(1).abs().amax(1)
    assert changed[1 * frames + 2] > 1e-3
    assert torch.count_nonzero(changed) == 1  # every other row exactly unchanged
    torch.testing.assert_close(out[::frames], alone, atol=1e-5, rtol=0)
    with torch.no_grad():
        plain = unet(x[::frames], t, encoder_hidden_states=emb[::frames]).sample
    torch.testing.assert_close(out[::frames], plain, atol=1e-5, rtol=0)  # frame 0 == plain T2I UNet
    assert processor_types(unet) == original


def test_processors_only_on_spatial_self_attention_and_restored_even_on_error(base, monkeypatch):
    method = Text2VideoZero(base)
    summary = method.config()["attn_processors"]
    assert summary and all((name == "CrossFrameAttnProcessor") == k.endswith("attn1.processor")
                           for k, name in summary.items())
    original = processor_types(base.unet)
    seen = {}

    def boom(*args, **kwargs):
        seen.update(processor_types(base.unet))
        raise RuntimeError("boom")

    monkeypatch.setattr(method, "denoise", boom)
    with pytest.raises(RuntimeError, match="boom"):
        method.generate([make_request(frames=2, steps=2)])
    assert CrossFrameAttnProcessor in seen.values()  # they were installed while sampling ...
    assert processor_types(base.unet) == original  # ... and are back after the exception
    monkeypatch.undo()
    method.generate([make_request(frames=2, steps=2)])
    assert processor_types(base.unet) == original


# ----------------------------------------------------------------------------------------------- sampling properties
def test_frame0_equals_plain_single_frame_t2i_sample(base, shared):
    req, video = shared
    plain_method = PerFrame(base)
    gen = torch.Generator("cpu").manual_seed(req.seed)
    x_t = torch.randn(plain_method.latent_shape(req), generator=gen)[:, :1][None]  # frame 0 of the same draw
    single = GenRequest("p", req.prompt, seed=req.seed, num_frames=1, num_inference_steps=req.num_inference_steps)
    with torch.no_grad():
        embeds = torch.cat([plain_method.encode_prompts([""]), plain_method.encode_prompts([req.prompt])])
        latents = plain_method.sample_latents(x_t, embeds, single, [single])
        image = plain_method.decode(latents)[0, 0]
    assert (video.frames[0] - image).abs().max() <= 1e-4
    assert (video.frames[1] - image).abs().max() > 1e-3  # the other frames are not copies of it


@pytest.mark.parametrize("guidance", [7.5, 1.0])
def test_batch_equals_single_requests(base, guidance):
    method = Text2VideoZero(base)
    reqs = [make_request(seed=5, frames=3, steps=2, guidance=guidance),
            make_request(seed=6, frames=3, steps=2, guidance=guidance, prompt="a blue car on a road")]
    batched = method.generate(reqs)
    for req, video in zip(reqs, batched):
        alone = method.generate([req])[0]
        assert (video.frames - alone.frames).abs().max() <= 1e-4
    assert (batched[0].frames - batched[1].frames).abs().max() > 1e-3


def test_chunked_generation_matches_one_shot_and_keeps_frame0(base, shared):
    req, whole = shared
    chunked = Text2VideoZero(base, chunk_size=2).generate([req])[0]  # 3 chunks: frame 0 + one new frame each
    assert (whole.frames - chunked.frames).abs().max() <= 1e-4
    assert (whole.frames[0] - chunked.frames[0]).abs().max() <= 1e-5


def test_video_info_records_resolved_schedule(shared):
    _, video = shared
    assert (video.info["t0"], video.info["t1"], video.info["T0"], video.info["T1"]) == (2, 3, 501, 751)


def test_flickering_beats_per_frame_on_tiny_models(base, shared):
    # Measured on this tiny base: ~0.869 vs ~0.823 here; 8 frames, 3 prompts: 0.858 vs 0.820 (mean abs frame
    # difference 0.14 vs 0.18). scripts/time_issue3_methods.py prints the table.
    req, video = shared
    t2vz = temporal_flickering(video.frames)
    per_frame = temporal_flickering(PerFrame(base).generate([req])[0].frames)
    assert t2vz > per_frame + 0.01, (t2vz, per_frame)


# ----------------------------------------------------------------------------------------------- parity
@pytest.mark.parametrize("indices", [None, (1, 2)])
def test_parity_with_diffusers_text_to_video_zero_pipeline(base, indices):
    try:
        from diffusers import TextToVideoZeroPipeline
    except ImportError as exc:  # removed from a future diffusers: nothing to compare against
        pytest.skip(f"diffusers.TextToVideoZeroPipeline not importable ({exc})")
    options = {} if indices is None else {"t0": indices[0], "t1": indices[1]}
    req = make_request(seed=11, frames=4, steps=4)
    video = Text2VideoZero(base, **options).generate([req])[0]
    pipe = TextToVideoZeroPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer,
                                   unet=base.unet, scheduler=copy.deepcopy(base.scheduler), safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    # Same draws as ours: the (C, F, h, w) initial draw (frame 0 handed over as `latents`), then the pipeline
    # draws the forward noise of frames 1..F-1 from the same generator.
    gen = torch.Generator("cpu").manual_seed(req.seed)
    x_t = torch.randn((4, req.num_frames, 16, 16), generator=gen)
    images = pipe(req.prompt, video_length=req.num_frames, height=req.height, width=req.width,
                  num_inference_steps=req.num_inference_steps, guidance_scale=req.guidance_scale, generator=gen,
                  latents=x_t[:, 0][None], t0=video.info["t0"], t1=video.info["t1"],
                  motion_field_strength_x=12, motion_field_strength_y=12).images
    reference = torch.from_numpy(images).permute(0, 3, 1, 2)
    assert reference.shape == video.frames.shape
    assert (reference - video.frames).abs().max() <= 1e-4
    assert (reference[1:] - reference[:-1]).abs().max() > 1e-3  # a real video, not a trivial match


def test_registered(base):
    from bench.registry import METHODS

    assert METHODS.get("text2video_zero") is Text2VideoZero


def test_ablation_options_change_only_what_they_should(base, shared):
    req, video = shared
    default = video.frames
    no_cf = Text2VideoZero(base, cross_frame_attention=False)
    assert "CrossFrameAttnProcessor" not in no_cf.config()["attn_processors"].values()
    plain = no_cf.generate([req])[0].frames
    assert (plain[0] - default[0]).abs().max() <= 1e-4  # frame 0 attends to itself either way
    assert (plain[1:] - default[1:]).abs().max() > 1e-3
    exact = Text2VideoZero(base, forward_alphas="exact").generate([req])[0].frames
    assert (exact[0] - default[0]).abs().max() <= 1e-5
    assert 0 < (exact[1:] - default[1:]).abs().max() < 0.1  # a one-step shift of the noise level
