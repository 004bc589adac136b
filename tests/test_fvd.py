"""FVD: Fréchet numerics against independent references, the protocol's rules and record, mergeable
fixed-size states, reference statistics files, and the reference video readers."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

from bench.api import Video
from bench.config import RunConfig
from bench.errors import UserError
from bench.metrics.frechet import FeatureSums, frechet_distance, frechet_from_sums, mean_cov_from_sums
from bench.metrics.fvd import (FVD, bootstrap_fvd_ci, compute_reference_stats, fvd_from_features, fvd_stats_main,
                               load_reference_stats, procedural_reference)
from bench.metrics.fvd_detectors import Detector, SmokeDetector, load_detector
from bench.metrics.fvd_protocol import I3D_16F, resolve_protocol, smoke_protocol
from bench.metrics.i3d import InceptionI3d
from bench.metrics.reference_videos import (list_videos, procedural_video, procedural_videos, read_video,
                                            ucf101_videos)
from bench.prompts import load_suite


class PixelStats(Detector):
    """A transparent 'comparable' detector for record tests: per-channel mean and std of the clip (6-d)."""

    kind = "test_pixel_stats"
    comparable = True

    def __init__(self):
        super().__init__("test", "0" * 64, 6)

    def _forward(self, clips: torch.Tensor) -> torch.Tensor:
        x = clips.double() / 255
        return torch.cat([x.mean(dim=(2, 3, 4)), x.std(dim=(2, 3, 4))], dim=1)


@pytest.fixture(scope="module")
def smoke() -> SmokeDetector:
    return SmokeDetector(seed=0)


@pytest.fixture(scope="module")
def reference(smoke):
    return procedural_reference(smoke, smoke_protocol(8), n=24, seed=0, height=32, width=32)


def _videos(n: int, seed: int, frames: int = 8, size: int = 32) -> list[Video]:
    return list(procedural_videos(n, seed, frames, size, size))


# --- Fréchet numerics -------------------------------------------------------------------------------------------

def test_fd_diagonal_gaussians_closed_form():
    g = torch.Generator().manual_seed(0)
    d = 50
    m1, m2 = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)
    s1, s2 = torch.rand(d, generator=g, dtype=torch.float64) + 0.1, torch.rand(d, generator=g, dtype=torch.float64) * 3
    expected = float(((m1 - m2) ** 2).sum() + (s1 + s2 - 2 * (s1 * s2).sqrt()).sum())
    assert frechet_distance(m1, torch.diag(s1), m2, torch.diag(s2)) == pytest.approx(expected, rel=1e-12)


def test_fd_rotated_gaussians_closed_form():
    # same spectrum in a rotated basis: FD = sum (sqrt(a) - sqrt(b))^2 still holds when both share the rotation
    g = torch.Generator().manual_seed(1)
    q, _ = torch.linalg.qr(torch.randn(20, 20, generator=g, dtype=torch.float64))
    a, b = torch.rand(20, generator=g, dtype=torch.float64) + 0.5, torch.rand(20, generator=g, dtype=torch.float64)
    cov1, cov2 = q @ torch.diag(a) @ q.T, q @ torch.diag(b) @ q.T
    mu = torch.zeros(20, dtype=torch.float64)
    assert frechet_distance(mu, cov1, mu, cov2) == pytest.approx(float(((a.sqrt() - b.sqrt()) ** 2).sum()), rel=1e-9)


def test_fd_matches_scipy_sqrtm_on_random_features():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 24))
    y = rng.normal(size=(250, 24)) @ rng.normal(size=(24, 24)) * 0.5 + 0.3
    covmean = np.real(scipy.linalg.sqrtm(np.cov(x, rowvar=False) @ np.cov(y, rowvar=False)))
    expected = (np.square(x.mean(0) - y.mean(0)).sum() + np.trace(np.cov(x, rowvar=False))
                + np.trace(np.cov(y, rowvar=False)) - 2 * np.trace(covmean))
    ours = frechet_from_sums(FeatureSums.from_features(torch.from_numpy(x)), FeatureSums.from_features(torch.from_numpy(y)))
    assert ours == pytest.approx(float(expected), rel=1e-8)
    assert fvd_from_features(torch.from_numpy(x), FeatureSums.from_features(torch.from_numpy(y))) == pytest.approx(ours)


def test_cov_from_sums_is_unbiased():
    x = torch.randn(40, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    mu, cov = mean_cov_from_sums(x.sum(0), x.T @ x, 40)
    assert torch.allclose(mu, x.mean(0)) and torch.allclose(cov, torch.cov(x.T, correction=1), atol=1e-12)


def test_identical_sets_give_zero():
    x = torch.randn(100, 30, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 4
    assert abs(fvd_from_features(x, FeatureSums.from_features(x))) < 1e-8


# --- the metric -------------------------------------------------------------------------------------------------

def test_two_shards_merged_equal_one_pass(smoke, reference):
    feats = torch.randn(10, smoke.num_features, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    one = FVD(smoke, smoke_protocol(8), reference)
    one.add_features(feats)
    a, b = FVD(smoke, smoke_protocol(8), reference), FVD(smoke, smoke_protocol(8), reference)
    a.add_features(feats[:3])
    b.add_features(feats[3:])
    a.merge_state(b)
    assert int(a.fake_n) == 10
    assert torch.allclose(a.fake_outer, one.fake_outer, rtol=1e-13, atol=1e-13)  # float64 summation order only
    # N=10 < d: the covariances are singular, so the eigen square root amplifies 1e-13 sum differences
    assert float(a.compute()) == pytest.approx(float(one.compute()), rel=1e-7)
    # end to end through the detector: batch composition only moves float32 conv rounding
    videos = _videos(10, seed=7)
    one, a, b = (FVD(smoke, smoke_protocol(8), reference) for _ in range(3))
    one.update(videos, [""] * 10)
    a.update(videos[:3], [""] * 3)
    b.update(videos[3:], [""] * 7)
    a.merge_state(b)
    assert int(a.fake_n) == 10 and float(one.compute()) > 0
    assert float(a.compute()) == pytest.approx(float(one.compute()), rel=1e-5)


def test_update_exposes_features_not_values(smoke, reference):
    m = FVD(smoke, smoke_protocol(8), reference)
    videos = _videos(5, seed=8)
    m.update(videos, [""] * 5)
    assert m.last_values is None
    assert m.last_features.shape == (5, smoke.num_features) and m.last_features.dtype == torch.float64
    # features stored by the runner reproduce the metric's value
    assert fvd_from_features(m.last_features, reference) == pytest.approx(float(m.compute()), rel=1e-9)
    lo, hi = bootstrap_fvd_ci(m.last_features, reference, n_boot=30, seed=0)
    assert lo <= hi and (lo, hi) == bootstrap_fvd_ci(m.last_features, reference, n_boot=30, seed=0)
    value = float(m.compute())
    assert lo < value < hi  # bias-shifted: the value sits inside its interval even at small N
    # second computation: the resamples by hand, shifted by their mean's excess over the value
    feats = m.last_features
    gen = torch.Generator().manual_seed(0)
    boots = torch.tensor([fvd_from_features(feats[torch.randint(0, len(feats), (len(feats),), generator=gen)],
                                            reference) for _ in range(30)], dtype=torch.float64)
    shift = float(boots.mean()) - value
    assert lo == pytest.approx(float(torch.quantile(boots, 0.025)) - shift, rel=1e-9)
    assert hi == pytest.approx(float(torch.quantile(boots, 0.975)) - shift, rel=1e-9)


def test_states_have_fixed_size(smoke, reference):
    m = FVD(smoke, smoke_protocol(8), reference)
    sizes = []
    for seed in range(4):
        m.update(_videos(3, seed=seed), [""] * 3)
        sizes.append({k: tuple(v.shape) for k, v in m.metric_state.items()})
        assert m.last_features.shape[0] == 3  # only the latest batch is kept
    assert all(s == sizes[0] for s in sizes) and int(m.fake_n) == 12
    assert sizes[0]["fake_outer"] == (smoke.num_features, smoke.num_features)


def test_real_videos_through_update(smoke):
    m = FVD(smoke, smoke_protocol(8), None, min_n=4)
    m.update(_videos(6, seed=1), [""] * 6, real=True)
    m.update(_videos(6, seed=2), [""] * 6)
    assert m.describe()["n_real"] == 6 and float(m.compute()) >= 0
    with pytest.raises(UserError):
        FVD(smoke, smoke_protocol(8), procedural_reference(smoke, smoke_protocol(8), n=4, height=16,
                                                           width=16)).update(_videos(2, 1), ["", ""], real=True)


def test_sixteen_frame_protocol_refuses_fifteen(tmp_path):
    path = tmp_path / "i3d.pt"
    torch.save(InceptionI3d().state_dict(), path)
    detector = load_detector(str(path))
    protocol = resolve_protocol("auto", detector)
    assert protocol == I3D_16F
    m = FVD(detector, protocol, None)
    with pytest.raises(UserError, match=r"16 consecutive frames, the video has 15: set sampling.num_frames >= 16"):
        m.update(_videos(1, seed=0, frames=15), [""])
    with pytest.raises(UserError, match="smoke detector only"):
        resolve_protocol("fvd_smoke", detector, 8)
    with pytest.raises(UserError, match="real I3D"):
        resolve_protocol("fvd_i3d_16f", SmokeDetector())


@pytest.mark.parametrize("bad", [1.5, -0.2, float("nan")])
def test_frames_outside_unit_range_are_errors(smoke, reference, bad):
    frames = torch.rand(8, 3, 32, 32)
    frames[3, 1, 4, 4] = bad
    with pytest.raises(UserError, match=r"\[0, 1\]"):
        FVD(smoke, smoke_protocol(8), reference).update([Video(frames)], [""])


def test_offsets_are_seeded_recorded_and_used(smoke, reference):
    videos = _videos(6, seed=3, frames=20)
    m = FVD(smoke, smoke_protocol(8), reference, seed=5)
    m.update(videos, [""] * 6)
    offsets = list(m.last_offsets)
    assert all(0 <= o <= 12 for o in offsets) and len(set(offsets)) > 1
    m2 = FVD(smoke, smoke_protocol(8), reference, seed=5)
    m2.update(videos[::-1], [""] * 6)
    assert m2.last_offsets == offsets[::-1]  # per-video rule: order does not matter
    m3 = FVD(smoke, smoke_protocol(8), reference, seed=6)
    m3.update(videos, [""] * 6)
    assert m3.last_offsets != offsets
    manual = torch.stack([v.to_uint8()[o:o + 8].permute(3, 0, 1, 2) for v, o in zip(videos, offsets)])
    assert torch.allclose(m.last_features, smoke.features(manual))
    first = FVD(smoke, smoke_protocol(8), reference, offset_rule="first")
    first.update(videos, [""] * 6)
    assert first.last_offsets == [0] * 6


def test_record_fields(smoke, reference):
    m = FVD(smoke, smoke_protocol(8), reference)
    m.update(_videos(3, seed=4), [""] * 3)
    rec = m.describe()
    assert rec["protocol"] == "fvd_smoke_8f" and rec["num_frames"] == 8 and rec["smoke"] is True
    assert rec["n_real"] == 24 and rec["n_fake"] == 3 and rec["covariance_denominator"] == "N-1"
    assert rec["reference"]["name"] == reference.name and rec["reference"]["identity"] == reference.identity
    assert rec["reference"]["identity"]["seed"] == 0 and rec["reference"]["stats"]["n"] == reference.sums.count
    assert rec["detector"]["kind"] == "smoke" and rec["detector"]["sha256"] == smoke.sha256
    assert rec["frame_offset_rule"] == "random" and rec["comparable"] is False
    assert len(rec["not_comparable_because"]) == 2
    # a comparable detector with N at the threshold on both sides is comparable
    det = PixelStats()
    ok = FVD(det, smoke_protocol(8), None, min_n=3)
    ok.update(_videos(3, seed=1), [""] * 3, real=True)
    ok.update(_videos(3, seed=2), [""] * 3)
    assert ok.describe()["comparable"] is True
    ok.min_n = 4
    assert ok.describe()["comparable"] is False


def test_from_run_config_builds_the_smoke_setup():
    cfg = RunConfig.model_validate({"sampling": {"height": 32, "width": 32}, "fvd": {"procedural_videos": 8}})
    from bench.metrics import build_metrics

    m = build_metrics(["fvd"], cfg, torch.device("cpu"))["fvd"]
    assert isinstance(m, FVD) and m.protocol.id == "fvd_smoke_8f" and m.reference.sums.count == 8
    assert m.reference.name == "procedural:n=8,seed=0,32x32,8f"
    m.update(_videos(4, seed=9), [""] * 4)
    assert torch.isfinite(m.compute())
    bad = RunConfig.model_validate({"fvd": {"protocol": "fvd_i3d_16f"}})
    with pytest.raises(UserError):
        FVD.from_run_config(bad, "cpu")
    from pydantic import ValidationError

    for field, value in (("batch_size", 0), ("num_frames", 0), ("offset_rule", "middle"), ("detector_kind", "x")):
        with pytest.raises(ValidationError):
            RunConfig.model_validate({"fvd": {field: value}})


# --- reference statistics files ---------------------------------------------------------------------------------

def _write_reference_folder(root) -> None:
    import imageio.v3 as iio

    (root / "a").mkdir(parents=True)
    for i, video in enumerate(procedural_videos(3, seed=11, num_frames=10, height=32, width=32)):
        iio.imwrite(root / "a" / f"clip{i}.mp4", video.to_uint8().numpy(), fps=8, codec="libx264")
    frames_dir = root / "b" / "clip_frames"
    frames_dir.mkdir(parents=True)
    for t, frame in enumerate(procedural_video(5, seed=11, num_frames=9, height=32, width=32).to_uint8()):
        iio.imwrite(frames_dir / f"{t:04d}.png", frame.numpy())
    iio.imwrite(root / "b" / "short.gif", procedural_video(6, 11, 4, 32, 32).to_uint8().numpy(), duration=100)


def test_reference_stats_round_trip_and_refusals(tmp_path, smoke):
    ref_dir = tmp_path / "ref"
    _write_reference_folder(ref_dir)
    out = tmp_path / "ref.safetensors"
    summary = fvd_stats_main(str(ref_dir), str(out), detector="smoke", protocol="fvd_smoke_8f")
    assert summary["n"] == 4 and summary["skipped_short"] == 1 and summary["protocol"] == "fvd_smoke_8f"
    assert summary["comparable_detector"] is False
    stats = load_reference_stats(out, smoke_protocol(8), smoke)
    assert stats.sums.count == 4 and stats.sha256 == summary["sha256"]
    assert stats.meta["frame_offset_rule"] == "random" and stats.meta["covariance_denominator"] == "N-1"
    again = compute_reference_stats(ref_dir, tmp_path / "again.safetensors", smoke, smoke_protocol(8))
    assert torch.equal(again.sums.outer, stats.sums.outer)  # deterministic: same offsets, same features
    with pytest.raises(UserError, match="protocol fvd_smoke_8f"):
        load_reference_stats(out, smoke_protocol(9), smoke)
    with pytest.raises(UserError, match="detector"):
        load_reference_stats(out, smoke_protocol(8), SmokeDetector(seed=3))
    with pytest.raises(UserError, match="detector"):
        FVD(SmokeDetector(seed=3), smoke_protocol(8), stats)
    (tmp_path / "junk.safetensors").write_bytes(b"junk")
    with pytest.raises(UserError):
        load_reference_stats(tmp_path / "junk.safetensors")


def test_reading_videos(tmp_path):
    ref_dir = tmp_path / "ref"
    _write_reference_folder(ref_dir)
    paths = list_videos(ref_dir)
    assert [p.name for p in paths] == ["clip0.mp4", "clip1.mp4", "clip2.mp4", "clip_frames", "short.gif"]
    assert [p.name for p in list_videos(ref_dir, max_per_folder=1)] == ["clip0.mp4", "clip_frames"]
    frames = read_video(ref_dir / "b" / "clip_frames")
    assert torch.equal(frames, procedural_video(5, seed=11, num_frames=9, height=32, width=32).to_uint8())  # PNG lossless
    assert read_video(ref_dir / "a" / "clip0.mp4").shape == (10, 32, 32, 3)
    assert read_video(ref_dir / "a" / "clip0.mp4", max_frames=4).shape[0] == 4
    assert read_video(ref_dir / "b" / "short.gif").shape == (4, 32, 32, 3)
    with pytest.raises(UserError):
        list_videos(tmp_path / "missing")


def test_ucf101_layout_and_suite(tmp_path):
    import imageio.v3 as iio

    root = tmp_path / "UCF-101"
    for c, cls in enumerate(("ApplyEyeMakeup", "YoYo")):
        (root / cls).mkdir(parents=True)
        for g, video in enumerate(procedural_videos(3, seed=c, num_frames=9, height=32, width=32)):
            iio.imwrite(root / cls / f"v_{cls}_g0{g}_c01.avi", video.to_uint8().numpy(), fps=25, codec="mpeg4",
                        plugin="pyav")
    assert len(ucf101_videos(tmp_path)) == 6
    assert [p.name for p in ucf101_videos(root, max_per_class=1)] == ["v_ApplyEyeMakeup_g00_c01.avi",
                                                                     "v_YoYo_g00_c01.avi"]
    split = tmp_path / "testlist01.txt"
    split.write_text("YoYo/v_YoYo_g02_c01.avi\n")
    assert [p.name for p in ucf101_videos(root, split_list=split)] == ["v_YoYo_g02_c01.avi"]
    summary = fvd_stats_main(str(tmp_path), str(tmp_path / "ucf.safetensors"), layout="ucf101", max_per_folder=2,
                             num_frames=8, name="ucf-test")
    assert summary["n"] == 4 and summary["name"] == "ucf-test" and summary["protocol"] == "fvd_smoke_8f"
    suite = load_suite("ucf101")
    assert len(suite.prompts) == 101 and suite.prompts[0].id == "ucf-001" and suite.prompts[-1].id == "ucf-101"
    assert suite.prompts[0].text == "apply eye makeup" and suite.prompts[0].tags == ("ucf101", "ApplyEyeMakeup")


def test_procedural_videos_are_deterministic_and_move():
    a, b = procedural_video(3, seed=1, num_frames=6), procedural_video(3, seed=1, num_frames=6)
    assert torch.equal(a.frames, b.frames) and a.frames.shape == (6, 3, 64, 64)
    assert not torch.equal(a.frames, procedural_video(4, seed=1, num_frames=6).frames)
    assert not torch.equal(a.frames, procedural_video(3, seed=2, num_frames=6).frames)
    assert (a.frames[0] - a.frames[-1]).abs().max() > 0.1  # shapes move
    assert a.frames.min() >= 0 and a.frames.max() <= 1
