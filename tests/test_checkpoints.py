"""The checkpoint files users have, each written here in its official key layout (tests/official_layouts.py)
with tiny shapes, loaded through bench's loaders (diffusers' own underneath), and compared with the weights
that went in."""
from __future__ import annotations

import re

import pytest
import torch
from safetensors.torch import save_file

from bench.errors import UserError
from bench.models import load_base, tiny_components
from official_layouts import kohya_lora, ldm_text_encoder, ldm_unet, ldm_vae, official_motion_module


def _random(module: torch.nn.Module, seed: int, std: float = 0.05) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return module


def _adapter(mid: bool, max_len: int):
    from diffusers import MotionAdapter

    # 8 heads, 32 groups: what every official SD-1.5 motion module uses (not readable off the file)
    return _random(MotionAdapter(block_out_channels=(32, 64), motion_layers_per_block=1, motion_num_attention_heads=8,
                                 motion_norm_num_groups=32, motion_max_seq_length=max_len, use_motion_mid_block=mid), 3)


@pytest.mark.parametrize("layout,suffix,mid,max_len", [("v1", ".ckpt", False, 24), ("v3", ".safetensors", True, 32)])
def test_original_motion_module_file_loads_as_motion_adapter(tmp_path, tiny_base, layout, suffix, mid, max_len):
    """mm_sd_v15.ckpt (no mid block, 24 positions) and v3_sd15_mm.ckpt (mid block, 32) layouts, as
    `motion_adapter: path`: every tensor arrives, the config is read off the shapes, the record names the file."""
    from methods.animatediff import AnimateDiff

    adapter = _adapter(mid, max_len)
    state = official_motion_module(adapter.state_dict(), max_len)
    assert "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.1.to_q.weight" in state
    path = tmp_path / f"mm_{layout}{suffix}"
    if suffix == ".ckpt":
        torch.save({"state_dict": state}, path)  # the official files nest the weights under 'state_dict'
    else:
        save_file(state, str(path))
    method = AnimateDiff(tiny_base, motion_adapter=str(path))
    assert method.max_frames == max_len
    assert method.adapter.config.use_motion_mid_block == mid
    want, got = adapter.state_dict(), method.adapter.state_dict()
    assert set(want) == set(got)
    assert all(torch.equal(want[k], got[k]) for k in want)
    record = method.config()["motion_adapter_file"]
    assert record["sha256"] and record["bytes"] == path.stat().st_size


def test_motion_module_file_with_pickled_code_is_refused(tmp_path, tiny_base):
    from methods.animatediff import AnimateDiff

    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "hook": UserError("not a tensor")}, path)
    with pytest.raises(UserError, match="weights_only"):
        AnimateDiff(tiny_base, motion_adapter=str(path))


def _config_folder(base, folder):
    from diffusers import StableDiffusionPipeline

    StableDiffusionPipeline(vae=base.vae, text_encoder=base.text_encoder, tokenizer=base.tokenizer, unet=base.unet,
                            scheduler=base.scheduler, safety_checker=None, feature_extractor=None,
                            requires_safety_checker=False).save_pretrained(folder)
    return folder


def test_single_file_ldm_base_loads_with_a_local_config(tmp_path):
    """A CivitAI-style .safetensors (model.diffusion_model / first_stage_model / cond_stage_model keys) as
    `base.model: file` with `base.config: <diffusers folder>`: UNet, VAE and text encoder arrive exactly."""
    personal = tiny_components(0)
    _random(personal.unet, 1)
    _random(personal.vae, 2)
    state = {**ldm_unet(personal.unet), **ldm_vae(personal.vae), **ldm_text_encoder(personal.text_encoder)}
    assert "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight" in state
    assert "first_stage_model.encoder.mid.attn_1.q.weight" in state
    path = tmp_path / "personal.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    config = _config_folder(tiny_components(0), tmp_path / "family")  # the family's configs, other weights
    loaded = load_base(str(path), config=str(config))
    for name in ("unet", "vae", "text_encoder"):
        want, got = getattr(personal, name).state_dict(), getattr(loaded, name).state_dict()
        assert set(want) <= set(got), name
        assert all(torch.equal(want[k], got[k]) for k in want), name
    assert loaded.source["single_file"]["sha256"] and loaded.source["config"] == str(config)


