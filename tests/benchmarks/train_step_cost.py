"""Seconds per training step of each trainable method, side by side in one process (not a test).

    HF_HUB_OFFLINE=1 python tests/benchmarks/train_step_cost.py [--rounds 5] [--steps 5] [--out FILE.json]

Each method's task is built from its shipped toy train config (bench/configs/train/toy-<name>.yaml: toy base,
batch 4 clips of 8 frames at 32x32, AdamW), with fewer training clips so building is quick (the step itself does
not depend on the pool size). Methods run round-robin, `--steps` optimizer steps each per round, the first round is
a warm-up, so machine-load drift hits all of them alike. Prints and writes median s/step and the ratio to
animatediff. The training runs' own s/step (bench/toy/weights/README.md) were taken at different times.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

from bench.train import _step_generator, build_task, load_train_config  # noqa: E402

CONFIGS = {"animatediff": "toy-animatediff", "magicvideo": "toy-magicvideo", "simda": "toy-simda",
           "dual_stream": "toy-dual-stream", "motion_lora": "toy-motion-lora-left"}
TARGETS = {"motion_lora": "motion-lora"}  # train targets whose name is not the method's


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--methods", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=5, help="optimizer steps per method per round")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="results/.benchmarks/train_step_cost.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    tasks, opts = {}, {}
    for name in args.methods:
        cfg = load_train_config(CONFIGS[name], {"num_train": 16, "num_val": 4})
        torch.manual_seed(cfg.seed)
        tasks[name] = (build_task(TARGETS.get(name, name), cfg), cfg)
        opts[name] = torch.optim.AdamW(tasks[name][0].parameters(), lr=cfg.lr)
    times: dict[str, list[float]] = {name: [] for name in tasks}
    step = 0
    for r in range(args.rounds + 1):
        for name, (task, cfg) in tasks.items():
            for _ in range(args.steps):
                step += 1
                t0 = time.perf_counter()
                loss = task.loss(_step_generator(cfg.seed, step), cfg.batch_size)
                opts[name].zero_grad(set_to_none=True)
                loss.backward()
                opts[name].step()
                if r:  # round 0 is the warm-up
                    times[name].append(time.perf_counter() - t0)
    median = {name: statistics.median(v) for name, v in times.items()}
    ref = median.get("animatediff", next(iter(median.values())))
    record = {"benchmark": "train_step_cost", "threads": args.threads, "rounds": args.rounds,
              "steps_per_round": args.steps, "torch": torch.__version__,
              "sec_per_step_median": {k: round(v, 4) for k, v in median.items()},
              "ratio_to_animatediff": {k: round(v / ref, 3) for k, v in median.items()},
              "trainable_parameters": {k: sum(p.numel() for p in t.parameters()) for k, (t, _) in tasks.items()}}
    print(json.dumps(record, indent=1))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    return record


if __name__ == "__main__":
    main()
