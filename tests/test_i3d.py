"""The I3D network and FVD detector loading: layout against an independent manifest, strict round trips,
safe loading of state dicts vs TorchScript, and the seeded smoke detector."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from bench.errors import UserError
from bench.metrics.fvd_detectors import (I3DStateDictDetector, SmokeDetector, file_sha256, is_torchscript_archive,
                                         load_detector, load_i3d_state_dict)
from bench.metrics.i3d import InceptionI3d, SamePadMaxPool3d, same_padding

MANIFEST = Path(__file__).parent / "data" / "i3d_state_dict_manifest.json"


@pytest.fixture(scope="module")
def i3d_file(tmp_path_factory) -> Path:
    """A random I3D with non-default BatchNorm statistics, saved as a plain state dict. Convs get He init:
    PyTorch's default init shrinks the signal through ~20 layers until every input gives the logits' bias."""
    torch.manual_seed(0)
    net = InceptionI3d()
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.Conv3d):
                torch.nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        for name, buf in net.named_buffers():
            if name.endswith("running_mean"):
                buf.normal_(0, 0.1)
            elif name.endswith("running_var"):
                buf.uniform_(0.5, 1.5)
    path = tmp_path_factory.mktemp("i3d") / "i3d_random.pt"
    torch.save(net.state_dict(), path)
    return path


def test_state_dict_matches_piergiaj_manifest():
    expected = json.loads(MANIFEST.read_text())
    ours = {k: list(v.shape) for k, v in InceptionI3d().state_dict().items()}
    assert sorted(set(expected) - set(ours)) == []
    assert sorted(set(ours) - set(expected)) == []
    wrong = {k: (ours[k], expected[k]) for k in expected if ours[k] != expected[k]}
    assert wrong == {}
    assert len(expected) == 344 and expected["logits.conv3d.weight"] == [400, 1024, 1, 1, 1]


@pytest.mark.parametrize("size,kernel,stride", [(s, k, st) for s in (1, 5, 7, 8, 16, 112, 224)
                                                for k in (1, 2, 3, 7) for st in (1, 2)])
def test_same_padding_is_tensorflow_same(size, kernel, stride):
    # TF "SAME": output ceil(size/stride), total pad max((out-1)*stride + kernel - size, 0), extra at the back
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    assert same_padding(size, kernel, stride) == (total // 2, total - total // 2)


def test_same_padding_per_axis_on_a_non_square_input():
    # each axis gets its own padding: a max pool with SAME padding keeps ceil(size / stride) on every axis
    x = torch.rand(1, 2, 6, 9, 14)
    out = SamePadMaxPool3d((3, 3, 2), (2, 2, 2))(x)
    assert out.shape == (1, 2, 3, 5, 7)
    # TF SAME by hand: T 6 -> pad 1, all at the back; H 9 -> pad 2 -> (1, 1); W 14 -> pad 0
    ref = torch.nn.functional.pad(x, (0, 0, 1, 1, 0, 1))
    assert torch.equal(out, torch.nn.functional.max_pool3d(ref, (3, 3, 2), (2, 2, 2)))


def test_strict_round_trip_and_legacy_format(i3d_file, tmp_path):
    original = torch.load(i3d_file, weights_only=True)
    net = load_i3d_state_dict(i3d_file)
    for key, value in net.state_dict().items():
        assert torch.equal(value, original[key]), key
    # a pre-zip (legacy) file from before BatchNorm counted steps, like rgb_imagenet.pt, still loads strictly
    legacy = {k: v for k, v in original.items() if not k.endswith("num_batches_tracked")}
    legacy_path = tmp_path / "legacy.pt"
    torch.save(legacy, legacy_path, _use_new_zipfile_serialization=False)
    net2 = load_i3d_state_dict(legacy_path)
    assert torch.equal(net2.state_dict()["Mixed_5c.b3b.bn.running_var"], original["Mixed_5c.b3b.bn.running_var"])


def test_wrapped_and_prefixed_state_dicts_load(i3d_file, tmp_path):
    original = torch.load(i3d_file, weights_only=True)
    path = tmp_path / "wrapped.pt"
    torch.save({"state_dict": {f"module.{k}": v for k, v in original.items()}}, path)
    net = load_i3d_state_dict(path)
    assert torch.equal(net.state_dict()["Conv3d_1a_7x7.conv3d.weight"], original["Conv3d_1a_7x7.conv3d.weight"])


def test_bad_state_dicts_are_user_errors(i3d_file, tmp_path):
    original = torch.load(i3d_file, weights_only=True)
    missing = dict(original)
    missing.pop("Mixed_4c.b1b.conv3d.weight")
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(UserError, match="missing"):
        load_i3d_state_dict(tmp_path / "missing.pt")
    wrong = dict(original)
    wrong["Mixed_4c.b1b.conv3d.weight"] = torch.zeros(224, 112, 1, 3, 3)
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(UserError, match="shape"):
        load_i3d_state_dict(tmp_path / "wrong.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError):
        load_i3d_state_dict(tmp_path / "junk.pt")


def test_i3d_detector_features_time_mean_logits(i3d_file):
    det = load_detector(str(i3d_file))
    assert isinstance(det, I3DStateDictDetector) and det.kind == "i3d_state_dict"
    assert det.sha256 == file_sha256(i3d_file) and det.num_features == 400
    g = torch.Generator().manual_seed(1)
    clips = torch.randint(0, 256, (2, 3, 16, 48, 64), generator=g, dtype=torch.uint8)
    clips[1, :, :, :24] //= 4  # a darker upper half: a clearly different clip
    feats = det.features(clips)
    assert feats.shape == (2, 400) and feats.dtype == torch.float64
    assert (feats[0] - feats[1]).abs().max() > 1e-2  # the random network does not collapse to its bias
    # independent of the detector's own path: squash to 224 by hand, [-1, 1], call the network
    x = clips.float().permute(0, 2, 1, 3, 4).reshape(32, 3, 48, 64)
    x = torch.nn.functional.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
    x = (x / 127.5 - 1).reshape(2, 16, 3, 224, 224).permute(0, 2, 1, 3, 4)
    with torch.no_grad():
        direct = det.net(x)
    assert torch.allclose(feats, direct.double(), atol=1e-4)


def test_i3d_rejects_too_few_frames():
    with pytest.raises(ValueError, match="T>=9"):
        InceptionI3d()(torch.zeros(1, 3, 8, 224, 224))


class _FakeStyleganI3d(torch.nn.Module):
    """Stands in for i3d_torchscript.pt: insists on StyleGAN-V's call (uint8, the three flags) and returns 400-d."""

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        if x.dtype != torch.uint8 or not (rescale and resize and return_features):
            raise RuntimeError("wrong call")
        per_channel = x.float().mean(dim=(2, 3, 4))  # (B, 3)
        return per_channel.repeat(1, 134)[:, :400]