def test_single_file_base_offline_without_config_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))  # SD 1.5's config is not cached here
    personal = tiny_components(0)
    path = tmp_path / "personal.safetensors"
    save_file({k: v.contiguous() for k, v in {**ldm_unet(personal.unet), **ldm_vae(personal.vae),
                                              **ldm_text_encoder(personal.text_encoder)}.items()}, str(path))
    with pytest.raises(UserError, match="base.config"):
        load_base(str(path))


def test_kohya_lora_for_the_base_fuses_alpha_over_rank(tmp_path):
    """kohya/A1111 keys (lora_unet_..., lora_te_..., .alpha) as `base.lora` with `base.lora_scale`:
    W' = W + scale * alpha / rank * up @ down, in the UNet and the text encoder."""
    g = torch.Generator().manual_seed(0)
    unet_layer = "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q"
    te_layer = "text_model.encoder.layers.0.self_attn.q_proj"
    plain = tiny_components(0)
    d_unet = plain.unet.get_submodule(unet_layer).weight.shape
    d_te = plain.text_encoder.get_submodule(te_layer.removeprefix("text_model.")).weight.shape
    rank, alpha, scale = 4, 2.0, 0.8
    ud, uu = torch.randn(rank, d_unet[1], generator=g), torch.randn(d_unet[0], rank, generator=g)
    td, tu = torch.randn(rank, d_te[1], generator=g), torch.randn(d_te[0], rank, generator=g)
    state = {**kohya_lora(unet_layer, ud, uu, alpha), **kohya_lora(te_layer, td, tu, alpha, prefix="lora_te")}
    for proj in ("k_proj", "v_proj", "out_proj"):  # real files cover every projection of a layer (diffusers keys
        state.update(kohya_lora(te_layer.replace("q_proj", proj),  # its text-encoder format guess on out_proj)
                                torch.randn(rank, d_te[1], generator=g), torch.randn(d_te[0], rank, generator=g),
                                alpha, prefix="lora_te"))
    path = tmp_path / "style.safetensors"
    save_file(state, str(path))
    fused = load_base("tiny", lora=str(path), lora_scale=scale)
    want = plain.unet.get_submodule(unet_layer).weight + scale * alpha / rank * uu @ ud
    assert torch.allclose(fused.unet.get_submodule(unet_layer).weight, want, atol=1e-5)
    te = te_layer.removeprefix("text_model.")
    want_te = plain.text_encoder.get_submodule(te).weight + scale * alpha / rank * tu @ td
    assert torch.allclose(fused.text_encoder.get_submodule(te).weight, want_te, atol=1e-5)
    assert fused.source["lora_scale"] == scale and fused.source["lora_sha256"]


