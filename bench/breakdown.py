"""Per-tag breakdown of every metric: the suite's tags (VBench dimensions, our suites' tags) as groups.

Per-video metrics: `metrics.<name>.by_tag.<tag> = {mean, n, ci95: [lo, hi]}` in run.json: the mean over the n videos
whose prompt carries the tag, +- the half-width of the main table's interval (Student t over prompts, a prompt's
samples averaged first: bench.stats.mean_ci); ci95 is null below two prompts. A video counts in every tag of its
prompt.

Set-level metrics (FVD): a Frechet distance needs a set, and it is biased upward at small n (measured on the toy
default: random 2-video subsets average FVD 62-68 against 23-29 for all 12 videos, and the method order changes;
10-video subsets +2-3; tests/benchmarks/fvd_subset_bias.py). So `by_tag.<tag> = {value, n, ci95_bootstrap}` only
for tags with at least MIN_SET_VIDEOS videos, against the run's own reference set, with the summary's bootstrap
interval; the rule is in `by_tag_note`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from bench.prompts import PromptSuite
from bench.report.records import ci95

MIN_SET_VIDEOS = 10
SET_NOTE = (f"Frechet distance of the tag's generated videos against the run's reference set, only for tags with at "
            f"least {MIN_SET_VIDEOS} videos; biased upward at small n (fewer videos, larger FVD), so compare methods "
            "within a tag at equal n, never tags with each other or with the overall value; interval: the "
            "summary's bootstrap over the tag's videos")


def tag_summary(values: dict[tuple[str, int], float]) -> dict:
    """{mean, n, ci95} of per-video values keyed by (prompt_id, sample)."""
    mean = sum(values.values()) / len(values)
    half = ci95(values)
    return {"mean": round(mean, 6), "n": len(values),
            "ci95": [round(mean - half, 6), round(mean + half, 6)] if half is not None else None}


def set_tag_summary(features: list[list[float]], reference: Any, n_boot: int = 200, seed: int = 0) -> dict:
    """{value, n, ci95_bootstrap} of a set-level metric (FVD) on the features of one tag's videos, with the
    summary's interval (bench.metrics.fvd.bootstrap_fvd_ci: percentiles of resampled videos, shifted by the
    bootstrap's bias estimate). Fewer videos than features (the usual tag) resample in one batch on small Gram
    matrices (bench.stats.FixedReferenceFD): 1.1 s against the torch loop's 10.0 s at 50 videos x 400 features
    (tests/benchmarks/tag_fvd_bootstrap.py); from as many videos as features on, the torch loop (the batched
    covariance path took 237 s against 9.8 s at 600 x 400)."""
    x = np.asarray(features, dtype=np.float64)
    if len(x) >= x.shape[1]:
        import torch

        from bench.metrics.fvd import bootstrap_fvd_ci, fvd_from_features

        feats = torch.from_numpy(x)
        value, (lo, hi) = fvd_from_features(feats, reference), bootstrap_fvd_ci(feats, reference, n_boot, seed)
    else:
        from bench.stats import FixedReferenceFD

        fd = FixedReferenceFD.from_sums(reference)
        value = fd(x)
        weights = np.random.default_rng(seed).multinomial(len(x), np.full(len(x), 1 / len(x)), size=n_boot)
        resampled = fd.weighted(x, weights.astype(np.float64))
        lo, hi = np.quantile(resampled, [0.025, 0.975]) - (resampled.mean() - value)
    return {"value": round(float(value), 6), "n": len(x),
            "ci95_bootstrap": [round(float(lo), 4), round(float(hi), 4)]}


def add_tag_breakdown(results: dict[str, dict], rows: list[dict], suite: PromptSuite,
                      set_references: dict[str, Any] | None = None) -> None:
    """Adds `by_tag` to each metric summary of `results` ({method: {metric: summary}}) from per-video `rows`;
    set-level metrics in `set_references` (metric -> reference FeatureSums) from the rows' `<metric>_features`."""
    tags = {p.id: p.tags for p in suite.prompts}
    if not any(tags.values()):
        return
    set_references = set_references or {}
    for method, summaries in results.items():
        mine = [r for r in rows if r.get("method") == method]
        for name, summary in summaries.items():
            if name in set_references:
                _add_set_level(summary, name, mine, tags, set_references[name])
                continue
            groups: dict[str, dict[tuple[str, int], float]] = {}
            for r in mine:
                v = r.get("metrics", {}).get(name)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    for tag in tags.get(r.get("prompt_id"), ()):
                        groups.setdefault(tag, {})[(r["prompt_id"], int(r.get("sample", 0)))] = float(v)
            if groups:
                summary["by_tag"] = {t: tag_summary(v) for t, v in sorted(groups.items())}


def _add_set_level(summary: dict, name: str, rows: list[dict], tags: dict[str, tuple[str, ...]],
                   reference: Any) -> None:
    groups: dict[str, list[list[float]]] = {}
    for r in rows:
        if f"{name}_features" in r:
            for tag in tags.get(r.get("prompt_id"), ()):
                groups.setdefault(tag, []).append(r[f"{name}_features"])
    if not groups:
        return
    summary["by_tag_note"] = SET_NOTE
    summary["by_tag"] = {t: set_tag_summary(f, reference) for t, f in sorted(groups.items())
                         if len(f) >= MIN_SET_VIDEOS}
