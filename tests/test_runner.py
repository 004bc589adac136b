"""End to end on the tiny models: records, resume after a crash or Ctrl-C, refusing a different config."""
import json

import numpy as np
import pytest
import torch

from bench.config import load_config
from bench.errors import UserError
from bench.runner import Runner, derive_seed

SMALL = {"sampling.num_frames": 4, "sampling.num_inference_steps": 3, "sampling.height": 32, "sampling.width": 32,
         "methods": {"per_frame": {}, "animatediff": {}}, "metrics": ["clip_score", "frame_consistency",
                                                                   "temporal_flickering_all", "fvd"]}
STEPS = SMALL["sampling.num_inference_steps"]  # the runner's warm-up call uses fewer


def small_config(**extra):
    return load_config("smoke", {**SMALL, **extra})


def test_seed_rule_depends_only_on_item_identity():
    assert derive_seed(0, "p1", 0) == derive_seed(0, "p1", 0)
    assert len({derive_seed(0, "p1", 0), derive_seed(0, "p1", 1), derive_seed(0, "p2", 0),
                derive_seed(1, "p1", 0)}) == 4


def test_run_writes_record_samples_report_and_videos(tmp_path):
    result = Runner(small_config(), tmp_path / "run", progress=False).run()
    out = result.out_dir
    record = json.loads((out / "run.json").read_text())
    assert record["schema_version"] and record["env"]["torch"] == torch.__version__
    assert record["env"]["torch_threads"] == torch.get_num_threads()  # CPU numbers depend on it in the last bits
    assert record["harness"]["version"]
    n_prompts = record["suite"]["n_prompts"]
    for name in ("per_frame", "animatediff"):
        entry = record["methods"][name]
        assert entry["counts"] == {"planned": n_prompts, "generated": n_prompts, "skipped": 0, "failed": 0,
                                   "finished": n_prompts}
        for metric in ("clip_score", "frame_consistency", "temporal_flickering_all", "fvd"):
            assert entry["metrics"][metric]["n"] == n_prompts
            assert entry["metrics"][metric]["value"] is not None
        assert entry["perf"]["sec_per_video_median"] > 0 and entry["perf"]["peak_rss_mb"] > 0
        assert entry["config_hash"]
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * n_prompts
    # the record's value is the mean of the per-video values written to samples.jsonl
    flicker = [r["metrics"]["temporal_flickering_all"] for r in rows if r["method"] == "per_frame"]
    assert record["methods"]["per_frame"]["metrics"]["temporal_flickering_all"]["value"] == pytest.approx(
        sum(flicker) / len(flicker), abs=1e-6)
    for r in rows:
        assert (out / r["video"]).stat().st_size > 0 and (out / r["frames"]).is_file()
    report = (out / "report.md").read_text()
    assert "per_frame" in report and "animatediff" in report and "plumbing check" in report
    # paired comparisons against the reference (bench.stats), FVD's from the reference kept in the run folder
    for metric in ("clip_score", "temporal_flickering_all", "fvd"):
        vs = record["methods"]["animatediff"]["metrics"][metric]["vs_reference"]
        assert vs["reference"] == "per_frame" and vs["n_pairs"] == n_prompts and vs["p_holm"] >= vs["p_value"]
        assert "vs_reference" not in record["methods"]["per_frame"]["metrics"][metric]
    from bench.stats import features_of, load_set_references
    fd = load_set_references(out)["fvd"]
    feats = np.stack(list(features_of(rows, "per_frame", "fvd").values()))
    assert fd(feats) == pytest.approx(record["methods"]["per_frame"]["metrics"]["fvd"]["value"], rel=1e-4)


def test_rerun_skips_finished_items(tmp_path):
    Runner(small_config(), tmp_path / "run", progress=False).run()
    result = Runner(small_config(), tmp_path / "run", progress=False).run()
    assert all(c["generated"] == 0 and c["skipped"] == c["planned"] for c in result.counts.values())


def test_interrupt_keeps_finished_videos_and_resume_completes(tmp_path, monkeypatch):
    from methods.per_frame import PerFrame

    calls = {"n": 0}
    original = PerFrame.generate

    def flaky(self, requests):
        if requests[0].num_inference_steps == STEPS:  # not the warm-up call
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
        return original(self, requests)

    monkeypatch.setattr(PerFrame, "generate", flaky)
    cfg = small_config(methods={"per_frame": {}})
    with pytest.raises(KeyboardInterrupt):
        Runner(cfg, tmp_path / "run", progress=False).run()
    finished = sorted(p.name for p in (tmp_path / "run" / "videos" / "per_frame").glob("*.json") if not p.name.startswith("perf."))
    assert len(finished) == 2
    before = {p: p.stat().st_mtime_ns for p in (tmp_path / "run" / "videos" / "per_frame").glob("*.npy")}
    monkeypatch.setattr(PerFrame, "generate", original)
    result = Runner(cfg, tmp_path / "run", progress=False).run()
    c = result.counts["per_frame"]
    assert c["skipped"] == 2 and c["generated"] == c["planned"] - 2
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # nothing finished was regenerated


def test_a_failing_item_is_counted_and_others_survive(tmp_path, monkeypatch):
    from methods.per_frame import PerFrame

    original = PerFrame.generate

    def broken_on_cat(self, requests):
        if any("cat" in r.prompt for r in requests) and requests[0].num_inference_steps == STEPS:
            raise RuntimeError("boom")
        return original(self, requests)

    monkeypatch.setattr(PerFrame, "generate", broken_on_cat)
    result = Runner(small_config(methods={"per_frame": {}}), tmp_path / "run", progress=False).run()
    c = result.counts["per_frame"]
    assert c["failed"] == 1 and c["generated"] == c["planned"] - 1
    assert result.record["methods"]["per_frame"]["metrics"]["temporal_flickering_all"]["n"] == c["planned"] - 1


def test_out_dir_with_a_different_config_is_refused(tmp_path):
    Runner(small_config(methods={"per_frame": {}}), tmp_path / "run", progress=False).run(stage="generate")
    with pytest.raises(UserError, match="holds a run of a different configuration"):
        Runner(small_config(methods={"per_frame": {}}, seed=7), tmp_path / "run", progress=False).run()


def test_default_out_dir_derives_from_config():
    a = Runner(small_config(), progress=False).out_dir
    assert a == Runner(small_config(), progress=False).out_dir
    assert a != Runner(small_config(seed=3), progress=False).out_dir
