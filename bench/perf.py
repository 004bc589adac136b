"""Timing and memory: wall time with CUDA synchronised, peak CUDA allocated/reserved, peak RSS."""
from __future__ import annotations

import resource
import statistics
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator

import torch


def synchronize(device: torch.device | str | None = None) -> None:
    """CUDA work is asynchronous: wait for it before reading a clock."""
    if torch.cuda.is_available() and (device is None or torch.device(device).type == "cuda"):
        torch.cuda.synchronize(device)


@contextmanager
def timed(record: dict, key: str, device: torch.device | str | None = None) -> Iterator[None]:
    """Add the synchronised wall time of the block to record[key] (seconds)."""
    synchronize(device)
    start = time.perf_counter()
    try:
        yield
    finally:
        synchronize(device)
        record[key] = record.get(key, 0.0) + time.perf_counter() - start


def _read_vm_hwm_bytes() -> int | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


class MemoryWatch:
    """Peak memory over a region. CUDA peaks are reset at start; the RSS peak too where Linux allows it
    (/proc/self/clear_refs), otherwise it is the process-wide high-water mark (noted in the result)."""

    def __init__(self, device: torch.device | str):
        self.device = torch.device(device)
        self.rss_resettable = False

    def __enter__(self) -> "MemoryWatch":
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # resets VmHWM to the current RSS
            self.rss_resettable = True
        except OSError:
            self.rss_resettable = False
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)

    def result(self) -> dict[str, float | bool | None]:
        out: dict[str, float | bool | None] = {}
        hwm = _read_vm_hwm_bytes()
        if hwm is None:  # ru_maxrss is KiB on Linux, bytes on macOS
            scale = 1 if sys.platform == "darwin" else 1024
            hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
        out["peak_rss_mb"] = round(hwm / 2**20, 1)
        out["peak_rss_is_process_wide"] = not self.rss_resettable
        if self.device.type == "cuda":
            out["peak_cuda_allocated_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
            out["peak_cuda_reserved_mb"] = round(torch.cuda.max_memory_reserved(self.device) / 2**20, 1)
        return out


def percentile(values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]), the numpy default."""
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q / 100
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(samples: list[dict], num_frames: int, steps: int) -> dict[str, float | int | None]:
    """Per-method timing from per-video records ({'seconds', 'denoise_seconds', 'warmup'}); warm-up excluded
    unless it is all there is."""
    timed_samples = [s for s in samples if not s.get("warmup")] or samples
    if not timed_samples:
        return {}
    secs = [s["seconds"] for s in timed_samples]
    denoise = [s["denoise_seconds"] for s in timed_samples if s.get("denoise_seconds") is not None]
    median = statistics.median(secs)
    return {
        "n_timed": len(secs),
        "warmup_excluded": len(samples) - len(timed_samples),
        "sec_per_video_median": round(median, 4),
        "sec_per_video_p90": round(percentile(secs, 90), 4),
        "frames_per_sec": round(num_frames / median, 3) if median > 0 else None,
        "sec_per_step": round(statistics.median(denoise) / steps, 5) if denoise else None,
    }


# Per-video stage timers a method reports in Video.info (synchronised, seconds per video), and what they mean.
STAGES = {"encode_seconds": "text_encoding", "denoiser_seconds": "denoiser", "decode_seconds": "vae_decode"}


class TimeBreakdown:
    """Where a method's generation time goes: sums of the per-video stage timers over the timed (non-warm-up)
    batches, against the wall time of those batches including handing the videos to the writer. Scheduler =
    the denoising loop minus the denoiser's forward (scheduler steps, guidance arithmetic); writing = the time the
    loop waited for the background writer; other = what none of the timers covers (noise, batching, bookkeeping)."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.seconds = {name: 0.0 for name in (*STAGES.values(), "scheduler", "writing")}
        self.videos = 0

    def add(self, videos: list, wall_seconds: float, write_wait_seconds: float) -> None:
        self.wall += wall_seconds
        self.seconds["writing"] += write_wait_seconds
        self.videos += len(videos)
        for video in videos:
            info = video.info
            for key, name in STAGES.items():
                self.seconds[name] += info.get(key) or 0.0
            if info.get("denoise_seconds") is not None:
                self.seconds["scheduler"] += info["denoise_seconds"] - (info.get("denoiser_seconds") or 0.0)

    def add_wait(self, write_wait_seconds: float) -> None:
        """The final wait for the writer at the end of a method's session: counted only if batches were timed."""
        if self.videos:
            self.wall += write_wait_seconds
            self.seconds["writing"] += write_wait_seconds

    def result(self, writer_busy_seconds: float | None = None) -> dict[str, Any]:
        if not self.videos or self.wall <= 0:
            return {}
        seconds = {**self.seconds, "other": max(0.0, self.wall - sum(self.seconds.values()))}
        return {"videos": self.videos, "wall_seconds": round(self.wall, 4),
                "seconds": {k: round(v, 4) for k, v in seconds.items()},
                "share": {k: round(v / self.wall, 4) for k, v in seconds.items()},
                **({"writer_busy_seconds": round(writer_busy_seconds, 4)} if writer_busy_seconds is not None else {}),
                "timers": "synchronised (torch.cuda.synchronize on CUDA) around each stage; warm-up batches excluded"}
