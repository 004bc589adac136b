"""What a report may claim: significance marks against the reference, statistically best groups, speed intervals,
power and leaderboard rank intervals. The statistics themselves are bench.stats; this module only asks it about
the rows of a report table."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from bench import stats
from bench.report.records import Run, method_labels

BETTER, WORSE = 1, -1
SIG_NOTE = ("† / ‡: significantly better / worse than the reference method {refs} (paired over prompts: sign-flip "
            "permutation test, Holm-adjusted p below 0.05 across the table)")
BEST_NOTE = ("Bold: the best value and every value not significantly different from it (paired test against the "
             "best, Holm across the table), shown only when some other value is significantly worse; peak memory "
             "and training columns are single measurements, their best bold and second underlined as measured")
SPEED_NOTE = ("s/video is the median seconds per video (warm-up excluded) [95% distribution-free interval of the "
              "median over timed batches, given from 6 batches on]; the fastest is bold only when every s/video has "
              "an interval and the fastest's is disjoint from the others'. Times were measured method by method (one "
              "method's videos after another's, not interleaved): drift in machine load between methods is not in "
              "the interval (t2v-bench speed measures them interleaved)")
SPEED_NOTE_INTERLEAVED = (
    "s/video is the median over {rounds} interleaved rounds of t2v-bench speed (in each round every method "
    "generated the run's first batch of {batch} video(s), in an order changed per round, after one warm-up each) "
    "[95% distribution-free interval of the median, given from 6 rounds on]; the fastest is bold only when its "
    "paired per-round time ratio against every other method has a 95% interval above 1 (geometric mean of the "
    "ratios, t interval on their logs), so no speed winner is named inside the noise")
SPEED_PARTIAL = "; an interleaved timing (t2v-bench speed) covers only {names} of these rows, so it is not used"


@dataclass
class Claims:
    """Per-cell marks of one table: (label, key) -> BETTER/WORSE vs the run's reference; key -> best group."""

    vs_reference: dict[tuple[str, str], int] = field(default_factory=dict)
    best: dict[str, set[str]] = field(default_factory=dict)
    references: dict[str, str] = field(default_factory=dict)  # run id -> reference method
    speed_bounds: dict[str, tuple[float, float]] = field(default_factory=dict)  # label -> s/video interval
    mde: dict[tuple[str, str], float] = field(default_factory=dict)  # (label, metric) -> min detectable difference
    speed_values: dict[str, float] = field(default_factory=dict)  # label -> s/video when timed interleaved
    speed_note: str = SPEED_NOTE  # how s/video was measured and when its fastest is bold


def timed_seconds(run: Run, method: str) -> list[float]:
    """Seconds per video of a method, one value per generated batch (the videos of a batch share one time, so
    they are one measurement), warm-up excluded (unless that is all there is)."""
    rows = [r for r in run.samples if r.get("method") == method and isinstance(r.get("seconds"), (int, float))]
    timed = [r for r in rows if not r.get("warmup")] or rows
    # rows of older runs carry no batch id: a batch's videos are the ones with the identical time (elapsed / size)
    units = {r.get("batch") or ("seconds", float(r["seconds"])): float(r["seconds"]) for r in timed}
    return list(units.values())


def run_comparisons(run: Run, reference: str | None = None) -> dict[str, dict[str, dict]]:
    """method -> metric -> vs_reference: the record's own (written by the runner), else computed from samples."""
    recorded = {m: {n: s["vs_reference"] for n, s in e.get("metrics", {}).items() if s.get("vs_reference")}
                for m, e in run.methods.items()}
    recorded_ref = next((d["reference"] for per in recorded.values() for d in per.values()), None)
    if any(recorded.values()) and reference in (None, recorded_ref):
        return recorded
    if not run.samples or len(run.methods) < 2:
        return {}
    metrics = list(dict.fromkeys(n for e in run.methods.values() for n in e.get("metrics", {})))
    return stats.reference_comparisons(run.samples, list(run.methods), metrics, reference,
                                       stats.load_set_references(run.folder))


