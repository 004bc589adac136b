"""table.tex fits the page: compiled with pdflatex in a two-column article, every tabular measured by TeX itself.

The compile tests need pdflatex and booktabs (Debian: `apt-get install texlive-latex-base
texlive-latex-recommended`; `.ci/run` installs them) and skip with that reason without them. The rest runs anywhere.
"""
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.report import latex
from bench.report.build import write_report
from bench.report.records import load_run
from bench.report.tables import build_table
from tag_runs import VBENCH_DIMENSIONS, tag_record, write_tag_run

DATA = Path(__file__).parent / "data" / "reports"
TOY_BASELINE = Path(__file__).parent.parent / "results" / "baselines" / "toy.json"
TABULAR = re.compile(r"\\begin\{tabular\}\{@\{\}l.*?\\bottomrule\n\\end\{tabular\}", re.S)
EXTRA = ["subject_consistency", "background_consistency", "motion_smoothness", "dynamic_degree", "aesthetic_quality",
         "imaging_quality", "object_class", "multiple_objects", "human_action", "spatial_relationship", "scene",
         "overall_consistency"]


def have_tex() -> bool:
    return shutil.which("pdflatex") is not None and subprocess.run(
        ["kpsewhich", "booktabs.sty"], capture_output=True, text=True).stdout.strip() != ""


needs_tex = pytest.mark.skipif(not have_tex(), reason="no pdflatex with booktabs (apt-get install texlive-latex-base "
                               "texlive-latex-recommended); .ci/run installs them")


def many_metrics(tmp_path: Path) -> Path:
    """run_a with twelve more metrics (VBench-sized), half of them with record intervals (the widest cells)."""
    folder = tmp_path / "many"
    shutil.copytree(DATA / "run_a", folder)
    record = json.loads((folder / "run.json").read_text())
    for i, entry in enumerate(record["methods"].values()):
        for j, name in enumerate(EXTRA):
            v = 0.5 + 0.01 * i + 0.03 * j
            entry["metrics"][name] = {"value": v, "n": 4, "higher_is_better": j % 3 != 0, "definition": f"{name} <x>",
                                      **({"ci95_bootstrap": [v - 0.02, v + 0.03]} if j % 2 else {})}
    (folder / "run.json").write_text(json.dumps(record))
    return folder


def fixtures(tmp_path: Path) -> dict[str, list[str]]:
    return {"toy default run": [str(TOY_BASELINE)], "two runs": [str(DATA / "run_a"), str(DATA / "run_b")],
            "many metrics": [str(many_metrics(tmp_path))]}


def tag_fixtures(tmp_path: Path) -> dict[str, list[str]]:
    """Runs with a breakdown by tag: the toy default (7 tags, 11 metrics) and VBench's 16 dimensions as tags over
    seven methods, one tag with an n that differs between methods (n in every cell of that tag)."""
    vbench = tag_record(VBENCH_DIMENSIONS, metrics=("clip_score", "frame_consistency"), uneven="scene")
    return {"toy default run": [str(TOY_BASELINE)],
            "16 VBench dimensions": [str(write_tag_run(tmp_path / "vbench_tags", vbench))]}


def compile_table(tex_file: Path, work: Path) -> tuple[dict[str, float], list[float], str]:
    """pdflatex a two-column A4 article (the narrowest common \\textwidth) holding the table file; returns TeX's
    \\textwidth and \\columnwidth, the width of every tabular (set alone in a box, at the table's \\small), the log."""
    blocks = TABULAR.findall(tex_file.read_text())
    measure = "\n".join(rf"\sbox0{{\small {b}}}\typeout{{TABULAR=\the\wd0}}" for b in blocks)
    work.mkdir(parents=True, exist_ok=True)
    (work / "paper.tex").write_text(
        "\\documentclass[twocolumn,a4paper]{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
        "\\typeout{TEXTWIDTH=\\the\\textwidth}\\typeout{COLUMNWIDTH=\\the\\columnwidth}\n"
        f"{measure}\n\\input{{{tex_file.resolve().as_posix()}}}\nText.\n\\end{{document}}\n")
    proc = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "paper.tex"], cwd=work,
                          capture_output=True, text=True, timeout=120)
    log = (work / "paper.log").read_text(errors="replace")
    assert proc.returncode == 0, log[-3000:]
    page = {k.lower(): float(v) for k, v in re.findall(r"(TEXTWIDTH|COLUMNWIDTH)=([\d.]+)pt", log)}
    return page, [float(w) for w in re.findall(r"TABULAR=([\d.]+)pt", log)], log


@needs_tex
@pytest.mark.parametrize("layout,limit", [("textwidth", "textwidth"), ("columnwidth", "columnwidth")])
def test_latex_fits_the_page_when_compiled(tmp_path, layout, limit):
    for name, runs in fixtures(tmp_path).items():
        out = tmp_path / layout / name.replace(" ", "_")
        write_report(runs, out, ["latex"], latex_layout=layout)
        page, widths, log = compile_table(out / "table.tex", out / "tex")
        assert widths and max(widths) <= page[limit], f"{name}: tabulars {widths} pt, {limit} {page[limit]} pt"
        assert "Overfull \\hbox" not in log, f"{name}: {re.findall(r'Overfull.*', log)}"


