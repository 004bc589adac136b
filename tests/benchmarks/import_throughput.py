"""Import-and-score throughput (`t2v-bench score` on an exported folder) against scoring the same videos in their
run folder (`t2v-bench evaluate`), side by side in one process, rounds interleaved; plus the error of the lossy
`export --codec h264` option (pixels and metric values) against the lossless default.

    python tests/benchmarks/import_throughput.py [--config toy] [--methods per_frame] [--samples 2] [--rounds 3]

Both timings cover the whole stage: building the metrics, reading the videos, scoring, writing the record (the
import adds scanning, sha256, decoding, the conform rule and writing the lossless frames).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="toy")
    parser.add_argument("--methods", default="per_frame")
    parser.add_argument("--samples", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from bench.config import load_config
    from bench.export import export_run
    from bench.importer import score
    from bench.runner import Runner
    from bench.video_io import decode

    cfg = load_config(args.config, {"samples_per_prompt": args.samples, "device": "cpu"})
    method = args.methods.split(",")[0]
    cfg = cfg.model_copy(update={"methods": {method: cfg.methods.get(method, {})}})
    tmp = Path(tempfile.mkdtemp(prefix="import-bench-"))
    gen = tmp / "gen"
    Runner(cfg, gen, progress=False).run("all")
    n = len(list((gen / "videos" / method).glob("*.npy")))
    export_run(gen, tmp / "vb")
    export_run(gen, tmp / "vb264", codec="h264")

    evaluate_s, import_s = [], []
    for r in range(args.rounds):
        started = time.perf_counter()
        Runner(cfg, gen, progress=False).run("evaluate")
        evaluate_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        score(cfg, str(tmp / "vb" / method), "imported", prompts=cfg.prompts, out_dir=tmp / f"imp{r}",
              say=lambda line: None)
        import_s.append(time.perf_counter() - started)
    ev, im = statistics.median(evaluate_s), statistics.median(import_s)

    def values(run: Path, name: str) -> dict:
        return {k: v["value"] for k, v in json.loads((run / "run.json").read_text())["methods"][name]["metrics"].items()}

    ref = values(gen, method)
    lossless = values(tmp / "imp0", "imported")
    score(cfg, str(tmp / "vb264" / method), "h264", prompts=cfg.prompts, out_dir=tmp / "imp264", say=lambda line: None)
    lossy = values(tmp / "imp264", "h264")
    errs = []
    prompt_file = json.loads((tmp / "vb264" / f"{method}.prompts.json").read_text())
    rows = [json.loads(line) for line in (gen / "samples.jsonl").read_text().splitlines()]
    by_prompt = {(r["prompt"], r["sample"]): r for r in rows}
    for name, prompt in prompt_file.items():
        sample = int(name.rsplit("-", 1)[1].split(".")[0])
        a = np.load(gen / by_prompt[(prompt, sample)]["frames"]).astype(float)
        b = decode(tmp / "vb264" / method / name).frames.astype(float)
        errs.append(np.abs(a - b))
    err = np.concatenate([e.ravel() for e in errs])
    mse = float((err ** 2).mean())
    out = {
        "videos": n, "rounds": args.rounds, "threads": args.threads, "config": args.config, "method": method,
        "evaluate_s": [round(x, 2) for x in evaluate_s], "import_and_score_s": [round(x, 2) for x in import_s],
        "evaluate_videos_per_s": round(n / ev, 3), "import_videos_per_s": round(n / im, 3),
        "import_over_evaluate_time": round(im / ev, 3),
        "lossless_max_abs_metric_diff": max(abs(lossless[k] - ref[k]) for k in ref if ref[k] is not None),
        "h264_pixel_mean_abs_error": round(float(err.mean()), 3), "h264_pixel_max_abs_error": int(err.max()),
        "h264_psnr_db": round(10 * np.log10(255 ** 2 / mse), 2) if mse else None,
        "h264_metric_diff": {k: round(lossy[k] - ref[k], 6) for k in ref if ref[k] is not None},
        "reference_values": ref,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
