"""LaTeX (booktabs) tables that fit the page they are pasted into.

One table with every column is far wider than a paper's text block, so the default layout gives quality and cost
their own floats and, where the quality metrics still do not fit, stacks them as several tabulars in one float.
Column widths are estimated from Computer Modern metrics (10 pt documents, \\small tables, a few percent of margin)
and tests/test_report_latex.py checks the estimate against pdflatex's own measurement.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from bench.errors import UserError
from bench.report.significance import BEST_NOTE, SIG_NOTE
from bench.report.tables import (ARROWS, BOUNDS_NOTE, CI_NOTE, MARKS, TRAINING_NOTE, Column, Table,
                                 base_note, definitions, display, ranks, sentence, settings_sentence)


@dataclass(frozen=True)
class Layout:
    environment: str  # table* spans both columns of a two-column paper
    width_pt: float | None  # widest tabular allowed; None: one table with every column, however wide
    what: str


LAYOUTS = {
    # \textwidth / \columnwidth of \documentclass[twocolumn,a4paper]{article}, the narrowest of the common
    # two-column classes (article letter: 469 / 229.5 pt, CVPR 497 / 237 pt, IEEEtran 516 / 252 pt)
    "textwidth": Layout("table*", 452.0, "quality and cost tables, each at most \\textwidth of a two-column paper"),
    "columnwidth": Layout("table", 221.0, "quality and cost tables, each at most one column of a two-column paper"),
    "wide": Layout("table*", None, "one table with every column (landscape pages or an appendix)"),
}
DEFAULT_LAYOUT = "textwidth"
PREAMBLE = "% requires \\usepackage{booktabs}\n"
TABCOLSEP_PT = 6.0  # LaTeX's default; outer padding is removed with @{}
MARGIN = 1.04  # the estimate's safety factor

SPECIALS = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
            "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
            # OT1, LaTeX's default font encoding, prints | < > in text as an em dash and inverted ! ?
            "|": r"\textbar{}", "<": r"\textless{}", ">": r"\textgreater{}"}

# Plain-text definitions in records -> the same formula as LaTeX math (matched exactly, so a changed definition
# falls back to escaped text rather than a stale formula; tests check every built-in one has an entry).
MATH_DEFINITIONS = {
    "||mu_r - mu_f||^2 + tr(S_r) + tr(S_f) - 2 sum sqrt(eig(sqrt(S_r) S_f sqrt(S_r))), float64, covariance "
    "denominator N-1":
    r"$\|\mu_r-\mu_f\|^2+\mathrm{tr}(\Sigma_r)+\mathrm{tr}(\Sigma_f)"
    r"-2\sum_i\sqrt{\lambda_i(\Sigma_r^{1/2}\Sigma_f\Sigma_r^{1/2})}$ with $\mu$, $\Sigma$ the feature mean and "
    r"covariance of real ($r$) and generated ($f$) clips and $\lambda_i$ the eigenvalues; float64, covariance "
    r"denominator $N-1$",
}


def latex_escape(text: str) -> str:
    return "".join(SPECIALS.get(ch, ch) for ch in str(text))


def latex_definition(text: str) -> str:
    return MATH_DEFINITIONS.get(text) or latex_escape(text)


# --- width estimate: cmr10 advance widths in pt (from the font's TFM), bold (cmbx10) about 15% wider
CHAR_PT = dict(zip("abcdefghijklmnopqrstuvwxyz", (5.0, 5.56, 4.44, 5.56, 4.44, 3.06, 5.0, 5.56, 2.78, 3.06, 5.28,
                                                   2.78, 8.33, 5.56, 5.0, 5.56, 5.28, 3.92, 3.94, 3.89, 5.56, 5.28,
                                                   7.22, 5.28, 5.28, 4.44)))
CHAR_PT.update({c: 5.0 for c in "0123456789"}, **{c: 2.78 for c in ".,:;![]'`"}, **{c: 3.89 for c in "()"},
               **{" ": 3.33, "-": 3.33, "/": 5.0, "*": 5.0, "+": 7.78, "=": 7.78})
COMMAND_PT = {r"\pm": 7.78, r"\uparrow": 5.0, r"\downarrow": 5.0, r"\,": 1.67, r"\_": 5.0, r"\%": 8.33,
              r"\&": 7.78, r"\textbar": 2.78}
ZERO_WIDTH = {r"\textbf", r"\underline", r"\scriptsize", r"\footnotesize", r"\small"}
SIZE_PT = {r"\small": 9.0, r"\footnotesize": 8.0, r"\scriptsize": 7.0}
# smaller optical sizes are relatively wider (a digit is 0.500 em in cmr10, 0.514 in cmr9, 0.531 in cmr8, 0.569 in cmr7)
OPTICAL = {10.0: 1.0, 9.0: 1.028, 8.0: 1.063, 7.0: 1.138}
TOKEN = re.compile(r"\\[A-Za-z]+|\\.|.", re.S)


def text_width(tex: str, size_pt: float = 9.0) -> float:
    """Estimated width in pt of a line of (simple) LaTeX set at `size_pt`: groups, size switches, \\textbf,
    math symbols; an unknown command counts as a wide letter, so the estimate errs wide."""
    stack: list[tuple[float, bool]] = []
    size, bold, pending_bold, width = size_pt, False, False, 0.0
    for tok in TOKEN.findall(tex):
        if tok == "{":
            stack.append((size, bold))
            bold, pending_bold = bold or pending_bold, False
        elif tok == "}":
            size, bold = stack.pop() if stack else (size, bold)
        elif tok == r"\textbf":
            pending_bold = True
        elif tok in SIZE_PT:
            size = SIZE_PT[tok]
        elif tok in ZERO_WIDTH or tok in "$^":
            continue
        else:
            pt = COMMAND_PT.get(tok, 7.5) if tok.startswith("\\") else CHAR_PT.get(tok, 7.5)
            width += pt * size / 10 * OPTICAL.get(size, 1.2) * (1.15 if bold else 1.0)
    return width


# --- cells and heads
def latex_cells(table: Table) -> pd.DataFrame:
    """LaTeX of each cell: value with its CI in \\scriptsize, math minus, † / ‡ against the reference, bold for the
    statistically best group (measured-only columns: best bold, second underlined)."""
    cells = display(table, r"$\pm$", "--", extra=lambda s: "{\\scriptsize\\," + s.strip() + "}",
                    marks=MARKS["latex"])
    cells = cells.map(lambda t: re.sub(r"(?<![\w.$])-(?=\d)", "$-$", t))
    rk = ranks(table)
    return cells.mask(rk == 1, "\\textbf{" + cells + "}").mask(rk == 2, "\\underline{" + cells + "}")


def head_lines(col: Column, body_pt: float) -> list[str]:
    """A column head on one line, or on two balanced lines when one would be wider than the column's cells."""
    words = [latex_escape(w) for w in re.split(r"[_\s]+", col.label) if w]
    if col.higher_is_better is not None:
        words[-1] += " " + ARROWS[col.higher_is_better][1]
    if len(words) == 1 or text_width(" ".join(words)) <= body_pt:
        return [" ".join(words)]
    halves = [[" ".join(words[:k]), " ".join(words[k:])] for k in range(1, len(words))]
    return min(halves, key=lambda lines: max(map(text_width, lines)))


