"""Markdown tables of each metric by prompt tag (`metrics.<name>.by_tag`, see bench/breakdown.py): methods as
rows, tags as columns, each cell `mean [lo, hi]` with n videos. No best is marked: a tag holds a fraction of the videos, and an
unpaired per-tag interval cannot say that one method beats another (bench/stats.py's paired tests do that)."""
from __future__ import annotations

from bench.report.records import Run, method_labels
from bench.report.tables import ARROWS, fmt_number


def _cell(s: dict) -> str:
    ci = s.get("ci95")
    interval = f" [{fmt_number(ci[0])}, {fmt_number(ci[1])}]" if ci else ""
    return f"{fmt_number(s['mean'])}{interval} (n={s['n']})"


def tag_tables(runs: list[Run]) -> list[str]:
    labels = method_labels(runs)
    by_metric: dict[str, dict[str, dict[str, dict]]] = {}
    higher: dict[str, bool] = {}
    for run in runs:
        for method, entry in run.methods.items():
            for name, m in entry.get("metrics", {}).items():
                if m.get("by_tag"):
                    by_metric.setdefault(name, {})[labels[(run.run_id, method)]] = m["by_tag"]
                    higher[name] = bool(m.get("higher_is_better", True))
    lines: list[str] = []
    for name, rows in by_metric.items():
        tags = sorted({t for r in rows.values() for t in r})
        lines += [f"`{name}` {ARROWS[higher[name]][0]} by prompt tag (mean [95% CI] over videos with the tag; no best "
                  "is marked):", "",
                  "| method | " + " | ".join(tags) + " |", "|:--|" + "--:|" * len(tags)]
        for label, r in rows.items():
            cells = []
            for t in tags:
                if t not in r:
                    cells.append("—")
                    continue
                cells.append(_cell(r[t]))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines
