"""Base components: the real CLIP tokenizer offline, the tiny preset, and loading through from_pretrained."""
import pytest
import torch

from bench.errors import UserError
from bench.models import clip_bpe_tokenizer, load_base, tiny_components


@pytest.mark.parametrize("text", ["a red ball bouncing on a wooden floor", "Hello, World!! it's 2026 — café",
                                  "  Multiple   SPACES\tand ÜNICODE ✨", "a"])
def test_tokenizer_ids_equal_open_clip(text):
    import open_clip

    ours = clip_bpe_tokenizer()(text).input_ids
    theirs = open_clip.tokenize([text])[0]
    theirs = theirs[: int((theirs != 0).sum())].tolist()  # open_clip pads with 0, SD with <|endoftext|>
    assert ours == theirs
    assert ours[0] == 49406 and ours[-1] == 49407


def test_tiny_preset_is_deterministic_from_seed():
    a, b, c = tiny_components(3), tiny_components(3), tiny_components(4)
    pa = torch.cat([p.flatten() for p in a.unet.parameters()])
    assert torch.equal(pa, torch.cat([p.flatten() for p in b.unet.parameters()]))
    assert not torch.equal(pa, torch.cat([p.flatten() for p in c.unet.parameters()]))


def test_tiny_round_trips_through_from_pretrained(tmp_path, request_factory):
    """The folder path is the code path real weights take."""
    from methods.per_frame import PerFrame

    original = tiny_components(0)
    original.save_pretrained(tmp_path / "tiny-sd")
    loaded = load_base(str(tmp_path / "tiny-sd"))
    assert loaded.source["model"] == str(tmp_path / "tiny-sd")
    req = request_factory()
    a = PerFrame(original).generate([req])[0].frames
    b = PerFrame(loaded).generate([req])[0].frames
    assert torch.equal(a, b)


def test_personalized_unet_swaps_in(tmp_path, request_factory):
    from bench.models import tiny_unet
    from methods.per_frame import PerFrame

    tiny_unet(seed=99).save_pretrained(tmp_path / "my-unet")
    swapped = load_base("tiny", unet=str(tmp_path / "my-unet"))
    req = request_factory()
    assert not torch.equal(PerFrame(swapped).generate([req])[0].frames,
                           PerFrame(tiny_components(0)).generate([req])[0].frames)


def test_missing_weights_path_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_base(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="could not load"):
        load_base(str(tmp_path))  # exists but holds no model


def test_fp16_on_cpu_is_refused():
    from bench.models import resolve_dtype

    with pytest.raises(UserError, match="fp16"):
        resolve_dtype("fp16", torch.device("cpu"))
