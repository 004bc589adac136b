"""Results by prompt tag: `by_tag` in run.json (bench/breakdown.py) and its tables in Markdown, LaTeX and HTML, which
share one data function (tag_data) and never crown a winner (a tag holds a few unpaired videos)."""
import math
import re

import numpy as np
import pytest
from scipy import linalg, stats

from bench.breakdown import MIN_SET_VIDEOS, add_tag_breakdown
from bench.prompts import Prompt, PromptSuite
from bench.report.latex_tags import tag_floats
from bench.report.records import Run
from bench.report.tag_tables import tag_data, tag_tables, tag_tables_html
from tag_runs import METHODS, VBENCH_DIMENSIONS, tag_record


def test_tag_tables_mark_no_best():
    def entry(mean: float) -> dict:
        return {"metrics": {"clip_score": {"value": mean, "higher_is_better": True,
                                           "by_tag": {"still": {"mean": mean, "n": 2, "ci95": [mean - 1, mean + 1]}}}}}
    run = Run({"run_id": "r", "methods": {"a": entry(10.0), "b": entry(90.0)}}, None)
    text = "\n".join(tag_tables([run]))
    assert "| method | still (n=2) |" in text  # the same n for every method: said once, in the head
    assert "| a | 10.00 ± 1.00 |" in text and "| b | 90.00 ± 1.00 |" in text  # the t interval: value ± half
    assert "**" not in text and "No best is marked" in text
    tex = tag_floats([run])
    html = tag_tables_html([run])[0][0]["html"]
    assert r"\textbf" not in tex and r"\underline" not in tex and "font-weight" not in html


def test_three_formats_show_the_same_cells():
    """Every cell tag_data gathers appears in Markdown, LaTeX and HTML, with the record's numbers; a tag whose n
    differs between methods gives each cell its n; a tag a method lacks is a dash; names are escaped."""
    rec = tag_record(["still", "a_b&c", "<b>x</b>"], ["m1", "m2", "m3"], uneven="still")
    del rec["methods"]["m3"]["metrics"]["clip_score"]["by_tag"]["a_b&c"]
    runs = [Run(rec, None)]
    (table,), _ = tag_data(runs)
    md = "\n".join(tag_tables(runs))
    tex = tag_floats(runs)
    html = tag_tables_html(runs)[0][0]["html"]
    assert table.n_of("still") is None and table.n_of("a_b&c") == 5
    # m2's still: mean 20 + 3.1 = 23.1, interval 23.1 +- 40.25; n = 4 (one video fewer)
    assert "| m2 | " in md and " | 23.10 ± 40.25 (n=4) |\n" in md  # tags sorted: still comes last
    assert r"23.10{\scriptsize\,$\pm$ 40.25}{\scriptsize\,(n=4)}" in tex
    assert ">23.10 ±\u00a040.25 (n=4)<" in html
    assert "| method | <b>x</b> (n=5) | a_b&c (n=5) | still |" in md
    assert "a\\_b\\&c (n=5)" in tex and "\\textless{}b\\textgreater{}x" in tex
    assert "&lt;b&gt;x&lt;/b&gt; (n=5)" in html and "<b>x" not in html
    assert md.count("—") == 1 and html.count("—") == 1 and tex.count(" & -- ") + tex.count(" & --\\\\") >= 1
    for label, row in table.cells.items():
        for tag, cell in row.items():
            value, interval = cell.text()
            for text in (md, html):
                assert f"{value} {interval.replace(' ', chr(160)) if text is html else interval}" in text


def test_latex_puts_many_tags_in_rows():
    """VBench's 16 dimensions as columns need 4 tabulars at \\textwidth, as rows 2: that orientation wins.
    Two tags keep the Markdown orientation (methods as rows)."""
    many = tag_floats([Run(tag_record(VBENCH_DIMENSIONS), None)])
    assert "(tags as rows, methods as columns)" in many and many.count(r"\begin{tabular}{@{}l") == 2
    # column heads, two-line heads joined again ("dual\_ \\ stream" -> "dual\_stream")
    heads = [re.sub(r"\\begin\{tabular\}\[b\]\{@\{\}r@\{\}\}(.*?)\\end\{tabular\}",
                    lambda m: m.group(1).replace(" \\\\ ", ""), line)
             for line in many.splitlines() if line.startswith(" & ")]
    assert len(heads) == 2 and sorted(sum((h.rstrip(" \\").split(" & ")[1:] for h in heads), [])) == sorted(
        m.replace("_", "\\_") for m in METHODS)  # every method a column once, each tag a row in both tabulars
    assert len(re.findall(r"^dynamic\\_degree \(n=5\) & ", many, re.M)) == 2
    few = tag_floats([Run(tag_record(["still", "moving"]), None)])
    assert "(methods as rows, tags as columns)" in few
    assert re.search(r"^causal\\_cross\\_frame & ", few, re.M)


def suite(tags: dict[str, list[str]]) -> PromptSuite:
    prompts = tuple(Prompt(pid, f"prompt {pid}", tags=tuple(t)) for pid, t in tags.items())
    return PromptSuite("s", "1", prompts, "sha", "mem")


