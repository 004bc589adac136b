"""The toy run shows the expected ordering: the trained temporal method (AnimateDiff) beats the per-frame
baseline on frame consistency and motion fidelity. Loose: only the direction of the gap is checked."""
from __future__ import annotations

import json

import pytest


@pytest.mark.slow
def test_animatediff_beats_per_frame_on_the_toy_run(tmp_path):
    from bench.config import load_config
    from bench.runner import Runner

    # Only the two methods compared: the toy config runs more, which would just slow this test down.
    cfg = load_config("toy", {"samples_per_prompt": 1, "sampling.num_inference_steps": 10,
                              "methods": {"per_frame": {}, "animatediff": {"motion_adapter": "toy"}}})
    result = Runner(cfg, tmp_path / "run", progress=False).run("all")
    assert result.failed == 0
    methods = json.loads((tmp_path / "run" / "run.json").read_text())["methods"]
    value = {m: {k: v["value"] for k, v in methods[m]["metrics"].items()} for m in methods}
    assert value["animatediff"]["frame_consistency"] > value["per_frame"]["frame_consistency"]
    assert value["animatediff"]["motion_fidelity"] > value["per_frame"]["motion_fidelity"]
