"""Self-contained HTML gallery: summary table on top, one row per prompt, one column per method; below it each
metric by prompt tag (bench/report/tag_tables.py).

Media are copied into `<out>/media/` and referenced by relative paths, so the folder can be zipped or uploaded as a
CI artifact. Each clip is a `<video autoplay loop muted playsinline>` with an H.264 MP4 (copied from the run) and a
VP9 WebM (encoded here from the lossless .npy frames: browsers without H.264, e.g. some Chromium builds, play it),
plus a GIF (also from the .npy frames) that the page swaps in when no source decodes.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import jinja2
import numpy as np

import bench
from bench.report.plots import method_colour
from bench.report.records import Run
from bench.report.tables import build_table, caption, fmt_number, settings_line, to_html
from bench.report.tag_tables import TAG_NOTE, tag_tables_html
from bench.store import atomic_write_bytes

TEMPLATES = Path(__file__).parent / "templates"
DISPLAY_WIDTH = 160  # px per clip; the tiny 64x64 runs are upscaled (pixelated) to stay visible


def write_gif(frames: np.ndarray, path: Path, fps: int) -> None:
    import imageio.v3 as iio

    atomic_write_bytes(path, iio.imwrite("<bytes>", frames, extension=".gif", duration=1000 / max(fps, 1), loop=0))


def write_webm(frames: np.ndarray, path: Path, fps: int) -> bool:
    """VP9 WebM via PyAV; False when this FFmpeg build has no libvpx-vp9 (the MP4 and GIF remain)."""
    import av

    from bench.store import encode_video

    if "libvpx-vp9" not in av.codecs_available:
        return False
    encode_video(frames, path, fps, "libvpx-vp9")
    return True


def export_clip(run: Run, row: dict, media: Path, out: Path, fps: int) -> dict[str, Any]:
    """Copy/encode one video's media under out/media/<run>/<method>/; paths in the result are relative to out."""
    folder = run.folder or Path(".")
    stem = Path(row.get("frames") or row.get("video") or f"{row['prompt_id']}-s{row.get('sample', 0)}").stem
    target = media / run.run_id / row["method"]
    target.mkdir(parents=True, exist_ok=True)
    sources, gif = [], None
    mp4 = folder / row["video"] if row.get("video") else None
    if mp4 is not None and mp4.is_file():
        atomic_write_bytes(target / f"{stem}.mp4", mp4.read_bytes())  # a killed report leaves no half copy
        sources.append({"path": (target / f"{stem}.mp4").relative_to(out).as_posix(), "type": "video/mp4"})
    npy = folder / row["frames"] if row.get("frames") else None
    if npy is not None and npy.is_file():
        frames = np.load(npy, allow_pickle=False)
        if write_webm(frames, target / f"{stem}.webm", fps):
            sources.append({"path": (target / f"{stem}.webm").relative_to(out).as_posix(), "type": "video/webm"})
        write_gif(frames, target / f"{stem}.gif", fps)
        gif = (target / f"{stem}.gif").relative_to(out).as_posix()
    scores = [(name, fmt_number(v)) for name, v in row.get("metrics", {}).items() if isinstance(v, (int, float))]
    return {"sources": sources, "gif": gif, "seed": row.get("seed"), "scores": scores,
            "alt": f"{row['method']}: {row.get('prompt', '')}"}


def gallery_group(runs: list[Run], out: Path, plots: list[str], reference: str | None = None) -> dict[str, Any]:
    table = build_table(runs, reference)
    columns = [{"label": label, "colour": method_colour(method)} for label, (_, method) in table.rows.items()]
    prompts: dict[str, str] = {}
    cells: dict[tuple[str, str], list[dict]] = {}
    by_id = {r.run_id: r for r in runs}
    for label, (run_id, method) in table.rows.items():
        run = by_id[run_id]
        fps = int(run.record.get("sampling", {}).get("fps") or 8)
        for row in run.samples:
            if row.get("method") != method:
                continue
            prompts.setdefault(row["prompt_id"], row.get("prompt", ""))
            cells.setdefault((row["prompt_id"], label), []).append(export_clip(run, row, out / "media", out, fps))
    rows = [{"prompt_id": pid, "prompt": text, "cells": [cells.get((pid, c["label"]), []) for c in columns]}
            for pid, text in prompts.items()]
    # ids unique per group on the page (a run id may hold characters an HTML id may not)
    tags, no_tags = tag_tables_html(runs, "tags" + hashlib.sha1("\0".join(by_id).encode()).hexdigest()[:8] + "_")
    return {"settings": settings_line(runs[0]).replace("**", ""), "table_html": to_html(table),
            "caption": caption(table), "plots": plots, "columns": columns, "rows": rows,
            "tag_tables": tags, "tag_note": f"{TAG_NOTE}." if tags else "", "tag_empty": no_tags}


def write_gallery(groups: list[list[Run]], out: Path, plots: list[list[str]] | None = None,
                  reference: str | None = None) -> Path:
    """index.html + media/ under `out`; `plots[i]` are figure paths (relative to out) shown for group i."""
    out.mkdir(parents=True, exist_ok=True)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined)
    ids = [r.run_id for g in groups for r in g]
    html = env.get_template("gallery.html.j2").render(
        title=f"t2v-bench: {', '.join(ids)}", width=DISPLAY_WIDTH, version=bench.__version__,
        groups=[gallery_group(g, out, (plots or [[]] * len(groups))[i], reference) for i, g in enumerate(groups)])
    path = out / "index.html"
    atomic_write_bytes(path, html.encode("utf-8"))
    return path
