"""The VBench-style formulas against second implementations written here in numpy/scipy, on fixed inputs."""
import numpy as np
import pytest
import torch

from bench.api import Video
from bench.metrics.dynamic_degree import DynamicDegree, FlowMagnitude, moves, resample_interval, top5_mean
from bench.metrics.motion_smoothness import backward_warp, midpoint, vfi_score
from bench.metrics.subject_consistency import FramePairConsistency, first_and_previous


def test_top5_mean_equals_numpy_sort():
    rng = np.random.default_rng(0)
    flows = rng.normal(size=(3, 2, 24, 40)) * 3
    rad = np.sqrt(flows[:, 0] ** 2 + flows[:, 1] ** 2)
    cut = int(24 * 40 * 0.05)
    expected = [np.mean(np.abs(np.sort(-r.flatten()))[:cut]) for r in rad]  # VBench's own expression
    ours = top5_mean(torch.from_numpy(rad)).numpy()
    np.testing.assert_allclose(ours, expected, atol=1e-6)


def _vbench_check_move(scores, h, w, count):
    thres, count_num, n = 6.0 * (min(h, w) / 256.0), round(4 * (count / 16.0)), 0
    for s in scores:
        if s > thres:
            n += 1
        if n >= count_num:
            return True
    return False


@pytest.mark.parametrize("count", [2, 3, 6, 8, 10, 16, 25])
def test_count_rule_equals_vbench_loop(count):
    rng = np.random.default_rng(count)
    for _ in range(50):
        scores = list(rng.uniform(0, 2, size=count - 1))
        assert moves(scores, 32, 48, count) == _vbench_check_move(scores, 32, 48, count)


def test_resample_interval():
    assert [resample_interval(f) for f in (8, 10, 12, 16, 24, 30, 60, 4)] == [1, 1, 2, 2, 3, 4, 8, 1]


class _ConstantFlow:
    """A stand-in RAFT: every pair gets the flow given per pair index; records the pairs it was asked."""

    def __init__(self, per_pair):
        self.per_pair, self.calls = per_pair, []

    def flow(self, a, b, key=None, source=None):
        self.calls.append(len(a))
        h, w = a.shape[-2:]
        ph, pw = (-h) % 8, (-w) % 8
        return torch.stack([self.per_pair(i, h + ph, w + pw) for i in range(len(a))])

    def describe(self):
        return {}


def test_dynamic_degree_and_magnitude_on_known_flows():
    h, w = 20, 30  # padded to 24 x 32
    big = 6.0 * 20 / 256 + 0.01
    def flow(i, hh, ww):
        f = torch.zeros(2, hh, ww)
        if i % 2 == 0:
            f[0, :5, :] = big * 2  # 160 px of 768 > 5%: top-5% mean = 2 * big
        return f
    frames = torch.rand(16, 3, h, w, generator=torch.Generator().manual_seed(0))
    m = DynamicDegree(_ConstantFlow(flow))
    m.update([Video(frames, fps=16)], [""])  # resampled to 8 frames: 7 pairs, 4 above; need round(2) = 2
    assert m.last_values == [1.0]
    m2 = DynamicDegree(_ConstantFlow(lambda i, hh, ww: torch.zeros(2, hh, ww)))
    m2.update([Video(frames, fps=16)], [""])
    assert m2.last_values == [0.0]
    fm = FlowMagnitude(_ConstantFlow(flow))
    fm.update([Video(frames, fps=16)], [""])
    inner = np.zeros((7, 24, 32))
    inner[0::2, :5, :] = big * 2
    assert fm.last_values[0] == pytest.approx(inner[:, 2:22, 1:31].mean(), abs=1e-6)


def test_backward_warp_equals_scipy_map_coordinates():
    from scipy.ndimage import map_coordinates

    rng = np.random.default_rng(1)
    img = rng.uniform(size=(2, 3, 12, 17))
    flow = rng.normal(size=(2, 2, 12, 17)) * 2
    ours = backward_warp(torch.from_numpy(img), torch.from_numpy(flow)).numpy()
    ys, xs = np.meshgrid(np.arange(12), np.arange(17), indexing="ij")
    for n in range(2):
        coords = [np.clip(ys + flow[n, 1], 0, 11), np.clip(xs + flow[n, 0], 0, 16)]
        for c in range(3):
            ref = map_coordinates(img[n, c], coords, order=1, mode="nearest")
            np.testing.assert_allclose(ours[n, c], ref, atol=1e-6)


