"""The toy world is deterministic and its captions match its pixels; motion fidelity tells right from wrong."""
from __future__ import annotations

import math

import torch

from bench.api import Video
from bench.metrics.motion import MotionFidelity, motion_fidelity, track
from bench.toy.world import BASE_SPEED, parse_motion, render_video, scene_at, toy_videos, write_dataset


def test_world_is_deterministic_and_captions_parse():
    a, b = next(toy_videos(1, seed=3)), next(toy_videos(1, seed=3))
    assert a.caption == b.caption and torch.equal(a.frames, b.frames)
    assert a.frames.shape == (8, 3, 32, 32) and 0 <= a.frames.min() and a.frames.max() <= 1
    captions = {s.caption for s in toy_videos(40)}
    assert len(captions) > 20 and all(parse_motion(c) is not None for c in captions)
    assert parse_motion("a red circle on a blue background") is None
    spec = parse_motion("a red circle moving left quickly on a blue background")
    assert spec.direction == (-1.0, 0.0) and spec.speed > BASE_SPEED


def test_tracker_follows_the_shape():
    scene = scene_at(0)
    scene = type(scene)(**{**scene.__dict__, "motion": "right", "x0": 0.3, "y0": 0.5})
    centroids, _ = track(render_video(scene))
    steps = centroids[1:, 0] - centroids[:-1, 0]
    assert torch.allclose(steps, torch.full_like(steps, BASE_SPEED), atol=0.01)
    assert (centroids[:, 1] - 0.5).abs().max() < 0.02


def test_motion_fidelity_high_on_truth_low_on_reversed_and_still():
    truth, reversed_, still = [], [], []
    for s in toy_videos(24, seed=1, motions=("left", "right", "up", "down", "growing")):
        truth.append(motion_fidelity(s.frames, s.caption))
        reversed_.append(motion_fidelity(s.frames.flip(0), s.caption))
        still.append(motion_fidelity(s.frames[:1].expand_as(s.frames), s.caption))
    assert min(truth) > 0.85
    assert max(reversed_) < 0.05 and max(still) < 0.05


def test_still_caption_and_missing_motion_word():
    s = next(toy_videos(1, motions=("still",)))
    assert motion_fidelity(s.frames, s.caption) > 0.95
    moving = next(toy_videos(1, motions=("left",)))
    assert motion_fidelity(moving.frames, s.caption) < 0.5  # asked to stay still, it moved
    assert math.isnan(motion_fidelity(s.frames, "a red circle on a blue background"))


def test_metric_excludes_captions_without_motion():
    metric = MotionFidelity()
    s = next(toy_videos(1, motions=("left",)))
    metric.update([Video(s.frames), Video(s.frames)], [s.caption, "a red circle"])
    assert math.isnan(metric.last_values[1]) and int(metric.n_videos) == 1
    assert float(metric.compute()) > 0.85


def test_write_dataset_roundtrips_through_the_folder_loader(tmp_path):
    from bench.data import load_folder

    write_dataset(tmp_path, 2, seed=0)
    clips = load_folder(tmp_path, num_frames=8, size=32)
    truth = list(toy_videos(2, seed=0))
    assert [c.caption for c in clips] == [t.caption for t in truth]
    assert (clips[0].frames - truth[0].frames).abs().mean() < 0.05  # mp4 is lossy, but close
    assert motion_fidelity(clips[0].frames, clips[0].caption) > 0.7
