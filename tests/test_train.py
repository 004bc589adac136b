"""`t2v-bench train`: the loss goes down, a resumed run equals an uninterrupted one, exports load back."""
from __future__ import annotations

import json

import pytest
import torch

from bench.errors import UserError
from bench.train import TrainConfig, train


def _cfg(tmp_path, name: str, **kw) -> TrainConfig:
    base = dict(out=str(tmp_path / name), num_train=4, num_val=2, num_frames=4, size=32, base="tiny",
                options={"motion_adapter": "tiny"}, steps=2, batch_size=2, lr=1e-3, eval_every=1,
                checkpoint_every=1, threads=1)
    return TrainConfig(**{**base, **kw})


def test_short_vae_retraining_lowers_the_loss(tmp_path):
    cfg = TrainConfig(out=str(tmp_path / "vae"), num_train=16, num_val=8, steps=8, batch_size=8, lr=2e-3,
                      eval_every=8, checkpoint_every=8, threads=1)
    record = train("vae", cfg, progress=False)
    assert record["val_loss_final"] < 0.7 * record["val_loss_initial"]
    assert record["trainable_parameters"] > 0 and record["sec_per_step_median"] > 0


def test_animatediff_resume_equals_uninterrupted_and_exports_an_adapter(tmp_path):
    from safetensors.torch import load_file

    straight = train("animatediff", _cfg(tmp_path, "straight", steps=3, target_val_loss=10.0), progress=False)
    train("animatediff", _cfg(tmp_path, "resumed", steps=2), progress=False)  # "interrupted" after step 2
    resumed = train("animatediff", _cfg(tmp_path, "resumed", steps=3), progress=False)
    assert resumed["resumed_at"] == [2] and resumed["steps"] == 3
    a = load_file(tmp_path / "straight" / "checkpoint" / "trainable.safetensors")
    b = load_file(tmp_path / "resumed" / "checkpoint" / "trainable.safetensors")
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert straight["reached_target"]["step"] == 0  # a loose target is met at the first evaluation
    assert json.loads((tmp_path / "straight" / "train.json").read_text())["trainable_parameters"] > 0
    # The export is a MotionAdapter folder the method loads as `motion_adapter: <folder>`.
    from bench.models import tiny_components
    from methods.animatediff import AnimateDiff

    method = AnimateDiff(tiny_components(0), motion_adapter=str(tmp_path / "straight" / "final"))
    trained = [p for p in method.trainable_parameters()]
    assert any(p.abs().sum() > 0 for n, p in method.unet.named_parameters() if n.endswith("proj_out.weight"))
    assert len(trained) == len(a)


def test_training_free_method_is_refused(tmp_path):
    with pytest.raises(UserError, match="nothing to train"):
        train("per_frame", _cfg(tmp_path, "pf", options={}), progress=False)


def test_train_from_a_webvid_folder(tmp_path):
    from bench.toy.world import write_dataset

    write_dataset(tmp_path / "data", 5, seed=0, num_frames=4)
    record = train("animatediff", _cfg(tmp_path, "folder", data=str(tmp_path / "data"), steps=1), progress=False)
    assert record["steps"] == 1 and record["val_loss_final"] == record["val_loss_final"]


def test_training_cost_travels_from_train_to_run_record_and_report(tmp_path):
    """The cost `train` records sits beside the exported weights, tied to them by fingerprint; a run that loads
    those weights records it, and the report shows the training columns (training-free methods get '-')."""
    from bench.config import RunConfig
    from bench.models import read_training_record, training_record_path
    from bench.report.tables import build_table, to_markdown
    from bench.report.records import load_run
    from bench.runner import Runner

    export = tmp_path / "simda-export"
    record = train("simda", _cfg(tmp_path, "simda", options={}, export=str(export), target_val_loss=10.0),
                   progress=False)
    weights = export / "simda-adapters.safetensors"
    saved = read_training_record(weights)
    assert saved is not None and training_record_path(weights) == export / "simda-adapters.training.json"
    assert saved["trainable_parameters"] == record["trainable_parameters"]
    assert saved["reached_target"] == record["reached_target"] and saved["steps"] == 2

    cfg = RunConfig.model_validate({
        "methods": {"per_frame": {}, "simda": {"adapter_weights": str(weights)}}, "prompts": "smoke",
        "sampling": {"num_frames": 4, "height": 32, "width": 32, "num_inference_steps": 1},
        "metrics": ["temporal_flickering"]})
    Runner(cfg, tmp_path / "run", progress=False).run("all")
    methods = json.loads((tmp_path / "run" / "run.json").read_text())["methods"]
    assert methods["simda"]["training"]["sec_per_step_median"] == record["sec_per_step_median"]
    assert "training" not in methods["per_frame"]
    table = build_table([load_run(tmp_path / "run")])
    assert table.values.at["simda", "train_steps_to_target"] == 0  # a loose target is met at the first evaluation
    assert table.values.at["simda", "train_sec_per_step"] == record["sec_per_step_median"]
    md = to_markdown(table)
    assert "train s/step ↓" in md and "train s to target ↓" in md

    # weights changed after training: the record no longer describes them and is ignored
    from safetensors.torch import load_file, save_file
    tensors = load_file(weights)
    save_file({k: v + 1 for k, v in tensors.items()}, weights)
    assert read_training_record(weights) is None
