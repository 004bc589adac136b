"""Each method's own noise schedule (AnimateDiff's official one for its family), the sampling.scheduler option, and
per-item step noise for stochastic samplers."""
import json

import pytest
import torch

from bench.config import load_config
from bench.errors import UserError
from bench.runner import Runner
from methods.animatediff import AnimateDiff
from methods.magicvideo import MagicVideo
from methods.per_frame import PerFrame


def alpha_bar(betas: torch.Tensor, t: int) -> float:
    return float(torch.prod(1 - betas[: t + 1].double()))


def test_animatediff_family_samples_on_the_official_linear_schedule(tiny_base):
    # closed forms: linear betas 0.00085..0.012 (AnimateDiff) vs SD's scaled_linear (sqrt-linear, squared)
    linear = torch.linspace(0.00085, 0.012, 1000, dtype=torch.float64)
    scaled = torch.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=torch.float64) ** 2
    assert alpha_bar(linear, 501) == pytest.approx(0.160, abs=1e-3)
    assert alpha_bar(scaled, 501) == pytest.approx(0.275, abs=1e-3)
    for cls in (AnimateDiff, MagicVideo):
        s = cls(tiny_base).make_scheduler(10)
        assert s.config.beta_schedule == "linear" and s.config.steps_offset == 1 and not s.config.clip_sample
        assert float(s.alphas_cumprod[501]) == pytest.approx(alpha_bar(linear, 501), rel=1e-5)
        assert s.timesteps.tolist() == list(range(901, 0, -100))  # "leading" + steps_offset 1
    base = PerFrame(tiny_base).make_scheduler(10)  # not AnimateDiff-derived: the base's own schedule
    assert float(base.alphas_cumprod[501]) == pytest.approx(alpha_bar(scaled, 501), rel=1e-5)


def test_noise_schedule_option_overrides_the_default(tiny_base):
    scaled = AnimateDiff(tiny_base, noise_schedule={"beta_schedule": "scaled_linear"}).make_scheduler(4)
    assert float(scaled.alphas_cumprod[501]) == pytest.approx(
        float(tiny_base.scheduler.alphas_cumprod[501]), rel=1e-6)
    assert AnimateDiff(tiny_base, noise_schedule="base").noise_schedule_config()["beta_schedule"] == "scaled_linear"
    with pytest.raises(UserError, match="noise_schedule must be a mapping"):
        AnimateDiff(tiny_base, noise_schedule="linear")


def test_training_uses_the_method_schedule():
    from bench.train import TrainConfig
    from bench.train_tasks import MethodTask

    task = MethodTask("animatediff", TrainConfig(base="tiny", num_train=2, num_val=1, num_frames=2, size=16,
                                                 options={"motion_adapter": "tiny"}))
    assert task.ddpm.config.beta_schedule == "linear" and task.ddpm.config.beta_start == 0.00085


@pytest.mark.parametrize("name,cls", [("ddim", "DDIMScheduler"), ("euler", "EulerDiscreteScheduler"),
                                      ("euler_ancestral", "EulerAncestralDiscreteScheduler"),
                                      ("dpmpp", "DPMSolverMultistepScheduler"), ("lcm", "LCMScheduler")])
def test_every_scheduler_keeps_the_method_schedule(tiny_base, name, cls):
    method = AnimateDiff(tiny_base, scheduler=name)
    s = method.make_scheduler(3)
    assert type(s).__name__ == cls and s.config.beta_schedule == "linear"
    if name == "dpmpp":
        assert s.config.algorithm_type == "dpmsolver++"
    record = method.scheduler_record()
    assert record["class"] == cls and record["config"]["beta_end"] == 0.012
    json.dumps(record)  # goes into run.json


@pytest.mark.parametrize("options", [{"scheduler": "ddim", "eta": 0.7}, {"scheduler": "euler_ancestral"},
                                     {"scheduler": "lcm"}])
def test_stochastic_samplers_give_a_batch_its_singles(tiny_base, request_factory, options):
    method = PerFrame(tiny_base, **options)
    reqs = [request_factory(prompt_id=f"p{i}", seed=10 + i, num_frames=2, num_inference_steps=3, height=32,
                            width=32) for i in range(3)]
    batch = method.generate(reqs)
    for req, video in zip(reqs, batch):
        assert torch.allclose(video.frames, method.generate([req])[0].frames, atol=1e-5)
    # the step noise acts: same seed, deterministic sampler differs
    plain = PerFrame(tiny_base).generate(reqs[:1])[0].frames
    assert (plain - batch[0].frames).abs().max() > 1e-3


def test_bad_sampler_options_are_one_line_user_errors(tiny_base):
    with pytest.raises(UserError, match="unknown scheduler 'heun'"):
        PerFrame(tiny_base, scheduler="heun")
    with pytest.raises(UserError, match="eta=0.5 needs scheduler ddim"):
        PerFrame(tiny_base, scheduler="euler", eta=0.5)


def test_run_records_and_keys_the_resolved_scheduler(tmp_path):
    small = {"sampling.num_frames": 2, "sampling.num_inference_steps": 2, "sampling.height": 32,
             "sampling.width": 32, "metrics": ["temporal_flickering"], "prompts": "smoke"}
    cfg = load_config("smoke", {**small, "methods": {"per_frame": {}, "animatediff": {"scheduler": "euler"}},
                                "sampling.scheduler": "dpmpp"})
    runner = Runner(cfg, tmp_path / "run", progress=False)
    record = runner.run().record
    assert record["methods"]["per_frame"]["scheduler"]["class"] == "DPMSolverMultistepScheduler"
    ad = record["methods"]["animatediff"]["scheduler"]
    assert ad["class"] == "EulerDiscreteScheduler" and ad["config"]["beta_schedule"] == "linear"
    assert "official AnimateDiff" in ad["noise_schedule_from"]
    keys = {it.method: it.key for it in runner.plan()}
    other = Runner(load_config("smoke", {**small, "methods": {"per_frame": {}, "animatediff": {
        "scheduler": "euler", "noise_schedule": {"beta_schedule": "scaled_linear"}}}, "sampling.scheduler": "dpmpp"}),
        tmp_path / "other", progress=False)
    other_keys = {it.method: it.key for it in other.plan()}
    assert other_keys["per_frame"] == keys["per_frame"] and other_keys["animatediff"] != keys["animatediff"]
