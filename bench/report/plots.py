"""Figures (matplotlib, Agg): quality against seconds per video, and per-metric bars with 95% CI error bars.

Every method keeps one colour in every figure and report (`method_colours`); with several runs, runs differ by marker
(scatter) or hatch (bars). Each figure is written as PNG (for HTML/Markdown) and PDF (vector, for papers).
"""
from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless CI: never ask for a display
import matplotlib.pyplot as plt  # noqa: E402

from bench.report.tables import Table, fmt_number, header  # noqa: E402
from bench.store import atomic_write_bytes  # noqa: E402

PALETTE = matplotlib.colormaps["tab10"].colors
FALLBACK = matplotlib.colormaps["tab20b"].colors
MARKERS = "osD^vP*X"
HATCHES = ["", "//", "..", "xx", "\\\\", "oo"]


def method_colour(method: str) -> str:
    """Registered methods: their index in the sorted registry; others: a stable hash into a second palette."""
    from bench.registry import METHODS

    names = METHODS.names()
    if method in names and names.index(method) < len(PALETTE):
        rgb = PALETTE[names.index(method)]
    else:
        rgb = FALLBACK[int(hashlib.sha256(method.encode()).hexdigest()[:8], 16) % len(FALLBACK)]
    return matplotlib.colors.to_hex(rgb)


def _save(fig: plt.Figure, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    for path, dpi in zip(paths, (150, None)):  # rendered in memory, then written atomically
        buf = io.BytesIO()
        fig.savefig(buf, format=path.suffix[1:], dpi=dpi or "figure", bbox_inches="tight")
        atomic_write_bytes(path, buf.getvalue())
    plt.close(fig)
    return paths


def _grid(n: int) -> tuple[plt.Figure, list[plt.Axes]]:
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def quality_vs_time(table: Table, out_dir: Path, stem: str = "quality_vs_time") -> list[Path]:
    """One panel per quality metric: x = median s/video, y = value (95% CI bar), marker area = peak memory."""
    metrics = [c for c in table.columns if c.kind == "metric"]
    if not metrics:
        return []
    mem = table.values["peak_mem_mb"]
    mem_max = mem.max() if mem.notna().any() else 1.0
    run_ids = [r.run_id for r in table.runs]
    fig, axes = _grid(len(metrics))
    for ax, col in zip(axes, metrics):
        for label, (run_id, method) in table.rows.items():
            x, y = table.values.at[label, "sec_per_video"], table.values.at[label, col.key]
            if math.isnan(x) or math.isnan(y):
                continue
            m = mem.get(label, math.nan)
            size = 40 + 260 * (m / mem_max if not math.isnan(m) and mem_max else 0.5)
            err = table.error(label, col.key)
            colour = method_colour(method)
            ax.errorbar(x, y, yerr=None if err is None else [[err[0]], [err[1]]], fmt="none", ecolor=colour, alpha=0.6)
            ax.scatter(x, y, s=size, color=colour, marker=MARKERS[run_ids.index(run_id) % len(MARKERS)],
                       edgecolors="black", linewidths=0.5, label=label, alpha=0.85)
        ax.set_xlabel("seconds per video (median) ↓")
        ax.set_ylabel(header(col))
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    mem_col = next(c for c in table.columns if c.key == "peak_mem_mb")
    fig.legend(handles, labels, loc="upper center", ncol=min(4, max(1, len(labels))), frameon=False,
               bbox_to_anchor=(0.5, 1.0), markerscale=0.6)
    fig.text(0.5, -0.02, f"marker area ∝ {mem_col.label}; error bars: 95% CI over videos", ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0, 1, 0.92))
    return _save(fig, out_dir, stem)


def bars_figure(table: Table) -> plt.Figure | None:
    """One panel per quality metric: a bar per method (run/method) from zero, its 95% CI as error bar and its value
    written on it (bars from zero keep lengths honest; the labels show differences too small to see)."""
    metrics = [c for c in table.columns if c.kind == "metric"]
    if not metrics:
        return None
    run_ids = [r.run_id for r in table.runs]
    labels = list(table.rows)
    fig, axes = _grid(len(metrics))
    for ax, col in zip(axes, metrics):
        values = table.values[col.key].reindex(labels)
        errs = [table.error(lb, col.key) or (0.0, 0.0) for lb in labels]
        yerr = [[e[0] for e in errs], [e[1] for e in errs]]
        colours = [method_colour(table.rows[lb][1]) for lb in labels]
        bars = ax.bar(range(len(labels)), values.fillna(0.0), yerr=yerr, color=colours, capsize=3,
                      edgecolor="black", linewidth=0.5)
        for bar, lb, v in zip(bars, labels, values):
            bar.set_hatch(HATCHES[run_ids.index(table.rows[lb][0]) % len(HATCHES)])
            bar.set_visible(not math.isnan(v))  # a missing value is no bar, not a bar of height 0
        ax.bar_label(bars, ["n/a" if math.isnan(v) else fmt_number(v) for v in values], fontsize=7,
                     label_type="edge", padding=2)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_title(header(col), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.12)  # room for the labels; autoscaling keeps 0 in view (bars are sticky at their base)
    fig.tight_layout()
    return fig


def metric_bars(table: Table, out_dir: Path, stem: str = "metrics") -> list[Path]:
    fig = bars_figure(table)
    return [] if fig is None else _save(fig, out_dir, stem)


def write_plots(table: Table, out_dir: Path, prefix: str = "") -> list[Path]:
    from bench.report.radar import radar

    return quality_vs_time(table, out_dir, f"{prefix}quality_vs_time") + metric_bars(table, out_dir, f"{prefix}metrics") \
        + radar(table, out_dir, f"{prefix}vbench_radar")
