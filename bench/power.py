"""How many videos a difference needs: power of the paired comparison of bench/stats.py.

The smallest paired difference detectable with 80% power at alpha 0.05 (`min_detectable`) and the number of
prompts x samples needed for a given difference (`required_prompts`), from the paired t-test's noncentral t
distribution (the large-sample equivalent of the permutation test), with the run's own paired variance split into
between- and within-prompt parts (`variance_components`).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

ALPHA = 0.05
POWER = 0.80
Key = tuple[str, int]  # (prompt_id, sample)


def t_power(delta: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided one-sample (paired) t-test at true mean difference delta, unit SD sd, n units."""
    if n < 2 or sd <= 0:
        return math.nan
    df, nc = n - 1, abs(delta) * math.sqrt(n) / sd
    crit = stats.t.ppf(1 - alpha / 2, df)
    upper, lower = stats.nct.sf(crit, df, nc), stats.nct.cdf(-crit, df, nc)
    return float(np.nan_to_num(upper, nan=1.0) + np.nan_to_num(lower, nan=0.0))  # NaN only far in a tail


def min_detectable(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Smallest |paired difference| detected with the given power by n units of SD sd (None if n < 2 or sd = 0)."""
    if n < 2 or not sd > 0:
        return None
    hi = sd * 100
    return float(optimize.brentq(lambda d: t_power(d, sd, n, alpha) - power, 0.0, hi, xtol=1e-12 * hi))


def variance_components(a: dict[Key, float], b: dict[Key, float]) -> tuple[float, float | None, int, int]:
    """(between-prompt variance, within-prompt variance or None, n prompts, samples per prompt) of the paired
    differences A - B: one-way ANOVA estimates. With one sample per prompt the two cannot be told apart; all the
    variance is then counted as between prompts (extra samples are assumed to add nothing: conservative)."""
    groups: dict[str, list[float]] = {}
    for k in sorted(set(a) & set(b)):
        groups.setdefault(k[0], []).append(a[k] - b[k])
    d = [np.array(v) for v in groups.values()]
    if len(d) < 2:
        raise ValueError("need at least two prompts with paired samples")
    means = np.array([g.mean() for g in d])
    S = int(round(np.mean([g.size for g in d])))
    dof = sum(g.size - 1 for g in d)
    if dof == 0:
        return float(means.var(ddof=1)), None, len(d), S
    within = float(sum(((g - g.mean()) ** 2).sum() for g in d) / dof)
    between = max(float(means.var(ddof=1)) - within * float(np.mean([1 / g.size for g in d])), 0.0)
    return between, within, len(d), S


def required_prompts(delta: float, between: float, within: float | None, samples: int, alpha: float = ALPHA,
                     power: float = POWER, max_prompts: int = 10**6) -> int | None:
    """Smallest number of prompts (each with `samples` seeds) whose paired test detects delta with the power;
    None if even max_prompts do not."""
    sd = math.sqrt(between + (within or 0.0) / samples)
    if sd == 0:
        return 2
    if t_power(delta, sd, max_prompts, alpha) < power:
        return None
    lo, hi = 2, max_prompts  # power rises with n: bisect for the first n that reaches it
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if t_power(delta, sd, mid, alpha) < power else (lo, mid)
    return lo
