"""bench.stats against constructed data with known answers and against independent implementations."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import stats as sps

from bench import power, stats


def brute_force_sign_flip_p(d: np.ndarray) -> float:
    """Two-sided exact sign-flip p of the mean, by enumerating all 2^n sign vectors (independent of scipy)."""
    obs = d.mean()
    flips = np.array(list(itertools.product([1, -1], repeat=d.size)))
    means = (flips * d).mean(1)
    eps = 1e-12 * max(1.0, abs(obs))
    upper, lower = np.mean(means >= obs - eps), np.mean(means <= obs + eps)
    return min(1.0, 2 * min(upper, lower))


def test_constant_shift_is_detected_with_the_exact_sign_flip_p():
    rng = np.random.default_rng(0)
    b = rng.normal(50, 10, size=10)  # prompt difficulty: large, shared
    delta, ci, p = stats.paired_test(b + 0.3, b, n_resamples=2000)
    assert delta == pytest.approx(0.3)
    assert ci == pytest.approx((0.3, 0.3))
    assert p == pytest.approx(2 / 2**10)  # only "all +" and "all -" are as extreme
    # an unpaired look sees nothing: the shift is 3% of the spread
    assert sps.ttest_ind(b + 0.3, b).pvalue > 0.9


def test_permutation_p_matches_brute_force_and_interval_covers_the_shift():
    rng = np.random.default_rng(1)
    b = rng.normal(size=9)
    a = b + 0.8 + rng.normal(0, 0.5, size=9)
    delta, (lo, hi), p = stats.paired_test(a, b, n_resamples=5000)
    assert p == pytest.approx(brute_force_sign_flip_p(a - b))
    assert delta == pytest.approx(float(np.mean(a - b)))
    assert lo < delta < hi and lo > 0


def test_pure_noise_gives_about_five_percent_false_positives():
    hits, covered = 0, 0
    for seed in range(200):
        rng = np.random.default_rng(1000 + seed)
        shared = rng.normal(0, 5, size=10)
        a, b = shared + rng.normal(size=10), shared + rng.normal(size=10)
        hits += stats.sign_flip_p(a, b, n_resamples=1024) < stats.ALPHA  # 2^10: exact
        if seed < 60:
            _, (lo, hi), _ = stats.paired_test(a, b, n_resamples=999, seed=seed)
            covered += lo <= 0 <= hi
    # binomial(200, 0.05): mean 10, P(X <= 2) and P(X >= 20) are both below 0.3%
    assert 2 < hits < 20, hits
    assert covered / 60 > 0.8  # BCa at n = 10 undercovers a little, not a lot


def test_holm_matches_a_hand_computed_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> raised to 0.06 (monotone)
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, None, 0.9]) == [1.0, None, 1.0]  # capped at 1, None kept in place
    assert stats.holm([]) == []


def test_power_formula_matches_a_simulation():
    sd, n = 2.0, 12
    mde = power.min_detectable(sd, n)
    # the normal approximation (z_0.975 + z_0.8) * sd / sqrt(n) is optimistic at small n
    assert mde > (1.959964 + 0.841621) * sd / math.sqrt(n)
    rng = np.random.default_rng(0)
    sims = rng.normal(mde, sd, size=(20000, n))
    rate = np.mean(sps.ttest_1samp(sims, 0.0, axis=1).pvalue < stats.ALPHA)
    assert rate == pytest.approx(stats.POWER, abs=0.015)
    # the permutation test the tables use has about the same power (a few hundred runs)
    perm = [stats.sign_flip_p(x, np.zeros(n), n_resamples=999, seed=i) < stats.ALPHA for i, x in enumerate(sims[:300])]
    assert np.mean(perm) == pytest.approx(stats.POWER, abs=0.08)


def test_required_prompts_matches_a_simulation_with_seeds_per_prompt():
    between, within, samples, delta = 0.5, 2.0, 4, 0.6
    P = power.required_prompts(delta, between, within, samples)
    rng = np.random.default_rng(3)
    sims = 20000

    def rate(prompts: int) -> float:
        d = (delta + rng.normal(0, math.sqrt(between), (sims, prompts, 1))
             + rng.normal(0, math.sqrt(within), (sims, prompts, samples))).mean(2)
        return float(np.mean(sps.ttest_1samp(d, 0.0, axis=1).pvalue < stats.ALPHA))

    assert rate(P) >= stats.POWER - 0.012
    assert rate(P - 2) < stats.POWER
    assert power.required_prompts(delta, between, within, 1) > P  # one seed per prompt needs more prompts


def test_variance_components_recover_the_constructed_spread():
    rng = np.random.default_rng(4)
    P, S = 400, 4
    d = rng.normal(0, 1.0, (P, 1)) + rng.normal(0, 2.0, (P, S))  # between 1, within 4
    a = {(f"p{i}", k): float(d[i, k]) for i in range(P) for k in range(S)}
    b = {key: 0.0 for key in a}
    between, within, n, s = power.variance_components(a, b)
    assert (n, s) == (P, S)
    assert within == pytest.approx(4.0, rel=0.1) and between == pytest.approx(1.0, rel=0.35)


def test_mean_ci_is_a_t_interval_over_prompt_means():
    values = {("p1", 0): 1.0, ("p1", 1): 3.0, ("p2", 0): 4.0, ("p3", 0): 6.0, ("p3", 1): 8.0}
    units = np.array([2.0, 4.0, 7.0])
    expected = sps.t.interval(0.95, 2, loc=units.mean(), scale=units.std(ddof=1) / math.sqrt(3))
    assert stats.mean_ci(values) == pytest.approx(expected)
    assert stats.mean_ci([1.0]) is None


def test_median_ci_uses_order_statistics():
    x = np.arange(1.0, 12.0)  # n = 11: P(Bin(11, .5) <= 1) = 12/2048, so the 95% interval is (x(2), x(10))
    assert stats.median_ci(x) == (2.0, 10.0)
    assert stats.median_ci([1.0, 2.0, 3.0]) is None  # no order-statistic interval reaches 95% at n = 3


def test_fixed_reference_fd_matches_the_metric_and_a_set_shift_is_detected():
    from bench.metrics.frechet import FeatureSums, frechet_distance

    rng = np.random.default_rng(5)
    ref = FeatureSums.from_features(torch.tensor(rng.normal(size=(80, 6))))
    fd = stats.FixedReferenceFD.from_sums(ref)
    f = rng.normal(size=(20, 6))
    # what FVD.compute does: reference first, the symmetric root taken of the reference
    expected = frechet_distance(*ref.mean_cov(), *FeatureSums.from_features(torch.tensor(f)).mean_cov())
    assert fd(f) == pytest.approx(expected, rel=1e-7)  # sums-of-squares algebra: ~1e-9 rounding
    # fewer rows than dimensions takes the Gram-matrix path; repeated rows equal weights
    wide = rng.normal(size=(5, 12))
    fd12 = stats.FixedReferenceFD(np.zeros(12), np.eye(12))
    assert fd12.weighted(wide, np.full((1, 5), 3.0))[0] == pytest.approx(fd12(np.concatenate([wide] * 3)), rel=1e-7)
    near = {(f"p{i}", 0): f[i] for i in range(20)}
    far = {(f"p{i}", 0): f[i] + 0.8 for i in range(20)}
    res = stats.compare_sets(far, near, fd, "near", n_resamples=99)
    assert res.delta == pytest.approx(fd(f + 0.8) - fd(f))
    assert res.p_value <= 0.02 and res.ci95[0] > 0 and res.n_prompts == 20  # 0.02: the least p of 99 resamples
    twin = {(f"p{i}", 0): rng.normal(size=6) for i in range(20)}
    assert stats.compare_sets(twin, near, fd, n_resamples=99).p_value > 0.05


def test_rank_intervals_are_tight_when_separated_and_wide_when_tied():
    rng = np.random.default_rng(6)
    separated = np.array([[10.0], [5.0], [0.0]]) + rng.normal(0, 0.1, (3, 30))
    r = stats.rank_intervals(lambda idx: separated[:, idx].mean(1), 30, higher_is_better=True, n_resamples=200)
    assert r == [(1, 1), (2, 2), (3, 3)]
    tied = rng.normal(0, 1, (3, 30))
    r = stats.rank_intervals(lambda idx: tied[:, idx].mean(1), 30, higher_is_better=True, n_resamples=200)
    assert all(lo < hi for lo, hi in r)


def test_reference_comparisons_on_constructed_rows():
    rng = np.random.default_rng(7)
    rows = []
    for i in range(12):
        base = rng.normal(50, 10)
        for method, value in (("per_frame", base), ("shifted", base + 2 + rng.normal(0, 0.5)),
                              ("noisy", base + rng.normal(0, 0.5))):
            rows.append({"method": method, "prompt_id": f"p{i}", "sample": 0, "metrics": {"clip_score": value}})
    out = stats.reference_comparisons(rows, ["shifted", "per_frame", "noisy"], ["clip_score"])
    assert set(out) == {"shifted", "noisy"}
    s = out["shifted"]["clip_score"]
    assert set(s) >= {"reference", "delta", "ci95", "p_value", "p_holm", "n_pairs", "test"}
    assert s["reference"] == "per_frame" and s["n_pairs"] == 12 and s["p_holm"] < 0.01
    assert s["ci95"][0] < 2 < s["ci95"][1]
    assert out["noisy"]["clip_score"]["p_holm"] >= out["noisy"]["clip_score"]["p_value"]
    assert stats.default_reference(["a", "b"]) == "a"
    from bench.errors import UserError
    with pytest.raises(UserError, match="did you mean 'per_frame'"):
        stats.default_reference(["per_frame"], "per_frme")
