"""Interleaved speed comparisons (`t2v-bench speed`, bench/speed_stats.py): the round order, the paired ratio on
constructed times with known answers, the command end to end, and when a report may crown a speed winner. No test
here asserts a measured time."""
from __future__ import annotations

import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from bench import speed_stats
from bench.cli import main
from bench.report.records import load_run
from bench.report.latex import to_latex
from bench.report.tables import build_table, caption, to_markdown

RUN_A = Path(__file__).parent / "data" / "reports" / "run_a"


@pytest.mark.parametrize("n", range(2, 9))
def test_every_method_runs_before_and_after_every_other(n):
    methods = [f"m{i}" for i in range(n)]
    rounds = 2 if n == 2 else 3
    orders = speed_stats.round_orders(methods, rounds)
    assert all(sorted(o) == sorted(methods) for o in orders)  # each round runs every method once
    for a, b in itertools.permutations(methods, 2):
        assert any(o.index(a) < o.index(b) for o in orders), (a, b)
    leaders = [o[0] for o in speed_stats.round_orders(methods, 2 * n)]
    assert sorted(leaders) == sorted(methods * 2)  # each method leads equally often
    if n >= 3:  # over the default 5 rounds, no method always runs right after the same one
        default = speed_stats.round_orders(methods, 5)
        assert all(len({o[o.index(m) - 1] for o in default if o.index(m) > 0}) >= 2 for m in methods)


def loaded_rounds(base: dict[str, float], rounds: int, seed: int, load_sd: float = 0.5, own_sd: float = 0.03):
    """Round times: a machine-load factor shared by every method of a round (large), times the method's base
    time, times its own small noise."""
    rng = np.random.default_rng(seed)
    load = np.exp(rng.normal(0, load_sd, rounds))
    return {m: list(t * load * np.exp(rng.normal(0, own_sd, rounds))) for m, t in base.items()}


def test_a_constant_2x_ratio_under_shared_load_is_detected():
    # load moving 4-5x between rounds, as between the identical runs on a shared machine
    times = loaded_rounds({"fast": 1.0, "slow": 2.0}, rounds=5, seed=0, load_sd=0.8)
    res = speed_stats.ratio_test(times["slow"], times["fast"])
    d = np.log(times["slow"]) - np.log(times["fast"])  # the t interval by hand
    half = sps.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    assert res["ci95"] == pytest.approx([math.exp(d.mean() - half), math.exp(d.mean() + half)], rel=1e-5)
    assert res["ci95"][0] > 1.8 and res["ci95"][1] < 2.2 and res["p_value"] < 1e-4
    assert res["p_sign_flip"] == pytest.approx(2 / 2**5)  # every round agrees: the least exact p at 5 rounds
    # unpaired, the shared load hides it: the two methods' own intervals overlap
    lo_slow = speed_stats.summarize_rounds(times["slow"])["ci95_geomean"][0]
    hi_fast = speed_stats.summarize_rounds(times["fast"])["ci95_geomean"][1]
    assert lo_slow < hi_fast
    fastest, crowned, tests = speed_stats.crown(times)
    assert (fastest, crowned) == ("fast", True) and tests["slow"]["ratio_median"] == pytest.approx(2.0, rel=0.1)


def test_identical_methods_are_crowned_at_most_at_the_test_level():
    crowned = [speed_stats.crown(loaded_rounds({"a": 1.0, "b": 1.0}, rounds=5, seed=s))[1] for s in range(300)]
    assert 0 < np.mean(crowned) <= 0.08  # ~5%: a two-sided 95% interval excludes 1 on the faster's side
    same = [1.0, 1.2, 0.9]
    assert speed_stats.crown({"a": same, "b": same})[1] is False  # identical times: ratio exactly 1, no winner


def test_three_methods_need_the_fastest_outside_the_noise_of_each():
    times = loaded_rounds({"a": 1.0, "b": 1.01, "c": 3.0}, rounds=6, seed=2)
    fastest, crowned, tests = speed_stats.crown(times)
    assert fastest in ("a", "b") and not crowned  # c is far slower, but a and b are a tie
    assert tests["c"]["ci95"][0] > 1


def with_interleaved(folder: Path, base: dict[str, float], seed: int, session: str = "s1") -> Path:
    """run_a's record (whose method-by-method times say per_frame 2.41, animatediff 3.05, t2v_zero 2.88 s) with a
    `t2v-bench speed` measurement of the given base times merged in."""
    shutil.copytree(RUN_A, folder)
    record = json.loads((folder / "run.json").read_text())
    times = loaded_rounds(base, rounds=6, seed=seed)
    doc = speed_stats.session(times, speed_stats.round_orders(list(times), 6), "per_frame",
                              {m: [m] for m in times}, {"session": session, "rounds": 6, "batch_size": 4})
    speed_stats.attach(record, doc, {m: {m} for m in record["methods"]})
    (folder / "run.json").write_text(json.dumps(record))
    return folder


