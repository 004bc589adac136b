"""`t2v-bench export RUN_DIR --layout vbench --out DIR`: a run's videos in VBench's naming, so VBench scores them.

DIR/<method>/{prompt}-{k}.mp4 per method (VBench evaluates one folder per model), sample k as VBench's index,
from the lossless `.npy` frames at the run's fps. Names follow bench.layouts.vbench_stem (the prompt verbatim, as
VBench's standard mode looks it up). DIR/<method>.prompts.json maps each file name to its full prompt: VBench's
`--mode custom_input --prompt_file` format, for names that had to be cut or cleaned.

Codecs: `lossless` (default): H.264 in RGB at zero loss (libx264rgb, qp 0), bit-exact through PyAV and decord;
`h264`: libx264 yuv420p at the default crf 23, what most players show, lossy (the README states its measured error).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.errors import UserError
from bench.layouts import vbench_stem
from bench.report.records import load_run
from bench.store import atomic_write_bytes, encode_video, read_json
from bench.video_io import encode_lossless

CODECS = ("lossless", "h264")


def export_run(run_dir: str | Path, out: str | Path, layout: str = "vbench", codec: str = "lossless",
               methods: list[str] | None = None) -> list[Path]:
    """Writes the export; returns the folders written (one per method)."""
    if layout != "vbench":
        raise UserError(f"--layout {layout}: export writes the vbench layout (a run folder already is t2v-bench's)")
    if codec not in CODECS:
        raise UserError(f"--codec {codec}: choose from {', '.join(CODECS)}")
    run = load_run(run_dir)
    root = run.folder
    out = Path(out)
    if out.resolve().is_relative_to(root.resolve()):
        raise UserError(f"--out {out} is inside the run folder; pass a folder outside it")
    wanted = methods or list(run.methods)
    unknown = [m for m in wanted if m not in run.methods]
    if unknown:
        raise UserError(f"--methods: {', '.join(unknown)} not in {run_dir} (it has {', '.join(run.methods)})")
    fps = int(run.record.get("sampling", {}).get("fps") or 8)
    written = []
    for method in wanted:
        folder = out / method
        names: dict[str, str] = {}
        rows = [r for r in run.samples if r.get("method") == method]
        if not rows:  # no samples.jsonl: every finished item of the folder
            rows = [read_json(p) | {"frames": str(p.with_suffix(".npy").relative_to(root))}
                    for p in sorted((root / "videos" / method).glob("*-s*.json"))]
        for r in rows:
            prompt = r.get("prompt") or r.get("request", {}).get("prompt")
            name = f"{vbench_stem(prompt)}-{r['sample']}.mp4"
            if name in names and names[name] != prompt:
                raise UserError(f"prompts '{names[name][:60]}' and '{prompt[:60]}' get the same VBench file name")
            names[name] = prompt
            frames = np.load(root / r["frames"], allow_pickle=False)
            if codec == "lossless":
                encode_lossless(frames, folder / name, fps)
            else:
                encode_video(frames, folder / name, fps, "libx264")
        atomic_write_bytes(out / f"{method}.prompts.json",
                           (json.dumps(names, indent=2, ensure_ascii=False) + "\n").encode())
        written.append(folder)
    return written
