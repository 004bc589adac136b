"""`t2v-bench report`: run folders -> report.md, table.tex (+ table_tags.tex: each metric by prompt tag), plots/,
index.html (+ media/) in one output folder."""
from __future__ import annotations

from pathlib import Path

from bench.errors import UserError
from bench.report.records import Run, check_comparable, group_runs, load_run
from bench.store import atomic_write_bytes

FORMATS = ("md", "latex", "html", "plots")


def parse_formats(text: str) -> list[str]:
    wanted = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in wanted if f not in FORMATS]
    if bad or not wanted:
        raise UserError(f"--format {text!r}: choose from {','.join(FORMATS)}")
    return wanted


def default_out(runs: list[Run]) -> Path:
    """One run folder: <run>/report; a bare record or several: results/reports/<id>+<id>... (length-capped)."""
    if len(runs) == 1 and runs[0].folder is not None and (runs[0].folder / "run.json").is_file():
        return runs[0].folder / "report"
    return Path("results") / "reports" / "+".join(r.run_id for r in runs)[:120]


def load_groups(paths: list[str], group: bool) -> list[list[Run]]:
    runs = [load_run(p) for p in paths]
    ids = [r.run_id for r in runs]
    if len(set(ids)) != len(ids):
        raise UserError(f"the same run id was given twice ({', '.join(sorted({i for i in ids if ids.count(i) > 1}))})")
    if not group:
        check_comparable(runs, hint="; pass --group to show them as separate tables")
        return [runs]
    return group_runs(runs)


def write_report(paths: list[str], out: str | Path | None, formats: list[str], group: bool = False,
                 latex_layout: str = "textwidth", reference: str | None = None) -> list[Path]:
    """Write the requested formats; returns the files written (figures first, so the HTML can show them).
    `latex_layout`: a key of bench.report.latex.LAYOUTS; `reference`: the method significance marks compare with."""
    from bench.report import tables

    groups = load_groups(paths, group)
    out_dir = Path(out) if out else default_out([r for g in groups for r in g])
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    plot_links: list[list[str]] = [[] for _ in groups]
    if "plots" in formats:
        from bench.report.plots import write_plots

        for i, runs in enumerate(groups):
            prefix = f"group{i + 1}_" if len(groups) > 1 else ""
            files = write_plots(tables.build_table(runs, reference), out_dir / "plots", prefix)
            written += files
            plot_links[i] = [p.relative_to(out_dir).as_posix() for p in files if p.suffix == ".png"]
    if "md" in formats:
        written.append(out_dir / "report.md")
        atomic_write_bytes(written[-1], tables.markdown_report(groups, reference).encode())
    if "latex" in formats:
        from bench.report import latex
        from bench.report.latex_tags import tag_floats

        parts, tag_parts = [], []
        for i, runs in enumerate(groups):
            label = f"tab:t2v-bench-{i + 1}" if len(groups) > 1 else "tab:t2v-bench"
            parts.append(latex.to_latex(tables.build_table(runs, reference), label, latex_layout))
            tag_parts += [tex for tex in [tag_floats(runs, label, latex_layout)] if tex]
        written.append(out_dir / "table.tex")
        atomic_write_bytes(written[-1], (latex.PREAMBLE + "\n".join(parts) + "\n").encode())
        if tag_parts:  # appendix material: one float per metric, in a file of its own
            written.append(out_dir / "table_tags.tex")
            atomic_write_bytes(written[-1], (latex.PREAMBLE + "\n".join(tag_parts) + "\n").encode())
    if "html" in formats:
        from bench.report.html import write_gallery

        written.append(write_gallery(groups, out_dir, plot_links, reference))
    return written