def test_report_crowns_from_the_paired_rounds(tmp_path):
    run = load_run(with_interleaved(tmp_path / "r", {"per_frame": 2.0, "animatediff": 1.0, "t2v_zero": 2.0}, 0))
    table = build_table([run])
    assert table.claims.best["sec_per_video"] == {"animatediff"}  # slowest method by method, fastest interleaved
    med = run.methods["animatediff"]["perf"]["speed_interleaved"]["sec_per_video_median"]
    assert table.values.at["animatediff", "sec_per_video"] == pytest.approx(med)
    assert ("animatediff", "sec_per_video") in table.bounds  # 6 rounds: the interval of the median
    md = to_markdown(table)
    assert "**" in next(line for line in md.splitlines() if line.startswith("| animatediff")).split("|")[-3]
    assert "6 interleaved rounds" in table.claims.speed_note
    assert "6 interleaved rounds" in to_latex(table) and "6 interleaved rounds" in caption(table)


def test_report_names_no_speed_winner_inside_the_noise(tmp_path):
    run = load_run(with_interleaved(tmp_path / "r", {"per_frame": 1.0, "animatediff": 1.0, "t2v_zero": 1.0}, 3))
    table = build_table([run])
    assert "sec_per_video" not in table.claims.best and "interleaved rounds" in table.claims.speed_note


def test_without_a_full_interleaved_timing_the_report_says_method_by_method(tmp_path):
    table = build_table([load_run(RUN_A)])
    assert "measured method by method" in table.claims.speed_note and "covers only" not in table.claims.speed_note
    folder = with_interleaved(tmp_path / "p", {"per_frame": 2.0, "animatediff": 1.0}, 0)  # 2 of the 3 rows
    table = build_table([load_run(folder)])
    assert "covers only per_frame, animatediff" in table.claims.speed_note
    assert table.values.at["animatediff", "sec_per_video"] == pytest.approx(3.05)  # the run's own time


def test_speed_command_times_interleaved_and_its_record_survives_a_run(tmp_path, capsys):
    size = ["--config", "smoke", "--frames", "2", "--steps", "1", "--height", "32", "--width", "32",
            "--samples", "1", "--out", str(tmp_path / "r"), "--no-progress"]
    assert main(["speed", *size, "--rounds", "2", "--methods", "per_frame", "animatediff"]) == 0
    out = capsys.readouterr().out
    assert "2 interleaved rounds" in out and "no run.json there" in out
    doc = json.loads((tmp_path / "r" / "speed.json").read_text())
    assert doc["round_orders"] == [["per_frame", "animatediff"], ["animatediff", "per_frame"]]
    assert doc["reference"] == "per_frame" and doc["methods"]["animatediff"]["vs_reference"]["n_rounds"] == 2
    assert all(len(e["rounds"]) == 2 and all(t > 0 for t in e["rounds"]) for e in doc["methods"].values())
    # a run in the same folder (the speed command's folder is the run's) takes the measurement into run.json
    assert main(["run", *size, "--methods", "per_frame,animatediff"]) == 0
    record = json.loads((tmp_path / "r" / "run.json").read_text())
    timed = {m for m, e in record["methods"].items() if e["perf"].get("speed_interleaved")}
    assert timed == {"per_frame", "animatediff"}
    assert record["methods"]["per_frame"]["perf"]["speed_interleaved"]["session"] == doc["session"]
    assert "2 interleaved rounds" in (tmp_path / "r" / "report.md").read_text()
    capsys.readouterr()
    # speed on a folder holding a run: added to its run.json at once
    assert main(["speed", *size, "--rounds", "2", "--methods", "animatediff,per_frame"]) == 0
    assert "in run.json for animatediff, per_frame" in capsys.readouterr().out
    again = json.loads((tmp_path / "r" / "speed.json").read_text())
    record = json.loads((tmp_path / "r" / "run.json").read_text())
    assert record["methods"]["animatediff"]["perf"]["speed_interleaved"]["session"] == again["session"] != doc["session"]


@pytest.mark.parametrize("argv,needle", [
    (["--methods", "per_frame"], "at least two"),
    (["--methods", "per_frame", "animatedif"], "did you mean 'animatediff'"),
    (["--rounds", "1"], "at least 2 rounds"),
    (["--reference", "simda", "--methods", "per_frame", "animatediff"], "not a method of this run"),
])
def test_speed_bad_input_is_one_line(tmp_path, capsys, argv, needle):
    assert main(["speed", "--config", "smoke", "--out", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
