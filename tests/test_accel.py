"""GPU options where a CPU can check them: OOM halving (fake OOM), batch_size auto, VAE upcast, channels_last,
VAE slicing and tiling, compile plumbing, CPU offload hooks, and what run.json records."""
import json

import pytest
import torch

from bench.accel import AccelConfig, BatchSizer, needs_vae_upcast, offload_chain, prepare_base, prepare_method
from bench.config import load_config
from bench.errors import UserError
from bench.runner import Runner

SMALL = {"sampling.num_frames": 2, "sampling.num_inference_steps": 2, "sampling.height": 32, "sampling.width": 32,
         "methods": {"per_frame": {}}, "metrics": ["temporal_flickering"]}


def fake_oom() -> torch.OutOfMemoryError:
    return torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_auto_batch_doubles_until_an_oom_then_stays_halved():
    sizer, taken, fits = BatchSizer("auto", maximum=16), [], 6  # batches above 6 "do not fit"
    remaining = 39  # 1 + 2 + 4 then eight batches of 4
    while remaining:
        n = sizer.take(remaining)
        taken.append(n)
        if n > fits:
            assert sizer.shrink(n, fake_oom())
            continue
        sizer.fitted(n)
        remaining -= n
    assert taken[:5] == [1, 2, 4, 8, 4] and set(taken[4:]) == {4}
    assert sizer.record() == {"batch_size": "auto", "batch_sizes_used": [1, 2, 4], "oom_halvings": 1}


def test_only_a_cuda_oom_above_batch_one_is_retried():
    sizer = BatchSizer(4)
    assert not sizer.shrink(4, RuntimeError("shape mismatch"))
    assert sizer.shrink(4, fake_oom()) and sizer.take(10) == 2
    assert not sizer.shrink(1, fake_oom())  # nothing left to halve: the item fails as before
    assert BatchSizer("auto", maximum=4).take(100) == 1


def test_runner_halves_on_oom_instead_of_failing_items(tmp_path, monkeypatch):
    from methods.per_frame import PerFrame

    original = PerFrame.generate

    def small_gpu(self, requests):
        if len(requests) > 2:
            raise fake_oom()
        return original(self, requests)

    monkeypatch.setattr(PerFrame, "generate", small_gpu)
    cfg = load_config("smoke", {**SMALL, "samples_per_prompt": 2, "batch_size": 4})
    result = Runner(cfg, tmp_path / "run", progress=False).run("generate")
    c = result.counts["per_frame"]
    assert c["failed"] == 0 and c["generated"] == c["planned"]
    perf = json.loads((result.out_dir / "run.json").read_text())["methods"]["per_frame"]["perf"]
    assert perf["oom_halvings"] == 1 and perf["batch_sizes_used"] == [2] and perf["batch_size"] == 4


def test_vae_upcast_rule_follows_force_upcast(tiny_base):
    vae = tiny_base.vae
    assert vae.config.force_upcast
    assert needs_vae_upcast(AccelConfig(), vae, torch.float16)
    assert not needs_vae_upcast(AccelConfig(), vae, torch.bfloat16)  # bf16 has fp32's range
    assert not needs_vae_upcast(AccelConfig(vae_upcast="never"), vae, torch.float16)
    assert needs_vae_upcast(AccelConfig(vae_upcast="always"), vae, torch.bfloat16)
    assert not needs_vae_upcast(AccelConfig(vae_upcast="always"), vae, torch.float32)


def test_bf16_run_with_an_upcast_vae_decodes_in_float32(request_factory):
    from bench.models import tiny_components
    from methods.per_frame import PerFrame

    base = tiny_components(0).to("cpu", torch.bfloat16)
    applied = prepare_base(base, AccelConfig(vae_upcast="always"), torch.device("cpu"), torch.bfloat16)
    assert applied["vae_dtype"] == "float32" and base.vae.dtype == torch.float32 and base.unet.dtype == torch.bfloat16
    video = PerFrame(base).generate([request_factory(num_frames=2, height=32, width=32)])[0]
    assert video.frames.dtype == torch.float32 and torch.isfinite(video.frames).all()


@pytest.fixture
def fresh_base():
    from bench.models import tiny_components

    return tiny_components(0)


