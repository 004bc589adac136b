"""The tensor preprocessing of ClipEmbedder equals open_clip's own transform (PIL) at any frame size."""
import numpy as np
import pytest
import torch

from bench.metrics.clip import ClipEmbedder, clip_resize_crop

SIZES = [(320, 576), (576, 1024), (40, 56), (67, 48), (224, 224), (100, 301)]


@pytest.fixture(scope="module")
def open_clip_transform():
    import open_clip

    _, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    return preprocess


def _reference(preprocess, frame: torch.Tensor) -> torch.Tensor:
    """open_clip's Resize and CenterCrop objects on float ('F' mode) PIL images, channel by channel, so no uint8
    quantisation hides a one-pixel crop shift or a wrong output size; then clamp as a uint8 image would be."""
    from PIL import Image

    resize, crop = preprocess.transforms[0], preprocess.transforms[1]
    chans = [np.asarray(crop(resize(Image.fromarray(frame[c].numpy(), mode="F")))) for c in range(3)]
    return torch.from_numpy(np.stack(chans)).clamp(0, 1)


@pytest.mark.parametrize("h,w", SIZES)
def test_resize_crop_equals_open_clip_transform(open_clip_transform, h, w):
    g = torch.Generator().manual_seed(h * 1000 + w)
    frame = torch.rand(3, h, w, generator=g)
    ours = clip_resize_crop(frame[None], (224, 224))[0]
    ref = _reference(open_clip_transform, frame)
    assert ours.shape == ref.shape == (3, 224, 224)
    assert (ours - ref).abs().max().item() < 3e-5  # random noise is the worst case for bicubic kernels


@pytest.mark.parametrize("h,w", [(320, 576), (40, 56)])
def test_full_uint8_pipeline_matches(open_clip_transform, h, w):
    """The whole transform (uint8 PIL image, normalise) against ClipEmbedder.preprocess: within uint8 rounding."""
    from PIL import Image

    embedder = ClipEmbedder("tiny", seed=0)
    assert embedder.image_size == (32, 32)
    import open_clip

    _, _, preprocess = open_clip.create_model_and_transforms(embedder.model_name, pretrained=None)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    frame = torch.stack([yy, xx, ((xx * 7).floor() % 2)])  # stripes: a shifted crop would differ by ~1
    q = (frame * 255).round().to(torch.uint8)
    ref = preprocess(Image.fromarray(q.permute(1, 2, 0).numpy()))
    ours = embedder.preprocess(q.float()[None] / 255)[0]
    std = torch.tensor(preprocess.transforms[-1].std).view(3, 1, 1)
    assert ((ours - ref).abs() * std).max().item() <= 1.0 / 255 + 1e-6
