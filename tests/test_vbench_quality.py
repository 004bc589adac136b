"""Aesthetic quality's real path, the VBench quality score against VBench's own formula (rewritten here), the
static-only flickering rule, and the radar figure."""
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.api import Video
from bench.errors import UserError

DATA = Path(__file__).parent / "data" / "reports"

# VBench scripts/constant.py, copied as data for the second implementation
NORMALIZE_DIC = {"subject consistency": (0.1462, 1.0), "background consistency": (0.2615, 1.0),
                 "temporal flickering": (0.6293, 1.0), "motion smoothness": (0.706, 0.9975),
                 "dynamic degree": (0.0, 1.0), "aesthetic quality": (0.0, 1.0), "imaging quality": (0.0, 1.0)}
DIM_WEIGHT = {k: 1.0 for k in NORMALIZE_DIC} | {"dynamic degree": 0.5}


def _vbench_quality(upload):  # get_nomalized_score + get_quality_score of cal_final_score.py
    normalized = {k: (upload[k] - lo) / (hi - lo) * DIM_WEIGHT[k] for k, (lo, hi) in NORMALIZE_DIC.items()}
    return sum(normalized.values()) / sum(DIM_WEIGHT.values())


def test_quality_score_equals_vbench_formula():
    from bench.metrics.quality_score import quality_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        upload = {k: float(rng.uniform(0.5, 1.0)) for k in NORMALIZE_DIC}
        ours = quality_score({k.replace(" ", "_"): v for k, v in upload.items()})
        assert ours == pytest.approx(_vbench_quality(upload), abs=1e-12)


def test_quality_summary_labels_partial_scores_and_gives_an_interval():
    from bench.metrics.quality_score import summarise

    rows = [{"metrics": {"dynamic_degree": float(i % 2), "subject_consistency": 0.9 + 0.01 * i}} for i in range(10)]
    metrics = {"dynamic_degree": {"value": 0.5}, "subject_consistency": {"value": 0.945}, "clip_score": {"value": 30}}
    entry = summarise(metrics, rows, n_boot=200)
    expected = (0.5 * 0.5 + (0.945 - 0.1462) / (1 - 0.1462)) / 1.5
    assert entry["value"] == pytest.approx(expected, abs=1e-6)
    assert entry["complete"] is False and entry["dimensions"] == ["subject_consistency", "dynamic_degree"]
    lo, hi = entry["ci95_bootstrap"]
    assert lo < entry["value"] < hi
    assert summarise({"dynamic_degree": {"value": 0.5}}, rows) is None  # one dimension is not an aggregate


def test_motion_gated_score_against_a_hand_computation():
    """Four prompts, one static: a still video on a motion prompt gets Min for the gated dimensions, a still one on
    the static prompt keeps its values; dynamic degree counts on motion prompts only, flickering on static ones."""
    from bench.metrics.quality_score import summarise_gated

    rows = [  # (prompt_id, dynamic, subject, smoothness, flicker)
        {"prompt_id": "p1", "metrics": {"dynamic_degree": 1.0, "subject_consistency": 0.90, "motion_smoothness": 0.95}},
        {"prompt_id": "p2", "metrics": {"dynamic_degree": 0.0, "subject_consistency": 0.99, "motion_smoothness": 0.99}},
        {"prompt_id": "p3", "metrics": {"dynamic_degree": 1.0, "subject_consistency": 0.80, "motion_smoothness": 0.90}},
        {"prompt_id": "still", "metrics": {"dynamic_degree": 0.0, "subject_consistency": 0.98,
                                           "motion_smoothness": 0.99, "temporal_flickering": 0.97}},
    ]
    subject = np.mean([0.90, NORMALIZE_DIC["subject consistency"][0], 0.80, 0.98])
    smooth = np.mean([0.95, NORMALIZE_DIC["motion smoothness"][0], 0.90, 0.99])
    upload = {"subject consistency": subject, "motion smoothness": smooth, "temporal flickering": 0.97,
              "dynamic degree": 2 / 3}
    norm = {k: (v - NORMALIZE_DIC[k][0]) / (NORMALIZE_DIC[k][1] - NORMALIZE_DIC[k][0]) * DIM_WEIGHT[k]
            for k, v in upload.items()}
    expected = sum(norm.values()) / sum(DIM_WEIGHT[k] for k in upload)
    entry = summarise_gated(rows, {"still"}, n_boot=200)
    assert entry["value"] == pytest.approx(expected, abs=1e-6)
    assert entry["static_prompts"] == 1 and entry["complete"] is False
    # a video that stays still where its prompt asks for stillness is not penalised
    moving_everywhere = [{**r, "metrics": {**r["metrics"], "dynamic_degree": 1.0}} for r in rows[:3]] + rows[3:]
    assert summarise_gated(moving_everywhere, {"still"}, n_boot=10)["value"] > entry["value"]
    assert summarise_gated([{"prompt_id": "p1", "metrics": {"subject_consistency": 0.9}}], set()) is None


