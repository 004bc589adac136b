"""VBench's quality score: the weighted mean of its seven quality dimensions after min/max normalisation.

Constants from VBench scripts/constant.py (NORMALIZE_DIC, DIM_WEIGHT, QUALITY_LIST) and the rule of
scripts/cal_final_score.py: normalised = (value - Min) / (Max - Min) (not clipped), times the dimension's weight;
quality score = sum of weighted normalised values / sum of the weights. Computed from a method's per-dimension
values in the record; when some dimensions were not measured the score is over those that were, and the record
says which (`dimensions`) and `complete: false`: such a score compares only with scores over the same dimensions.
The 95% interval is a bootstrap over prompts (videos resampled jointly across dimensions).
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

NAME = "vbench_quality_score"
# dimension: (Min, Max, weight), VBench scripts/constant.py
QUALITY_DIMENSIONS: dict[str, tuple[float, float, float]] = {
    "subject_consistency": (0.1462, 1.0, 1.0),
    "background_consistency": (0.2615, 1.0, 1.0),
    "temporal_flickering": (0.6293, 1.0, 1.0),
    "motion_smoothness": (0.706, 0.9975, 1.0),
    "aesthetic_quality": (0.0, 1.0, 1.0),
    "imaging_quality": (0.0, 1.0, 1.0),
    "dynamic_degree": (0.0, 1.0, 0.5),
}


def quality_score(values: dict[str, float]) -> float | None:
    """VBench's formula over the quality dimensions present (finite) in `values`; None if none are."""
    used = [d for d in QUALITY_DIMENSIONS if isinstance(values.get(d), (int, float)) and math.isfinite(values[d])]
    if not used:
        return None
    total = sum((values[d] - lo) / (hi - lo) * w for d in used for lo, hi, w in [QUALITY_DIMENSIONS[d]])
    return total / sum(QUALITY_DIMENSIONS[d][2] for d in used)


def summarise(metrics: dict[str, dict], rows: list[dict], n_boot: int = 1000, seed: int = 0) -> dict[str, Any] | None:
    """The record entry for one method: value, bootstrap interval over prompts, the dimensions used."""
    values = {d: m.get("value") for d, m in metrics.items() if d in QUALITY_DIMENSIONS}
    used = [d for d in QUALITY_DIMENSIONS if isinstance(values.get(d), (int, float)) and math.isfinite(values[d])]
    if len(used) < 2:  # one dimension is that dimension, not an aggregate
        return None
    value = quality_score({d: values[d] for d in used})
    entry: dict[str, Any] = {
        "value": round(value, 6), "n": len(rows), "higher_is_better": True, "dimensions": used,
        "complete": len(used) == len(QUALITY_DIMENSIONS),
        "definition": "VBench quality score: sum_d w_d (x_d - Min_d) / (Max_d - Min_d) / sum_d w_d over the "
                      "dimensions measured (VBench scripts/constant.py, cal_final_score.py)",
        "constants": {d: {"min": QUALITY_DIMENSIONS[d][0], "max": QUALITY_DIMENSIONS[d][1],
                          "weight": QUALITY_DIMENSIONS[d][2]} for d in used}}
    ci = _bootstrap(rows, used, n_boot, seed)
    if ci is not None:
        entry["ci95_bootstrap"] = [round(ci[0], 6), round(ci[1], 6)]
    return entry


def _bootstrap(rows: list[dict], dims: list[str], n_boot: int, seed: int) -> tuple[float, float] | None:
    """Percentile interval of the score over prompts resampled with replacement; a dimension's value in a resample
    is the mean of its finite per-video values there (static-only flickering: over the static prompts drawn)."""
    table = np.array([[float(r.get("metrics", {}).get(d, math.nan)) for d in dims] for r in rows], dtype=float)
    if len(table) < 2:
        return None
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(n_boot):
        sample = table[rng.integers(0, len(table), len(table))]
        with warnings.catch_warnings():  # a column with no finite value in the resample is a NaN mean
            warnings.simplefilter("ignore", RuntimeWarning)
            means = np.nanmean(sample, axis=0)
        s = quality_score({d: float(v) for d, v in zip(dims, means)})
        if s is not None:
            scores.append(s)
    if len(scores) < n_boot // 2:
        return None
    return float(np.percentile(scores, 2.5)), float(np.percentile(scores, 97.5))
