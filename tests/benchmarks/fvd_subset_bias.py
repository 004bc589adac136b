"""FVD's small-n bias on a run: the FVD of random n-video subsets of each method's videos (against the run's own
reference set) next to the value over all of them; why bench/breakdown.py gives FVD per tag only from
MIN_SET_VIDEOS videos on.

    t2v-bench run --out /tmp/toy && python tests/benchmarks/fvd_subset_bias.py /tmp/toy
"""
from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--draws", type=int, default=200)
    args = parser.parse_args()
    from bench.stats import load_set_references

    fd = load_set_references(args.run_dir)["fvd"]
    rows = [json.loads(line) for line in (args.run_dir / "samples.jsonl").read_text().splitlines()]
    rng = random.Random(0)
    for method in dict.fromkeys(r["method"] for r in rows):
        x = np.array([r["fvd_features"] for r in rows if r["method"] == method])
        cells = []
        for n in range(2, len(x) + 1, 2):
            values = [fd(x[rng.sample(range(len(x)), n)]) for _ in range(args.draws)]
            cells.append(f"n={n}: {np.mean(values):.1f} (sd {np.std(values):.1f})")
        print(f"{method}: " + "; ".join(cells))


if __name__ == "__main__":
    main()
