"""FreeNoise sliding context windows (videos longer than the adapter's positional table) and FreeInit."""
from __future__ import annotations

import math

import pytest
import torch

from bench.errors import UserError
from methods.animatediff import AnimateDiff, tiny_motion_adapter


@pytest.fixture(scope="module")
def short_adapter(tmp_path_factory, tiny_base):
    """A random (non-identity) adapter with only 8 positions."""
    folder = tmp_path_factory.mktemp("adapter8")
    tiny_motion_adapter(tiny_base.unet.config, seed=4, zero_init=False, max_seq_length=8).save_pretrained(folder)
    return str(folder)


def test_64_frames_beyond_the_positional_table_with_free_noise(short_adapter, tiny_base, request_factory):
    request = request_factory(num_frames=64, num_inference_steps=1, height=16, width=16, guidance_scale=1.0)
    with pytest.raises(UserError, match="motion_max_seq_length=8"):
        AnimateDiff(tiny_base, motion_adapter=short_adapter).generate([request])
    method = AnimateDiff(tiny_base, motion_adapter=short_adapter,
                         free_noise={"context_length": 8, "context_stride": 4})
    video = method.generate([request])[0]
    assert video.frames.shape[0] == 64 and torch.isfinite(video.frames).all()
    assert method.config()["free_noise"] == {"context_length": 8, "context_stride": 4, "weighting": "pyramid",
                                             "noise": "shuffle_context"}


def test_one_window_is_the_plain_module(short_adapter, tiny_base, request_factory):
    """With as many frames as the window and independent noise, FreeNoise is one window: the plain output."""
    request = request_factory(num_frames=8, num_inference_steps=2, height=16, width=16)
    plain = AnimateDiff(tiny_base, motion_adapter=short_adapter).generate([request])[0].frames
    windowed = AnimateDiff(tiny_base, motion_adapter=short_adapter,
                           free_noise={"context_length": 8, "noise": "random"}).generate([request])[0].frames
    assert torch.allclose(plain, windowed, atol=1e-5)


def test_windows_blend_overlapping_plain_windows(short_adapter, tiny_base):
    """One motion-module transformer block under FreeNoise (flat weighting): the temporal attention runs on each
    window alone with the plain block's weights (positions restart per window), overlapping windows are averaged,
    and the per-frame feed-forward follows, computed here window by window."""
    plain = AnimateDiff(tiny_base, motion_adapter=short_adapter)
    windowed = AnimateDiff(tiny_base, motion_adapter=short_adapter,
                           free_noise={"context_length": 4, "context_stride": 2, "weighting": "flat"})
    block = plain.unet.down_blocks[0].motion_modules[0].transformer_blocks[0]
    free_block = windowed.unet.down_blocks[0].motion_modules[0].transformer_blocks[0]
    x = torch.randn(3, 10, block.dim, generator=torch.Generator().manual_seed(0))  # (pixels, frames, channels)

    def attention(h):  # AnimateDiff's two temporal self-attentions, each with the sinusoidal positions
        h = h + block.attn1(block.pos_embed(block.norm1(h)))
        return h + block.attn2(block.pos_embed(block.norm2(h)))

    total, count = torch.zeros_like(x), torch.zeros(1, 10, 1)
    for s, e in [(0, 4), (2, 6), (4, 8), (6, 10)]:
        total[:, s:e] += attention(x[:, s:e])
        count[:, s:e] += 1
    mean = total / count
    with torch.no_grad():
        assert torch.allclose(free_block(x), mean + block.ff(block.norm3(mean)), atol=1e-5)
        with pytest.raises(RuntimeError):  # the plain block cannot take 10 frames: 8 positions
            block(x)


def test_shuffled_context_noise_repeats_the_first_window(short_adapter, tiny_base, request_factory):
    """FreeNoise's noise rescheduling: every frame past the first window reuses (shuffled) noise of an earlier
    frame, so the whole video starts from the first window's noise frames."""
    method = AnimateDiff(tiny_base, motion_adapter=short_adapter, free_noise={"context_length": 4, "context_stride": 2})
    noise = method.initial_noise(request_factory(num_frames=12, seed=3), (4, 12, 2, 2))
    first = [noise[:, j] for j in range(4)]
    for f in range(4, 12):
        assert any(torch.equal(noise[:, f], ref) for ref in first), f
    assert not torch.equal(noise, AnimateDiff(tiny_base).initial_noise(request_factory(num_frames=12, seed=3),
                                                                       (4, 12, 2, 2)))


