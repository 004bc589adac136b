"""GroupNorm conventions (official AnimateDiff per version, or diffusers') against references computed here by hand
with torch.nn.functional.group_norm on reshaped tensors, captured from a real UNet call."""
import pytest
import torch
import torch.nn.functional as F

from bench.errors import UserError
from methods.animatediff import AnimateDiff
from methods.dual_stream import DualStream
from methods.magicvideo import MagicVideo
from methods.norms import infer_adapter_version, resolve_norms

FRAMES, BATCH = 4, 2


def non_identity(method):
    gen = torch.Generator().manual_seed(0)
    for name, p in method.unet.named_parameters():
        if "motion_modules" in name and name.endswith("proj_out.weight"):
            p.data.normal_(0, 0.05, generator=gen)
    return method


def captured(method, unet, pick):
    """(input, output) of the norm `pick(unet)` during one predict_noise call on random latents."""
    seen = {}
    norm = pick(unet)

    def keep(module, args, out):  # returns None: the output stays as it is
        seen.setdefault("io", (args[0], out))

    handle = norm.register_forward_hook(keep)
    gen = torch.Generator().manual_seed(1)
    c = method.base.unet.config.in_channels
    x = torch.randn(BATCH, c, FRAMES, 8, 8, generator=gen)
    emb = torch.randn(BATCH, 77, method.base.unet.config.cross_attention_dim, generator=gen)
    try:
        with torch.no_grad():
            method.predict_noise(x, torch.tensor(501), emb)
    finally:
        handle.remove()
    return norm, *seen["io"]


def per_frame_5d(x, norm):  # (B, C, F, H, W), statistics per frame
    b, c, f, h, w = x.shape
    y = F.group_norm(x.transpose(1, 2).reshape(b * f, c, h, w), norm.num_groups, norm.weight, norm.bias, norm.eps)
    return y.reshape(b, f, c, h, w).transpose(1, 2)


def pooled_5d(x, norm):  # (B, C, F, H, W), statistics over all frames of a video
    return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)


def pooled_folded(x, norm):  # (B*F, C, H, W) batch-major, statistics over each video's frames
    bf, c, h, w = x.shape
    y = F.group_norm(x.reshape(bf // FRAMES, FRAMES, c, h, w).transpose(1, 2), norm.num_groups, norm.weight,
                     norm.bias, norm.eps)
    return y.transpose(1, 2).reshape(bf, c, h, w)


def per_frame_folded(x, norm):
    return F.group_norm(x, norm.num_groups, norm.weight, norm.bias, norm.eps)


def motion_norm(unet):
    return unet.down_blocks[0].motion_modules[0].norm


def resnet_norm(unet):
    return unet.down_blocks[0].resnets[0].norm2


@pytest.mark.parametrize("options,motion_ref,spatial_ref", [
    ({"norm_convention": "official"}, per_frame_5d, per_frame_folded),  # tiny adapter: v3 layout
    ({"norm_convention": "official", "adapter_version": "v1"}, per_frame_5d, pooled_folded),
    ({"norm_convention": "diffusers", "adapter_version": "v1"}, pooled_5d, per_frame_folded),
])
def test_each_convention_matches_its_hand_reference(tiny_base, options, motion_ref, spatial_ref):
    method = non_identity(AnimateDiff(tiny_base, **options))
    wrong = {per_frame_5d: pooled_5d, pooled_5d: per_frame_5d, pooled_folded: per_frame_folded,
             per_frame_folded: pooled_folded}
    for pick, ref in ((motion_norm, motion_ref), (resnet_norm, spatial_ref)):
        norm, x, y = captured(method, method.unet, pick)
        torch.testing.assert_close(y, ref(x, norm), atol=1e-5, rtol=1e-5)
        assert (y - wrong[ref](x, norm)).abs().max() > 1e-3  # the two conventions do differ on these inputs
    if spatial_ref is pooled_folded:  # v1: the output norm pools too
        norm, x, y = captured(method, method.unet, lambda u: u.conv_norm_out)
        torch.testing.assert_close(y, pooled_folded(x, norm), atol=1e-5, rtol=1e-5)


def test_conventions_change_the_prediction_and_are_recorded(tiny_base):
    preds, records = {}, {}
    for convention in ("official", "diffusers"):
        method = non_identity(AnimateDiff(tiny_base, norm_convention=convention, adapter_seed=3))
        gen = torch.Generator().manual_seed(2)
        lat = torch.randn(1, 4, FRAMES, 8, 8, generator=gen)
        emb = torch.randn(1, 77, tiny_base.unet.config.cross_attention_dim, generator=gen)
        with torch.no_grad():
            preds[convention] = method.predict_noise(lat, torch.tensor(301), emb)
        records[convention] = method.setup_record()["norms"]
    assert (preds["official"] - preds["diffusers"]).abs().max() > 1e-4
    assert records["official"]["motion_module_groupnorm"] == "per frame"
    assert records["diffusers"]["motion_module_groupnorm"] == "pooled over frames"
    assert records["official"]["adapter_version"] == "v3"


def test_dual_stream_motion_stream_follows_the_convention(tiny_base):
    method = DualStream(tiny_base, norm_convention="official", adapter_version="v1")
    norm, x, y = captured(method, method.motion, resnet_norm)
    torch.testing.assert_close(y, pooled_folded(x, norm), atol=1e-5, rtol=1e-5)
    # the content stream (the base UNet's own modules) stays per frame
    assert type(tiny_base.unet.down_blocks[0].resnets[0].norm2) is torch.nn.GroupNorm
    assert type(method.content.down_blocks[0].resnets[0].norm2) is torch.nn.GroupNorm


def test_magicvideo_refuses_frame_pooled_spatial_norms_and_keeps_motion_norms_per_frame(tiny_base):
    with pytest.raises(UserError, match="magicvideo is causal"):
        MagicVideo(tiny_base, adapter_version="v1")
    method = MagicVideo(tiny_base, norm_convention="diffusers")
    norm, x, y = captured(method, method.unet, motion_norm)
    torch.testing.assert_close(y, per_frame_5d(x, norm), atol=1e-5, rtol=1e-5)


def test_adapter_version_from_official_and_hub_names():
    shape = {"use_motion_mid_block": False, "motion_max_seq_length": 32}
    for name, version in [("guoyww/animatediff-motion-adapter-v1-5", "v1"), ("mm_sd_v15.ckpt", "v1"),
                          ("mm_sd_v14.ckpt", "v1"), ("guoyww/animatediff-motion-adapter-v1-5-2", "v2"),
                          ("models/mm_sd_v15_v2.ckpt", "v2"), ("guoyww/animatediff-motion-adapter-v1-5-3", "v3"),
                          ("v3_sd15_mm.ckpt", "v3"), ("tiny", "v3")]:
        assert infer_adapter_version(name, shape)[0] == version, name
    assert infer_adapter_version("my-adapter", {**shape, "use_motion_mid_block": True})[0] == "v2"
    with pytest.raises(UserError, match="norm_convention must be one of"):
        resolve_norms("inflated", "auto", "tiny", shape)
