"""`t2v-bench speed`: seconds per video measured interleaved, so every method meets the same machine noise.

`t2v-bench run` generates method by method: on a shared machine the load moves between one method's videos and the
next's (s/video of one method varied 4-5x between identical runs), so two methods' times are never comparable
within the noise. Here each method is built once, generates the run's first batch once as a warm-up (excluded),
then R rounds follow in which every method generates that same batch (same prompts, seeds, sizes), in an order
that changes per round (bench.speed_stats.round_orders). A round's times are paired: their ratio cancels the load
the round met. Nothing is written but `speed.json` (and its copy into run.json when the folder holds a run).
"""
from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from bench import speed_stats
from bench.config import RunConfig
from bench.errors import UserError
from bench.store import atomic_write_json, read_json

log = logging.getLogger("t2v_bench")
TIMER = ("wall time of method.generate on the batch (time.perf_counter), torch.cuda.synchronize before and after on "
         "CUDA, divided by the batch size; text embeddings cached after the warm-up, as in a run after its first "
         "batch")


def measure(cfg: RunConfig, rounds: int = 5, reference: str | None = None, out_dir: str | Path | None = None,
            progress: Callable[[str], None] | None = None) -> tuple[Path, dict, list[str]]:
    """Time every method of `cfg` interleaved over `rounds` rounds; writes speed.json in the run folder (the one
    `t2v-bench run` with the same config uses) and merges it into its run.json when present.
    Returns (run folder, the speed.json document, the methods whose run.json entry took it)."""
    from bench.perf import synchronize
    from bench.preflight import check_sources
    from bench.accel import is_oom
    from bench.generation import OOM_HINT
    from bench.runner import Runner
    from bench.stats import default_reference

    names = list(cfg.methods)
    if len(names) < 2:
        raise UserError("--methods: name at least two different methods to compare")
    if rounds < 2:
        raise UserError(f"--rounds {rounds}: at least 2 rounds are needed for an interval (6 or more advised)")
    ref = default_reference(names, reference)
    runner = Runner(cfg, out_dir, progress=False)  # the run's own folder, plan and loaders
    check_sources(cfg, "generate")
    runner.store.claim(cfg.model_dump(), runner.generation_hash, write=True)
    items = runner.plan()
    keys = speed_stats.first_batch_keys(items, cfg.batch_size)
    timed_items = {m: [it for it in items if it.method == m and it.key in keys[m]] for m in names}
    batches = {m: [it.request for it in timed_items[m]] for m in names}
    say = progress or (lambda s: None)
    say(f"building {', '.join(names)}")
    built = {m: runner.build_method(m) for m in names}
    device = runner.device

    def timed(m: str) -> float:
        synchronize(device)
        started = time.perf_counter()
        try:
            videos = built[m].generate(batches[m])
        except Exception as exc:
            if is_oom(exc):
                raise UserError(f"{m}: out of memory at batch size {len(batches[m])}; {OOM_HINT}") from None
            raise
        synchronize(device)
        elapsed = time.perf_counter() - started
        if len(videos) != len(batches[m]):
            raise RuntimeError(f"{m}.generate returned {len(videos)} videos for {len(batches[m])} requests")
        return elapsed / len(batches[m])

    for m in names:  # warm-up: lazy init, allocator, compilation; excluded
        timed(m)
    orders = speed_stats.round_orders(names, rounds)
    times: dict[str, list[float]] = {m: [] for m in names}
    for r, order in enumerate(orders, 1):
        for m in order:
            times[m].append(timed(m))
        say(f"round {r}/{rounds}: " + ", ".join(f"{m} {times[m][-1]:.4f}" for m in order))
    from bench.store import environment

    env = environment(device)
    meta = {"schema": "t2v-bench speed 1", "session": uuid.uuid4().hex[:12],
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "generation_hash": runner.generation_hash,
            "rounds": rounds, "warmup_per_method": 1, "batch_size": len(next(iter(batches.values()))),
            "timer": TIMER, "env": {k: env.get(k) for k in ("device", "gpu", "torch", "torch_threads", "cpu_count")
                                   if k in env}}
    doc = speed_stats.session(times, orders, ref, {m: keys[m] for m in names}, meta)
    folder = runner.out_dir
    atomic_write_json(folder / speed_stats.SPEED_FILE, doc)
    return folder, doc, merge_into_run(folder, doc, timed_items, runner.store)


def merge_into_run(folder: Path, doc: dict, timed_items: dict[str, list[Any]], store: Any) -> list[str]:
    """Add the measurement to the folder's run.json (and rewrite its report.md), for the methods whose videos in
    the folder are the ones just timed (same cache keys: same method version, options and weights)."""
    path = folder / "run.json"
    if not path.is_file():
        return []
    record = read_json(path)
    current = {m: [it.key for it in its] for m, its in timed_items.items()
               if all(store.is_done(it.method, it.prompt_id, it.sample, it.key) for it in its)}
    attached = speed_stats.attach(record, doc, current)
    if attached:
        atomic_write_json(path, record)
        from bench.report.tables import write_run_report
        write_run_report(record, folder / "report.md")
    skipped = sorted(set(doc["methods"]) - set(attached))
    if skipped:
        log.warning("run.json in %s: %s not updated (its videos there were made by another method version, options "
                    "or weights, or are missing; `t2v-bench run` adds the timing once they match)", folder,
                    ", ".join(skipped))
    return attached


def summary_lines(doc: dict) -> list[str]:
    """What `t2v-bench speed` prints: per method the median s/video and its ratio to the reference."""
    ref = doc["reference"]
    lines = [f"{doc['rounds']} interleaved rounds, batch of {doc['batch_size']}, reference {ref}:"]
    for m, e in doc["methods"].items():
        geo = e.get("ci95_geomean")
        text = (f"  {m:<20} {e['sec_per_video_median']:.4f} s/video median (geometric mean "
                f"{e['sec_per_video_geomean']:.4f}" + (f" [{geo[0]:.4f}, {geo[1]:.4f}]" if geo else "") + ")")
        vs = e.get("vs_reference")
        if vs:
            ci = vs["ci95"]
            text += (f"; x{vs['ratio_median']:.3f} {ref} (median ratio; geometric mean x{vs['ratio_geomean']:.3f}"
                     + (f" [{ci[0]:.3f}, {ci[1]:.3f}], p {vs['p_value']:.3g}, sign-flip p {vs['p_sign_flip']:.3g}"
                        if ci else "") + ")")
        lines.append(text)
    verdict = (f"fastest: {doc['fastest']} (outside the noise against every other method)" if doc["crowned"] else
               f"no speed winner: {doc['fastest']} is fastest by median, inside the noise of another method")
    return lines + [verdict]
