"""FVD in the toy world: the shipped video net as a detector, the fvd_toy_<T>f protocol and the toy reference."""
from __future__ import annotations

import pytest
import torch

from bench.api import Video
from bench.config import RunConfig
from bench.errors import UserError
from bench.metrics.frechet import FeatureSums, frechet_distance
from bench.metrics.fvd import FVD, toy_reference
from bench.metrics.fvd_detectors import SmokeDetector, ToyDetector, file_sha256, load_detector
from bench.metrics.fvd_protocol import resolve_protocol, smoke_protocol
from bench.toy.video_features import load_video_features, video_features
from bench.toy.world import toy_videos


@pytest.fixture(scope="module")
def toy() -> ToyDetector:
    return load_detector("toy")


def _toy(n: int, seed: int) -> list[Video]:
    return [Video(s.frames) for s in toy_videos(n, seed, 8, 32)]


def test_toy_detector_is_the_shipped_net(toy):
    assert toy.kind == "toy" and toy.num_features == 64 and toy.comparable
    assert toy.sha256 == file_sha256(toy.path)
    assert toy.source == "bench/toy/weights/video-features/toy-video-features.safetensors"  # same in any checkout
    videos = _toy(3, seed=5)
    clips = torch.stack([v.to_uint8().permute(3, 0, 1, 2) for v in videos])  # (B, 3, T, H, W) uint8
    # second path: the net called directly on the uint8-rounded frames
    direct = video_features(load_video_features(), torch.stack([v.to_uint8().float() / 255 for v in videos])
                            .permute(0, 1, 4, 2, 3))
    assert torch.allclose(toy.features(clips), direct, rtol=1e-4, atol=1e-4)  # float32 conv layout noise


def test_toy_protocol_pairs_with_the_toy_detector_only(toy):
    assert resolve_protocol("auto", toy, 8).id == "fvd_toy_8f"
    assert resolve_protocol("fvd_toy_6f", toy).num_frames == 6
    with pytest.raises(UserError, match="toy detector only"):
        resolve_protocol("fvd_toy", SmokeDetector(), 8)
    with pytest.raises(UserError, match="smoke detector only"):
        resolve_protocol("fvd_smoke", toy, 8)
    with pytest.raises(UserError, match="real I3D"):
        resolve_protocol("fvd_i3d_16f", toy)
    with pytest.raises(UserError, match="does not exist"):
        load_detector("/nonexistent/net.safetensors", "toy")


def test_toy_fvd_sees_motion_that_frames_alone_do_not_show(toy):
    """Real toy videos score far closer to the toy reference than the same frames shuffled in time (same
    per-frame content, motion destroyed): the learned features carry motion."""
    protocol = smoke_protocol(8, "toy")
    ref = toy_reference(toy, protocol, n=96, seed=11)
    real = _toy(48, seed=12)
    perm = torch.tensor([3, 7, 0, 5, 2, 6, 1, 4])
    shuffled = [Video(v.frames[perm]) for v in real]
    scores = {}
    for name, videos in (("real", real), ("shuffled", shuffled)):
        m = FVD(toy, protocol, ref)
        m.update(videos, [""] * len(videos))
        scores[name] = float(m.compute())
        # the metric equals the closed form on its own features (a second computation)
        fake = FeatureSums.from_features(m.last_features)
        assert scores[name] == pytest.approx(frechet_distance(*ref.sums.mean_cov(), *fake.mean_cov()), rel=1e-9)
    # measured 6.9 vs 19.5; the real score is mostly small-N bias (d = 64 features, 48 vs 96 clips)
    assert scores["shuffled"] > 2 * scores["real"], scores


def test_toy_reference_from_run_config():
    cfg = RunConfig.model_validate({"sampling": {"height": 32, "width": 32, "num_frames": 8},
                                    "fvd": {"detector": "toy", "reference": "toy", "procedural_videos": 16}})
    m = FVD.from_run_config(cfg, "cpu")
    assert m.protocol.id == "fvd_toy_8f" and m.reference.sums.count == 16
    assert m.reference.name == "toy-world:n=16,seed=0,32x32,8f"
    rec = m.describe()
    assert rec["detector"]["kind"] == "toy" and rec["smoke"] is False and "toy world" in rec["detector"]["label"]
    long = RunConfig.model_validate({"sampling": {"height": 32, "width": 32, "num_frames": 30},
                                     "fvd": {"detector": "toy", "reference": "toy", "procedural_videos": 4}})
    with pytest.raises(UserError, match="leave the frame"):
        FVD.from_run_config(long, "cpu")
