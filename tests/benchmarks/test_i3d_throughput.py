"""Feature-extraction throughput of the full I3D detector at the fvd_i3d_16f input size, on CPU.

Not part of the pass/fail suite: pytest's addopts has --benchmark-skip, so this runs only with
`python -m pytest tests/benchmarks/test_i3d_throughput.py --benchmark-only`, or as a script:
`PYTHONPATH=. python tests/benchmarks/test_i3d_throughput.py [--batches 3] [--threads 2]` (prints clips/s and peak RSS).
Random weights: speed does not depend on the values.
"""
from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import torch

from bench.metrics.fvd_detectors import I3DStateDictDetector
from bench.metrics.i3d import InceptionI3d

BATCH, FRAMES, SIZE = 4, 16, 224


def _detector() -> I3DStateDictDetector:
    return I3DStateDictDetector(InceptionI3d(), source="random", sha256="random")


def _clips() -> torch.Tensor:
    # already 224x224, so the timing is the network itself (plus the uint8 -> [-1, 1] mapping)
    return torch.randint(0, 256, (BATCH, 3, FRAMES, SIZE, SIZE), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(0))


def test_i3d_feature_throughput(benchmark):
    torch.set_num_threads(2)
    det, clips = _detector(), _clips()
    feats = benchmark.pedantic(det.features, args=(clips,), rounds=2, warmup_rounds=1)
    assert feats.shape == (BATCH, 400)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    det, clips = _detector(), _clips()
    det.features(clips)  # warm-up: allocator and oneDNN primitive caches
    times = []
    for _ in range(args.batches):
        start = time.perf_counter()
        det.features(clips)
        times.append(time.perf_counter() - start)
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    med = statistics.median(times)
    print(f"torch {torch.__version__}, threads {args.threads}, batch {BATCH}x3x{FRAMES}x{SIZE}x{SIZE} uint8")
    print(f"per batch: median {med:.2f} s (min {min(times):.2f}, max {max(times):.2f}, n={len(times)}); "
          f"{BATCH / med:.2f} clips/s; peak RSS {rss_kib / 1024:.0f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
