"""`t2v-bench compare`: doctored records against a fixed baseline; exit 0 ok, 1 regression, 2 unusable input."""
import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.report.compare import parse_tolerance

DATA = Path(__file__).parent / "data" / "reports"
BASE = DATA / "run_a" / "run.json"
TOY_BASELINE = Path(__file__).parent.parent / "results" / "baselines" / "toy.json"


def doctored(tmp_path: Path, edit) -> Path:
    record = json.loads(BASE.read_text())
    edit(record)
    path = tmp_path / "new.json"
    path.write_text(json.dumps(record))
    return path


def run_compare(capsys, *argv) -> tuple[int, str, str]:
    code = main(["compare", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def set_metric(name: str, method: str, factor: float):
    def edit(record):
        m = record["methods"][method]["metrics"][name]
        m["value"] = m["value"] * factor
    return edit


def test_identical_records_pass(capsys):
    code, out, _ = run_compare(capsys, BASE, BASE)
    assert code == 0 and "within tolerance" in out and "REGRESSION" not in out


@pytest.mark.parametrize("edit,code", [
    (set_metric("temporal_flickering", "animatediff", 0.99), 1),   # higher is better, 1% lower: regression
    (set_metric("temporal_flickering", "animatediff", 1.01), 0),   # 1% higher: better
    (set_metric("clip_score", "per_frame", 1.01), 1),              # -10.45 -> -10.55: lower clip score, worse
    (set_metric("clip_score", "per_frame", 0.99), 0),              # closer to zero: higher clip score, better
])
def test_quality_direction(tmp_path, capsys, edit, code):
    got, out, _ = run_compare(capsys, BASE, doctored(tmp_path, edit))
    assert got == code, out
    assert ("REGRESSION" in out) == (code == 1)


def perf(method: str, factor: float):
    def edit(record):
        record["methods"][method]["perf"]["sec_per_video_median"] *= factor
    return edit


def test_timing_default_is_wide_and_overridable(tmp_path, capsys):
    assert run_compare(capsys, BASE, doctored(tmp_path, perf("t2v_zero", 3.5)))[0] == 0  # +250%: shared-CI noise
    assert run_compare(capsys, BASE, doctored(tmp_path, perf("t2v_zero", 4.5)))[0] == 1  # +350%: regression
    new = doctored(tmp_path, perf("t2v_zero", 1.3))
    assert run_compare(capsys, BASE, new, "--fail-on", "sec_per_video:+25%")[0] == 1
    assert run_compare(capsys, BASE, new, "--fail-on", "sec_per_video:off")[0] == 0


def test_absolute_and_relative_tolerances(tmp_path, capsys):
    new = doctored(tmp_path, lambda r: r["methods"]["animatediff"]["metrics"]["clip_score"].update(value=-9.9))
    assert run_compare(capsys, BASE, new)[0] == 1                                   # -0.34 is past the 0.1% default
    assert run_compare(capsys, BASE, new, "--fail-on", "clip_score:-0.5")[0] == 0   # absolute
    assert run_compare(capsys, BASE, new, "--fail-on", "clip_score:-5%")[0] == 0    # relative to |baseline|
    assert run_compare(capsys, BASE, new, "--fail-on", "clip_score:-0.2")[0] == 1


def test_missing_and_new_methods(tmp_path, capsys):
    code, out, _ = run_compare(capsys, BASE, doctored(tmp_path, lambda r: r["methods"].pop("t2v_zero")))
    assert code == 1 and "'t2v_zero' is missing from NEW" in out
    def add(r):
        r["methods"]["simda"] = r["methods"]["animatediff"]
    code, out, _ = run_compare(capsys, BASE, doctored(tmp_path, add))
    assert code == 0 and "'simda' is new" in out
    code, out, _ = run_compare(capsys, BASE, doctored(tmp_path, lambda r: r["methods"]["per_frame"]["counts"]
                                                      .update(finished=3)))
    assert code == 1 and "3 finished videos" in out


@pytest.mark.parametrize("edit,needle", [
    (lambda r: r["sampling"].update(num_frames=16), "num_frames 8 vs 16"),
    (lambda r: r["suite"].update(sha256="f" * 64), "suite"),
    (lambda r: [e["metrics"]["clip_score"].update(definition="other") for e in r["methods"].values()],
     "clip_score definition"),
])
def test_incomparable_records_exit_2(tmp_path, capsys, edit, needle):
    code, _, err = run_compare(capsys, BASE, doctored(tmp_path, edit))
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "not comparable" in lines[0] and needle in lines[0]


@pytest.mark.parametrize("argv,needle", [
    (["--fail-on", "clip_score:+1%"], "clip_score:-1%"),
    (["--fail-on", "clip_scor:-1%"], "did you mean 'clip_score'"),
    (["--fail-on", "clip_score=1"], "NAME:TOLERANCE"),
    (["--fail-on", "sec_per_video:fast"], "relative"),
])
def test_bad_tolerances_exit_2(capsys, argv, needle):
    code, _, err = run_compare(capsys, BASE, BASE, *argv)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_unusable_input_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert run_compare(capsys, BASE, bad)[0] == 2
    assert run_compare(capsys, BASE, tmp_path / "nowhere")[0] == 2


def test_registered_metric_missing_from_baseline_is_noted(capsys, monkeypatch):
    from bench.registry import METRICS
    monkeypatch.setitem(METRICS._targets, "fvd", "bench.metrics.fvd:FVD")
    code, out, _ = run_compare(capsys, BASE, BASE, "--fail-on", "fvd:+5%")
    assert code == 0 and "fvd: not measured in the baseline" in out


def test_tolerance_parsing():
    t = parse_tolerance("fvd", "+5%", higher_is_better=False)
    assert t.relative and t.amount == pytest.approx(0.05) and t.allowed(-200.0) == pytest.approx(10.0)
    assert parse_tolerance("clip_score", "0.3", higher_is_better=True).allowed(30.0) == pytest.approx(0.3)
    assert parse_tolerance("x", "off", True) is None


def test_markdown_summary_written(tmp_path, capsys):
    assert run_compare(capsys, BASE, BASE, "--markdown", tmp_path / "s.md")[0] == 0
    assert "| method" in (tmp_path / "s.md").read_text()


def test_committed_baseline_is_usable_and_matches_the_default_config(capsys):
    """CI gates the embedded default on this file: it must exist and describe the default config as it is now."""
    import json

    from bench.config import load_config
    from bench.prompts import load_suite

    assert TOY_BASELINE.is_file(), "results/baselines/toy.json is missing (see README: refresh the baseline)"
    code, out, _ = run_compare(capsys, TOY_BASELINE, TOY_BASELINE)
    assert code == 0 and "per_frame" in out
    record, cfg = json.loads(TOY_BASELINE.read_text()), load_config()
    stale = "results/baselines/toy.json is stale: refresh it (README, 'Reports, regression gate, leaderboard')"
    assert record["config_name"] == cfg.name and set(record["methods"]) == set(cfg.methods), stale
    assert record["suite"]["sha256"] == load_suite(cfg.prompts).sha256, stale
    assert {k: record["sampling"][k] for k in cfg.sampling.model_dump()} == cfg.sampling.model_dump(), stale


def test_same_weights_at_another_path_are_comparable():
    """Records name local weight files by content: a clone elsewhere (CI's checkout) compares with the baseline;
    different weights do not."""
    from bench.report.records import differences

    def record(path: str, sha: str) -> dict:
        proto = {"definition": "d", "detector": {"kind": "toy", "source": path, "sha256": sha},
                 "pretrained": path, "pretrained_sha256": sha}
        return {"methods": {"m": {"metrics": {"fvd": {**proto, "value": 1.0}}}}}

    assert differences(record("/a/w.safetensors", "0" * 64), record("/b/w.safetensors", "0" * 64)) == []
    diff = differences(record("/a/w.safetensors", "0" * 64), record("/a/w.safetensors", "1" * 64))
    assert any("pretrained_sha256" in d for d in diff) and any("detector" in d for d in diff)


def test_thread_count_difference_is_named(tmp_path, capsys):
    """Different torch threads per process: passes within tolerance, but the summary names it; a refusal too."""
    def threads(n: int):
        def edit(record):
            record.setdefault("env", {})["torch_threads"] = n
        return edit

    base = doctored(tmp_path, threads(1))
    (tmp_path / "b").mkdir()
    code, out, _ = run_compare(capsys, base, doctored(tmp_path / "b", threads(2)))
    assert code == 0 and "torch threads per process differ (1 in the baseline, 2 in NEW)" in out

    def other_frames(record):
        threads(2)(record)
        record["sampling"]["num_frames"] += 1
    (tmp_path / "c").mkdir()
    code, _, err = run_compare(capsys, base, doctored(tmp_path / "c", other_frames))
    assert code == 2 and "num_frames" in err and "torch threads per process differ" in err


def test_zero_baseline_tolerates_last_digit_drift_only(tmp_path, capsys):
    """A quality metric whose baseline is exactly 0 (relative tolerance 0) still passes drift at the record's
    resolution (1e-6) and fails a real drop."""
    def value(v: float):
        def edit(record):
            record["methods"]["animatediff"]["metrics"]["temporal_flickering"]["value"] = v
        return edit

    base = doctored(tmp_path, value(0.0))
    for v, code in ((-1e-6, 0), (-1e-4, 1)):
        (tmp_path / str(v)).mkdir()
        assert run_compare(capsys, base, doctored(tmp_path / str(v), value(v)))[0] == code, v


def test_refused_compare_still_writes_the_markdown_summary(tmp_path, capsys):
    def other_frames(record):
        record["sampling"]["num_frames"] += 1
    md = tmp_path / "compare.md"
    code, _, _ = run_compare(capsys, BASE, doctored(tmp_path, other_frames), "--markdown", md)
    assert code == 2 and md.read_text().startswith("**not compared**") and "num_frames" in md.read_text()