def test_static_flickering_counts_only_static_prompts():
    from bench.metrics.flicker import TemporalFlickering, TemporalFlickeringStatic, temporal_flickering

    g = torch.Generator().manual_seed(0)
    videos = [Video(torch.rand(4, 3, 8, 8, generator=g)) for _ in range(3)]
    prompts = ["a still lake", "a running dog", "an empty room"]
    m = TemporalFlickeringStatic({"a still lake", "an empty room"})
    m.update(videos, prompts)
    assert math.isnan(m.last_values[1]) and int(m.n_videos) == 2
    expected = (temporal_flickering(videos[0].frames) + temporal_flickering(videos[2].frames)) / 2
    assert m.compute().item() == pytest.approx(expected, abs=1e-12)
    a = TemporalFlickering()
    a.update(videos, prompts)
    assert int(a.n_videos) == 3


def test_static_prompts_come_from_suite_tags():
    from bench.config import RunConfig
    from bench.metrics.flicker import TemporalFlickeringStatic

    cfg = RunConfig.model_validate({"prompts": "toy"})
    m = TemporalFlickeringStatic.from_run_config(cfg, torch.device("cpu"))
    assert len(m.static_prompts) == 2 and all("still" in p for p in m.static_prompts)


def test_aesthetic_head_loads_strictly_on_the_given_clip(tmp_path):
    from bench.config import RunConfig
    from bench.metrics.aesthetic_quality import AestheticQuality
    from bench.metrics.clip import ClipEmbedder

    dim = ClipEmbedder("tiny", seed=0).model.visual.output_dim
    torch.manual_seed(0)
    head = torch.nn.Linear(dim, 1)
    torch.save(head.state_dict(), tmp_path / "sa_linear.pth")
    cfg = RunConfig.model_validate({"vbench": {"aesthetic_head": str(tmp_path / "sa_linear.pth"),
                                               "aesthetic_clip_model": "tiny", "aesthetic_clip_pretrained": None}})
    m = AestheticQuality.from_run_config(cfg, torch.device("cpu"))
    frames = torch.rand(3, 3, 40, 56, generator=torch.Generator().manual_seed(1))
    m.update([Video(frames)], [""])
    emb = m.embedder.image_embeddings(frames).double().numpy()  # the shared embedder, checked in test_clip_*
    w, b = head.weight.detach().double().numpy()[0], float(head.bias.detach())
    assert m.last_values[0] == pytest.approx(float(np.mean((emb @ w + b) / 10)), abs=1e-6)
    assert len(m.describe()["head_weights_sha256"]) == 64
    torch.save({"weight": torch.zeros(1, dim + 1), "bias": torch.zeros(1)}, tmp_path / "wrong.pth")
    cfg2 = RunConfig.model_validate({"vbench": {"aesthetic_head": str(tmp_path / "wrong.pth"),
                                                "aesthetic_clip_model": "tiny", "aesthetic_clip_pretrained": None}})
    with pytest.raises(UserError, match="do not fit"):
        AestheticQuality.from_run_config(cfg2, torch.device("cpu"))
    cfg3 = RunConfig.model_validate({"vbench": {"aesthetic_head": str(tmp_path / "missing.pth")}})
    with pytest.raises(UserError, match="do not exist"):
        AestheticQuality.from_run_config(cfg3, torch.device("cpu"))


def test_musiq_is_refused_with_the_reason():
    from bench.config import RunConfig
    from bench.metrics.imaging_quality import ImagingQuality

    with pytest.raises(UserError, match="pyiqa"):
        ImagingQuality.from_run_config(RunConfig.model_validate({"vbench": {"musiq": "musiq.pth"}}), "cpu")


def test_radar_has_one_polygon_per_method(tmp_path, monkeypatch):
    import matplotlib.axes

    from bench.report.build import write_report

    run = tmp_path / "run"
    shutil.copytree(DATA / "run_a", run)
    record = json.loads((run / "run.json").read_text())
    for i, entry in enumerate(record["methods"].values()):
        for d, v in (("subject_consistency", 0.9), ("background_consistency", 0.92), ("motion_smoothness", 0.97),
                     ("dynamic_degree", 0.5)):
            entry["metrics"][d] = {"value": v - 0.02 * i, "n": 2, "higher_is_better": True}
    (run / "run.json").write_text(json.dumps(record))
    fills = []
    original = matplotlib.axes.Axes.fill
    monkeypatch.setattr(matplotlib.axes.Axes, "fill", lambda self, *a, **k: fills.append(k["color"]) or original(self, *a, **k))
    files = write_report([str(run)], tmp_path / "out", ["plots"])
    assert {"vbench_radar.png", "vbench_radar.pdf"} <= {p.name for p in files}
    assert len(fills) == len(record["methods"]) and len(set(fills)) == len(fills)