def claims(runs: list[Run], metric_keys: dict[str, bool], values: dict[str, dict[str, float]],
           reference: str | None = None) -> Claims:
    """Marks for a table whose rows are `values` (label -> key -> value); metric_keys: metric -> higher is better."""
    out = Claims()
    labels = method_labels(runs)
    where = {label: (run, method) for run in runs for method in run.methods
             for label in [labels[(run.run_id, method)]]}
    for run in runs:
        comparisons = run_comparisons(run, reference if reference in run.methods else None)
        for method, per in comparisons.items():
            for name, d in per.items():
                out.references[run.run_id] = d["reference"]
                label = labels[(run.run_id, method)]
                if d.get("mde80") is not None:
                    out.mde[(label, name)] = d["mde80"]
                p, delta = d.get("p_holm"), d.get("delta")
                if p is not None and delta and p < stats.ALPHA and name in metric_keys:
                    out.vs_reference[(label, name)] = BETTER if (delta > 0) == metric_keys[name] else WORSE
    out.best = best_groups(where, metric_keys, values)
    if interleaved_claims(out, where):
        return out
    covered = [lab for lab, (run, m) in where.items() if run.methods[m].get("perf", {}).get("speed_interleaved")]
    if covered:
        out.speed_note = SPEED_NOTE + SPEED_PARTIAL.format(names=", ".join(covered))
    for label, (run, method) in where.items():
        ci = stats.median_ci(timed_seconds(run, method))
        if ci is not None:
            out.speed_bounds[label] = ci
    fastest = min((lab for lab in out.speed_bounds if _finite(values[lab].get("sec_per_video"))),
                  key=lambda lab: values[lab]["sec_per_video"], default=None)
    if fastest is not None and all(_finite(values[lab].get("sec_per_video")) == (lab in out.speed_bounds)
                                   for lab in values):
        tied = {lab for lab, (lo, _) in out.speed_bounds.items() if lo <= out.speed_bounds[fastest][1]}
        if len(tied) < len(out.speed_bounds):
            out.best["sec_per_video"] = tied
    return out


def interleaved_claims(out: Claims, where: dict[str, tuple[Run, str]]) -> bool:
    """When one `t2v-bench speed` session timed every row (one run): s/video values and intervals from it, and the
    fastest bold only when the paired round ratios put it outside the noise against every other row
    (bench.speed_stats.crown). False (nothing set) otherwise."""
    from bench import speed_stats

    entries = {lab: run.methods[m].get("perf", {}).get("speed_interleaved") or {} for lab, (run, m) in where.items()}
    sessions = {e.get("session") for e in entries.values()}
    if len({run.run_id for run, _ in where.values()}) != 1 or len(sessions) != 1 or None in sessions:
        return False
    rounds = {lab: e.get("rounds") or [] for lab, e in entries.items()}
    if len(where) < 2 or len({len(r) for r in rounds.values()}) != 1 or len(next(iter(rounds.values()))) < 2:
        return False
    for lab, e in entries.items():
        out.speed_values[lab] = float(e["sec_per_video_median"])
        if e.get("ci95_median"):
            out.speed_bounds[lab] = (float(e["ci95_median"][0]), float(e["ci95_median"][1]))
    fastest, crowned, _ = speed_stats.crown(rounds)
    if crowned:
        out.best["sec_per_video"] = {fastest}
    first = next(iter(entries.values()))
    out.speed_note = SPEED_NOTE_INTERLEAVED.format(rounds=first.get("n_rounds"), batch=first.get("batch_size"))
    return True


