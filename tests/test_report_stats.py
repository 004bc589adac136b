"""What reports, the leaderboard, `compare --mode paired` and `t2v-bench power` claim, on constructed runs whose
differences are known: a real shift is marked, noise is not, ties share the bold, speed inside the noise is not
crowned."""
from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from bench import power, stats
from bench.cli import main
from bench.report.records import load_run
from bench.report.latex import to_latex
from bench.report.tables import build_table, ranks, to_html, to_markdown

BASE = Path(__file__).parent / "data" / "reports" / "run_a" / "run.json"


def make_run(folder: Path, effects: dict[str, float], *, prompts: int = 10, samples: int = 1, seed: int = 0,
             noise: float = 0.3, seconds: dict[str, float] | None = None, jitter: float = 0.02,
             run_id: str | None = None) -> Path:
    """A run folder (the fixture's record as a template) whose clip_score is prompt difficulty (SD 10, shared)
    + the method's effect + per-video noise; each video its own batch of `seconds[method]` +- jitter."""
    rng = np.random.default_rng(seed)
    record = json.loads(BASE.read_text())
    template = next(iter(record["methods"].values()))
    record["run_id"] = run_id or folder.name
    record["suite"].update(n_prompts=prompts, samples_per_prompt=samples)
    difficulty = rng.normal(50, 10, size=prompts)
    rows, methods = [], {}
    for method, effect in effects.items():
        vals = []
        for i in range(prompts):
            for k in range(samples):
                v = float(difficulty[i] + effect + rng.normal(0, noise))
                t = (seconds or {}).get(method, 1.0) * (1 + jitter * rng.normal())
                rows.append({"method": method, "prompt_id": f"p{i:02d}", "prompt": f"prompt {i}", "sample": k,
                             "seconds": t, "warmup": False, "batch": f"{method}-{i}-{k}",
                             "metrics": {"clip_score": round(v, 6)}})
                vals.append(v)
        entry = json.loads(json.dumps(template))
        entry["metrics"] = {"clip_score": {**template["metrics"]["clip_score"], "value": float(np.mean(vals)),
                                           "n": len(vals)}}
        entry["counts"]["finished"] = len(vals)
        entry["perf"]["sec_per_video_median"] = float(np.median([r["seconds"] for r in rows
                                                                 if r["method"] == method]))
        methods[method] = entry
    record["methods"] = methods
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps(record))
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_a_real_shift_is_marked_in_every_format_and_noise_is_not(tmp_path):
    run = load_run(make_run(tmp_path / "r", {"per_frame": 0.0, "better": 2.0, "same": 0.0}))
    table = build_table([run])
    assert table.claims.vs_reference == {("better", "clip_score"): 1}
    md, tex, html = to_markdown(table), to_latex(table), to_html(table)
    better_line = next(line for line in md.splitlines() if line.startswith("| better"))
    assert "†" in better_line and "**" in better_line
    assert not any("†" in line or "**" in line.split("|")[2] for line in md.splitlines()
                   if line.startswith(("| per_frame", "| same")))
    better_tex = "".join(line for line in tex.splitlines() if line.startswith("better &"))
    assert r"$^\dagger$" in better_tex and r"\textbf{" in better_tex and r"\dag{}" in tex  # cell, caption
    assert "†" in html and "font-weight: bold" in html


def test_ties_share_the_bold_and_all_noise_bolds_nothing(tmp_path):
    run = load_run(make_run(tmp_path / "t", {"per_frame": 0.0, "a": 2.0, "b": 2.0}))
    rk = ranks(build_table([run]))
    assert list(rk["clip_score"]) == [0, 1, 1]  # a and b tie (not significantly different): both bold
    run = load_run(make_run(tmp_path / "n", {"per_frame": 0.0, "a": 0.0, "b": 0.0}, seed=1))
    table = build_table([run])
    assert (ranks(table)["clip_score"] == 0).all() and not table.claims.vs_reference


def test_worse_than_the_reference_gets_the_other_mark(tmp_path):
    run = load_run(make_run(tmp_path / "w", {"per_frame": 0.0, "worse": -2.0}))
    table = build_table([run])
    assert table.claims.vs_reference == {("worse", "clip_score"): -1}
    assert "‡" in to_markdown(table)


def test_speed_winner_only_outside_the_noise(tmp_path):
    run = load_run(make_run(tmp_path / "s", {"per_frame": 0.0, "fast": 0.0, "slow": 0.0},
                            seconds={"per_frame": 2.0, "fast": 1.0, "slow": 2.05}))
    table = build_table([run])
    assert table.claims.best["sec_per_video"] == {"fast"}
    assert ("fast", "sec_per_video") in table.bounds  # shown as median [lo, hi]
    noisy = load_run(make_run(tmp_path / "sn", {"per_frame": 0.0, "fast": 0.0},
                              seconds={"per_frame": 1.05, "fast": 1.0}, jitter=0.3))
    assert "sec_per_video" not in build_table([noisy]).claims.best


