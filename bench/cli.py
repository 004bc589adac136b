"""Command line: t2v-bench run | generate | evaluate | speed | train | report | compare | leaderboard | power |
fvd-stats | score | export | ls.

Errors the user can fix print one line on stderr and exit 2 (no traceback unless --debug); Ctrl-C exits 130 and
keeps every finished video; a run with failed items exits 1.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from typing import Any, Sequence

from bench.errors import UserError


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the fix), like every other bad input; --help still prints usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"error: {self.prog}: {message} (see `{self.prog} --help`)\n")
def _batch_size(text: str) -> int | str:
    return text if text == "auto" else int(text)


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default=None, help="config name (see `t2v-bench ls configs`) or a YAML path; default: toy")
    p.add_argument("--methods", nargs="+", help="subset of methods, e.g. per_frame,animatediff or per_frame animatediff")
    p.add_argument("--prompts", help="prompt suite name or a .yaml/.jsonl file")
    p.add_argument("--samples", type=int, help="samples per prompt")
    p.add_argument("--frames", type=int, help="frames per video")
    p.add_argument("--height", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--steps", type=int, help="denoising steps")
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale")
    p.add_argument("--batch-size", type=_batch_size, help="videos per batch, or 'auto' (largest that fits)")
    p.add_argument("--seed", type=int, help="base seed of the per-sample seed rule")
    p.add_argument("--out", help="run folder (default: results/runs/<config>-<hash>, so a rerun resumes)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--dtype", choices=["fp32", "fp16", "bf16"])
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.add_argument("--reference", help="method the paired comparisons in run.json are against (default: per_frame "
                   "when present, else the first)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="t2v-bench", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (("run", "generate, evaluate and write run.json + report.md (default: the toy config)"),
                            ("generate", "only generate videos (cached, resumable)"),
                            ("evaluate", "only score the videos already generated")):
        p = sub.add_parser(name, help=help_text)
        _run_args(p)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    sp = sub.add_parser("speed", help="seconds per video of several methods, interleaved over rounds (same noise)")
    _run_args(sp)
    sp.add_argument("--rounds", type=int, default=6, help="timed rounds after one warm-up per method (default 6: "
                    "the fewest at which the exact sign-flip test can reach p < 0.05)")
    sp.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    fs = sub.add_parser("fvd-stats", help="extract FVD reference statistics once from a folder of videos")
    fs.add_argument("ref_dir", help="folder of videos (mp4, avi, gif, or folders of PNG/JPG frames)")
    fs.add_argument("--out", required=True, help="output .safetensors file")
    fs.add_argument("--detector", default="smoke", help="'smoke', 'toy' or an I3D weights file (rgb_imagenet.pt, i3d_torchscript.pt)")
    fs.add_argument("--detector-kind", default="auto", choices=["auto", "i3d_state_dict", "i3d_torchscript", "smoke", "toy"])
    fs.add_argument("--protocol", default="auto", help="fvd_i3d_16f (real I3D), fvd_smoke_<T>f or fvd_toy_<T>f; auto picks by detector")
    fs.add_argument("--layout", default="folder", choices=["folder", "ucf101"])
    fs.add_argument("--max-videos", type=int)
    fs.add_argument("--max-per-folder", type=int, help="cap per sub-folder (per class for ucf101)")
    fs.add_argument("--split-list", help="UCF-101 split file, e.g. testlist01.txt")
    fs.add_argument("--num-frames", type=int, help="smoke/toy protocols only")
    fs.add_argument("--seed", type=int, default=0)
    fs.add_argument("--device", default="cpu")
    fs.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    tr = sub.add_parser("train", help="train a method's trainable part (base frozen) or a toy-world model")
    tr.add_argument("target", help="a method name (e.g. animatediff), or vae | base | clip | video-features | flow | aesthetic-head | imaging-head")
    tr.add_argument("--config", default=None, help="train YAML (a path, or a name under bench/configs/train/)")
    tr.add_argument("--steps", type=int)
    tr.add_argument("--batch-size", type=int)
    tr.add_argument("--lr", type=float)
    tr.add_argument("--seed", type=int)
    tr.add_argument("--data", help="'toy' or a WebVid-layout folder (captions.csv + videos/)")
    tr.add_argument("--out", help="run folder for checkpoints and train.json (a rerun resumes from it)")
    tr.add_argument("--export", help="where the final weights go")
    tr.add_argument("--target-val-loss", type=float)
    tr.add_argument("--eval-every", type=int)
    tr.add_argument("--threads", type=int)
    tr.add_argument("--no-progress", action="store_true")
    tr.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    ls = sub.add_parser("ls", help="list methods, metrics, prompt suites and configs")
    ls.add_argument("what", nargs="?", choices=["methods", "metrics", "suites", "configs"])
    ls.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    _report_parsers(sub)
    _score_parsers(sub)
    return parser


def _score_parsers(sub: Any) -> None:
    sc = sub.add_parser("score", help="import a folder of videos made anywhere and score it like a generated run")
    sc.add_argument("video_dir", metavar="VIDEO_DIR", help="folder of videos (never written to)")
    sc.add_argument("--name", required=True, help="the imported set's method name in the run")
    sc.add_argument("--prompts", help="suite name, .yaml/.jsonl, VBench_full_info.json, a .txt of prompts or a "
                    "caption .csv; default: the prompts in the file names or map")
    sc.add_argument("--layout", default="auto", choices=["auto", "t2v-bench", "vbench", "csv"])
    sc.add_argument("--map", help="CSV (path,prompt[,prompt_id,sample]) or JSONL map of files to prompts")
    sc.add_argument("--config", default=None, help="config whose metrics and sampling settings apply; default: toy")
    sc.add_argument("--out", help="run folder (default: results/runs/imported-<name>-<hash>)")
    sc.add_argument("--frames", type=int, help="frames per video (default: the config's)")
    sc.add_argument("--height", type=int)
    sc.add_argument("--width", type=int)
    sc.add_argument("--resize", default="fit", choices=["fit", "refuse"],
                    help="videos of another size: centre crop + resize (fit, reported) or fail (refuse)")
    sc.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"])
    sc.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    ex = sub.add_parser("export", help="a run's videos in VBench's {prompt}-{index}.mp4 naming")
    ex.add_argument("run_dir", metavar="RUN_DIR")
    ex.add_argument("--layout", default="vbench", choices=["vbench"])
    ex.add_argument("--out", required=True, help="output folder; one sub-folder per method")
    ex.add_argument("--codec", default="lossless", choices=["lossless", "h264"],
                    help="lossless: H.264 RGB qp 0 (bit-exact); h264: yuv420p crf 23 (lossy)")
    ex.add_argument("--methods", help="comma-separated subset of the run's methods")
    ex.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)


def cmd_score(args: argparse.Namespace) -> int:
    from bench.config import load_config
    from bench.importer import score

    cfg = load_config(args.config, _overrides(args))
    result, runner = score(cfg, args.video_dir, args.name, layout=args.layout, prompts=args.prompts,
                           map_file=args.map, out_dir=args.out, resize=args.resize)
    c = runner.counts()
    print(f"{args.name}: {c['found']} found, {c['matched']} matched, {c['scored']} scored, {c['failed']} failed"
          f" (layout {runner.layout})")
    print(f"run folder: {result.out_dir}")
    return 1 if c["failed"] else 0


def cmd_export(args: argparse.Namespace) -> int:
    from bench.export import export_run

    methods = [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None
    for folder in export_run(args.run_dir, args.out, args.layout, args.codec, methods):
        print(folder)
    return 0


def _report_parsers(sub: Any) -> None:
    from bench.report.gate_defaults import DEFAULT_FAIL_ON, QUALITY_DEFAULT  # not compare.py: pandas is slow to load

    rep = sub.add_parser("report", help="tables (Markdown, LaTeX), plots and an HTML gallery from run folders")
    rep.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (or run.json files)")
    rep.add_argument("--format", default="md,latex,html,plots", help="comma-separated subset of md,latex,html,plots")
    rep.add_argument("--out", help="output folder (default: RUN_DIR/report for one run, results/reports/<ids> else)")
    rep.add_argument("--group", action="store_true", help="show runs made under different settings as separate "
                     "tables instead of refusing")
    rep.add_argument("--latex-layout", choices=("textwidth", "columnwidth", "wide"), default="textwidth",
                     help="table.tex: quality and cost tables that fit a two-column paper's \\textwidth (default) "
                     "or one column, or one wide table with every column")
    rep.add_argument("--reference", help="method the significance marks compare with (default: each record's own, "
                     "else per_frame or the first)")
    cmp_ = sub.add_parser("compare", help="regression gate: exit 0 within tolerance, 1 on a regression, 2 bad input")
    cmp_.add_argument("baseline", metavar="BASELINE", help="baseline run folder or run.json")
    cmp_.add_argument("new", metavar="NEW", help="new run folder or run.json")
    defaults = ",".join(f"{k}:{v}" for k, v in DEFAULT_FAIL_ON.items()).replace("%", "%%")  # argparse %-formats help
    cmp_.add_argument("--fail-on", help="NAME:TOL,... where TOL is relative (-1%%) or absolute (-0.5) in the metric's "
                      f"worse direction, or 'off'; defaults: every quality metric {QUALITY_DEFAULT.replace('%', '%%')}, {defaults}")
    cmp_.add_argument("--markdown", metavar="PATH", help="also write the summary table to this Markdown file")
    cmp_.add_argument("--mode", choices=["fixed", "paired"], default="fixed", help="fixed: tolerances on the "
                      "recorded values (deterministic CPU runs); paired: one-sided paired test per video on the two "
                      "runs' samples.jsonl, a regression only when NEW is worse beyond the tolerance (GPU runs)")
    lb = sub.add_parser("leaderboard", help="many run folders -> one ranked Markdown and HTML page")
    lb.add_argument("runs", nargs="+", metavar="RUN_DIR")
    lb.add_argument("--out", required=True, help="output folder for leaderboard.md and leaderboard.html")
    lb.add_argument("--rank-by", default="clip_score", help="metric (or s/video column key) to rank by")
    pw = sub.add_parser("power", help="prompts x samples needed to detect a paired difference, from a run's variance")
    pw.add_argument("run", metavar="RUN_DIR")
    pw.add_argument("--metric", required=True, help="per-video metric, e.g. clip_score")
    pw.add_argument("--delta", required=True, type=float, help="paired difference to detect, in the metric's units")
    pw.add_argument("--method", help="only this method against the reference (default: every method)")
    pw.add_argument("--reference", help="default: per_frame when present, else the first method")
    for p in (rep, cmp_, lb, pw):
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    simple = {"prompts": "prompts", "samples": "samples_per_prompt", "frames": "sampling.num_frames",
              "height": "sampling.height", "width": "sampling.width", "steps": "sampling.num_inference_steps",
              "guidance": "sampling.guidance_scale", "batch_size": "batch_size", "seed": "seed",
              "device": "device", "dtype": "dtype"}
    for attr, dotted in simple.items():
        value = getattr(args, attr, None)
        if value is not None:
            out[dotted] = value
    return out


def cmd_run(args: argparse.Namespace, stage: str) -> int:
    from bench.runner import Runner

    cfg = _config_of(args)
    from bench.distributed import init_dist

    started = time.perf_counter()
    dist = init_dist()
    from bench.stats import default_reference
    default_reference(list(cfg.methods), args.reference)  # a bad --reference fails now, not after generating
    runner = Runner(cfg, args.out, progress=not args.no_progress, dist=dist, reference=args.reference)
    try:
        result = runner.run(stage)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished videos are kept in {runner.out_dir}; rerun the same command to resume",
              file=sys.stderr)
        return 130
    elapsed = time.perf_counter() - started
    if not dist.is_main:
        return 0
    missing = failed = 0
    for method, entry in result.record.get("methods", {}).items():
        c = {**entry["counts"], **result.counts.get(method, {})}
        gap = c["planned"] - c["finished"]
        missing, failed = missing + gap, failed + c["failed"]
        print(f"{method}: {c['generated']} generated, {c['skipped']} already done, {c['failed']} failed"
              + (f", {gap} of {c['planned']} planned videos missing" if gap else ""))
    print(f"run folder: {result.out_dir}  ({elapsed:.1f} s)")
    if (result.out_dir / "report.md").exists():
        print(f"report: {result.out_dir / 'report.md'}")
    oom = sum(c.get("oom", 0) for c in result.counts.values())
    if failed or missing:
        from bench.generation import OOM_HINT
        what = f"{failed} item(s) failed" if failed else f"{missing} planned video(s) are missing"
        fix = f"{oom} ran out of memory: {OOM_HINT}" if oom else \
            ("rerun to retry them" if stage != "evaluate" else "run `t2v-bench run` with the same arguments")
        print(f"error: {what} (see the log above); {fix}", file=sys.stderr)
        return 1
    return 0


def _config_of(args: argparse.Namespace) -> Any:
    """The run config of run/generate/evaluate/speed: --config with the flags over it, --methods (comma- or
    space-separated) as its subset of methods."""
    from bench.config import load_config

    cfg = load_config(args.config, _overrides(args))
    if args.methods is None:
        return cfg
    from bench.registry import METHODS
    wanted = [m.strip() for part in args.methods for m in part.split(",") if m.strip()]
    if not wanted:
        raise UserError(f"--methods {' '.join(args.methods)!r} names no method; choose from: {', '.join(METHODS.names())}")
    for name in wanted:
        METHODS.target(name)
    return cfg.model_copy(update={"methods": {m: cfg.methods.get(m, {}) for m in wanted}})


def cmd_speed(args: argparse.Namespace) -> int:
    from bench.speed import measure, summary_lines

    try:
        folder, doc, attached = measure(_config_of(args), args.rounds, args.reference, args.out,
                                        progress=None if args.no_progress else lambda s: print(s, file=sys.stderr))
    except KeyboardInterrupt:
        print("\ninterrupted: no speed record written (a partial set of rounds is not paired)", file=sys.stderr)
        return 130
    print("\n".join(summary_lines(doc)))
    print(f"speed record: {folder / 'speed.json'}" + (f" (in run.json for {', '.join(attached)})" if attached else
                                                      " (no run.json there to add it to yet)"))
    return 0


def cmd_fvd_stats(args: argparse.Namespace) -> int:
    import json

    from bench.metrics.fvd import fvd_stats_main

    info = fvd_stats_main(args.ref_dir, args.out, detector=args.detector, protocol=args.protocol,
                          detector_kind=args.detector_kind, num_frames=args.num_frames, layout=args.layout,
                          max_videos=args.max_videos, max_per_folder=args.max_per_folder,
                          split_list=args.split_list, seed=args.seed, device=args.device)
    print(json.dumps(info, indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from bench.train import load_train_config, train

    names = ("steps", "batch_size", "lr", "seed", "data", "out", "export", "target_val_loss", "eval_every", "threads")
    cfg = load_train_config(args.config, {n: getattr(args, n) for n in names})
    try:
        record = train(args.target, cfg, progress=not args.no_progress)
    except KeyboardInterrupt:
        print("\ninterrupted: rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    reached = record["reached_target"]
    print(f"{args.target}: {record['steps']} steps, {record['train_seconds']:.1f} s training, "
          f"{record['sec_per_step_median']} s/step, val loss {record['val_loss_initial']:.4f} -> "
          f"{record['val_loss_final']:.4f}" + (f", target reached at step {reached['step']} "
                                                f"({reached['train_seconds']:.1f} s)" if reached else ""))
    print(f"weights: {record['export']}")
    return 0


def cmd_ls(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench.prompts import suite_names
    from bench.registry import METHODS, METRICS

    sections = {"methods": [f"{n}  ({METHODS.target(n)})" for n in METHODS.names()],
                "metrics": [f"{n}  ({METRICS.target(n)})" for n in METRICS.names()],
                # bench.config.config_names, without importing bench.config (its pydantic models take ~0.5 s)
                "suites": suite_names(), "configs": sorted(p.stem for p in (Path(__file__).parent / "configs").glob("*.yaml"))}
    for what, names in sections.items():
        if args.what in (None, what):
            print(f"{what}:")
            for n in names:
                print(f"  {n}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from bench.report.build import parse_formats, write_report

    files = write_report(args.runs, args.out, parse_formats(args.format), group=args.group,
                         latex_layout=args.latex_layout, reference=args.reference)
    for path in files:
        print(path)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.report.compare import compare, parse_fail_on
    from bench.report.records import load_run

    from pathlib import Path

    from bench.store import atomic_write_bytes

    gate = compare
    if args.mode == "paired":
        from bench.report.compare_paired import compare_paired as gate
    try:
        result = gate(load_run(args.baseline), load_run(args.new), parse_fail_on(args.fail_on))
    except UserError as exc:  # the summary file still says why the gate refused, so CI's artifact is never stale
        if args.markdown:
            atomic_write_bytes(Path(args.markdown), f"**not compared**: {exc}\n".encode())
        raise
    print(result.markdown(), end="")
    if args.markdown:
        atomic_write_bytes(Path(args.markdown), result.markdown().encode())
    return 1 if result.regressions else 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from bench.report.leaderboard import write_leaderboard

    for path in write_leaderboard(args.runs, args.out, args.rank_by):
        print(path)
    return 0


def cmd_power(args: argparse.Namespace) -> int:
    from bench.report.power import power_report

    print(power_report(args.run, args.metric, args.delta, args.method, args.reference), end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.debug else logging.WARNING, format="%(levelname)s: %(message)s")
    if not args.debug:  # library chatter (deprecations, random-init notices) hides the one line that matters
        import warnings
        warnings.filterwarnings("ignore")
        for name in ("diffusers", "transformers", "root", "open_clip"):
            logging.getLogger(name).setLevel(logging.ERROR)
        logging.getLogger().setLevel(logging.ERROR)
        # read when (if) diffusers / transformers load: importing them here would cost every command seconds
        os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        logging.getLogger("t2v_bench").setLevel(logging.WARNING)
    try:
        if args.command in ("run", "generate", "evaluate"):
            return cmd_run(args, "all" if args.command == "run" else args.command)
        if args.command == "fvd-stats":
            return cmd_fvd_stats(args)
        if args.command == "train":
            return cmd_train(args)
        if args.command == "ls":
            return cmd_ls(args)
        commands = {"report": cmd_report, "compare": cmd_compare, "leaderboard": cmd_leaderboard,
                    "score": cmd_score, "export": cmd_export, "power": cmd_power, "speed": cmd_speed}
        return commands[args.command](args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (FileExistsError, NotADirectoryError, IsADirectoryError, PermissionError) as exc:
        if args.debug:  # a path given where a folder (or file) was expected: the user's to fix
            raise
        print(f"error: {exc.strerror or exc}: {exc.filename}; pass another path", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
