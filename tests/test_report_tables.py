"""Report tables: exact golden Markdown and LaTeX on fixed records, CIs, and refusal to merge incomparable runs.

Regenerate the golden files after an intended format change with `UPDATE_GOLDEN=1 python -m pytest
tests/test_report_tables.py` and review the diff.
"""
import json
import math
import os
import shutil
from pathlib import Path

import pytest

from bench.cli import main
from bench.errors import UserError
from bench.report.build import load_groups, write_report
from bench.report.records import ci95, load_run
from bench.report.tables import build_table, ranks

DATA = Path(__file__).parent / "data" / "reports"
GOLDEN = DATA / "golden"


def check_golden(path: Path, name: str) -> None:
    got = path.read_text()
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(got)
    assert got == golden.read_text(), f"{name} differs from the golden file (UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("runs,stem", [(["run_a"], "a"), (["run_a", "run_b"], "ab")])
def test_markdown_and_latex_match_golden(tmp_path, runs, stem):
    files = write_report([str(DATA / r) for r in runs], tmp_path, ["md", "latex"])
    assert [f.name for f in files] == ["report.md", "table.tex"]
    check_golden(tmp_path / "report.md", f"{stem}.md")
    check_golden(tmp_path / "table.tex", f"{stem}.tex")


def test_latex_marks_only_what_the_statistics_support():
    tex = (GOLDEN / "a.tex").read_text()
    assert r"\toprule" in tex and r"\midrule" in tex and r"\bottomrule" in tex
    rows: dict[str, str] = {}  # a method's rows in the quality and the cost table, joined
    for line in tex.splitlines():
        if " & " in line and not line.startswith(" & "):
            rows[line.split(" & ")[0]] = rows.get(line.split(" & ")[0], "") + line
    # 2 prompts: no paired test can reach p < 0.05 (4 sign flips), so no metric is bold and nothing is marked,
    # though animatediff's temporal flickering is the highest; 4 timed videos give no interval: no speed winner
    assert not any(r"\textbf{0.8" in row or r"\textbf{2." in row or "dagger" in row for row in rows.values())
    # measured-only columns keep best and second, lower is better: per_frame has the least peak memory
    assert r"\textbf{980.2}" in rows[r"per\_frame"] and r"\underline{995.0}" in rows[r"t2v\_zero"]
    assert "smoke" in tex and "N = 4" in tex and "t2v-bench-tiny-clip" in tex and "t interval" in tex


def test_missing_trainable_params_is_a_dash_and_ci_matches_samples():
    run = load_run(DATA / "run_a")
    table = build_table([run])
    assert math.isnan(table.values.at["t2v_zero", "trainable_params"])
    assert "| t2v_zero " in (GOLDEN / "a.md").read_text() and "—" in (GOLDEN / "a.md").read_text()
    by_prompt: dict[str, list[float]] = {}
    for r in run.samples:
        if r["method"] == "per_frame":
            by_prompt.setdefault(r["prompt_id"], []).append(r["metrics"]["clip_score"])
    units = [sum(v) / len(v) for v in by_prompt.values()]  # the interval is over prompts: 2 units, t with 1 df
    mean = sum(units) / len(units)
    sd = math.sqrt(sum((v - mean) ** 2 for v in units) / (len(units) - 1))
    assert table.ci.at["per_frame", "clip_score"] == pytest.approx(12.7062047 * sd / math.sqrt(2))
    assert ci95([1.0]) is None


def test_ties_at_display_precision_are_not_ranked():
    run = load_run(DATA / "run_a")
    for entry in run.methods.values():
        entry["metrics"]["clip_score"]["value"] = -10.5 + 1e-7 * len(entry["options"])
    assert (ranks(build_table([run]))["clip_score"] == 0).all()


def doctored(tmp_path: Path, name: str, edit) -> Path:
    folder = tmp_path / name
    shutil.copytree(DATA / "run_a", folder)
    record = json.loads((folder / "run.json").read_text())
    record["run_id"] = name
    edit(record)
    (folder / "run.json").write_text(json.dumps(record))
    return folder


