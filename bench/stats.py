"""Which differences are real: every interval, test and power number of t2v-bench, on scipy.stats.

All methods of a run see the same prompts and the same seeds, so their per-video values are paired by
(prompt_id, sample); the paired difference cancels prompt difficulty, which dominates the spread. The unit of
resampling is the prompt: a prompt's paired differences are averaged first (with one sample per prompt that is the
pair itself), so several seeds of one prompt do not count as independent evidence.

- single values: t interval of the mean over prompt means (`mean_ci`); seconds per video: the distribution-free
  interval of the median (`median_ci`, scipy.stats.quantile_test);
- paired differences: BCa bootstrap interval (scipy.stats.bootstrap, paired) and a sign-flip permutation p-value
  (scipy.stats.permutation_test, permutation_type='samples'; exact when 2^n_prompts <= n_resamples), Holm-adjusted
  across a table (`holm`);
- set-level metrics (FVD): the same two procedures over prompts of the FVD difference, recomputed from per-video
  detector features against the run's fixed reference statistics (`FixedReferenceFD`);
- power (how many videos a difference needs): bench/power.py.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any, Callable, Iterable

import numpy as np
from scipy import stats

from bench.power import ALPHA, POWER, min_detectable  # the significance level every test here uses

LEVEL = 0.95
N_RESAMPLES = 9999  # per-video metrics: vectorised; exact sign flips up to 13 prompts (a decision at the Holm
# threshold should not flip with Monte Carlo noise; scipy's enumeration costs ~0.1 s at 12 prompts)
N_RESAMPLES_SET = 1999  # set-level metrics: two Fréchet distances per resample (batched; small Gram matrices
# while videos < feature dimensions); least two-sided p 0.001, so Holm across a few dozen tests can still reject
TEST_NAME = ("paired over prompts (pairs matched by prompt_id, sample); 95% BCa bootstrap CI (scipy.stats.bootstrap), "
             "two-sided sign-flip permutation p (scipy.stats.permutation_test); p_holm: Holm across the table")
TEST_NAME_SET = ("set-level, paired over prompts: 95% BCa bootstrap CI of the FVD difference, two-sided permutation "
                 "p swapping the two methods' videos per prompt (scipy.stats.bootstrap / permutation_test); "
                 "p_holm: Holm across the table")
CI_NOTE = ("± is the 95% t interval of the mean (Student t over prompts; a prompt's samples are averaged first, "
           "so seeds of one prompt are not counted as independent)")
Key = tuple[str, int]  # (prompt_id, sample)


# ---------------------------------------------------------------------------------------------- single values
def prompt_means(values: dict[Key, float]) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for (pid, _), v in values.items():
        groups.setdefault(pid, []).append(v)
    return {pid: float(np.mean(v)) for pid, v in groups.items()}


def mean_ci(values: dict[Key, float] | list[float], level: float = LEVEL) -> tuple[float, float] | None:
    """Student-t interval of the mean over prompts (per-prompt means first); a plain list counts one value a unit.
    None below two units."""
    units = np.array(list(prompt_means(values).values()) if isinstance(values, dict) else values, dtype=float)
    n = units.size
    if n < 2:
        return None
    mean, se = float(units.mean()), float(units.std(ddof=1) / math.sqrt(n))
    if se == 0:
        return mean, mean
    lo, hi = stats.t.interval(level, n - 1, loc=mean, scale=se)
    return float(lo), float(hi)


def median_ci(values: Iterable[float], level: float = LEVEL) -> tuple[float, float] | None:
    """Distribution-free interval of the median from order statistics (scipy.stats.quantile_test); None when n is
    too small for any order-statistic interval at this level (n < 6 at 95%)."""
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if x.size < 2:
        return None
    ci = stats.quantile_test(x, q=float(np.median(x)), p=0.5).confidence_interval(level)
    lo, hi = float(ci.low), float(ci.high)
    return None if not (math.isfinite(lo) and math.isfinite(hi)) else (lo, hi)


# ---------------------------------------------------------------------------------------------- paired tests
@dataclass
class Paired:
    """A vs reference B: delta = mean over prompts of (A - B), in the metric's own units."""

    reference: str
    delta: float
    ci95: tuple[float, float]
    p_value: float
    n_pairs: int
    n_prompts: int
    test: str
    mde80: float | None = None  # smallest paired difference this run detects with 80% power at alpha 0.05
    p_holm: float | None = None

    def to_dict(self, digits: int = 6) -> dict[str, Any]:
        d = asdict(self)
        r = (lambda v: None if v is None or not math.isfinite(v) else round(float(v), digits))
        d.update(delta=r(self.delta), ci95=[r(self.ci95[0]), r(self.ci95[1])], p_value=r(self.p_value),
                 mde80=r(self.mde80), p_holm=r(self.p_holm))
        return d