def head(lines: list[str]) -> str:
    return lines[0] if len(lines) == 1 else r"\begin{tabular}[b]{@{}r@{}}" + r" \\ ".join(lines) + r"\end{tabular}"


def column_width(cells: pd.Series, col: Column) -> tuple[float, str]:
    body = max((text_width(c) for c in cells), default=0.0)
    lines = head_lines(col, body)
    return max([body] + [text_width(line) for line in lines]), head(lines)


def tabular(cells: pd.DataFrame, heads: list[str]) -> str:
    rows = [" & ".join([latex_escape(label), *cells.loc[label]]) + r" \\" for label in cells.index]
    return "\n".join([r"\begin{tabular}{@{}l" + "r" * len(heads) + "@{}}", r"\toprule", " & ".join(["", *heads])
                      + r" \\", r"\midrule", *rows, r"\bottomrule", r"\end{tabular}"])


def greedy(widths: list[float], label_pt: float, limit: float) -> list[list[int]]:
    out: list[list[int]] = []
    used = math.inf
    for i, w in enumerate(widths):
        step = (w + 2 * TABCOLSEP_PT) * MARGIN
        if used + step > limit and (not out or out[-1]):
            out.append([])
            used = label_pt * MARGIN
        out[-1].append(i)
        used += step
    return out


def chunks(widths: list[float], label_pt: float, limit: float | None) -> list[list[int]]:
    """Consecutive column indices per tabular: as few tabulars as fit `limit` pt each (a lone column may exceed
    it), balanced so that no tabular is much narrower than the others."""
    if limit is None:
        return [list(range(len(widths)))]
    need = len(greedy(widths, label_pt, limit))
    lo, hi = 0.0, limit  # bisect the smallest width that still needs no more tabulars
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if len(greedy(widths, label_pt, mid)) <= need else (mid, hi)
    return greedy(widths, label_pt, hi)