def best_groups(where: dict[str, tuple[Run, str]], metric_keys: dict[str, bool],
                values: dict[str, dict[str, float]]) -> dict[str, set[str]]:
    """metric -> labels tied with the best (not significantly different from it, Holm across the table); a metric
    is left out when everything ties with the best or nothing could be tested."""
    tests: list[tuple[str, str, float | None]] = []  # (metric, label, p vs the best)
    for name, higher in metric_keys.items():
        present = [lab for lab in values if _finite(values[lab].get(name))]
        if len(present) < 2:
            continue
        top = (max if higher else min)(present, key=lambda lab: values[lab][name])
        for lab in present:
            if lab != top:
                tests.append((name, lab, _p_between(where[lab], where[top], name)))
    adjusted = stats.holm([p for _, _, p in tests])
    groups: dict[str, set[str]] = {}
    for name in metric_keys:
        rows = [(lab, p) for (m, lab, _), p in zip(tests, adjusted) if m == name]
        if not rows:
            continue
        top = (set(lab for lab in values if _finite(values[lab].get(name))) - {lab for lab, _ in rows})
        tied = {lab for lab, p in rows if p is None or p >= stats.ALPHA}
        if len(tied) < len(rows):  # someone is significantly worse than the best: the best group means something
            groups[name] = top | tied
    return groups


def _p_between(a: tuple[Run, str], b: tuple[Run, str], metric: str) -> float | None:
    """Paired p of A vs B on one metric; None when the rows cannot be paired (no samples, no reference file)."""
    (run_a, m_a), (run_b, m_b) = a, b
    fd = stats.load_set_references(run_a.folder).get(metric) if any(
        r.get(f"{metric}_features") is not None for r in run_a.samples[:1]) else None
    if fd is not None:
        res = stats.compare_sets(stats.features_of(run_a.samples, m_a, metric),
                                 stats.features_of(run_b.samples, m_b, metric), fd)
    else:
        res = stats.compare_values(stats.values_of(run_a.samples, m_a, metric),
                                   stats.values_of(run_b.samples, m_b, metric))
    return None if res is None else res.p_value


def rank_interval_labels(runs: list[Run], order: list[str], metric: str, higher_is_better: bool,
                         n_resamples: int = 1000) -> dict[str, str]:
    """label -> '[lo, hi]' 95% rank interval (bootstrap over the prompts every entry has); {} when not possible."""
    labels = method_labels(runs)
    where = {labels[(r.run_id, m)]: (r, m) for r in runs for m in r.methods}
    entries = [lab for lab in order if lab in where]
    per: dict[str, dict] = {}
    fds = {r.run_id: stats.load_set_references(r.folder).get(metric) for r in runs}
    set_level = all(fds[where[lab][0].run_id] is not None for lab in entries) and bool(entries)
    for lab in entries:
        run, method = where[lab]
        if set_level:
            feats = stats.features_of(run.samples, method, metric)
            per[lab] = {pid: np.stack([f for (p, _), f in feats.items() if p == pid]) for pid, _ in feats}
        else:
            per[lab] = stats.prompt_means(stats.values_of(run.samples, method, metric))
    entries = [lab for lab in entries if per[lab]]
    prompts = sorted(set.intersection(*(set(per[lab]) for lab in entries))) if entries else []
    if len(entries) < 2 or len(prompts) < 2:
        return {}
    if set_level:
        def stat_of(idx: np.ndarray) -> np.ndarray:
            return np.array([fds[where[lab][0].run_id](np.concatenate([per[lab][prompts[i]] for i in idx]))
                             for lab in entries])
        n_resamples = min(n_resamples, 200)
    else:
        matrix = np.array([[per[lab][p] for p in prompts] for lab in entries])

        def stat_of(idx: np.ndarray) -> np.ndarray:
            return matrix[:, idx].mean(1)
    intervals = stats.rank_intervals(stat_of, len(prompts), higher_is_better, n_resamples)
    return {lab: f"[{lo}, {hi}]" for lab, (lo, hi) in zip(entries, intervals)}


def _finite(v: object) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)