def matched(a: dict[Key, float], b: dict[Key, float]) -> tuple[np.ndarray, np.ndarray, int]:
    """Per-prompt means of A and B over the (prompt_id, sample) pairs both have; and the number of pairs."""
    keys = sorted(set(a) & set(b))
    pa, pb = prompt_means({k: a[k] for k in keys}), prompt_means({k: b[k] for k in keys})
    ids = sorted(pa)
    return np.array([pa[i] for i in ids]), np.array([pb[i] for i in ids]), len(keys)


def _mean_diff(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x - y, axis=axis)


def paired_test(a: np.ndarray, b: np.ndarray, *, n_resamples: int = N_RESAMPLES, seed: int = 0,
                alternative: str = "two-sided") -> tuple[float, tuple[float, float], float]:
    """(mean of a - b, 95% BCa bootstrap interval, sign-flip permutation p) for paired arrays (n >= 2)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = a - b
    delta = float(d.mean())
    if np.ptp(d) <= 1e-12 * max(1.0, abs(delta)):  # a constant difference: no spread to resample
        ci = (delta, delta)
    else:
        ci = _bootstrap((a, b), _mean_diff, n_resamples, seed, vectorized=True, paired=True)
    return delta, ci, sign_flip_p(a, b, n_resamples=n_resamples, seed=seed, alternative=alternative)


def sign_flip_p(a: np.ndarray, b: np.ndarray, *, n_resamples: int = N_RESAMPLES, seed: int = 0,
                alternative: str = "two-sided") -> float:
    """Permutation p of mean(a - b) swapping a_i and b_i (sign flips); exact when 2^n <= n_resamples."""
    return float(stats.permutation_test((np.asarray(a, float), np.asarray(b, float)), _mean_diff,
                                        permutation_type="samples", vectorized=True, n_resamples=n_resamples,
                                        alternative=alternative, rng=np.random.default_rng(seed)).pvalue)


def _bootstrap(data: tuple, statistic: Callable, n_resamples: int, seed: int, **kw: Any) -> tuple[float, float]:
    """BCa interval; percentile where BCa degenerates (e.g. a jackknife with no spread)."""
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = stats.bootstrap(data, statistic, n_resamples=n_resamples, method=method, confidence_level=LEVEL,
                                  rng=np.random.default_rng(seed), **kw)
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        if math.isfinite(lo) and math.isfinite(hi):
            return lo, hi
    return math.nan, math.nan


def compare_values(a: dict[Key, float], b: dict[Key, float], reference: str = "", *,
                   n_resamples: int = N_RESAMPLES, seed: int = 0) -> Paired | None:
    """Paired comparison of per-video values of A against B; None below two matched prompts."""
    xa, xb, n_pairs = matched(a, b)
    if xa.size < 2:
        return None
    delta, ci, p = paired_test(xa, xb, n_resamples=n_resamples, seed=seed)
    return Paired(reference, delta, ci, p, n_pairs, int(xa.size), TEST_NAME,
                  min_detectable(float(np.std(xa - xb, ddof=1)), int(xa.size)))


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (step-down, monotone, capped at 1); None entries stay None."""
    idx = [i for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    order = sorted(idx, key=lambda i: p_values[i])
    m, running = len(order), 0.0
    out: list[float | None] = [None] * len(p_values)
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * float(p_values[i])))
        out[i] = running
    return out


