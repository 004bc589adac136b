"""motion_smoothness under VBench's AMT-S protocol (bench/metrics/amt.py): strict loading of a checkpoint in the
layout VBench's trainer writes, properties of the real network, and the frame selection / padding / uint8 / score
formula against a numpy computation with the network stubbed.

(The network itself was checked against VBench's vendored AMT-S code outside the repo: same state dict, same
frames, max |diff| 1.7e-14 in float64, 1.1e-5 in float32; VBench's motion_score pipeline end to end agrees to
4.5e-7. See the branch's hand-off note for the script.)"""
from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch

from bench.api import Video
from bench.errors import UserError
from bench.metrics.amt import AMTS, NUM_FLOWS, AmtInterpolator, AmtMotionSmoothness, load_amt_s
from bench.toy.world import render_video, scene_at


def _metric(model: torch.nn.Module) -> AmtMotionSmoothness:
    return AmtMotionSmoothness(AmtInterpolator(model.eval()))


@pytest.fixture(scope="module")
def random_amt() -> AMTS:
    torch.manual_seed(0)
    return AMTS().eval()


def _without_residuals(model: AMTS, still: bool = False) -> AMTS:
    """Zero the heads that add content (per-flow residuals, the merge correction) and, with `still`, every head
    that emits flow: what is left can only warp and blend the two inputs."""
    n = NUM_FLOWS
    with torch.no_grad():
        last = model.decoder1.convblock[2]
        last.weight[:, 5 * n:] = 0
        last.bias[5 * n:] = 0
        model.comb_block[2].weight.zero_()
        model.comb_block[2].bias.zero_()
        if still:
            last.weight[:, :4 * n] = 0
            last.bias[:4 * n] = 0
            for d in (model.decoder4, model.decoder3, model.decoder2):
                d.convblock[2].weight[:, :4] = 0
                d.convblock[2].bias[:4] = 0
            for u in (model.update4, model.update3, model.update2):
                u.flow_head[2].weight.zero_()
                u.flow_head[2].bias.zero_()
    return model