def test_incomparable_runs_are_refused_or_grouped(tmp_path, capsys):
    other = doctored(tmp_path, "steps8", lambda r: r["sampling"].update(num_inference_steps=8))
    with pytest.raises(UserError, match="num_inference_steps 4 vs 8"):
        load_groups([str(DATA / "run_a"), str(other)], group=False)
    assert [len(g) for g in load_groups([str(DATA / "run_a"), str(DATA / "run_b"), str(other)], group=True)] == [2, 1]
    code = main(["report", str(DATA / "run_a"), str(other), "--format", "md", "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "not comparable" in err[0] and "--group" in err[0]
    assert main(["report", str(DATA / "run_a"), str(other), "--format", "md", "--group",
                 "--out", str(tmp_path / "g")]) == 0
    assert "## Group 2" in (tmp_path / "g" / "report.md").read_text()


def test_metric_protocol_difference_is_named(tmp_path):
    other = doctored(tmp_path, "openai", lambda r: [e["metrics"]["clip_score"].update(model="ViT-B-32")
                                                    for e in r["methods"].values()])
    with pytest.raises(UserError, match="clip_score model 't2v-bench-tiny-clip' vs 'ViT-B-32'"):
        load_groups([str(DATA / "run_a"), str(other)], group=False)


def test_leaderboard_ranks_in_the_metric_direction(tmp_path, capsys):
    assert main(["leaderboard", str(DATA / "run_a"), str(DATA / "run_b"), "--out", str(tmp_path),
                 "--rank-by", "sec_per_video"]) == 0
    md = (tmp_path / "leaderboard.md").read_text()
    rows = [line.split("|")[1].strip() for line in md.splitlines() if line.startswith("| fixture") or
            line.startswith("| t2v")]
    assert rows == ["fixture-a/per_frame", "fixture-b/per_frame", "t2v_zero", "fixture-a/animatediff",
                    "fixture-b/animatediff"]
    assert "<table" in (tmp_path / "leaderboard.html").read_text()
    capsys.readouterr()
    assert main(["leaderboard", str(DATA / "run_a"), "--out", str(tmp_path), "--rank-by", "clip_scor"]) == 2
    assert "did you mean 'clip_score'" in capsys.readouterr().err


def with_fvd(record: dict, lo: float, hi: float, n_fake: int) -> None:
    """A set-level, lower-is-better metric with the record's own bootstrap interval (as FVD records it)."""
    for i, entry in enumerate(record["methods"].values()):
        entry["metrics"]["fvd"] = {"value": 100.0 + 10 * i, "n": 4, "higher_is_better": False,
                                   "definition": "Frechet distance of detector features", "model": "i3d-test",
                                   "ci95_bootstrap": [lo + 10 * i, hi + 10 * i], "n_fake": n_fake,
                                   "comparable": False, "not_comparable_because": ["random detector"]}


def test_record_interval_and_run_specific_metric_fields(tmp_path):
    a = doctored(tmp_path, "fvd-a", lambda r: with_fvd(r, 90.0, 115.0, 4))
    b = doctored(tmp_path, "fvd-b", lambda r: with_fvd(r, 80.0, 130.0, 8))  # other CI and counts: still comparable
    write_report([str(a), str(b)], tmp_path / "out", ["md", "latex", "plots"])
    md = (tmp_path / "out" / "report.md").read_text()
    # no per-video features or reference beside these records: FVD cannot be tested, so no best is claimed
    assert "fvd ↓" in md and " 100.0 [90.0, 115.0] " in md and "**100.0" not in md and "bootstrap" in md
    assert r"fvd $\downarrow$" in (tmp_path / "out" / "table.tex").read_text()
    table = build_table(load_groups([str(a)], group=False)[0])
    assert table.error("per_frame", "fvd") == (10.0, 15.0)
