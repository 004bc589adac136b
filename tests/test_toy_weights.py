"""The shipped toy-world weights load through the same paths a user's config takes."""
from __future__ import annotations

import torch

from bench.api import GenRequest


def test_toy_base_generates_a_video():
    from bench.models import load_base
    from methods.per_frame import PerFrame

    base = load_base("toy")
    assert base.source["model"] == "toy" and base.tokenizer.model_max_length == 16
    video = PerFrame(base).generate([GenRequest("p", "a red circle moving left on a blue background", seed=0,
                                                num_frames=2, height=32, width=32, num_inference_steps=2)])[0]
    assert video.frames.shape == (2, 3, 32, 32)


def test_toy_clip_tells_colours_apart():
    from bench.metrics.clip import ClipEmbedder
    from bench.toy.world import toy_videos

    clip = ClipEmbedder("toy", "toy")
    sample = next(toy_videos(1, seed=5))
    colour = sample.scene.colour
    wrong = sample.caption.replace(colour, "green" if colour != "green" else "red")
    text = clip.text_embeddings([sample.caption, wrong])
    scores = clip.image_embeddings(sample.frames) @ text.T
    assert scores[:, 0].mean() > scores[:, 1].mean()


def test_toy_video_features_shape():
    from bench.toy.video_features import load_video_features, video_features

    net = load_video_features()
    feats = video_features(net, torch.rand(2, 8, 3, 48, 48))
    assert feats.shape == (2, 64) and feats.dtype == torch.float64
