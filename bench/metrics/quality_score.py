"""VBench's quality score: the weighted mean of its seven quality dimensions after min/max normalisation.

Constants from VBench scripts/constant.py (NORMALIZE_DIC, DIM_WEIGHT, QUALITY_LIST) and the rule of
scripts/cal_final_score.py: normalised = (value - Min) / (Max - Min) (not clipped), times the dimension's weight;
quality score = sum of weighted normalised values / sum of the weights. Computed from a method's per-dimension
values in the record; when some dimensions were not measured the score is over those that were, and the record
says which (`dimensions`) and `complete: false`: such a score compares only with scores over the same dimensions.
The 95% interval is a bootstrap over prompts (videos resampled jointly across dimensions).

VBench's score can be won by a still video: four of its seven dimensions reward stillness and dynamic degree weighs
only 0.5 (in the toy world a frozen video scores 0.900 against the best trained method's 0.862). So t2v-bench adds
its own `motion_gated_quality_score`, VBench's rule for flickering applied to the other stillness-rewarding
dimensions: each is credited only where the video does what its prompt asks about motion.
- On a prompt that asks for motion (not tagged static, `vbench.static_tags`), a video's subject consistency,
  background consistency and motion smoothness count only if the video moves (its VBench dynamic-degree flag);
  a still video there gets the dimension's normalisation Min (normalised 0).
- Dynamic degree counts on prompts that ask for motion only (VBench scores it on its motion prompt list);
  temporal flickering, as already, on static prompts only. Aesthetic and imaging quality are per frame: ungated.
- Then VBench's normalisation and weights, unchanged. Needs per-video dynamic degree; labelled a t2v-bench protocol.
"""
from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

NAME = "vbench_quality_score"
GATED_NAME = "motion_gated_quality_score"
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
GATED = ("subject_consistency", "background_consistency", "motion_smoothness")  # a still video maxes these


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
    entry = _entry(value, len(rows), used,
                   "VBench quality score: sum_d w_d (x_d - Min_d) / (Max_d - Min_d) / sum_d w_d over the dimensions "
                   "measured (VBench scripts/constant.py, cal_final_score.py)")
    ci = _bootstrap(_table(rows, used), used, n_boot, seed)
    if ci is not None:
        entry["ci95_bootstrap"] = [round(ci[0], 6), round(ci[1], 6)]
    return entry


def gated_table(rows: list[dict], dims: list[str], static_prompts: set[str]) -> np.ndarray:
    """Per-video values as the motion-gated score credits them (rows x dims, NaN where a dimension does not count):
    see the module docstring."""
    table = _table(rows, dims)
    asks_motion = np.array([r.get("prompt_id") not in static_prompts for r in rows])
    still = _table(rows, ["dynamic_degree"])[:, 0] < 0.5
    for j, d in enumerate(dims):
        if d in GATED:
            table[asks_motion & still, j] = QUALITY_DIMENSIONS[d][0]
        elif d == "dynamic_degree":
            table[~asks_motion, j] = math.nan
    return table


def summarise_gated(rows: list[dict], static_prompts: set[str], n_boot: int = 1000,
                    seed: int = 0) -> dict[str, Any] | None:
    """The motion-gated score's record entry, from the per-video rows; None without per-video dynamic degree or
    below two dimensions."""
    present = {d for r in rows for d, v in r.get("metrics", {}).items() if isinstance(v, (int, float))}
    used = [d for d in QUALITY_DIMENSIONS if d in present]
    if "dynamic_degree" not in used or len(used) < 2:
        return None
    table = gated_table(rows, used, static_prompts)
    value = _score_of_table(table, used)
    if value is None:
        return None
    entry = _entry(value, len(rows), used,
                   "t2v-bench motion-gated quality score: VBench's normalisation and weights; on prompts asking for "
                   "motion, subject/background consistency and motion smoothness count only for videos that move "
                   "(else the dimension's Min), dynamic degree counts on those prompts only, flickering on static ones")
    entry["static_prompts"] = sum(1 for r in rows if r.get("prompt_id") in static_prompts)
    ci = _bootstrap(table, used, n_boot, seed)
    if ci is not None:
        entry["ci95_bootstrap"] = [round(ci[0], 6), round(ci[1], 6)]
    return entry


def _entry(value: float, n: int, used: list[str], definition: str) -> dict[str, Any]:
    return {"value": round(value, 6), "n": n, "higher_is_better": True, "dimensions": used,
            "complete": len(used) == len(QUALITY_DIMENSIONS), "definition": definition,
            "constants": {d: {"min": QUALITY_DIMENSIONS[d][0], "max": QUALITY_DIMENSIONS[d][1],
                              "weight": QUALITY_DIMENSIONS[d][2]} for d in used}}


def _table(rows: list[dict], dims: list[str]) -> np.ndarray:
    return np.array([[float(r.get("metrics", {}).get(d, math.nan)) for d in dims] for r in rows], dtype=float)


def _score_of_table(table: np.ndarray, dims: list[str]) -> float | None:
    """The score of the column means over finite values (a column with none is left out)."""
    with warnings.catch_warnings():  # a column with no finite value is a NaN mean
        warnings.simplefilter("ignore", RuntimeWarning)
        means = np.nanmean(table, axis=0)
    return quality_score({d: float(v) for d, v in zip(dims, means)})


def _bootstrap(table: np.ndarray, dims: list[str], n_boot: int, seed: int) -> tuple[float, float] | None:
    """Percentile interval of the score over prompts resampled with replacement; a dimension's value in a resample
    is the mean of its finite per-video values there (static-only flickering: over the static prompts drawn)."""
    if len(table) < 2:
        return None
    rng = np.random.default_rng(seed)
    scores = [s for _ in range(n_boot)
              if (s := _score_of_table(table[rng.integers(0, len(table), len(table))], dims)) is not None]
    if len(scores) < n_boot // 2:
        return None
    return float(np.percentile(scores, 2.5)), float(np.percentile(scores, 97.5))
