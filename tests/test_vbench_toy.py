"""The VBench-style dimensions on real toy-world videos (rendered, so the truth is known) with the shipped toy models:
dynamic degree says translating captions move and still ones do not; shuffling a video in time lowers motion
smoothness; the toy RAFT's end-point error against the true flow is small."""
from __future__ import annotations

import pytest
import torch

from bench.api import Video
from bench.toy.world import render_video, scene_at


def _videos(motion: str, n: int = 6, seed: int = 321) -> list[Video]:
    out, i = [], 0
    while len(out) < n:
        i += 1
        scene = scene_at(i, seed, 8, motions=(motion,))
        out.append(Video(render_video(scene, 8, 32), fps=8))
    return out


@pytest.fixture(scope="module")
def flow():
    from bench.metrics.backbones import raft

    return raft("toy")


def test_toy_raft_end_point_error(flow):
    """EPE (px) on toy-world pairs of unseen scenes against the analytic flow: far below the zero-flow baseline on
    the moving pixels, and small on the still background."""
    from bench.toy.flow_model import world_pairs

    a, b, true = world_pairs(48, seed=999)
    pred = flow.flow(a, b)  # 32x32 needs no padding
    err = (pred - true).norm(dim=1)
    moving = true.norm(dim=1) > 0.5
    assert err[moving].mean() < 0.5 * true.norm(dim=1)[moving].mean()
    assert err[~moving].mean() < 0.15


def test_dynamic_degree_moving_vs_still(flow):
    from bench.metrics.dynamic_degree import DynamicDegree

    m = DynamicDegree(flow)
    for motion in ("left", "right", "up", "down"):
        m.update(_videos(motion, 2), [""] * 2)
    assert m.compute().item() >= 0.9
    still = DynamicDegree(flow)
    still.update(_videos("still", 4), [""] * 4)
    assert still.compute().item() <= 0.1


def test_shuffled_videos_score_lower_motion_smoothness(flow):
    from bench.metrics.motion_smoothness import MotionSmoothness

    videos = [v for motion in ("left", "right", "up", "down") for v in _videos(motion, 2)]
    perm = torch.tensor([0, 5, 2, 7, 4, 1, 6, 3])  # the odd frames swap places: their neighbours do not predict them
    shuffled = [Video(v.frames[perm], fps=v.fps) for v in videos]
    ordered_m, shuffled_m = MotionSmoothness(flow), MotionSmoothness(flow)
    ordered_m.update(videos, [""] * len(videos))
    shuffled_m.update(shuffled, [""] * len(videos))
    o, s = torch.tensor(ordered_m.last_values), torch.tensor(shuffled_m.last_values)
    assert (o > s).all()
    assert o.mean() - s.mean() > 3 * (o - s).std() / len(o) ** 0.5
