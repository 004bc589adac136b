"""Toy MotionLoRAs: the train task trains only a LoRA on the motion modules, exports it in the official
MotionLoRA layout, and that file, loaded back through `motion_lora`, reproduces the trained model."""
from __future__ import annotations

import torch

from bench.models import read_training_record
from bench.train import TrainConfig


def test_exported_motion_lora_reproduces_the_trained_model(tmp_path):
    from bench.models import load_base
    from bench.toy.motion_loras import MotionLoraTask
    from methods.animatediff import AnimateDiff, tiny_motion_adapter

    adapter = str(tmp_path / "adapter")  # non-zero proj_out, or no LoRA on attention could show
    tiny_motion_adapter(load_base("tiny").unet.config, seed=2, zero_init=False).save_pretrained(adapter)
    cfg = TrainConfig(base="tiny", num_train=2, num_val=1, num_frames=4, size=16,
                      options={"motion_adapter": adapter, "direction": "left", "rank": 2})
    task = MotionLoraTask(cfg)
    trainable = {id(p) for p in task.parameters()}
    named = dict(task.method.unet.named_parameters())
    assert trainable == {id(p) for n, p in named.items() if "lora_" in n} and trainable
    assert not any(p.requires_grad for n, p in named.items() if "lora_" not in n)  # adapter and base frozen
    assert all(" moving left " in s.caption for s in task.clips(validation=False))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in task.parameters():  # lora_B starts at zero: give the LoRA an effect
            p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    path = task.export(tmp_path / "lora")
    from safetensors.torch import load_file
    keys = list(load_file(str(path)))
    assert keys and all(".temporal_transformer." in k and ".processor." in k and "_lora." in k for k in keys)

    z = torch.randn(1, 4, 4, 4, 4, generator=g)
    text = task.method.encode_prompts(["a red circle moving left"])
    t = torch.tensor(500)
    with torch.no_grad():
        trained = task.method.predict_noise(z, t, text)
        base = load_base("tiny")
        loaded = AnimateDiff(base, motion_adapter=adapter, motion_lora=str(path)).predict_noise(z, t, text)
        plain = AnimateDiff(base, motion_adapter=adapter).predict_noise(z, t, text)
    assert torch.allclose(trained, loaded, atol=1e-5)
    assert not torch.allclose(trained, plain, atol=1e-4)


def test_shipped_toy_motion_loras_load_with_their_training_record():
    from bench.checkpoints import resolve_lora_path
    from bench.models import load_base
    from methods.animatediff import AnimateDiff

    base = load_base("toy")
    plain = AnimateDiff(base, motion_adapter="toy")
    name = "up_blocks.1.motion_modules.0.transformer_blocks.0.attn1.to_q"
    for direction in ("left", "right", "up", "down"):
        path = resolve_lora_path(f"toy:{direction}")
        record = read_training_record(path)
        assert record is not None and record["target"] == "motion-lora" and record["steps"] > 0
        method = AnimateDiff(base, motion_adapter="toy", motion_lora=f"toy:{direction}")
        assert not torch.equal(method.unet.get_submodule(name).weight, plain.unet.get_submodule(name).weight)
        (lora,) = method.config()["loras"]
        assert lora["path"] == f"bench/toy/weights/motion-loras/{direction}.safetensors" and lora["scale"] == 1.0


def test_paired_difference_drops_lost_pairs_and_matches_the_difference_of_means():
    from bench.toy.motion_loras import _mean_se, paired_differences

    nan = float("nan")
    with_, without = [0.5, 0.1, nan, 0.9], [0.2, 0.3, 0.4, nan]
    diffs = paired_differences(with_, without)
    assert diffs[:2] == [0.5 - 0.2, 0.1 - 0.3] and all(d != d for d in diffs[2:])
    stats = _mean_se(diffs)
    # over the complete pairs the mean difference is the difference of the means
    assert stats["n"] == 2 and stats["lost"] == 2 and abs(stats["mean"] - ((0.5 + 0.1) / 2 - (0.2 + 0.3) / 2)) < 1e-4
