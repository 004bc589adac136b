"""Each metric by prompt tag (`metrics.<name>.by_tag`, see bench/breakdown.py): `tag_data` gathers the numbers once
for the Markdown tables here, the LaTeX floats (latex_tags.py) and the HTML tables (html.py).

Each cell is a value with its 95% interval (± for the t interval, [lo, hi] for FVD's bootstrap) and n videos. No
best is marked: a tag holds a fraction of the videos, and an unpaired per-tag interval cannot say that one method
beats another (bench/stats.py's paired tests do that).
"""
from __future__ import annotations

from dataclasses import dataclass

from bench.report.records import Run, method_labels
from bench.report.tables import ARROWS, fmt_number

TAG_NOTE = ("By prompt tag: the mean over the n videos whose prompt carries the tag, ± the main table's 95% interval "
            "(Student t over prompts, a prompt's samples averaged first); [lo, hi]: the record's interval (FVD: "
            "bootstrap). No best is marked: a tag holds a few videos, and an unpaired interval cannot say that one "
            "method beats another (the paired tests do)")


@dataclass(frozen=True)
class TagCell:
    value: float
    interval: tuple[float, float] | None
    n: int
    symmetric: bool = True  # a t interval (value +- half-width); False: a record's [lo, hi] (FVD's bootstrap)

    def text(self, pm: str = "±") -> tuple[str, str]:
        """(value, "± half" or "[lo, hi]" or ""): at the value's decimals, as the main table shows intervals."""
        value = fmt_number(self.value)
        if self.interval is None:
            return value, ""
        decimals = len(value.split(".")[1]) if "." in value else 0
        lo, hi = self.interval
        if self.symmetric:
            return value, f"{pm} {fmt_number((hi - lo) / 2, decimals)}"
        return value, f"[{fmt_number(lo, decimals)}, {fmt_number(hi, decimals)}]"


@dataclass
class TagTable:
    metric: str
    higher_is_better: bool
    tags: list[str]
    cells: dict[str, dict[str, TagCell]]  # method label -> tag -> cell (a tag a method lacks is absent)
    note: str | None = None  # the record's `by_tag_note` (set-level metrics: how the value was computed)

    @property
    def title(self) -> str:
        return f"{self.metric} {ARROWS[self.higher_is_better][0]} by prompt tag"

    def n_of(self, tag: str) -> int | None:
        """The tag's n when every method has the same (then the heads say it once), else None."""
        ns = {row[tag].n for row in self.cells.values() if tag in row}
        return ns.pop() if len(ns) == 1 else None


def _cell(s: dict) -> TagCell:
    interval = s.get("ci95") or s.get("ci95_bootstrap")  # per-video metrics: t interval; set-level: bootstrap
    return TagCell(float(s["mean"] if "mean" in s else s["value"]),
                   (float(interval[0]), float(interval[1])) if interval else None, int(s["n"]), "ci95" in s)


def tag_data(runs: list[Run]) -> tuple[list[TagTable], list[str]]:
    """The per-tag tables of a group of runs (one per metric, in record order), and one line per metric that has
    a `by_tag_note` but no tag it could be computed for (FVD on a small suite)."""
    labels = method_labels(runs)
    tables: dict[str, TagTable] = {}
    notes: dict[str, str] = {}
    for run in runs:
        for method, entry in run.methods.items():
            for name, m in entry.get("metrics", {}).items():
                if m.get("by_tag_note"):
                    notes[name] = str(m["by_tag_note"])
                if not m.get("by_tag"):
                    continue
                table = tables.setdefault(name, TagTable(name, bool(m.get("higher_is_better", True)), [], {}))
                table.cells[labels[(run.run_id, method)]] = {t: _cell(s) for t, s in m["by_tag"].items()}
    for name, table in tables.items():
        table.tags = sorted({t for row in table.cells.values() for t in row})
        table.note = notes.get(name)
    empty = [f"{name} by prompt tag: none. {sentence(note)}" for name, note in notes.items() if name not in tables]
    return list(tables.values()), empty


def sentence(text: str) -> str:
    return text if text.endswith(".") else f"{text}."


def tag_label(table: TagTable, tag: str) -> str:
    """The tag as a head: with its n when every method has the same (else each cell says its n)."""
    n = table.n_of(tag)
    return tag if n is None else f"{tag} (n={n})"


def cell_text(table: TagTable, label: str, tag: str, space: str = " ") -> str:
    """Plain-text cell `value ± half` or `value [lo, hi]` (+ ` (n=k)` when the tag's n differs between methods);
    `space` joins the interval's parts (HTML: a no-break space, so a cell wraps only between value and interval)."""
    cell = table.cells[label].get(tag)
    if cell is None:
        return "—"
    value, interval = cell.text()
    n = "" if table.n_of(tag) is not None else f" (n={cell.n})"
    return value + (" " + interval.replace(" ", space) if interval else "") + n


def tag_tables(runs: list[Run]) -> list[str]:
    """Markdown: per metric, methods as rows and tags as columns."""
    tables, empty = tag_data(runs)
    if not tables and not empty:
        return []
    lines = [f"{TAG_NOTE}.", ""]
    for t in tables:
        lines += [f"`{t.metric}` {ARROWS[t.higher_is_better][0]} by prompt tag"
                  + (f": {sentence(t.note)}" if t.note else ":"), "",
                  "| method | " + " | ".join(tag_label(t, tag) for tag in t.tags) + " |",
                  "|:--|" + "--:|" * len(t.tags)]
        lines += [f"| {label} | " + " | ".join(cell_text(t, label, tag) for tag in t.tags) + " |" for label in t.cells]
        lines.append("")
    return lines + [*(f"- {line}" for line in empty), *([""] if empty else [])]


def tag_tables_html(runs: list[Run], uuid: str = "tags") -> tuple[list[dict[str, str | None]], list[str]]:
    """HTML: per metric {title, note, html} (methods as rows, tags as columns, every name escaped), and the lines
    for metrics without a table (as tag_data)."""
    import pandas as pd

    tables, empty = tag_data(runs)
    out: list[dict[str, str | None]] = []
    for i, t in enumerate(tables):
        frame = pd.DataFrame({tag_label(t, tag): {label: cell_text(t, label, tag, "\u00a0") for label in t.cells}
                              for tag in t.tags}, dtype=object)
        styler = frame.style.format(escape="html").format_index(escape="html", axis=0)
        styler = styler.format_index(escape="html", axis=1).set_uuid(f"{uuid}{i}")
        out.append({"title": t.title, "note": sentence(t.note) if t.note else None,
                    "html": styler.set_table_attributes('class="tags"').to_html()})
    return out, empty
