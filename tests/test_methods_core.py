"""per_frame and animatediff: the contract (batch == singles, determinism) and AnimateDiff's weight-free facts."""
import pytest
import torch

from bench.api import Method
from bench.models import BaseComponents, tiny_components, tiny_unet
from methods.animatediff import OFFICIAL_NOISE_SCHEDULE, AnimateDiff, tiny_motion_adapter
from methods.per_frame import PerFrame


@pytest.fixture(scope="module")
def methods(tiny_base):
    return {"per_frame": PerFrame(tiny_base), "animatediff": AnimateDiff(tiny_base)}


@pytest.mark.parametrize("name", ["per_frame", "animatediff"])
def test_contract_batch_equals_singles_and_determinism(methods, name, request_factory):
    method = methods[name]
    assert isinstance(method, Method)
    reqs = [request_factory("a", "a red ball", seed=1), request_factory("b", "a cat walking", seed=2)]
    batch = method.generate(reqs)
    singles = [method.generate([r])[0] for r in reqs]
    assert len(batch) == 2
    for v, s, r in zip(batch, singles, reqs):
        assert v.frames.shape == (r.num_frames, 3, r.height, r.width)
        assert v.frames.dtype == torch.float32 and 0 <= v.frames.min() and v.frames.max() <= 1
        assert (v.frames - s.frames).abs().max() <= 1e-4
    again = method.generate(reqs[:1])[0]
    assert torch.equal(again.frames, singles[0].frames)
    assert not torch.allclose(batch[0].frames, batch[1].frames)


def test_zero_init_motion_modules_reproduce_per_frame(tiny_base, methods, request_factory):
    req = request_factory(num_frames=6)
    a = PerFrame(tiny_base, noise_schedule=OFFICIAL_NOISE_SCHEDULE).generate([req])[0].frames  # same schedule
    b = methods["animatediff"].generate([req])[0].frames
    assert (a - b).abs().max() < 1e-4


def test_default_init_motion_adapter_is_not_identity(tiny_base, request_factory):
    """The other direction: diffusers' MotionAdapter init is not zero, so it must change the video."""
    method = AnimateDiff(tiny_base)
    adapter = tiny_motion_adapter(tiny_base.unet.config, seed=0, zero_init=False)
    from diffusers import UNetMotionModel
    method.unet = UNetMotionModel.from_unet2d(tiny_base.unet, adapter).eval()
    req = request_factory()
    a = PerFrame(tiny_base).generate([req])[0].frames
    assert (a - method.generate([req])[0].frames).abs().max() > 1e-3


def test_adapter_plugs_into_a_personalized_base(request_factory):
    """Same adapter, different base UNet: the video follows the new base (the personalized-model promise)."""
    base_a = tiny_components(0)
    base_b = BaseComponents(**{**base_a.__dict__, "unet": tiny_unet(seed=123).eval()})
    req = request_factory()
    on_a = AnimateDiff(base_a).generate([req])[0].frames
    on_b = AnimateDiff(base_b).generate([req])[0].frames
    per_frame_b = PerFrame(base_b, noise_schedule=OFFICIAL_NOISE_SCHEDULE)  # same schedule as AnimateDiff
    assert (on_b - per_frame_b.generate([req])[0].frames).abs().max() < 1e-4
    assert (on_a - on_b).abs().max() > 1e-3


def test_motion_adapter_saved_and_loaded_from_a_folder(tmp_path, tiny_base, request_factory):
    adapter = tiny_motion_adapter(tiny_base.unet.config, seed=5, zero_init=False)
    adapter.save_pretrained(tmp_path / "adapter")
    loaded = AnimateDiff(tiny_base, motion_adapter=str(tmp_path / "adapter"))
    assert torch.equal(loaded.adapter.down_blocks[0].motion_modules[0].proj_out.weight,
                       adapter.down_blocks[0].motion_modules[0].proj_out.weight)
    assert loaded.config()["options"]["motion_adapter"] == str(tmp_path / "adapter")


def test_trainable_parameters_are_the_motion_modules(methods):
    ad = methods["animatediff"]
    n_trainable = sum(p.numel() for p in ad.trainable_parameters())
    n_adapter = sum(p.numel() for n, p in ad.adapter.named_parameters() if "motion_modules" in n)
    assert n_trainable == n_adapter > 0
    assert list(methods["per_frame"].trainable_parameters()) == []


def test_shared_noise_baseline_gives_identical_frames(tiny_base, request_factory):
    v = PerFrame(tiny_base, noise="shared").generate([request_factory()])[0].frames
    assert (v - v[:1]).abs().max() < 1e-5


def test_too_many_frames_for_the_adapter_is_a_clear_error(tiny_base, request_factory):
    from bench.errors import UserError

    with pytest.raises(UserError, match="motion_max_seq_length"):
        AnimateDiff(tiny_base).generate([request_factory(num_frames=33, num_inference_steps=1)])


def test_unknown_option_names_the_alternatives(tiny_base):
    from bench.errors import UserError

    with pytest.raises(UserError, match="did you mean 'motion_adapter'"):
        AnimateDiff(tiny_base, motion_adaptor="tiny")
