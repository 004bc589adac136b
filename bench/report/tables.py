"""run.json records -> one pandas table (methods as rows, metrics as columns with direction arrows)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from bench.store import atomic_write_bytes

PERF_COLUMNS = {"sec_per_video_median": ("s/video", False), "peak_cuda_allocated_mb": ("peak CUDA MB", False),
                "peak_rss_mb": ("peak RSS MB", False)}


def _arrow(higher_is_better: bool) -> str:
    return "↑" if higher_is_better else "↓"


def results_frame(record: dict) -> pd.DataFrame:
    """One row per method: metric values, trainable parameters, seconds per video and peak memory."""
    rows = []
    for method, entry in record["methods"].items():
        row: dict[str, object] = {"method": method}
        for metric, m in entry.get("metrics", {}).items():
            row[f"{metric} {_arrow(m.get('higher_is_better', True))}"] = m.get("value")
        params = entry.get("params", {})
        if "trainable" in params:
            row["trainable params"] = params["trainable"]
        perf = entry.get("perf", {})
        for key, (label, hib) in PERF_COLUMNS.items():
            if perf.get(key) is not None:
                row[f"{label} {_arrow(hib)}"] = perf[key]
        counts = entry.get("counts", {})
        row["n"] = counts.get("finished")
        rows.append(row)
    return pd.DataFrame(rows).set_index("method")


def run_report_markdown(record: dict) -> str:
    df = results_frame(record)
    s = record["sampling"]
    suite = record["suite"]
    lines = [f"# t2v-bench run `{record['run_id']}`", "",
             f"Suite **{suite['name']}** v{suite['version']} ({suite['n_prompts']} prompts x "
             f"{suite['samples_per_prompt']} samples), {s['num_frames']} frames {s['height']}x{s['width']}, "
             f"{s['num_inference_steps']} steps, guidance {s['guidance_scale']}, {s['dtype']} on "
             f"{record['env']['device']}.", "",
             df.to_markdown(floatfmt=".4g"), ""]
    if record["base"].get("model") == "tiny":
        lines += ["> Base model: the built-in **tiny** preset with random weights. CLIP score and frame consistency "
                  "on tiny random models are a plumbing check, not a quality signal; temporal flickering and timings "
                  "are meaningful.", ""]
    clip = next((m for e in record["methods"].values() for n, m in e.get("metrics", {}).items()
                 if n == "clip_score"), None)
    if clip:
        lines.append(f"CLIP: `{clip.get('model')}` pretrained=`{clip.get('pretrained')}`; {clip.get('definition')}.")
    lines.append(f"Harness {record['harness']['version']} @ {str(record['harness'].get('git_sha'))[:10]}"
                 f"{' (dirty)' if record['harness'].get('dirty') else ''}; generation hash "
                 f"`{record['generation_hash'][:12]}`.")
    return "\n".join(lines) + "\n"


def write_run_report(record: dict, path: Path) -> None:
    atomic_write_bytes(Path(path), run_report_markdown(record).encode())
