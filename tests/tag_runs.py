"""Records with a breakdown by prompt tag, built in code for the report tests (tests/test_tag_tables.py,
tests/test_report_latex.py)."""
from __future__ import annotations

import json
from pathlib import Path

METHODS = ["per_frame", "animatediff", "magicvideo", "simda", "dual_stream", "text2video_zero", "causal_cross_frame"]
# VBench's 16 dimensions, the tags of VBench_full_info.json
VBENCH_DIMENSIONS = ["subject_consistency", "background_consistency", "temporal_flickering", "motion_smoothness",
                     "dynamic_degree", "aesthetic_quality", "imaging_quality", "object_class", "multiple_objects",
                     "human_action", "color", "spatial_relationship", "scene", "temporal_style", "appearance_style",
                     "overall_consistency"]


def tag_record(tags: list[str], methods: list[str] = METHODS, metrics: tuple[str, ...] = ("clip_score",),
               uneven: str | None = None) -> dict:
    """A run.json whose metrics have `by_tag` over `tags` (values like clip scores, wide intervals, negative lower
    bounds); the tag `uneven` has one video fewer for the second method (so its n differs between methods)."""
    out: dict = {"run_id": "tags", "methods": {}}
    for i, method in enumerate(methods):
        entry: dict = {"metrics": {}}
        for k, name in enumerate(metrics):
            by_tag = {}
            for j, tag in enumerate(tags):
                mean = 20.0 + 3.1 * i + 1.7 * j + 10 * k
                by_tag[tag] = {"mean": mean, "n": 5 - (tag == uneven and i == 1),
                               "ci95": [mean - 40.25 - j, mean + 40.25 + j]}
            entry["metrics"][name] = {"value": 25.0 + i, "higher_is_better": k % 2 == 0, "by_tag": by_tag}
        out["methods"][method] = entry
    return out


def write_tag_run(folder: Path, record: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.json").write_text(json.dumps(record))
    return folder
