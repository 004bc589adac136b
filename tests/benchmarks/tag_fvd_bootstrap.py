"""Per-tag FVD with its bootstrap interval (bench.breakdown.set_tag_summary) against the summary's torch bootstrap
(bench.metrics.fvd.bootstrap_fvd_ci), side by side on random features, 1 thread, median of 3 rounds.

    python tests/benchmarks/tag_fvd_bootstrap.py
"""
from __future__ import annotations

import statistics
import time

import torch


def main() -> None:
    torch.set_num_threads(1)
    from bench.breakdown import set_tag_summary
    from bench.metrics.fvd import bootstrap_fvd_ci
    from bench.metrics.frechet import FeatureSums

    gen = torch.Generator().manual_seed(0)
    for dim, n in ((64, 12), (400, 50), (400, 600)):  # toy detector tag; I3D-sized tags, few and many videos
        ref = FeatureSums.from_features(torch.randn(1000, dim, generator=gen, dtype=torch.float64))
        feats = torch.randn(n, dim, generator=gen, dtype=torch.float64)
        ours, loop = [], []
        for _ in range(3):
            t = time.perf_counter()
            s = set_tag_summary(feats.tolist(), ref)
            ours.append(time.perf_counter() - t)
            t = time.perf_counter()
            lo, hi = bootstrap_fvd_ci(feats, ref)
            loop.append(time.perf_counter() - t)
        print(f"D={dim} n={n}: set_tag_summary {statistics.median(ours):.3f} s, bootstrap_fvd_ci "
              f"{statistics.median(loop):.3f} s; FVD {s['value']:.3f}, intervals {s['ci95_bootstrap']} vs "
              f"[{lo:.3f}, {hi:.3f}]")


if __name__ == "__main__":
    main()
