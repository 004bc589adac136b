"""LaTeX floats of the per-tag tables (bench/report/tag_tables.py's `tag_data`), sized like the main tables.

One float per metric, no bold or underline (no best is marked). Cells are the value and its 95% interval in
\\scriptsize; a tag's n goes into its head when every method has the same n, else into each cell. Both
orientations are laid out (methods as rows and tags as columns, as in Markdown; or tags as rows and methods as
columns) with latex.py's width estimate and stacked tabulars, and the one with fewer lines wins: VBench's 16
dimensions at \\textwidth go into rows (2 tabulars of 16 rows rather than 4 of 7). A float taller than the budget
continues in another float. tests/test_report_latex.py compiles the result and lets TeX measure it.
"""
from __future__ import annotations

import re

import pandas as pd

from bench.errors import UserError
from bench.report import latex
from bench.report.records import Run
from bench.report.tables import ARROWS
from bench.report.tag_tables import TAG_NOTE, TagTable, sentence, tag_data, tag_label

# Height budget of one float in lines of \small (11 pt) with a tabular's rules and the skip after it counted as 2
# lines: in an A4 two-column article a 60-line float of 16 tags overflowed the page by 84 pt (pdflatex), so 42 leaves
# room for the caption and a long note.
MAX_LINES = 42
MAX_ROWS = 32
RULE_LINES = 2
COMMENT = ("% per-tag tables (appendix material): one float per metric; with many floats add \\extrafloats{100} "
           "to the preamble\n")


def cell_tex(table: TagTable, label: str, tag: str) -> str:
    """tag_tables.cell_text as LaTeX: the interval (and a per-cell n) in \\scriptsize, math minus."""
    cell = table.cells[label].get(tag)
    if cell is None:
        return "--"
    value, interval = cell.text(r"$\pm$")
    tex = value + (r"{\scriptsize\," + interval + "}" if interval else "")
    if table.n_of(tag) is None:
        tex += rf"{{\scriptsize\,(n={cell.n})}}"
    return re.sub(r"(?<![\w.$])-(?=\d)", "$-$", tex)


def head_lines(text: str, body_pt: float) -> list[str]:
    """A head on one line, or on two balanced lines (broken at a space or after an underscore, which stays) when
    one line would be wider than the column's cells."""
    one = latex.latex_escape(text)
    breaks = [m.end() for m in re.finditer(r"_|\s+", text) if 0 < m.end() < len(text)]
    if latex.text_width(one) <= body_pt or not breaks:
        return [one]
    options = [[latex.latex_escape(text[:k].rstrip()), latex.latex_escape(text[k:].lstrip())] for k in breaks]
    return min(options, key=lambda lines: max(map(latex.text_width, lines)))


def orientation(table: TagTable, methods_as_rows: bool) -> pd.DataFrame:
    """Cells with row labels as index and column heads (plain text) as columns."""
    frame = pd.DataFrame({tag_label(table, tag): {label: cell_tex(table, label, tag) for label in table.cells}
                          for tag in table.tags}, dtype=object)
    return frame if methods_as_rows else frame.T


def stacked(cells: pd.DataFrame, limit: float | None) -> list[tuple[str, int]]:
    """The tabulars of one orientation, (tex, height in lines): as few column groups as fit `limit` pt each
    (latex.chunks), rows in groups of at most MAX_ROWS."""
    sized = []
    for head in cells.columns:
        body = max((latex.text_width(c) for c in cells[head]), default=0.0)
        lines = head_lines(str(head), body)
        sized.append((max([body] + [latex.text_width(line) for line in lines]), lines))
    label_pt = max(latex.text_width(latex.latex_escape(i)) for i in cells.index)
    parts = latex.chunks([w for w, _ in sized], label_pt, limit)
    out = []
    for top in range(0, len(cells.index), MAX_ROWS):
        rows = cells.iloc[top:top + MAX_ROWS]
        for part in parts:
            head_height = max(len(sized[i][1]) for i in part)
            out.append((latex.tabular(rows.iloc[:, part], [latex.head(sized[i][1]) for i in part]),
                        len(rows) + head_height + RULE_LINES))
    return out


def pages(tabulars: list[tuple[str, int]]) -> list[list[str]]:
    """Consecutive tabulars per float, at most MAX_LINES lines each (a float taller than the page cannot be set)."""
    out: list[list[str]] = []
    used = MAX_LINES
    for tex, lines in tabulars:
        if used + lines > MAX_LINES:
            out.append([])
            used = 0
        out[-1].append(tex)
        used += lines
    return out


def tag_float(table: TagTable, label: str, layout: latex.Layout, extra_notes: list[str]) -> str:
    """One metric's float(s): the orientation with the fewer lines (then the fewer tabulars, then methods as rows);
    a table taller than a page continues in further floats."""
    options = [stacked(orientation(table, rows), layout.width_pt) for rows in (True, False)]
    best = min((0, 1), key=lambda k: (sum(lines for _, lines in options[k]), len(options[k]), k))
    rows_are_tags = best == 1
    metric = latex.latex_escape(table.metric.replace("_", " "))
    head = (f"{metric} {ARROWS[table.higher_is_better][1]} by prompt tag "
            f"({'tags as rows, methods as columns' if rows_are_tags else 'methods as rows, tags as columns'}): "
            r"value and 95\% interval, n videos with the tag.")
    notes = [latex.latex_note(TAG_NOTE)] + ([latex.latex_note(table.note)] if table.note else [])
    first, *rest = pages(options[best])
    out = [latex.float_env(layout, first, [head, *notes, *extra_notes], label)]
    for body in rest:  # no \caption: a continuation is not a new table number
        out.append("\n".join([rf"\begin{{{layout.environment}}}[t]", r"\centering", r"\small",
                               rf"Table~\ref{{{label}}} (continued): {metric} by prompt tag.", r"\par\medskip",
                               "\n\\par\\medskip\n".join(body), rf"\end{{{layout.environment}}}"]))
    return "\n".join(out)


def tag_floats(runs: list[Run], label: str = "tab:t2v-bench", layout: str = latex.DEFAULT_LAYOUT) -> str:
    """The per-tag floats of one group of runs ('' when no metric has a breakdown by tag)."""
    if layout not in latex.LAYOUTS:
        raise UserError(f"LaTeX layout {layout!r}: choose from {', '.join(latex.LAYOUTS)}")
    tables, empty = tag_data(runs)
    if not tables:
        return ""
    last = [latex.latex_escape(sentence(line)) for line in empty]
    floats = [tag_float(t, f"{label}-tags-{t.metric}", latex.LAYOUTS[layout], last if i == len(tables) - 1 else [])
              for i, t in enumerate(tables)]
    return COMMENT + "\n".join(floats)