# ------------------------------------------------------------------------------------------------ loading
def test_trainer_checkpoint_loads_strictly_through_the_run_config(tmp_path):
    from bench.config import RunConfig
    from bench.metrics.motion_smoothness import MotionSmoothness

    torch.manual_seed(1)
    model = AMTS()
    assert len(model.state_dict()) == 213 and sum(p.numel() for p in model.parameters()) == 2_990_543
    # the dict VBench's AMT trainer saves: weights under 'state_dict', the optimiser next to them
    path = tmp_path / "amt-s.pth"
    torch.save({"state_dict": model.state_dict(), "optim": torch.optim.AdamW(model.parameters()).state_dict()}, path)
    cfg = RunConfig.model_validate({"vbench": {"amt_s": str(path)}})
    metric = MotionSmoothness.from_run_config(cfg, torch.device("cpu"))
    assert isinstance(metric, AmtMotionSmoothness)
    loaded = metric.amt.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())
    d = metric.describe()
    assert d["protocol"] == "vbench_amt_s" and d["amt_weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_amt_files_are_one_clear_line(tmp_path):
    with pytest.raises(UserError, match="do not exist"):
        load_amt_s(tmp_path / "missing.pth")
    state = AMTS().state_dict()
    state.pop("comb_block.2.bias")
    torch.save(state, tmp_path / "short.pth")
    with pytest.raises(UserError, match="do not fit"):
        load_amt_s(tmp_path / "short.pth")
    torch.save({"state_dict": {}, "cfg": Video(torch.zeros(1, 3, 2, 2))}, tmp_path / "pickle.pth")  # needs code
    with pytest.raises(UserError, match="weights-only"):
        load_amt_s(tmp_path / "pickle.pth")


def test_frames_too_small_for_amt_are_refused(random_amt):
    with pytest.raises(UserError, match="128 px"):
        _metric(random_amt).update([Video(torch.rand(5, 3, 64, 200))], [""])


# --------------------------------------------------------------------------------------------- properties
def test_constant_videos_score_one_up_to_vbench_truncation():
    """A video that does not change is predicted by any pure warp-and-blend of its frames. VBench turns the
    prediction to uint8 by truncating x * 255 (tensor2img), so float32 round-off from the network's mean
    subtraction can drop a pixel one level (never more, never up): the score is 1 within 1/255."""
    torch.manual_seed(2)
    flows_on = _metric(_without_residuals(AMTS()))  # random flows: a uniform frame warps to itself
    for level in (0, 37, 200, 255):
        flows_on.update([Video(torch.full((5, 3, 128, 144), level / 255))], [""])
        assert flows_on.last_values[0] >= 1 - 1 / 255
    frame = torch.randint(0, 256, (1, 3, 130, 147), generator=torch.Generator().manual_seed(3)).float() / 255
    still = _metric(_without_residuals(AMTS(), still=True))  # textured: also exercises pad / unpad alignment
    video = frame.expand(5, -1, -1, -1)
    odd, pred = still.interpolate(video)
    diff = (odd.double() * 255).round() - (pred * 255).round()
    assert diff.min() >= 0 and diff.max() <= 1
    still.update([Video(video)], [""])
    assert 1 - 1 / 255 <= still.last_values[0] <= 1


def test_shuffled_toy_videos_score_lower_than_in_order(random_amt):
    videos = [Video(render_video(scene_at(i, 321, 8, motions=(m,)), 8, 128), fps=8)
              for i, m in enumerate(("left", "right", "up", "down"), 1)]
    perm = torch.tensor([0, 5, 2, 7, 4, 1, 6, 3])  # the even frames stay: the odd ones are no longer between them
    ordered, shuffled = _metric(random_amt), _metric(random_amt)
    ordered.update(videos, [""] * 4)
    shuffled.update([Video(v.frames[perm]) for v in videos], [""] * 4)
    assert (torch.tensor(ordered.last_values) > torch.tensor(shuffled.last_values)).all()


# ------------------------------------------------------------------------------------- formula, stubbed net
class _BlendStub(torch.nn.Module):
    """Pixelwise 0.25 I0 + 0.75 I1 + 0.3 / 255, clamped: never near a uint8 boundary on uint8 inputs (so truncation
    is exact), and any wrong crop of the padding shows. Checks what VBench passes: embt 1/2, sides % 16 == 0."""

    def forward(self, img0, img1, embt):
        assert img0.shape[-2] % 16 == 0 and img0.shape[-1] % 16 == 0 and float(embt.flatten()[0]) == 0.5
        return (0.25 * img0 + 0.75 * img1 + 0.3 / 255).clamp(0, 1)


def _numpy_vbench(frames_u8: np.ndarray) -> float:
    even, odd = frames_u8[0::2].astype(np.float64), frames_u8[1::2].astype(np.float64)
    pred = np.floor(np.clip(0.25 * even[:-1] + 0.75 * even[1:] + 0.3, 0, 255))
    return (255 - np.mean([np.mean(np.abs(o - p)) for o, p in zip(odd, pred)])) / 255


@pytest.mark.parametrize("n_frames, h, w", [(7, 130, 147), (8, 128, 160), (3, 144, 129)])
def test_score_equals_numpy_with_stubbed_network(n_frames, h, w):
    frames = torch.rand(n_frames, 3, h, w, generator=torch.Generator().manual_seed(n_frames * h))
    metric = AmtMotionSmoothness(AmtInterpolator(_BlendStub(), pairs_per_call=2))  # chunks split the pairs
    metric.update([Video(frames), Video(frames[:2])], ["", ""])
    u8 = np.round(frames.numpy() * 255)
    assert metric.last_values[0] == pytest.approx(_numpy_vbench(u8), abs=1e-9)
    assert np.isnan(metric.last_values[1]) and int(metric.n_videos) == 1  # < 3 frames: nothing to score


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_run_records_the_amt_protocol_and_weights_sha256(tmp_path):
    """`vbench.amt_s` in a run config: run.json's motion_smoothness names protocol vbench_amt_s and the file's sha256."""
    import json

    from bench.cli import main

    torch.manual_seed(4)
    weights = tmp_path / "amt-s.pth"
    torch.save({"state_dict": AMTS().state_dict()}, weights)
    prompts = tmp_path / "p.jsonl"
    prompts.write_text('{"id": "p1", "text": "a red ball moving left", "tags": ["motion"]}\n')
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"""name: amt
base: {{model: tiny, seed: 0}}
methods: {{per_frame: {{}}}}
prompts: {prompts}
sampling: {{num_frames: 4, height: 128, width: 128, num_inference_steps: 1, guidance_scale: 7.5, fps: 8}}
metrics: [motion_smoothness]
vbench: {{amt_s: {weights}}}
device: cpu
""")
    assert main(["run", "--config", str(cfg), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    m = json.loads((tmp_path / "out" / "run.json").read_text())["methods"]["per_frame"]["metrics"]["motion_smoothness"]
    assert m["protocol"] == "vbench_amt_s" and m["n"] == 1 and 0 < m["value"] <= 1
    assert m["amt_weights_sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
