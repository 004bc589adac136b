"""One method's share of the plan, batch by batch: the hot loop of `Runner.generate`.

Per batch: generate, time it, hand the finished videos to a background writer (encoding and writing overlap the
next batch; a failed write still fails its item), and keep going when one batch fails. A CUDA out-of-memory halves
the batch and retries (`batch_size: auto`); any other error fails that batch's items only.
"""
from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import torch

from bench.accel import BatchSizer
from bench.api import Video
from bench.config import config_hash
from bench.errors import UserError
from bench.perf import MemoryWatch, TimeBreakdown
from bench.writer import BackgroundWriter

if TYPE_CHECKING:
    from bench.runner import Runner, WorkItem

log = logging.getLogger("t2v_bench")
OOM_HINT = "lower --batch-size, then --height/--width or --frames (or use a GPU dtype of fp16/bf16)"


def generate_method(runner: Runner, method_name: str, batches: list[list[WorkItem]], counts: dict) -> None:
    """Generate and save `batches` (this process's unfinished work for one method), updating `counts`
    (generated, failed, oom, stage_seconds) and saving the method's perf file (memory, params, time breakdown)."""
    cfg, rank = runner.cfg, runner.dist.rank
    method = runner.build_method(method_name)
    sizer = BatchSizer(cfg.batch_size, cfg.accel.auto_batch_max)
    breakdown, advance = TimeBreakdown(), runner._progress(sum(map(len, batches)), method_name)
    with MemoryWatch(runner.device) as mem, BackgroundWriter() as writer:
        stage_started = time.perf_counter()
        seen: set = set()  # batch shapes run so far: a new one pays lazy init (and compilation)
        queue = [list(b) for b in batches]  # an out-of-memory retry splits the head batch
        b_i = 0  # batches run so far
        while queue:
            batch = queue[0][:sizer.take(len(queue[0]))]
            warmup = not seen or (cfg.accel.compile and len(batch) not in seen)
            try:
                started = time.perf_counter()
                videos = method.generate([it.request for it in batch])
                elapsed = time.perf_counter() - started
            except (UserError, KeyboardInterrupt):
                raise
            except Exception as exc:  # one broken batch must not take finished work with it
                if sizer.shrink(len(batch), exc):
                    log.warning("[rank %d] %s: out of memory at batch size %d, retrying at %d", rank, method_name,
                                len(batch), sizer.size)
                    continue
                _consume(queue, len(batch))
                counts["failed"] += len(batch)
                why = f"{type(exc).__name__}: {exc}"
                if _is_oom(exc):  # a rerun cannot help: say what to lower
                    counts["oom"] = counts.get("oom", 0) + len(batch)
                    why = f"out of memory ({str(exc).strip().splitlines()[0][:120]}); {OOM_HINT}"
                log.error("[rank %d] %s failed on %s: %s", rank, method_name,
                          [f"{it.prompt_id}-s{it.sample}" for it in batch], why)
                continue
            if len(videos) != len(batch):
                raise RuntimeError(f"{method_name}.generate returned {len(videos)} videos for {len(batch)} requests")
            _consume(queue, len(batch))
            sizer.fitted(len(batch))
            seen.add(len(batch))
            b_i += 1
            waited = writer.stats.wait_seconds
            for it, video in zip(batch, videos):
                # videos of one batch share one time: the batch id keeps them one unit in bench.stats
                saved = save_item(runner, it, video, elapsed / len(batch), method, warmup,
                                  f"{rank}:{stage_started:.3f}:{b_i}", writer)
                counts["generated" if saved else "failed"] += 1
            if not warmup:
                breakdown.add(videos, time.perf_counter() - started, writer.stats.wait_seconds - waited)
            advance(len(batch))
        waited = writer.stats.wait_seconds
        failures = writer.drain()
        breakdown.add_wait(writer.stats.wait_seconds - waited)
    counts["failed"] += len(failures)
    counts["generated"] -= len(failures)
    for label, exc in failures:
        log.error("[rank %d] %s: writing %s failed: %s: %s", rank, method_name, label, type(exc).__name__, exc)
    counts["stage_seconds"] = time.perf_counter() - stage_started
    runner.store.save_method_perf(method_name, rank, {
        **mem.result(), **_method_facts(method), **sizer.record(),
        "time_breakdown": breakdown.result(writer.stats.busy_seconds)})


def save_item(runner: Runner, item: WorkItem, video: Video, seconds: float, method: Any, warmup: bool,
              batch: str | None = None, writer: BackgroundWriter | None = None) -> bool:
    """Write one finished item, with a writer in the background (a write failure is counted when it drains);
    False (not written, so never scored) when its frames are not finite."""
    if video.num_frames != item.request.num_frames:
        raise RuntimeError(f"{item.method} returned {video.num_frames} frames, {item.request.num_frames} requested")
    if not torch.isfinite(video.frames).all():
        log.error("[rank %d] %s failed on %s-s%d: the sampler produced non-finite (NaN/inf) frames; nothing "
                  "saved or scored (try fp32, a smaller guidance_scale, or check the weights)", runner.dist.rank,
                  item.method, item.prompt_id, item.sample)
        return False
    meta = {"key": item.key, "method": item.method, "sample": item.sample, "request": item.request.to_dict(),
            "seconds": seconds, "denoise_seconds": video.info.get("denoise_seconds"), "warmup": warmup,
            "batch": batch, "info": video.info, "method_config_hash": _config_hash(method)}

    def job() -> None:
        runner.store.save_item(item.method, item.prompt_id, item.sample, video.to_uint8(), video.fps, meta)

    if writer is None:
        job()
    else:
        writer.submit(f"{item.prompt_id}-s{item.sample}", job)
    return True


def _method_facts(method: Any) -> dict:
    """Parameter counts, and for trained weights that carry a training record what training them cost, and the
    method's resolved setup (scheduler, norm conventions...): for run.json."""
    cost = method.training_cost() if hasattr(method, "training_cost") else None
    extra = {"training": cost} if cost else {}
    if hasattr(method, "setup_record"):
        extra["setup"] = method.setup_record()
    if hasattr(method, "parameter_counts"):
        return {"params": method.parameter_counts(), **extra}
    from methods.base import count_parameters
    return {"params": {"trainable": count_parameters(method.trainable_parameters())}, **extra}


def _config_hash(method: Any) -> str:
    cached = getattr(method, "_t2v_bench_config_hash", None)
    if cached is None:
        cached = config_hash(method.config())
        method._t2v_bench_config_hash = cached
    return cached


def _consume(queue: list[list], n: int) -> None:
    """Drop the first n items of the head batch (the whole batch when that is all of it)."""
    if n >= len(queue[0]):
        queue.pop(0)
    else:
        queue[0] = queue[0][n:]


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, (torch.OutOfMemoryError, MemoryError)) or "out of memory" in str(exc) \
        or "can't allocate memory" in str(exc)