# ---------------------------------------------------------------------------------------------- set level (FVD)
class FixedReferenceFD:
    """Fréchet distance of feature subsets against one fixed reference (mean, covariance): the reference's
    symmetric square root is computed once, so a resample costs one D x D eigendecomposition (same formula as
    bench.metrics.frechet: ‖μf-μr‖² + tr Σr + tr Σf - 2 Σ sqrt(eig(√Σr Σf √Σr)))."""

    def __init__(self, mu: np.ndarray, cov: np.ndarray):
        self.mu, cov = np.asarray(mu, dtype=np.float64), np.asarray(cov, dtype=np.float64)
        w, v = np.linalg.eigh((cov + cov.T) / 2)
        self.root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
        self.trace = float(np.trace(cov))

    @classmethod
    def from_sums(cls, sums: Any) -> "FixedReferenceFD":
        mu, cov = sums.mean_cov()
        return cls(mu.numpy(), cov.numpy())

    def __call__(self, feats: np.ndarray) -> float:
        x = np.asarray(feats, dtype=np.float64)
        return float(self.weighted(x, np.ones((1, len(x))))[0])

    def weighted(self, x: np.ndarray, w: np.ndarray, x_root: np.ndarray | None = None) -> np.ndarray:
        """FD of the rows x (R, D) for each weight row of w (B, R): row j counted w[b, j] times (a resample),
        covariance N-1; (B,) values. With fewer rows than dimensions the trace term comes from the weighted
        Gram matrix of the rows (the same nonzero eigenvalues as √Σr Σf √Σr, and far smaller)."""
        R, D = x.shape
        gram = R < D
        xr = x_root if x_root is not None else x @ self.root
        sq = (x * x).sum(1)
        kernel = xr @ xr.T if gram else None  # the Gram matrix of a resample is this, recentred and reweighted
        out = np.empty(len(w))
        step = max(1, 2**22 // ((R if gram else D) ** 2 + R * D))  # bounded memory per chunk
        for lo in range(0, len(w), step):
            wc = w[lo:lo + step]
            n = wc.sum(1)
            mu = wc @ x / n[:, None]
            tr_cov = (wc @ sq - n * (mu * mu).sum(1)) / (n - 1)
            if gram:  # (xr_i - m)·(xr_j - m) = K_ij - u_i - u_j + m·m, with m = mu @ root, u = xr @ m
                m = mu @ self.root
                u = m @ xr.T
                centred = kernel[None] - u[:, :, None] - u[:, None, :] + (m * m).sum(1)[:, None, None]
                sw = np.sqrt(wc)
                mid = sw[:, :, None] * centred * sw[:, None, :]
            else:
                # weighted scatter per resample as one batched matmul (BLAS; a plain einsum loops in C, ~40x slower)
                scatter = np.matmul((wc[:, :, None] * x[None]).transpose(0, 2, 1), x)
                cov = scatter - n[:, None, None] * mu[:, :, None] * mu[:, None, :]
                mid = self.root @ cov @ self.root
            mid = (mid + mid.transpose(0, 2, 1)) / (2 * (n - 1)[:, None, None])
            tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(mid), 0, None)).sum(1)
            diff = mu - self.mu
            out[lo:lo + step] = (diff * diff).sum(1) + self.trace + tr_cov - 2 * tr_sqrt
        return out


def _paired_sets(a: dict[Key, np.ndarray], b: dict[Key, np.ndarray], fd: FixedReferenceFD
                 ) -> tuple[int, int, Callable[[np.ndarray], float]] | None:
    """(pairs, prompts, FD of a set of prompt labels) over the matched videos: label i is prompt i of A, label
    P + i prompt i of B; a label set may repeat labels (bootstrap). None below two prompts or four pairs."""
    keys = sorted(set(a) & set(b))
    prompts = sorted({k[0] for k in keys})
    if len(prompts) < 2 or len(keys) < 4:
        return None
    P, where = len(prompts), {p: i for i, p in enumerate(prompts)}
    both = np.stack([np.asarray(side[k], dtype=np.float64) for side in (a, b) for k in keys])
    row_label = np.array([where[k[0]] + P * side for side in (0, 1) for k in keys])  # B's prompt i: P + i
    both_root = both @ fd.root

    def fd_of(labels: np.ndarray) -> np.ndarray:
        """FVD per row of labels (..., k): every row a set of prompt labels; returns shape labels.shape[:-1]."""
        lab = np.asarray(labels).astype(int)
        flat = lab.reshape(-1, lab.shape[-1])
        counts = np.zeros((len(flat), 2 * P))
        np.add.at(counts, (np.arange(len(flat))[:, None], flat), 1.0)
        return fd.weighted(both, counts[:, row_label], both_root).reshape(lab.shape[:-1])

    return len(keys), P, fd_of