def _official_lora_keys(unet, pattern: str, seed: int, rank: int = 2) -> dict[str, torch.Tensor]:
    """LoRA on every diffusers module matching `pattern`, named as the official files name it:
    <official module path>.processor.<to_q|to_k|to_v|to_out>_lora.<down|up>.weight."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for name, module in unet.named_modules():
        if not re.search(pattern, name):
            continue
        official = (name.replace(".transformer_blocks.", ".temporal_transformer.transformer_blocks.")
                    .replace(".attn1.", ".attention_blocks.0.").replace(".attn2.", ".attention_blocks.1.")
                    if ".motion_modules." in name else name)
        stem, proj = official.rsplit(".", 1)
        if proj == "0":  # to_out.0
            stem, proj = stem.rsplit(".", 1)
        out[f"{stem}.processor.{proj}_lora.down.weight"] = torch.randn(rank, module.in_features, generator=g)
        out[f"{stem}.processor.{proj}_lora.up.weight"] = torch.randn(module.out_features, rank, generator=g)
    return out


def _official_delta(state: dict[str, torch.Tensor], official_down_key: str) -> torch.Tensor:
    return state[official_down_key.replace(".down.", ".up.")] @ state[official_down_key]


def test_motion_lora_and_domain_adapter_fuse_at_their_scales(tmp_path, tiny_base):
    """A MotionLoRA (official layout, on the motion modules) and a v3 domain-adapter LoRA (on the spatial
    attention) fuse into the motion UNet as the official load_weights does: W + scale * up @ down; the shared
    base UNet is untouched; run.json records both files with their scales."""
    from methods.animatediff import AnimateDiff

    plain = AnimateDiff(tiny_base)
    motion = _official_lora_keys(plain.unet, r"motion_modules\.\d+\.transformer_blocks\.\d+\.attn\d\.(to_q|to_k|to_v|to_out\.0)$", 1)
    domain = _official_lora_keys(plain.unet, r"\.attentions\.\d+\.transformer_blocks\.\d+\.attn\d\.(to_q|to_k|to_v|to_out\.0)$", 2)
    save_file(motion, str(tmp_path / "v2_lora_PanLeft.safetensors"))
    torch.save({"state_dict": domain}, tmp_path / "v3_sd15_adapter.ckpt")
    base_before = {k: v.clone() for k, v in tiny_base.unet.state_dict().items()}
    method = AnimateDiff(tiny_base, motion_lora=str(tmp_path / "v2_lora_PanLeft.safetensors"), motion_lora_scale=0.6,
                         domain_adapter_lora=str(tmp_path / "v3_sd15_adapter.ckpt"), domain_adapter_scale=0.3)
    checks = [("down_blocks.0.motion_modules.0.transformer_blocks.0.attn1.to_q",
               "down_blocks.0.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks.0.processor.to_q_lora.down.weight", motion, 0.6),
              ("up_blocks.1.motion_modules.1.transformer_blocks.0.attn2.to_out.0",
               "up_blocks.1.motion_modules.1.temporal_transformer.transformer_blocks.0.attention_blocks.1.processor.to_out_lora.down.weight", motion, 0.6),
              ("down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v",
               "down_blocks.0.attentions.0.transformer_blocks.0.attn2.processor.to_v_lora.down.weight", domain, 0.3)]
    for module, key, state, scale in checks:
        want = plain.unet.get_submodule(module).weight + scale * _official_delta(state, key)
        assert torch.allclose(method.unet.get_submodule(module).weight, want, atol=1e-5), module
    untouched = "down_blocks.0.motion_modules.0.proj_in"
    assert torch.equal(method.unet.get_submodule(untouched).weight, plain.unet.get_submodule(untouched).weight)
    assert all(torch.equal(v, tiny_base.unet.state_dict()[k]) for k, v in base_before.items())
    loras = method.config()["loras"]
    assert [(r["kind"], r["scale"]) for r in loras] == [("motion", 0.6), ("domain_adapter", 0.3)]
    assert all(r["sha256"] for r in loras)


def test_motion_lora_mismatch_and_scale_count_are_refused(tmp_path, tiny_base):
    from methods.animatediff import AnimateDiff

    domain = {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.down.weight": torch.zeros(2, 32),
              "down_blocks.0.attentions.0.transformer_blocks.0.attn1.processor.to_q_lora.up.weight": torch.zeros(32, 2)}
    save_file(domain, str(tmp_path / "adapter.safetensors"))
    with pytest.raises(UserError, match="domain_adapter_lora"):
        AnimateDiff(tiny_base, motion_lora=str(tmp_path / "adapter.safetensors"))
    with pytest.raises(UserError, match="one per file"):
        AnimateDiff(tiny_base, motion_lora=[str(tmp_path / "adapter.safetensors")] * 2, motion_lora_scale=[1.0])