@needs_tex
@pytest.mark.parametrize("layout,limit", [("textwidth", "textwidth"), ("columnwidth", "columnwidth")])
def test_tag_tables_fit_the_page_when_compiled(tmp_path, layout, limit):
    """table_tags.tex (each metric by prompt tag) compiles, every tabular within the layout's width and every float
    within the page (TeX warns 'Float too large for page' otherwise)."""
    for name, runs in tag_fixtures(tmp_path).items():
        out = tmp_path / layout / name.replace(" ", "_")
        written = write_report(runs, out, ["latex"], latex_layout=layout)
        assert out / "table_tags.tex" in written
        tex = (out / "table_tags.tex").read_text()
        page, widths, log = compile_table(out / "table_tags.tex", out / "tex")
        assert len(widths) == tex.count(r"\begin{tabular}{@{}l") > 0
        assert max(widths) <= page[limit], f"{name}: tabulars {widths} pt, {limit} {page[limit]} pt"
        for warning in ("Overfull \\hbox", "Overfull \\vbox", "Float too large"):
            assert warning not in log, f"{name}: {re.findall(warning[:8] + '.*', log)}"
        assert r"\textbf" not in tex and r"\underline" not in tex  # no best is marked


@needs_tex
def test_the_measurement_catches_a_table_too_wide(tmp_path):
    """The wide layout (one table, every column: the old default) is far wider than \\textwidth, and the log says so:
    the fit test above can fail."""
    write_report([str(TOY_BASELINE)], tmp_path, ["latex"], latex_layout="wide")
    page, widths, log = compile_table(tmp_path / "table.tex", tmp_path / "tex")
    assert len(widths) == 1 and widths[0] > page["textwidth"] + 100
    assert "Overfull \\hbox" in log


@needs_tex
def test_width_estimate_errs_wide_but_close(tmp_path):
    """The estimate that splits columns is within a few percent of TeX's measurement, and not below it."""
    for name, runs in fixtures(tmp_path).items():
        out = tmp_path / name.replace(" ", "_")
        write_report(runs, out, ["latex"], latex_layout="wide")
        _, (measured,), _ = compile_table(out / "table.tex", out / "tex")
        table = build_table([load_run(r) for r in runs])
        cells = latex.latex_cells(table)
        cols = [latex.column_width(cells[c.key], c)[0] for c in table.columns]
        label = max(latex.text_width(latex.latex_escape(i)) for i in cells.index)
        estimate = (label + sum(w + 2 * latex.TABCOLSEP_PT for w in cols)) * latex.MARGIN
        assert measured <= estimate <= measured * 1.08, (name, measured, estimate)


def test_many_metrics_are_stacked_in_tabulars(tmp_path):
    """Sixteen quality metrics do not fit one \\textwidth: several tabulars in the quality float, every metric once,
    every method in each."""
    table = build_table([load_run(r) for r in fixtures(tmp_path)["many metrics"]])
    quality, cost = latex.to_latex(table, layout="textwidth").split("\\end{table*}")[:2]
    blocks = TABULAR.findall(quality)
    specs = [re.match(r"\\begin\{tabular\}\{@\{\}l(r+)@\{\}\}", b).group(1) for b in blocks]
    assert len(blocks) >= 2 and sum(map(len, specs)) == len([c for c in table.columns if c.kind == "metric"]) == 16
    for block in blocks:
        assert all(re.search(rf"^{re.escape(latex.latex_escape(m))} & ", block, re.M) for m in table.values.index)
    assert [b.splitlines()[2].startswith(" & n & ") for b in TABULAR.findall(cost)] == [True]  # one cost tabular


def test_caption_math_and_text_escapes(tmp_path):
    import ast

    import bench.metrics

    # the built-in FVD definition has its formula (read from the source: importing fvd.py pulls in torch)
    tree = ast.parse((Path(bench.metrics.__file__).parent / "fvd.py").read_text())
    definition = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                      and getattr(n.targets[0], "id", "") == "DEFINITION")
    assert definition in latex.MATH_DEFINITIONS
    write_report([str(TOY_BASELINE)], tmp_path, ["latex"])
    tex = (tmp_path / "table.tex").read_text()
    # the caption's first sentence sits above the table, its notes (the definitions) in a paragraph below it
    caption = re.search(r"\\caption\{(.*?)\}\n\\label\{tab:t2v-bench\}", tex, re.S).group(1)
    notes = re.search(r"\\label\{tab:t2v-bench\}.*?\\parbox\{\\linewidth\}\{\\footnotesize (.*?)\}\n\\end\{table",
                      tex, re.S).group(1)
    assert caption.startswith("Suite") or len(caption) < 400
    caption = caption + " " + notes
    assert r"$\|\mu_r-\mu_f\|^2" in caption and r"\Sigma_r^{1/2}" in caption
    text = re.sub(r"\$[^$]*\$", "", caption)
    # OT1 text mode prints | as an em dash and < > as inverted ! ?; they may appear only inside math
    assert not re.search(r"[|<>]", text) and "||mu" not in tex
    assert latex.latex_escape("a|b<c>_") == r"a\textbar{}b\textless{}c\textgreater{}\_"
    assert latex.latex_definition("x <y>") == r"x \textless{}y\textgreater{}"


def test_cells_use_math_minus_and_small_intervals():
    table = build_table([load_run(DATA / "run_a")])
    cells = latex.latex_cells(table)
    # no second best in a metric column (and with 2 prompts no best): the cell is the value and its t interval
    assert cells.at["per_frame", "clip_score"] == r"$-$10.45{\scriptsize\,$\pm$ 3.04}"
    assert cells.at["t2v_zero", "trainable_params"] == "--"


def test_unknown_layout_is_one_clear_line(capsys):
    from bench.cli import main
    from bench.errors import UserError

    with pytest.raises(UserError, match="choose from textwidth, columnwidth, wide"):
        latex.to_latex(build_table([load_run(DATA / "run_a")]), layout="landscape")
    try:
        code = main(["report", str(DATA / "run_a"), "--latex-layout", "landscape"])
    except SystemExit as exc:  # argparse's own exit
        code = exc.code
    assert code == 2 and "invalid choice: 'landscape'" in capsys.readouterr().err