def compare_sets(a: dict[Key, np.ndarray], b: dict[Key, np.ndarray], fd: FixedReferenceFD, reference: str = "", *,
                 n_resamples: int = N_RESAMPLES_SET, seed: int = 0) -> Paired | None:
    """FVD(A) - FVD(B) over the matched (prompt_id, sample) videos: BCa interval resampling prompts (both methods'
    videos of a prompt together), permutation p swapping the two methods' videos of a prompt."""
    found = _paired_sets(a, b, fd)
    if found is None:
        return None
    n_pairs, P, fd_of = found
    labels = np.arange(P)

    def diff_of(x: np.ndarray, y: np.ndarray, axis: int = -1) -> np.ndarray:
        return fd_of(np.moveaxis(x, axis, -1)) - fd_of(np.moveaxis(y, axis, -1))

    ci = _bootstrap((labels,), lambda s, axis=-1: diff_of(s, s + P, axis), n_resamples, seed, vectorized=True)
    p = stats.permutation_test((labels, labels + P), diff_of, permutation_type="samples", vectorized=True,
                               n_resamples=n_resamples, rng=np.random.default_rng(seed)).pvalue
    return Paired(reference, float(diff_of(labels, labels + P)), ci, float(p), n_pairs, P, TEST_NAME_SET)


def set_excess_p(a: dict[Key, np.ndarray], b: dict[Key, np.ndarray], fd: FixedReferenceFD, margin: float, *,
                 n_resamples: int = N_RESAMPLES_SET, seed: int = 0) -> tuple[float, tuple[float, float], float] | None:
    """(FVD(A) - FVD(B), its 95% percentile interval, one-sided bootstrap p of H0: FVD(A) - FVD(B) <= margin),
    resampling prompts. A shifted permutation test does not exist for a set statistic; the bootstrap p is the
    share of resampled differences at or below the margin."""
    found = _paired_sets(a, b, fd)
    if found is None:
        return None
    _, P, fd_of = found
    labels = np.arange(P)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = stats.bootstrap((labels,), lambda s, axis=-1: fd_of(np.moveaxis(s, axis, -1))
                              - fd_of(np.moveaxis(s, axis, -1) + P), n_resamples=n_resamples, method="percentile",
                              vectorized=True, rng=np.random.default_rng(seed))
    dist = np.asarray(res.bootstrap_distribution)
    p = (1 + np.sum(dist <= margin)) / (1 + dist.size)
    ci = (float(res.confidence_interval.low), float(res.confidence_interval.high))
    return float(fd_of(labels) - fd_of(labels + P)), ci, float(p)


# ---------------------------------------------------------------------------------------------- ranks
def rank_intervals(stat_of: Callable[[np.ndarray], np.ndarray], n_prompts: int, higher_is_better: bool,
                   n_resamples: int = 1000, seed: int = 0) -> list[tuple[int, int]]:
    """95% interval of each entry's rank (1 = best, ties share the lower rank) over a bootstrap of prompts:
    `stat_of(prompt_indices)` gives every entry's statistic on that resample."""
    rng = np.random.default_rng(seed)
    ranks = []
    for _ in range(n_resamples):
        s = np.asarray(stat_of(rng.integers(0, n_prompts, n_prompts)), dtype=float)
        ranks.append(stats.rankdata(-s if higher_is_better else s, method="min"))
    r = np.array(ranks)
    lo = np.quantile(r, (1 - LEVEL) / 2, axis=0, method="inverted_cdf")
    hi = np.quantile(r, 1 - (1 - LEVEL) / 2, axis=0, method="inverted_cdf")
    return [(int(x), int(y)) for x, y in zip(lo, hi)]


# ---------------------------------------------------------------------------------------------- run tables
def values_of(samples: list[dict], method: str, metric: str) -> dict[Key, float]:
    """(prompt_id, sample) -> per-video value of one method's metric in samples.jsonl rows (finite values only);
    `metric='seconds'` gives the per-video generation time (warm-up videos left out)."""
    out: dict[Key, float] = {}
    for r in samples:
        if r.get("method") != method:
            continue
        if metric == "seconds" and r.get("warmup"):
            continue  # the session's first batch pays lazy init: not a time of the method
        v = r.get("seconds") if metric == "seconds" else r.get("metrics", {}).get(metric)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            out[(str(r.get("prompt_id")), int(r.get("sample", 0)))] = float(v)
    return out