def test_midpoint_of_a_translation_is_the_half_shift():
    """A ramp translated by d: flows +d and -d give the frame shifted by d/2 (exact for linear images)."""
    xs = torch.arange(16, dtype=torch.float64).view(1, 1, 1, 16).expand(1, 1, 8, 16) / 16
    d = 4.0
    i0, i1 = xs, xs - d / 16  # content moves right by d px
    f01 = torch.zeros(1, 2, 8, 16, dtype=torch.float64)
    f01[:, 0] = d
    mid = midpoint(i0, i1, f01, -f01)
    expected = xs - d / 2 / 16
    inner = (slice(None), slice(None), slice(None), slice(4, 12))  # away from the clamped border
    assert torch.allclose(mid[inner], expected[inner], atol=1e-9)


def test_vfi_score_equals_numpy():
    rng = np.random.default_rng(2)
    odd = rng.uniform(size=(3, 3, 8, 8))
    pred = rng.uniform(size=(3, 3, 8, 8))
    q = lambda x: np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)  # noqa: E731
    diffs = [np.mean(np.abs(q(o).astype(np.int16) - q(p).astype(np.int16))) for o, p in zip(odd, pred)]
    assert vfi_score(torch.from_numpy(odd), torch.from_numpy(pred)) == pytest.approx((255 - np.mean(diffs)) / 255,
                                                                                      abs=1e-9)


def _vbench_consistency(feats):
    feats = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    total = 0.0
    for i in range(1, len(feats)):
        total += (max(0.0, float(feats[i - 1] @ feats[i])) + max(0.0, float(feats[0] @ feats[i]))) / 2
    return total, len(feats) - 1


def test_first_and_previous_equals_numpy_loop():
    rng = np.random.default_rng(3)
    feats = rng.normal(size=(9, 16))  # random signs: some cosines negative, clamped to 0
    total, n = first_and_previous(torch.nn.functional.normalize(torch.from_numpy(feats), dim=-1))
    ref_total, ref_n = _vbench_consistency(feats)
    assert n == ref_n and total == pytest.approx(ref_total, abs=1e-9)


def test_consistency_metric_is_frame_weighted_and_merges():
    rng = np.random.default_rng(4)
    feats = {4: rng.normal(size=(4, 8)), 7: rng.normal(size=(7, 8))}
    features = lambda frames: torch.nn.functional.normalize(torch.from_numpy(feats[len(frames)]), dim=-1)  # noqa
    features.describe = dict  # type: ignore[attr-defined]
    a, b = FramePairConsistency(features), FramePairConsistency(features)
    a.protocol = b.protocol = "x"
    a.update([Video(torch.zeros(4, 3, 8, 8))], [""])
    b.update([Video(torch.zeros(7, 3, 8, 8))], [""])
    a.merge_state(b)
    (t4, n4), (t7, n7) = _vbench_consistency(feats[4]), _vbench_consistency(feats[7])
    assert a.compute().item() == pytest.approx((t4 + t7) / (n4 + n7), abs=1e-9)


def test_motion_smoothness_skips_videos_too_short_to_score():
    from bench.metrics.motion_smoothness import MotionSmoothness

    m = MotionSmoothness(_ConstantFlow(lambda i, hh, ww: torch.zeros(2, hh, ww)))
    # even uint8 levels: the neighbours' mean is a whole level, so no rounding tie depends on float error
    frames = torch.randint(0, 128, (5, 3, 8, 8), generator=torch.Generator().manual_seed(0)).float() * 2 / 255
    m.update([Video(frames[:2]), Video(frames)], ["", ""])
    assert np.isnan(m.last_values[0]) and int(m.n_videos) == 1
    # zero flow: the midpoint is the mean of the even neighbours, scored against the odd frames
    q = lambda x: np.round(np.clip(x.numpy(), 0, 1) * 255)  # noqa: E731
    f = q(frames) / 255
    pred = [(f[0] + f[2]) / 2, (f[2] + f[4]) / 2]
    diffs = [np.mean(np.abs(q(torch.from_numpy(p)) - q(torch.from_numpy(o)))) for p, o in zip(pred, f[[1, 3]])]
    assert m.compute().item() == pytest.approx((255 - np.mean(diffs)) / 255, abs=1e-6)