def test_channels_last_and_vae_slicing_keep_the_video(fresh_base, request_factory):
    from methods.per_frame import PerFrame

    req = request_factory(num_frames=2, height=32, width=32)
    reference = PerFrame(fresh_base).generate([req])[0].frames
    prepare_base(fresh_base, AccelConfig(channels_last=True, vae_slicing=True), torch.device("cpu"), torch.float32)
    method = PerFrame(fresh_base)
    prepare_method(method, AccelConfig(channels_last=True), torch.device("cpu"))
    assert fresh_base.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert fresh_base.vae.use_slicing
    torch.testing.assert_close(method.generate([req])[0].frames, reference, atol=2e-5, rtol=1e-4)


def test_vae_tiling_runs_above_the_tile_size_and_changes_pixels_only_there(fresh_base, request_factory):
    from methods.per_frame import PerFrame

    big = request_factory(num_frames=1, height=96, width=96)  # tiny VAE tiles above 64 px
    reference = PerFrame(fresh_base).generate([big])[0].frames
    prepare_base(fresh_base, AccelConfig(vae_tiling=True), torch.device("cpu"), torch.float32)
    tiled = PerFrame(fresh_base).generate([big])[0].frames
    assert fresh_base.vae.use_tiling and tiled.shape == reference.shape
    assert not torch.allclose(tiled, reference, atol=1e-4)  # the tiled path ran
    assert (tiled - reference).abs().mean() < 0.1  # and still decodes the same picture


def test_tiling_is_part_of_the_cache_key_and_compile_is_not():
    plain = Runner(load_config("smoke", SMALL), "/tmp/unused", progress=False)
    tiled = Runner(load_config("smoke", {**SMALL, "accel.vae_tiling": True}), "/tmp/unused", progress=False)
    compiled = Runner(load_config("smoke", {**SMALL, "accel.compile": True}), "/tmp/unused", progress=False)
    assert plain.plan()[0].key != tiled.plan()[0].key and plain.generation_hash != tiled.generation_hash
    assert plain.plan()[0].key == compiled.plan()[0].key and plain.generation_hash == compiled.generation_hash


def test_cpu_offload_is_refused_on_cpu_with_the_fix(tmp_path):
    cfg = load_config("smoke", {**SMALL, "accel.cpu_offload": True, "device": "cpu"})
    with pytest.raises(UserError, match="cpu_offload needs a CUDA device"):
        Runner(cfg, tmp_path / "run", progress=False).run("generate")


def test_offload_chain_moves_each_module_in_turn_and_keeps_outputs(fresh_base, request_factory):
    from methods.per_frame import PerFrame

    req = request_factory(num_frames=2, height=32, width=32)
    reference = PerFrame(fresh_base).generate([req])[0].frames
    method = PerFrame(fresh_base)
    hooks = offload_chain([fresh_base.text_encoder, fresh_base.unet, fresh_base.vae], torch.device("cpu"))
    assert len(hooks) == 3 and hooks[0].hook.prev_module_hook is hooks[-1]  # the loop wraps around
    assert hooks[1].hook.prev_module_hook is hooks[0]
    torch.testing.assert_close(method.generate([req])[0].frames, reference)


@pytest.mark.slow
def test_compile_traces_the_denoiser_and_warm_up_is_excluded(tmp_path):
    """torch.compile with the 'eager' backend: dynamo traces the real denoiser call (no C++ toolchain needed);
    every first-seen batch shape runs as warm-up."""
    cfg = load_config("smoke", {**SMALL, "samples_per_prompt": 2, "batch_size": 3,
                                "accel.compile": True, "accel.compile_backend": "eager"})
    runner = Runner(cfg, tmp_path / "run", progress=False)
    result = runner.run("generate")
    assert result.counts["per_frame"]["failed"] == 0
    metas = [runner.store.load_item_meta(it.method, it.prompt_id, it.sample) for it in runner.plan()]
    assert len(metas) == 8  # 4 prompts x 2 samples: batches of 3, 3 and 2
    expected = [True] * 3 + [False] * 3 + [True] * 2  # the first batch and the first batch of 2 are warm-up
    assert [m["warmup"] for m in metas] == expected
    record = json.loads((result.out_dir / "run.json").read_text())
    assert record["accel"]["compile"] is True and record["accel"]["compile_backend"] == "eager"