def tabulars(table: Table, keys: list[str], limit: float | None) -> list[str]:
    cols = [c for c in table.columns if c.key in keys]
    cells = latex_cells(table)
    sized = [column_width(cells[c.key], c) for c in cols]
    label_pt = max(text_width(latex_escape(label)) for label in cells.index)
    return [tabular(cells[[cols[i].key for i in part]], [sized[i][1] for i in part])
            for part in chunks([w for w, _ in sized], label_pt, limit)]


def float_env(layout: Layout, body: list[str], caption: list[str], label: str) -> str:
    """The caption's first sentence above the table, its notes below it in a paragraph of the float's width: LaTeX
    sets a caption on one line first to measure it, and a caption longer than TeX's largest dimension (16384 pt,
    about 35 lines at a text width: a dozen metric definitions) stops the document with 'Dimension too large'."""
    head, notes = caption[0], " ".join(caption[1:])
    below = [r"\par\smallskip", rf"\parbox{{\linewidth}}{{\footnotesize {notes}}}"] if notes else []
    return "\n".join([rf"\begin{{{layout.environment}}}[t]", r"\centering", r"\small", rf"\caption{{{head}}}",
                      rf"\label{{{label}}}", "\n\\par\\medskip\n".join(body), *below,
                      rf"\end{{{layout.environment}}}"])


# --- captions
def quality_caption(table: Table, cost_label: str | None) -> list[str]:
    rec = table.runs[0].record
    parts = [latex_escape(settings_sentence(rec))]
    for name, text, model in definitions(rec):
        parts.append(f"{latex_escape(name.replace('_', ' '))}: {latex_definition(text)}"
                     + (f" (model {latex_escape(model)})." if model else "."))
    if any(key != "sec_per_video" for _, key in table.bounds):
        parts.append(latex_escape(f"{BOUNDS_NOTE}."))
    if base_note(rec):
        parts.append(latex_escape(base_note(rec).replace("**", "")))
    parts.append(latex_escape(f"Values are means over videos; {CI_NOTE}.").replace("±", r"$\pm$"))
    refs = ", ".join(sorted(set(table.claims.references.values())))
    parts += [latex_note(SIG_NOTE.format(refs=refs))] if refs else []
    parts.append(latex_note(BEST_NOTE))
    if cost_label is None:
        parts += [latex_note(table.claims.speed_note)] + cost_notes(table)
    else:
        parts.append(rf"Costs in Table~\ref{{{cost_label}}}.")
    return parts


def latex_note(note: str) -> str:
    """A plain-text note as a LaTeX sentence (daggers and ± as LaTeX commands)."""
    return (latex_escape(sentence(note)).replace("±", r"$\pm$").replace("†", r"\dag{}")
            .replace("‡", r"\ddag{}"))


def cost_notes(table: Table) -> list[str]:
    return [latex_escape(sentence(TRAINING_NOTE))] if any(c.kind == "training" for c in table.columns) else []


def cost_caption(table: Table, quality_label: str) -> list[str]:
    mem = next(c.label for c in table.columns if c.key == "peak_mem_mb")
    return [rf"Cost of the methods in Table~\ref{{{quality_label}}}: n videos evaluated, trainable "
                     f"parameters, seconds per video (s/video: median, warm-up excluded) and {latex_escape(mem)} "
                     "of generation.", latex_note(table.claims.speed_note), *cost_notes(table), latex_note(BEST_NOTE)]


def to_latex(table: Table, label: str = "tab:t2v-bench", layout: str = DEFAULT_LAYOUT) -> str:
    """The table(s) of one group of runs in the chosen layout (see LAYOUTS)."""
    if layout not in LAYOUTS:
        raise UserError(f"LaTeX layout {layout!r}: choose from {', '.join(LAYOUTS)}")
    lay = LAYOUTS[layout]
    quality = [c.key for c in table.columns if c.kind == "metric"]
    cost = [c.key for c in table.columns if c.kind != "metric"]
    if lay.width_pt is None or not quality:
        return float_env(lay, tabulars(table, quality + cost, lay.width_pt), quality_caption(table, None), label)
    cost_label = f"{label}-cost"
    return "\n".join([float_env(lay, tabulars(table, quality, lay.width_pt), quality_caption(table, cost_label),
                                label),
                      float_env(lay, tabulars(table, cost, lay.width_pt), cost_caption(table, label), cost_label)])
