"""A negative prompt per prompt (a suite field) on top of sampling.negative_prompt."""
import pytest
import torch

from bench.config import load_config
from bench.errors import UserError
from bench.prompts import combined_negative, load_suite
from bench.runner import Runner
from methods.per_frame import PerFrame

SUITE = """name: neg
prompts:
  - {id: a, text: "a red ball", negative_prompt: "blue"}
  - {id: b, text: "a green cube"}
"""


def test_suite_field_and_combination(tmp_path):
    path = tmp_path / "neg.yaml"
    path.write_text(SUITE)
    suite = load_suite(str(path))
    assert [p.negative_prompt for p in suite.prompts] == ["blue", None]
    assert combined_negative("blurry", "blue") == "blurry, blue"
    assert combined_negative(None, "blue") == "blue" and combined_negative("blurry", None) == "blurry"
    assert combined_negative(" ", None) is None
    bad = tmp_path / "bad.yaml"
    bad.write_text('prompts:\n  - {id: a, text: "x", negative_prompt: [1, 2]}\n')
    with pytest.raises(UserError, match="negative_prompt must be a string"):
        load_suite(str(bad))
    cfg = load_config("smoke", {"prompts": str(path), "sampling.negative_prompt": "blurry",
                                "methods": {"per_frame": {}}})
    requests = {it.prompt_id: it.request for it in Runner(cfg, tmp_path / "run", progress=False).plan()}
    assert requests["a"].negative_prompt == "blurry, blue" and requests["b"].negative_prompt == "blurry"


def test_items_with_different_negatives_share_a_batch_and_equal_their_singles(tiny_base, request_factory):
    method = PerFrame(tiny_base)
    reqs = [request_factory("a", seed=3, negative_prompt="blue", height=32, width=32),
            request_factory("b", seed=3, negative_prompt=None, height=32, width=32)]
    assert reqs[0].settings() == reqs[1].settings()  # one batch
    batch = method.generate(reqs)
    for req, video in zip(reqs, batch):
        assert torch.allclose(video.frames, method.generate([req])[0].frames, atol=1e-5)
    assert (batch[0].frames - batch[1].frames).abs().max() > 1e-3  # same seed: only the negative differs
