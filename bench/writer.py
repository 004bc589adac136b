"""Writing finished videos in the background, so that mp4 encoding and file writes overlap the next batch.

One worker thread runs the write jobs in submission order. A job that fails is reported by `drain()` (the runner
counts its item as failed: nothing marks it done, so a rerun regenerates it); a job never fails silently. Leaving
the `with` block, normally, on an exception or on Ctrl-C, waits for every pending write first, so no finished
video is lost. At most `max_pending` jobs wait at a time: a slow disk slows generation down instead of filling
memory with frames.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("t2v_bench")
_STOP = object()


@dataclass
class WriteStats:
    jobs: int = 0
    busy_seconds: float = 0.0  # time the worker spent writing (overlaps generation)
    wait_seconds: float = 0.0  # time the caller spent blocked on the worker (does not overlap)
    failures: list[tuple[str, BaseException]] = field(default_factory=list)


class BackgroundWriter:
    """`submit(label, job)` queues `job()`; `drain()` waits for all queued jobs and returns the failures since the
    last drain as (label, exception) pairs."""

    def __init__(self, max_pending: int = 4, name: str = "t2v-bench-writer"):
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, max_pending))
        self._lock = threading.Lock()
        self.stats = WriteStats()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        while True:
            entry = self._queue.get()
            try:
                if entry is _STOP:
                    return
                label, job = entry
                started = time.perf_counter()
                try:
                    job()
                except BaseException as exc:  # reported to the caller by drain(), never swallowed
                    with self._lock:
                        self.stats.failures.append((label, exc))
                finally:
                    with self._lock:
                        self.stats.jobs += 1
                        self.stats.busy_seconds += time.perf_counter() - started
            finally:
                self._queue.task_done()

    def submit(self, label: str, job: Callable[[], None]) -> None:
        if not self._thread.is_alive():
            raise RuntimeError("the background writer has stopped; no more writes are accepted")
        started = time.perf_counter()
        self._queue.put((label, job))  # blocks while max_pending jobs wait
        self.stats.wait_seconds += time.perf_counter() - started

    def drain(self) -> list[tuple[str, BaseException]]:
        """Wait until every submitted job has run; return (and forget) the failures among them."""
        started = time.perf_counter()
        self._queue.join()
        self.stats.wait_seconds += time.perf_counter() - started
        with self._lock:
            failures, self.stats.failures = self.stats.failures, []
        for _, exc in failures:
            if not isinstance(exc, Exception):  # an interrupt or exit inside a write stops the run, as it would inline
                raise exc
        return failures

    def close(self) -> list[tuple[str, BaseException]]:
        """Drain, then stop the worker. Failures not collected by an earlier drain() are returned."""
        if not self._thread.is_alive():
            return []
        failures = self.drain()
        self._queue.put(_STOP)
        self._thread.join()
        return failures

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Also on KeyboardInterrupt: the videos already generated are written before the interrupt propagates.
        for label, failure in self.close():
            log.error("writing %s failed: %s: %s", label, type(failure).__name__, failure)
