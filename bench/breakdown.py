"""Per-tag breakdown of every per-video metric: the suite's tags (VBench dimensions, our suites' tags) as groups.

`metrics.<name>.by_tag.<tag> = {mean, n, ci95: [lo, hi]}` in run.json: the mean over the videos whose prompt
carries the tag, with the report's interval (mean +- 1.96 standard errors, normal approximation; null below two
videos). A video counts in every tag of its prompt. Set-level metrics without per-video values (FVD) get none:
a Frechet distance per tag would need a reference set per tag.
"""
from __future__ import annotations

import math

from bench.prompts import PromptSuite
from bench.report.records import ci95


def tag_summary(values: list[float]) -> dict:
    mean = sum(values) / len(values)
    half = ci95(values)
    return {"mean": round(mean, 6), "n": len(values),
            "ci95": [round(mean - half, 6), round(mean + half, 6)] if half is not None else None}


def add_tag_breakdown(results: dict[str, dict], rows: list[dict], suite: PromptSuite) -> None:
    """Adds `by_tag` to each metric summary of `results` ({method: {metric: summary}}) from per-video `rows`."""
    tags = {p.id: p.tags for p in suite.prompts}
    if not any(tags.values()):
        return
    for method, summaries in results.items():
        mine = [r for r in rows if r.get("method") == method]
        for name, summary in summaries.items():
            groups: dict[str, list[float]] = {}
            for r in mine:
                v = r.get("metrics", {}).get(name)
                if isinstance(v, (int, float)) and math.isfinite(v):
                    for tag in tags.get(r.get("prompt_id"), ()):
                        groups.setdefault(tag, []).append(float(v))
            if groups:
                summary["by_tag"] = {t: tag_summary(v) for t, v in sorted(groups.items())}