def test_torchscript_needs_explicit_kind(tmp_path, i3d_file):
    path = tmp_path / "i3d_torchscript.pt"
    torch.jit.save(torch.jit.script(_FakeStyleganI3d()), str(path))
    assert is_torchscript_archive(path) and not is_torchscript_archive(i3d_file)
    with pytest.raises(UserError, match="i3d_torchscript"):
        load_detector(str(path))  # auto never runs TorchScript code
    det = load_detector(str(path), "i3d_torchscript")
    assert det.kind == "i3d_torchscript" and det.sha256 == file_sha256(path)
    clips = torch.full((2, 3, 16, 20, 20), 51, dtype=torch.uint8)
    feats = det.features(clips)
    assert feats.shape == (2, 400) and torch.allclose(feats, torch.full((2, 400), 51.0, dtype=torch.float64))
    assert det.describe()["call_kwargs"] == {"rescale": True, "resize": True, "return_features": True}
    with pytest.raises(UserError, match="not a TorchScript"):
        load_detector(str(i3d_file), "i3d_torchscript")


def test_smoke_detector_seeded_and_isolated():
    state = torch.random.get_rng_state()
    a, b, c = SmokeDetector(seed=0), SmokeDetector(seed=0), SmokeDetector(seed=1)
    assert torch.equal(torch.random.get_rng_state(), state)  # builds from its own generator
    assert a.sha256 == b.sha256 != c.sha256 and not a.comparable
    clips = torch.randint(0, 256, (3, 3, 8, 24, 24), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    assert torch.equal(a.features(clips), b.features(clips))
    assert not torch.allclose(a.features(clips), c.features(clips))
    assert a.features(clips).shape == (3, a.num_features)


def test_missing_detector_file_names_the_fix():
    with pytest.raises(UserError, match="smoke"):
        load_detector("/nonexistent/rgb_imagenet.pt")
