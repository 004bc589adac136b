"""Interleaved speed comparisons: the round order, the paired per-round time ratios, and who may be crowned.

`t2v-bench speed` (bench/speed.py) times every method on the same batch in each of R rounds; within a round the
methods run back to back, so they meet the same machine load, and the ratio of two methods' times in one round
cancels that load. Everything here is torch-free (reports read it).

Statistics of a ratio A / B over rounds: the per-round log ratios log(t_A / t_B). The interval and the p-value are
the paired t on the log ratios (scipy.stats.ttest_1samp): a geometric-mean ratio with a 95% t interval. It is a
parametric choice made for small R: an exact sign-flip test on R rounds cannot reach p < 0.05 below 6 rounds
(its least two-sided p is 2 / 2^R), so it is recorded beside (`p_sign_flip`, bench.stats.sign_flip_p) but does not
decide. The fastest method is crowned only when its ratio interval against every other method lies on the fast
side of 1 (an intersection-union rule: each test at 0.05, no multiplicity correction needed).
"""
from __future__ import annotations

import json
import logging
import math
import statistics
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from scipy import stats as sps

from bench import stats

log = logging.getLogger("t2v_bench")
SPEED_FILE = "speed.json"
RATIO_TEST = ("paired over interleaved rounds: geometric-mean ratio of the per-round times with a 95% t interval "
              "and two-sided t-test p on the log ratios (scipy.stats.ttest_1samp); p_sign_flip: exact sign-flip "
              "permutation p on the log ratios (least attainable 2/2^R)")


def round_orders(methods: list[str], rounds: int) -> list[list[str]]:
    """The order of the methods in each round: round r starts at method r mod n and runs forward on even rounds,
    backward on odd ones. Every method leads in turn, and every method runs both before and after every other
    within 3 rounds (2 for two methods), so no method always follows another."""
    n = len(methods)
    out = []
    for r in range(rounds):
        start, step = r % n, 1 if r % 2 == 0 else -1
        out.append([methods[(start + step * i) % n] for i in range(n)])
    return out


def _clean(times: Iterable[float]) -> np.ndarray:
    x = np.asarray([float(t) for t in times], dtype=float)
    if x.size and (not np.all(np.isfinite(x)) or np.any(x <= 0)):
        raise ValueError("round times must be positive and finite")
    return x


def summarize_rounds(times: list[float]) -> dict[str, Any]:
    """One method's per-round seconds per video: median (with the distribution-free interval of the median, from
    6 rounds on) and the geometric mean with its 95% t interval over rounds."""
    x = _clean(times)
    logs = np.log(x)
    ci = stats.mean_ci(list(logs))
    median_ci = stats.median_ci(list(x))
    return {"rounds": [round(float(t), 6) for t in x], "n_rounds": int(x.size),
            "sec_per_video_median": round(float(np.median(x)), 6),
            "ci95_median": None if median_ci is None else [round(v, 6) for v in median_ci],
            "sec_per_video_geomean": round(float(np.exp(logs.mean())), 6),
            "ci95_geomean": None if ci is None else [round(float(np.exp(v)), 6) for v in ci]}


def ratio_test(a: list[float], b: list[float]) -> dict[str, Any]:
    """A's time over B's, paired by round (A's round i against B's round i): median and geometric-mean ratio, 95%
    t interval of the geometric mean, t-test p and exact sign-flip p on the log ratios. ci95 is None below two
    rounds."""
    xa, xb = _clean(a), _clean(b)
    if xa.size != xb.size or xa.size == 0:
        raise ValueError(f"paired rounds needed: {xa.size} vs {xb.size}")
    d = np.log(xa) - np.log(xb)
    out: dict[str, Any] = {"ratio_median": round(float(np.exp(np.median(d))), 6),
                           "ratio_geomean": round(float(np.exp(d.mean())), 6), "n_rounds": int(d.size),
                           "ci95": None, "p_value": None, "p_sign_flip": None, "test": RATIO_TEST}
    if d.size < 2:
        return out
    if np.ptp(d) <= 1e-12 * max(1.0, abs(float(d.mean()))):  # the same ratio in every round: no spread
        lo = hi = float(d.mean())
        p = 1.0 if abs(lo) <= 1e-12 else 0.0
    else:
        res = sps.ttest_1samp(d, 0.0)
        ci = res.confidence_interval(stats.LEVEL)
        lo, hi, p = float(ci.low), float(ci.high), float(res.pvalue)
    out.update(ci95=[round(math.exp(lo), 6), round(math.exp(hi), 6)], p_value=round(p, 6),
               p_sign_flip=round(stats.sign_flip_p(np.log(xa), np.log(xb)), 6))
    return out


