"""CLIP metrics checked against independent computations on the same open_clip model."""
import numpy as np
import pytest
import torch

from bench.api import Video
from bench.metrics.clip import ClipEmbedder, ClipScore, FrameConsistency, FrameConsistencyAllPairs
from bench.metrics.flicker import TemporalFlickering, temporal_flickering


@pytest.fixture(scope="module")
def embedder():
    return ClipEmbedder("tiny", seed=0)


def _open_clip_reference(embedder, frames, text):
    """Second implementation: open_clip's own PIL preprocessing and the model's encoders, in numpy."""
    import open_clip
    from PIL import Image

    _, _, preprocess = open_clip.create_model_and_transforms(embedder.model_name, pretrained=None)
    images = torch.stack([preprocess(Image.fromarray((f.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)))
                          for f in frames])
    with torch.no_grad():
        img = embedder.model.encode_image(images).numpy().astype(np.float64)
        txt = embedder.model.encode_text(open_clip.tokenize([text])).numpy().astype(np.float64)[0]
    img /= np.linalg.norm(img, axis=1, keepdims=True)
    txt /= np.linalg.norm(txt)
    return img, txt


def test_clip_score_equals_direct_computation(embedder):
    g = torch.Generator().manual_seed(0)
    frames = (torch.randint(0, 256, (5, 3, 32, 32), generator=g).float() / 255)  # model size: no resize involved
    img, txt = _open_clip_reference(embedder, frames, "a red ball")
    m = ClipScore(embedder)
    m.update([Video(frames)], ["a red ball"])
    assert m.last_values[0] == pytest.approx(100 * float((img @ txt).mean()), abs=1e-3)
    fc = FrameConsistency(embedder)
    fc.update([Video(frames)], [""])
    expected = float(np.mean([img[i] @ img[i + 1] for i in range(4)]))
    assert fc.last_values[0] == pytest.approx(expected, abs=1e-5)
    ap = FrameConsistencyAllPairs(embedder)
    ap.update([Video(frames)], [""])
    pairs = [img[i] @ img[j] for i in range(5) for j in range(5) if i != j]
    assert ap.last_values[0] == pytest.approx(float(np.mean(pairs)), abs=1e-5)


def test_resize_path_close_to_pil_preprocessing(embedder):
    """Our tensor resize (bicubic, antialias) against open_clip's PIL transform on 64x64 frames."""
    frames = torch.linspace(0, 1, 64).view(1, 1, 1, 64).expand(3, 3, 64, 64).clone()
    frames[:, 0] = frames[:, 0].transpose(-1, -2)
    img, txt = _open_clip_reference(embedder, frames, "a cat")
    m = ClipScore(embedder)
    m.update([Video(frames)], ["a cat"])
    assert m.last_values[0] == pytest.approx(100 * float((img @ txt).mean()), abs=0.5)


def test_identical_frames_have_consistency_one(embedder):
    frames = torch.rand(1, 3, 40, 48).expand(6, -1, -1, -1).clone()
    for cls in (FrameConsistency, FrameConsistencyAllPairs):
        m = cls(embedder)
        m.update([Video(frames)], [""])
        assert m.compute().item() == pytest.approx(1.0, abs=1e-5)


def test_merged_instances_equal_one_pass(embedder):
    g = torch.Generator().manual_seed(1)
    videos = [Video(torch.rand(4, 3, 32, 32, generator=g)) for _ in range(5)]
    prompts = ["a", "b cat", "c dog", "d", "e sea"]
    for cls in (ClipScore, FrameConsistency):
        whole = cls(embedder)
        whole.update(videos, prompts)
        left, right = cls(embedder), cls(embedder)
        left.update(videos[:2], prompts[:2])
        right.update(videos[2:], prompts[2:])
        left.merge_state(right)
        # float32 encoders give batch-composition noise (~1e-6); the merge itself is a float64 sum
        assert left.compute().item() == pytest.approx(whole.compute().item(), abs=1e-5)
        assert int(left.n_videos) == 5
    whole, left, right = TemporalFlickering(), TemporalFlickering(), TemporalFlickering()
    whole.update(videos, prompts)
    left.update(videos[:3], prompts[:3])
    right.update(videos[3:], prompts[3:])
    left.merge_state(right)
    assert left.compute().item() == pytest.approx(whole.compute().item(), abs=1e-12)


def test_temporal_flickering_closed_forms():
    still = torch.rand(1, 3, 8, 8).expand(5, -1, -1, -1)
    assert temporal_flickering(still) == 1.0
    black_white = torch.stack([torch.zeros(3, 8, 8), torch.ones(3, 8, 8)] * 2)
    assert temporal_flickering(black_white) == 0.0
    ramp = torch.stack([torch.full((3, 4, 4), v / 255) for v in (0, 10, 30)])  # diffs 10 and 20 levels
    assert temporal_flickering(ramp) == pytest.approx(((255 - 10) / 255 + (255 - 20) / 255) / 2)
    m = TemporalFlickering()
    m.update([Video(still), Video(black_white)], ["", ""])
    assert m.compute().item() == pytest.approx(0.5)
