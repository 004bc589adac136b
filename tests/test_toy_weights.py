"""The shipped toy-world weights load through the same paths a user's config takes."""
from __future__ import annotations

import pytest
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
    # recorded by location inside the package and by content, so records from any checkout compare
    from bench.metrics.fvd_detectors import file_sha256
    from bench.toy.clip_model import shipped_checkpoint

    rec = clip.describe()
    assert rec["pretrained"] == "bench/toy/weights/clip/toy-clip.safetensors"
    assert rec["pretrained_sha256"] == file_sha256(shipped_checkpoint())


def test_toy_video_features_shape():
    from bench.toy.video_features import load_video_features, video_features

    net = load_video_features()
    feats = video_features(net, torch.rand(2, 8, 3, 48, 48))
    assert feats.shape == (2, 64) and feats.dtype == torch.float64


def _noise_prediction(name: str, **options) -> torch.Tensor:
    """One noise prediction of `name` on the toy base, fixed latents, prompt and timestep."""
    from bench.models import load_base
    from bench.registry import METHODS

    base = load_base("toy")
    method = METHODS.get(name)(base, **options)
    latents = torch.randn((1, 4, 4, 8, 8), generator=torch.Generator("cpu").manual_seed(0))
    embeds = method.encode_prompts(["a red circle moving left on a blue background"])
    with torch.no_grad():
        return method.predict_noise(latents.to(base.dtype), torch.tensor(500), embeds).float()


# Each trained method's shipped weights load through its `toy` option and move it off its untrained start.
TRAINED = [("animatediff", {"motion_adapter": "toy"}, {"motion_adapter": "tiny"}),
           ("magicvideo", {"motion_adapter": "toy"}, {"motion_adapter": "tiny"}),
           ("simda", {"adapter_weights": "toy"}, {}),
           ("dual_stream", {"weights": "toy"}, {})]


@pytest.mark.parametrize(("name", "trained", "untrained"), TRAINED, ids=[t[0] for t in TRAINED])
def test_toy_weights_load_and_change_the_output(name, trained, untrained):
    out = _noise_prediction(name, **trained)
    assert torch.isfinite(out).all()
    assert (out - _noise_prediction(name, **untrained)).abs().max() > 1e-3


def test_magicvideo_toy_adapter_is_its_own():
    """`motion_adapter: toy` means each method's own trained adapter, not AnimateDiff's."""
    from bench.models import toy_weights
    from methods.animatediff import AnimateDiff
    from methods.magicvideo import MagicVideo

    assert MagicVideo.toy_weights != AnimateDiff.toy_weights
    assert (toy_weights(MagicVideo.toy_weights) / "diffusion_pytorch_model.safetensors").is_file()
