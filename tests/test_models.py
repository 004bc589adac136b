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


def test_lora_file_is_fused_into_the_unet(tmp_path, request_factory):
    """A LoRA saved in diffusers' format loads through load_base(lora=...) and changes the UNet by exactly B @ A."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, get_peft_model_state_dict

    from bench.models import tiny_unet

    unet = tiny_unet(seed=1)  # tiny_components(0) builds its UNet from seed 0 + 1
    unet.add_adapter(LoraConfig(r=2, lora_alpha=2, target_modules=["to_q", "to_v"], init_lora_weights=False))
    StableDiffusionPipeline.save_lora_weights(tmp_path / "lora", unet_lora_layers=get_peft_model_state_dict(unet),
                                              safe_serialization=True)
    lora_file = next((tmp_path / "lora").glob("*.safetensors"))
    plain = tiny_components(0)
    fused = load_base("tiny", lora=str(lora_file), lora_scale=1.0)
    name = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    a = unet.get_submodule(name).lora_A["default"].weight
    b = unet.get_submodule(name).lora_B["default"].weight
    expected = plain.unet.get_submodule(name).weight + b @ a
    assert torch.allclose(fused.unet.get_submodule(name).weight, expected, atol=1e-5)
    untouched = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k"
    assert torch.equal(fused.unet.get_submodule(untouched).weight, plain.unet.get_submodule(untouched).weight)
    assert fused.source["lora"] == str(lora_file)
