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


def test_bars_start_at_zero_and_show_their_values(tmp_path):
    """Every bar is drawn from y = 0 and every panel's y range includes 0 (near-equal values, 0.963 vs 0.983,
    are not zoomed into a 20x difference); heights are the table's values; a missing value is no bar, labelled n/a."""
    import json
    import math
    import shutil

    from bench.report.plots import bars_figure
    from bench.report.records import load_run
    from bench.report.tables import build_table

    folder = tmp_path / "run"
    shutil.copytree(DATA / "run_a", folder)
    record = json.loads((folder / "run.json").read_text())
    del record["methods"]["t2v_zero"]["metrics"]["temporal_flickering"]
    (folder / "run.json").write_text(json.dumps(record))
    table = build_table([load_run(folder)])
    fig = bars_figure(table)
    titles = {ax.get_title().split(" ")[0]: ax for ax in fig.axes if ax.get_visible()}
    assert set(titles) == {"clip_score", "frame_consistency", "frame_consistency_allpairs", "temporal_flickering"}
    for key, ax in titles.items():
        lo, hi = ax.get_ylim()
        assert lo <= 0.0 <= hi, (key, lo, hi)
        bars = [p for p in ax.patches if p.get_visible()]
        assert all(p.get_y() == 0.0 for p in bars)
        want = [v for v in table.values[key].reindex(list(table.rows)) if not math.isnan(v)]
        assert [p.get_height() for p in bars] == want
        # zero in view, and the bars with their error bars still fill it (no needless zoom-out)
        reach = [abs(v) + max(table.error(lab, key) or (0.0, 0.0)) for lab, v in table.values[key].items()
                 if not math.isnan(v)]
        assert max(reach) >= 0.8 * max(abs(lo), abs(hi))
    ax = titles["temporal_flickering"]
    assert len([p for p in ax.patches if p.get_visible()]) == 2
    assert "n/a" in [t.get_text() for t in ax.texts]
    assert titles["clip_score"].get_ylim()[1] >= 0.0 > titles["clip_score"].get_ylim()[0]  # negative bars hang down
