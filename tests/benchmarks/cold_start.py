"""Cold start of the CLI: wall time of `t2v-bench ls`, `--help` and `compare` in fresh interpreters, against a bare
`python -c pass`, interleaved, median of N rounds.

    python tests/benchmarks/cold_start.py [--rounds 7] [--out results/cold_start.json]
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

BASELINE = str(Path(__file__).resolve().parents[2] / "results" / "baselines" / "toy.json")
COMMANDS = {"python -c pass": [sys.executable, "-c", "pass"],
            "t2v-bench ls": [sys.executable, "-m", "bench.cli", "ls"],
            "t2v-bench --help": [sys.executable, "-m", "bench.cli", "--help"],
            "t2v-bench compare": [sys.executable, "-m", "bench.cli", "compare", BASELINE, BASELINE],
            "import torch": [sys.executable, "-c", "import torch"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", default="results/cold_start.json")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    cpu: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for _ in range(args.rounds):
        for name, cmd in COMMANDS.items():
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times[name].append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)  # CPU time: what a busy machine does not inflate
            cpu[name].append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    result = {name: {"median_s": round(statistics.median(t), 3), "all_s": [round(x, 3) for x in t],
                     "median_cpu_s": round(statistics.median(cpu[name]), 3)} for name, t in times.items()}
    for name, r in result.items():
        print(f"{name:20s} median {r['median_s']:.3f} s wall, {r['median_cpu_s']:.3f} s CPU")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rounds": args.rounds, "results": result}, indent=2))


if __name__ == "__main__":
    main()
