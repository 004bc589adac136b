"""Real-weights paths of the VBench-style dimensions: each loads through the library's own class, strictly, tested on
tiny random models saved to a temp folder; a missing or wrong file is one clear UserError line."""
import pytest
import torch

from bench.errors import UserError
from bench.metrics import backbones


def test_raft_small_state_dict_loads_strictly(tmp_path):
    from safetensors.torch import save_file
    from torchvision.models.optical_flow import raft_small

    torch.manual_seed(0)
    model = raft_small(weights=None).eval()
    path = tmp_path / "raft_small.pth"
    torch.save({f"module.{k}": v for k, v in model.state_dict().items()}, path)  # DataParallel-style prefix
    est = backbones.raft(str(path), "raft_small", iters=2)
    assert est.arch == "raft_small" and est.iters == 2 and len(est.sha256) == 64
    a = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    b = torch.rand(1, 3, 128, 128, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = model(a * 2 - 1, b * 2 - 1, num_flow_updates=2)[-1]
    assert torch.allclose(est.flow(a, b), expected, atol=1e-5)
    # the same file into the wrong class: one line naming the arch option
    with pytest.raises(UserError, match="raft_arch|arch option"):
        backbones.raft(str(path), "raft_large")
    st = tmp_path / "partial.safetensors"
    save_file({k: v.contiguous() for k, v in list(model.state_dict().items())[:-3]}, st)
    with pytest.raises(UserError, match="do not fit"):
        backbones.raft(str(st), "raft_small")


def test_missing_files_are_one_line():
    for call in (lambda: backbones.raft("/nonexistent/raft.pth"), lambda: backbones.dino("/nonexistent/dino")):
        with pytest.raises(UserError) as exc:
            call()
        assert "\n" not in str(exc.value) and "nonexistent" in str(exc.value)


def test_dino_vit_folder_loads_strictly_and_gives_the_cls_token(tmp_path):
    from transformers import ViTConfig, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                    image_size=224, patch_size=16)
    model = ViTModel(cfg, add_pooling_layer=False).eval()
    model.save_pretrained(tmp_path / "dino")
    feats = backbones.dino(str(tmp_path / "dino"))
    frames = torch.rand(3, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    x = backbones.vbench_dino_input(frames)
    assert x.shape[-2:] == (224, 336)  # shortest side 224, no crop
    with torch.no_grad():
        ref = model(pixel_values=x, interpolate_pos_encoding=True).last_hidden_state[:, 0]
    assert torch.allclose(feats(frames), torch.nn.functional.normalize(ref, dim=-1), atol=1e-5)
    assert feats.describe()["weights_sha256"]
    # a checkpoint with a pooler the strict loader does not expect is refused
    ViTModel(cfg, add_pooling_layer=True).save_pretrained(tmp_path / "pooled")
    with pytest.raises(UserError, match="strictly"):
        backbones.dino(str(tmp_path / "pooled"))


def test_vbench_dino_input_matches_torchvision_pipeline():
    """VBench's dino_transform (Resize(224, antialias=False) on uint8, /255, Normalize) built from torchvision."""
    from torchvision import transforms

    frames = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    q = (frames * 255).round().to(torch.uint8)
    ref = transforms.Compose([transforms.Resize(size=224, antialias=False),
                              transforms.Lambda(lambda x: x.float().div(255.0)),
                              transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])(q)
    assert torch.allclose(backbones.vbench_dino_input(frames), ref, atol=1e-6)


def test_missing_amt_s_checkpoint_is_one_clear_line():
    from bench.config import RunConfig
    from bench.metrics.motion_smoothness import MotionSmoothness

    cfg = RunConfig.model_validate({"vbench": {"amt_s": "/nonexistent/amt-s.pth"}})
    with pytest.raises(UserError, match="AMT-S weights .* do not exist; pass VBench's amt-s.pth"):
        MotionSmoothness.from_run_config(cfg, torch.device("cpu"))