def test_per_video_interval_is_the_t_interval_over_prompts():
    """Two samples per prompt: the per-tag interval is Student t over the prompt means (as the main table), the
    mean is over videos; computed here with scipy.stats.t."""
    values = {("p1", 0): 1.0, ("p1", 1): 3.0, ("p2", 0): 4.0, ("p2", 1): 6.0, ("p3", 0): 10.0, ("p3", 1): 11.0}
    rows = [{"method": "m", "prompt_id": p, "sample": s, "metrics": {"x": v}} for (p, s), v in values.items()]
    results = {"m": {"x": {"value": 0.0}}}
    add_tag_breakdown(results, rows, suite({"p1": ["t"], "p2": ["t"], "p3": ["t", "u"]}))
    by_tag = results["m"]["x"]["by_tag"]
    prompt_means = np.array([2.0, 5.0, 10.5])
    half = stats.t.ppf(0.975, 2) * prompt_means.std(ddof=1) / math.sqrt(3)
    mean = sum(values.values()) / 6
    assert by_tag["t"]["n"] == 6 and by_tag["t"]["mean"] == pytest.approx(mean)
    assert by_tag["t"]["ci95"] == pytest.approx([mean - half, mean + half], abs=1e-6)
    assert by_tag["u"] == {"mean": 10.5, "n": 2, "ci95": None}  # one prompt: no interval


def frechet_scipy(x: np.ndarray, mu_r: np.ndarray, cov_r: np.ndarray) -> float:
    """Fréchet distance written here with scipy.linalg.sqrtm (a second implementation)."""
    mu, cov = x.mean(0), np.cov(x, rowvar=False)
    root = linalg.sqrtm(cov_r @ cov).real
    return float(((mu - mu_r) ** 2).sum() + np.trace(cov_r) + np.trace(cov) - 2 * np.trace(root))


@pytest.mark.parametrize("dim", [6, 16])  # more videos than features (torch bootstrap), fewer (batched Gram path)
def test_fvd_by_tag_only_where_a_tag_has_enough_videos(dim):
    """A set-level metric gets a per-tag Fréchet distance against the run's reference set only for tags with at
    least MIN_SET_VIDEOS videos; the rule is in by_tag_note, and the report prints it."""
    import torch

    from bench.metrics.frechet import FeatureSums

    rng = np.random.default_rng(0)
    n = MIN_SET_VIDEOS + 2
    real = rng.normal(size=(40, dim))
    fake = rng.normal(0.5, 1.3, size=(n, dim))
    reference = FeatureSums.from_features(torch.tensor(real))
    pids = [f"p{i}" for i in range(n)]
    tags = {pid: ["all"] + (["most"] if i < MIN_SET_VIDEOS else []) + (["few"] if i < MIN_SET_VIDEOS - 1 else [])
            for i, pid in enumerate(pids)}
    rows = [{"method": "m", "prompt_id": pid, "sample": 0, "metrics": {}, "fvd_features": fake[i].tolist()}
            for i, pid in enumerate(pids)]
    results = {"m": {"fvd": {"value": 1.0, "higher_is_better": False}}}
    add_tag_breakdown(results, rows, suite(tags), {"fvd": reference})
    fvd = results["m"]["fvd"]
    assert set(fvd["by_tag"]) == {"all", "most"}  # "few" has MIN_SET_VIDEOS - 1 videos
    mu_r, cov_r = real.mean(0), np.cov(real, rowvar=False)
    assert fvd["by_tag"]["all"]["value"] == pytest.approx(frechet_scipy(fake, mu_r, cov_r), abs=1e-5)
    assert fvd["by_tag"]["most"]["value"] == pytest.approx(frechet_scipy(fake[:MIN_SET_VIDEOS], mu_r, cov_r), abs=1e-5)
    assert fvd["by_tag"]["most"]["n"] == MIN_SET_VIDEOS
    for s in fvd["by_tag"].values():  # the bootstrap's spread around the value (its shift keeps the value inside)
        lo, hi = s["ci95_bootstrap"]
        assert lo < s["value"] < hi
    assert f"at least {MIN_SET_VIDEOS} videos" in fvd["by_tag_note"]
    assert "biased upward at small n" in fvd["by_tag_note"]
    md = "\n".join(tag_tables([Run({"run_id": "r", "methods": {"m": {"metrics": results["m"]}}}, None)]))
    assert "`fvd` ↓ by prompt tag: Frechet distance" in md and "| m | " in md and "(n=10)" in md
    # a suite too small for any tag: the record says why there is none, and so does the report
    small = {"m": {"fvd": {"value": 1.0, "higher_is_better": False}}}
    add_tag_breakdown(small, rows[:3], suite(tags), {"fvd": reference})
    assert small["m"]["fvd"]["by_tag"] == {} and small["m"]["fvd"]["by_tag_note"]
    md = "\n".join(tag_tables([Run({"run_id": "r", "methods": {"m": {"metrics": small["m"]}}}, None)]))
    assert "- fvd by prompt tag: none. Frechet distance" in md
