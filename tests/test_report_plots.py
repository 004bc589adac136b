"""Figures: PNG and PDF written and non-empty; one fixed colour per method in every figure."""
from pathlib import Path

from bench.report.build import write_report
from bench.report.plots import method_colour
from bench.registry import METHODS

DATA = Path(__file__).parent / "data" / "reports"


def test_plots_written(tmp_path):
    files = write_report([str(DATA / "run_a"), str(DATA / "run_b")], tmp_path, ["plots"])
    names = sorted(p.name for p in files)
    assert names == ["metrics.pdf", "metrics.png", "quality_vs_time.pdf", "quality_vs_time.png"]
    for path in files:
        data = path.read_bytes()
        assert len(data) > 1000
        assert data.startswith(b"\x89PNG\r\n\x1a\n") if path.suffix == ".png" else data.startswith(b"%PDF")


def test_grouped_plots_are_prefixed(tmp_path):
    import json
    import shutil

    other = tmp_path / "other"
    shutil.copytree(DATA / "run_a", other)
    record = json.loads((other / "run.json").read_text())
    record["run_id"], record["sampling"]["guidance_scale"] = "other", 3.0
    (other / "run.json").write_text(json.dumps(record))
    files = write_report([str(DATA / "run_a"), str(other)], tmp_path / "out", ["plots"], group=True)
    assert {p.name.split("_")[0] for p in files} == {"group1", "group2"}


def test_method_colours_are_fixed_and_distinct():
    names = METHODS.names()
    colours = [method_colour(n) for n in names]
    assert len(set(colours)) == len(colours)
    assert method_colour("per_frame") == method_colour("per_frame")
    assert method_colour("not_registered_method").startswith("#")
    assert method_colour("not_registered_method") == method_colour("not_registered_method")