def test_free_noise_settings_are_checked_in_one_line(short_adapter, tiny_base, request_factory):
    with pytest.raises(UserError, match="context_length=16 must be between 1 and .*=8"):
        AnimateDiff(tiny_base, motion_adapter=short_adapter, free_noise={"context_length": 16})
    with pytest.raises(UserError, match="no setting 'window'"):
        AnimateDiff(tiny_base, motion_adapter=short_adapter, free_noise={"window": 4})
    method = AnimateDiff(tiny_base, motion_adapter=short_adapter, free_noise={"context_length": 8})
    with pytest.raises(UserError, match="fewer than free_noise.context_length"):
        method.generate([request_factory(num_frames=4)])


def _butterworth(shape, d_s: float, d_t: float, order: int) -> torch.Tensor:
    """FreeInit's low-pass filter, vectorised (the paper's d^2 over normalised t, h, w in [-1, 1))."""
    t, h, w = shape
    grid = torch.meshgrid(*(2 * torch.arange(n) / n - 1 for n in (t, h, w)), indexing="ij")
    d2 = ((d_s / d_t) * grid[0]) ** 2 + grid[1] ** 2 + grid[2] ** 2
    return 1 / (1 + (d2 / d_s ** 2) ** order)


def test_free_init_reinitialises_low_frequencies_from_the_diffused_sample(request_factory):
    """Round 2 starts from low frequencies of the round-1 result diffused to T-1 with the round-1 noise, and
    high frequencies of fresh noise: checked against the formula computed here (FFT, Butterworth mask)."""
    from bench.models import sd_scheduler
    from methods.long_video import free_init_sample, free_init_settings

    settings = free_init_settings({"iterations": 2, "spatial_stop": 0.5, "temporal_stop": 0.5})
    requests = [request_factory(seed=5)]
    initial = torch.randn(1, 4, 6, 4, 4, generator=torch.Generator().manual_seed(1))
    x0 = torch.randn(1, 4, 6, 4, 4, generator=torch.Generator().manual_seed(2))
    seen = []

    def sample(z):
        seen.append(z.clone())
        return x0

    assert free_init_sample(sample, sd_scheduler().config, initial, requests, settings) is x0
    assert len(seen) == 2 and torch.equal(seen[0], initial)
    ab = sd_scheduler().alphas_cumprod[999]
    z_t = ab.sqrt() * x0 + (1 - ab).sqrt() * initial
    fresh = torch.randn(4, 6, 4, 4, generator=torch.Generator().manual_seed(5 * 1_000_003 + 1))[None]
    mask = _butterworth((6, 4, 4), 0.5, 0.5, 4)
    dims = (-3, -2, -1)
    spec = lambda x: torch.fft.fftshift(torch.fft.fftn(x, dim=dims), dim=dims)  # noqa: E731
    mixed = spec(z_t) * mask + spec(fresh) * (1 - mask)
    want = torch.fft.ifftn(torch.fft.ifftshift(mixed, dim=dims), dim=dims).real
    assert torch.allclose(seen[1], want, atol=1e-5)


def test_free_init_one_round_is_plain_sampling_and_more_rounds_change_it(tiny_base, request_factory):
    request = request_factory(num_frames=4, num_inference_steps=2, height=16, width=16)
    one = AnimateDiff(tiny_base, free_init={"iterations": 1}).generate([request])[0].frames
    three = AnimateDiff(tiny_base, free_init={"iterations": 3}).generate([request])[0].frames
    assert torch.equal(AnimateDiff(tiny_base).generate([request])[0].frames, one)
    assert not torch.allclose(one, three, atol=1e-4) and math.isfinite(float(three.sum()))
    record = AnimateDiff(tiny_base, free_init={"iterations": 3}).config()
    assert record["free_init"]["iterations"] == 3 and record["free_init"]["filter"] == "butterworth"
