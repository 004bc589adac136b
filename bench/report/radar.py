"""VBench's radar picture: one axis per quality dimension measured, one polygon per method.

Values on each axis are VBench's min/max-normalised scores ((x - Min) / (Max - Min), scripts/constant.py), so the
axes share one 0-1 scale as on VBench's leaderboard figure; a dimension no method measured is left out.
"""
from __future__ import annotations

import math
from pathlib import Path

from bench.report.plots import _save, method_colour, plt
from bench.report.tables import Table


def radar(table: Table, out_dir: Path, stem: str = "vbench_radar") -> list[Path]:
    from bench.metrics.quality_score import QUALITY_DIMENSIONS

    dims = [d for d in QUALITY_DIMENSIONS if d in table.values.columns and table.values[d].notna().any()]
    if len(dims) < 3:  # two axes are a line, not a radar
        return []
    angles = [2 * math.pi * i / len(dims) for i in range(len(dims))]
    fig, ax = plt.subplots(figsize=(6, 6), subplot_kw={"projection": "polar"})
    lo = 0.0
    run_ids = sorted({run for run, _ in table.rows.values()})
    for label in table.values.index:
        norm = []
        for d in dims:
            mn, mx, _ = QUALITY_DIMENSIONS[d]
            v = table.values.at[label, d]
            norm.append(0.0 if math.isnan(v) else (v - mn) / (mx - mn))
        lo = min(lo, *norm)
        colour = method_colour(table.rows[label][1])
        style = ("-", "--", ":", "-.")[run_ids.index(table.rows[label][0]) % 4]  # runs differ by line style
        ax.plot(angles + angles[:1], norm + norm[:1], color=colour, linewidth=1.5, linestyle=style, label=label)
        ax.fill(angles + angles[:1], norm + norm[:1], color=colour, alpha=0.08)
    ax.set_xticks(angles, [d.replace("_", "\n") for d in dims], fontsize=8)
    ax.set_ylim(min(lo, 0.0), 1.05)
    ax.set_title("VBench quality dimensions (min/max normalised)", fontsize=10)
    ax.legend(loc="upper right", bbox_to_anchor=(1.35, 1.1), fontsize=7)
    return _save(fig, out_dir, stem)