def test_single_value_interval_is_a_t_interval(tmp_path):
    run = load_run(make_run(tmp_path / "c", {"per_frame": 0.0, "a": 1.0}, prompts=5, samples=2))
    table = build_table([run])
    units = np.array(list(stats.prompt_means(stats.values_of(run.samples, "a", "clip_score")).values()))
    half = sps.t.ppf(0.975, units.size - 1) * units.std(ddof=1) / math.sqrt(units.size)
    assert table.ci.at["a", "clip_score"] == pytest.approx(half)
    assert half > 1.96 * units.std(ddof=1) / math.sqrt(units.size)


def test_leaderboard_rank_intervals(tmp_path, capsys):
    a = make_run(tmp_path / "ra", {"per_frame": 0.0, "m1": 6.0, "m2": 3.0}, prompts=12)
    assert main(["leaderboard", str(a), "--out", str(tmp_path / "lb"), "--rank-by", "clip_score"]) == 0
    md = (tmp_path / "lb" / "leaderboard.md").read_text()
    assert re.search(r"\| m1 +\| +1 \[1, 1\] \|", md) and re.search(r"\| per_frame +\| +3 \[3, 3\] \|", md)
    assert "rank [lo, hi]" in md


@pytest.mark.parametrize("new_effect,code", [(0.0, 0), (-0.2, 0), (-3.0, 1)])
def test_paired_gate_flags_only_a_drop_beyond_the_margin(tmp_path, capsys, new_effect, code):
    base = make_run(tmp_path / "base", {"per_frame": 0.0}, prompts=16, seed=3, run_id="base")
    new = make_run(tmp_path / "new", {"per_frame": 0.0}, prompts=16, seed=3, run_id="new")
    rows = [json.loads(line) for line in (new / "samples.jsonl").read_text().splitlines()]
    rng = np.random.default_rng(9)  # a rerun: the same videos moved by kernel noise, plus the change under test
    for r in rows:
        r["metrics"]["clip_score"] += new_effect + rng.normal(0, 0.3)
    (new / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # margin 1% of ~50 = 0.5: -0.2 is worse but inside it, -3 is beyond it
    got = main(["compare", str(base), str(new), "--mode", "paired", "--fail-on", "sec_per_video:off"])
    out = capsys.readouterr().out
    assert got == code, out
    assert "p_holm" in out


def test_paired_gate_needs_samples(tmp_path, capsys):
    bare = tmp_path / "bare.json"
    bare.write_text(BASE.read_text())  # a run.json without its samples.jsonl
    assert main(["compare", str(bare), str(bare), "--mode", "paired"]) == 2
    assert "samples.jsonl" in capsys.readouterr().err


def test_power_command_matches_a_simulation(tmp_path, capsys):
    run_dir = make_run(tmp_path / "p", {"per_frame": 0.0, "a": 0.5}, prompts=12, samples=2, noise=1.0)
    delta = 0.5
    assert main(["power", str(run_dir), "--metric", "clip_score", "--delta", str(delta), "--method", "a"]) == 0
    out = capsys.readouterr().out
    need = int(re.search(r"2 sample\(s\) per prompt: (\d+) prompts", out).group(1))
    run = load_run(run_dir)
    between, within, _, _ = power.variance_components(stats.values_of(run.samples, "a", "clip_score"),
                                                      stats.values_of(run.samples, "per_frame", "clip_score"))
    rng = np.random.default_rng(0)

    def rate(prompts: int, sims: int = 20000) -> float:
        d = (delta + rng.normal(0, math.sqrt(between), (sims, prompts, 1))
             + rng.normal(0, math.sqrt(within), (sims, prompts, 2))).mean(2)
        return float(np.mean(sps.ttest_1samp(d, 0.0, axis=1).pvalue < stats.ALPHA))

    assert rate(need) >= stats.POWER - 0.012 and rate(max(2, need * 2 // 3)) < stats.POWER
    assert main(["power", str(run_dir), "--metric", "clip_scor", "--delta", "1"]) == 2
    assert "did you mean 'clip_score'" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no pdflatex (.ci/run installs it)")
def test_latex_with_significance_marks_compiles(tmp_path):
    from bench.report.build import write_report

    run = make_run(tmp_path / "r", {"per_frame": 0.0, "better": 2.0, "worse": -2.0})
    write_report([str(run)], tmp_path / "out", ["latex"])
    tex = (tmp_path / "out" / "table.tex").read_text()
    assert r"$^\dagger$" in tex and r"$^\ddagger$" in tex
    (tmp_path / "paper.tex").write_text("\\documentclass[twocolumn]{article}\n\\usepackage{booktabs}\n"
                                        f"\\begin{{document}}\n{tex}\nText.\n\\end{{document}}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:]