def features_of(samples: list[dict], method: str, metric: str) -> dict[Key, np.ndarray]:
    key = f"{metric}_features"
    return {(str(r.get("prompt_id")), int(r.get("sample", 0))): np.asarray(r[key], dtype=np.float64)
            for r in samples if r.get("method") == method and r.get(key) is not None}


def default_reference(methods: list[str], reference: str | None = None) -> str | None:
    """--reference NAME when given (must be one of the methods), else per_frame when present, else the first."""
    from bench.errors import UserError, did_you_mean

    if reference is not None:
        if reference not in methods:
            raise UserError(f"--reference '{reference}': not a method of this run; {did_you_mean(reference, methods)}")
        return reference
    return "per_frame" if "per_frame" in methods else (methods[0] if methods else None)


def reference_comparisons(samples: list[dict], methods: list[str], metrics: list[str], reference: str | None = None,
                          set_level: dict[str, FixedReferenceFD] | None = None, seed: int = 0
                          ) -> dict[str, dict[str, dict]]:
    """method -> metric -> vs_reference dict for every method but the reference, Holm-adjusted across the table.
    Per-video metrics pair samples.jsonl values; metrics in `set_level` (FVD) pair per-video features."""
    ref = default_reference(methods, reference)
    set_level = set_level or {}
    found: list[tuple[str, str, Paired]] = []
    for method in methods:
        if method == ref:
            continue
        for metric in metrics:
            if metric in set_level:
                res = compare_sets(features_of(samples, method, metric), features_of(samples, ref, metric),
                                   set_level[metric], ref, seed=seed)
            else:
                res = compare_values(values_of(samples, method, metric), values_of(samples, ref, metric), ref,
                                     seed=seed)
            if res is not None:
                found.append((method, metric, res))
    for (_, _, res), p in zip(found, holm([r.p_value for _, _, r in found])):
        res.p_holm = p
    out: dict[str, dict[str, dict]] = {}
    for method, metric, res in found:
        out.setdefault(method, {})[metric] = res.to_dict()
    return out


def save_set_reference(path: Any, sums: Any) -> None:
    """The fixed reference statistics of a set-level metric, kept in the run folder so reports can resample FVD."""
    import torch
    from safetensors.torch import save_file

    save_file({"sum": sums.sum.to(torch.float64).contiguous(), "outer": sums.outer.to(torch.float64).contiguous(),
               "count": torch.tensor([sums.count], dtype=torch.int64)}, str(path))


def load_set_references(folder: Any) -> dict[str, FixedReferenceFD]:
    """metric -> FixedReferenceFD from the `<metric>_reference.safetensors` files of a run folder."""
    from pathlib import Path

    from safetensors.numpy import load_file

    out: dict[str, FixedReferenceFD] = {}
    for path in sorted(Path(folder).glob("*_reference.safetensors")) if folder else []:
        t = load_file(str(path))
        n = int(t["count"][0])
        mu = t["sum"] / n
        cov = (t["outer"] - n * np.outer(mu, mu)) / (n - 1)
        out[path.name[: -len("_reference.safetensors")]] = FixedReferenceFD(mu, cov)
    return out


def attach_comparisons(metrics: dict[str, dict[str, dict]], samples: list[dict], reference: str | None = None,
                       set_references: dict[str, Any] | None = None, folder: Any = None) -> None:
    """Adds `vs_reference` to each method's metric summaries (in place); `set_references` (metric -> FeatureSums)
    are also saved in `folder` for later reports."""
    set_references = set_references or {}
    if folder is not None:
        for name, sums in set_references.items():
            save_set_reference(f"{folder}/{name}_reference.safetensors", sums)
    methods = [m for m, per in metrics.items() if per]
    if len(methods) < 2:
        return
    names = list(dict.fromkeys(n for m in methods for n in metrics[m]))
    fds = {n: FixedReferenceFD.from_sums(s) for n, s in set_references.items()}
    for method, per in reference_comparisons(samples, methods, names, reference, fds).items():
        for name, d in per.items():
            metrics[method][name]["vs_reference"] = d