def crown(rounds: dict[str, list[float]]) -> tuple[str | None, bool, dict[str, dict]]:
    """(fastest by median round time, whether it is crowned, its ratio test against each other method as
    other / fastest). Crowned only when every such interval lies above 1."""
    if len(rounds) < 2:
        return None, False, {}
    fastest = min(rounds, key=lambda m: (statistics.median(rounds[m]), m))
    tests = {m: ratio_test(t, rounds[fastest]) for m, t in rounds.items() if m != fastest}
    crowned = all(t["ci95"] is not None and t["ci95"][0] > 1.0 for t in tests.values())
    return fastest, crowned, tests


def session(rounds: dict[str, list[float]], orders: list[list[str]], reference: str, batch: dict[str, list[str]],
            meta: dict[str, Any]) -> dict[str, Any]:
    """speed.json: per method its rounds summary and its ratio test against the reference (method / reference);
    `batch` holds each method's timed cache keys, so a record only takes the measurement of the same videos."""
    methods: dict[str, Any] = {}
    for m, times in rounds.items():
        entry = {**summarize_rounds(times), "batch_keys": batch[m]}
        if m != reference:
            entry["vs_reference"] = {"reference": reference, **ratio_test(times, rounds[reference])}
        methods[m] = entry
    fastest, crowned, _ = crown(rounds)
    return {**meta, "reference": reference, "round_orders": orders, "fastest": fastest, "crowned": crowned,
            "methods": methods}


def attach(record: dict, doc: dict, keys: dict[str, Iterable[str]]) -> list[str]:
    """Copy a speed.json's per-method results into record['methods'][m]['perf']['speed_interleaved'] for the
    methods whose timed videos are among the record's own (`keys`: method -> its cache keys); returns those."""
    attached = []
    common = {k: doc.get(k) for k in ("session", "created_at", "warmup_per_method", "batch_size",
                                      "timer", "reference", "env")}
    methods = list(doc.get("methods", {}))
    for m, entry in doc.get("methods", {}).items():
        target = record.get("methods", {}).get(m)
        if target is None or not entry.get("batch_keys") or not set(entry["batch_keys"]) <= set(keys.get(m, ())):
            continue
        target.setdefault("perf", {})["speed_interleaved"] = {
            **common, "methods": methods, **{k: v for k, v in entry.items() if k != "batch_keys"}}
        attached.append(m)
    return attached


def attach_file(record: dict, folder: Path, keys: dict[str, Iterable[str]]) -> list[str]:
    """attach() from the run folder's speed.json when there is one (the runner calls this before writing run.json,
    so a run made after `t2v-bench speed` keeps its measurement)."""
    path = Path(folder) / SPEED_FILE
    if not path.is_file():
        return []
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s); the interleaved timing is left out of run.json", path, exc)
        return []
    attached = attach(record, doc, keys)
    stale = sorted(set(doc.get("methods", {})) & set(record.get("methods", {})) - set(attached))
    if stale:
        log.warning("%s: the interleaved timing of %s was made on other videos (another method version, option or "
                    "weights); rerun `t2v-bench speed` to time these", path, ", ".join(stale))
    return attached


def plan_keys(items: Iterable[Any]) -> dict[str, set[str]]:
    """method -> the cache keys of its planned items."""
    out: dict[str, set[str]] = {}
    for it in items:
        out.setdefault(it.method, set()).add(it.key)
    return out


def first_batch_keys(items: Iterable[Any], batch_size: int | str) -> dict[str, list[str]]:
    """Per method, the cache keys of the run's first batch (what `t2v-bench speed` times): the first batch_size
    items of its plan; under batch_size auto, the first one (an auto run starts at one video)."""
    size = 1 if batch_size == "auto" else int(batch_size)
    out: dict[str, list[str]] = {}
    for it in items:
        mine = out.setdefault(it.method, [])
        if len(mine) < size:
            mine.append(it.key)
    return out
