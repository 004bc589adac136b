"""LatentVideoMethod.parameter_counts(): trainable / added / base / total for every method, deduplicated."""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from bench.models import tiny_components  # noqa: E402
from methods.base import count_parameters  # noqa: E402


@pytest.fixture(scope="module")
def base():
    return tiny_components(0)


def numel(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_base_count_is_vae_text_encoder_unet(base):
    from methods.per_frame import PerFrame

    counts = PerFrame(base).parameter_counts()
    expected = numel(base.vae) + numel(base.text_encoder) + numel(base.unet)
    assert counts == {"trainable": 0, "added": 0, "base": expected, "total": expected}
    assert counts["base"] == base.parameter_count()


def test_animatediff_counts_its_motion_modules(base):
    from methods.animatediff import AnimateDiff

    method = AnimateDiff(base)
    counts = method.parameter_counts()
    assert counts["trainable"] == numel(method.adapter) > 0  # the adapter is exactly the motion modules
    # The UNetMotionModel holds copies of the base weights: those are not "added".
    assert counts["added"] == counts["trainable"]
    assert counts["total"] == counts["base"] + numel(method.adapter)


def test_simda_counts_its_adapters(base):
    from methods.simda import SimDA

    method = SimDA(base)
    counts = method.parameter_counts()
    # Tiny UNet: transformers at 32 channels (down 0, two in up 1) and 64 channels (mid).
    spatial = lambda d: 2 * (d * (d // 4) + d // 4 + (d // 4) * d + d)  # noqa: E731
    temporal = lambda c: c * (c // 2) + c // 2 + 3 * (c // 2) + c // 2 + (c // 2) * c + c  # noqa: E731
    assert counts["trainable"] == numel(method.adapters) == 3 * (spatial(32) + temporal(32)) + spatial(64) + temporal(64)
    assert counts["total"] == counts["base"] + counts["trainable"] and counts["added"] == counts["trainable"]


def test_dual_stream_counts_motion_interaction_and_lora(base):
    from methods.dual_stream import DualStream

    method = DualStream(base)
    counts = method.parameter_counts()
    lora = sum(p.numel() for k, p in method.content.named_parameters() if "lora_" in k)
    assert lora > 0
    assert counts["trainable"] == numel(method.adapter) + numel(method.interaction) + lora
    assert counts["total"] == counts["base"] + counts["trainable"]
    # Both streams run on the base weights, so turning the LoRA off removes exactly its parameters.
    assert DualStream(base, content_lora_rank=0).parameter_counts()["total"] == counts["total"] - lora


def test_counts_deduplicate_and_exclude_base_weights(base):
    from methods.base import LatentVideoMethod

    extra = torch.nn.Linear(3, 5)

    class FineTune(LatentVideoMethod):
        """Trains the whole base UNet plus one new layer, listing a tensor twice."""

        name = "finetune_probe"

        def trainable_parameters(self):
            return [*base.unet.parameters(), extra.weight, extra.weight, extra.bias]

    counts = FineTune(base).parameter_counts()
    assert counts["trainable"] == numel(base.unet) + 20
    assert counts["added"] == 20  # base weights being trained are not added weights
    assert counts["total"] == counts["base"] + 20
    assert count_parameters([extra.weight, extra.weight]) == 15
