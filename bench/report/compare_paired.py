"""`t2v-bench compare BASELINE NEW --mode paired`: the regression gate for runs whose numbers move between reruns
(GPU kernels, nondeterministic reductions), where a fixed 0.1% tolerance would fail on noise.

Both runs used the same prompts and seeds, so each (prompt_id, sample) video of NEW is paired with the baseline's.
Per method and gate, the question is one-sided: is NEW worse than the baseline by more than the margin? For a
per-video metric (and seconds per video) the sign-flip permutation test runs on the per-prompt paired differences
minus the margin; for FVD, the share of bootstrap resamples (over prompts) of FVD(NEW) - FVD(baseline) at or below
the margin. p-values are Holm-adjusted across the gate; a regression is p_holm < 0.05, so pure noise fails about
5% of the time at most, whatever the number of gates. Peak memory is one number per run: it keeps the fixed
tolerance. The default mode (bench.report.compare) is unchanged.
"""
from __future__ import annotations

import pandas as pd

from bench import stats
from bench.errors import UserError
from bench.report.compare import Comparison, Tolerance, parse_tolerance, require_comparable
from bench.report.records import Run, metric_protocols, peak_memory
from bench.report.tables import fmt_number

PAIRED_DEFAULTS = {"quality": "1%", "sec_per_video": "+25%", "peak_mem_mb": "+50%"}


def margins(base: Run, fail_on: dict[str, str]) -> tuple[dict[str, Tolerance | None], dict[str, bool]]:
    directions = {n: bool(p.get("higher_is_better", True)) for n, p in metric_protocols(base.record).items()}
    directions.update(sec_per_video=False, peak_mem_mb=False)
    specs = {**{n: PAIRED_DEFAULTS["quality"] for n in directions}, "sec_per_video": PAIRED_DEFAULTS["sec_per_video"],
             "peak_mem_mb": PAIRED_DEFAULTS["peak_mem_mb"]}
    for name, spec in fail_on.items():
        if name not in directions:
            raise UserError(f"--fail-on {name}: not a gate of the baseline in paired mode; choose from "
                            f"{', '.join(sorted(directions))}")
        specs[name] = spec
    return {n: parse_tolerance(n, spec, directions[n]) for n, spec in specs.items()}, directions


def compare_paired(base: Run, new: Run, fail_on: dict[str, str] | None = None, seed: int = 0) -> Comparison:
    messages = require_comparable(base, new)
    if not base.samples or not new.samples:
        raise UserError("compare --mode paired needs samples.jsonl beside both run.json files (pass run folders)")
    tols, higher = margins(base, fail_on or {})
    fds = stats.load_set_references(base.folder)
    rows: list[dict] = []
    tested: list[tuple[int, float]] = []  # (row index, one-sided p)
    regressions = 0
    for method, entry in base.methods.items():
        if method not in new.methods:
            messages.append(f"baseline method '{method}' is missing from NEW (regression)")
            regressions += 1
            continue
        for name, tol in tols.items():
            if tol is None:
                rows.append({"method": method, "metric": name, "baseline": "—", "new": "—", "delta": "—",
                             "95% CI": "—", "tolerance": "off", "status": "not gated"})
                continue
            if name == "peak_mem_mb":
                b, n = peak_memory(entry.get("perf", {}))[0], peak_memory(new.methods[method].get("perf", {}))[0]
                if b is None or n is None:
                    continue
                bad = n - b > tol.allowed(b) + 1e-12 * max(1.0, abs(b))
                rows.append({"method": method, "metric": f"{name} ↓", "baseline": fmt_number(b),
                             "new": fmt_number(n), "delta": f"{n - b:+.4g}", "95% CI": "— (one value)",
                             "tolerance": tol.text, "status": "REGRESSION" if bad else "ok"})
                regressions += bad
                continue
            row, p = _paired_gate(base, new, method, name, higher[name], tol, fds.get(name), seed)
            if row is None:
                continue
            rows.append(row)
            if p is not None:
                tested.append((len(rows) - 1, p))
    for (i, _), p_holm in zip(tested, stats.holm([p for _, p in tested])):
        bad = p_holm < stats.ALPHA
        rows[i]["status"] = f"{'REGRESSION' if bad else 'ok'} (p_holm {p_holm:.3g})"
        regressions += bad
    for method in new.methods:
        if method not in base.methods:
            messages.append(f"method '{method}' is new in NEW (not in the baseline, not gated)")
    messages.append("paired mode: a regression is NEW worse than the baseline by more than the tolerance, one-sided "
                    "paired test over prompts, Holm-adjusted p < 0.05 across the gate; delta is NEW - baseline")
    return Comparison(pd.DataFrame(rows), regressions, messages)


def _paired_gate(base: Run, new: Run, method: str, name: str, hib: bool, tol: Tolerance,
                 fd: stats.FixedReferenceFD | None, seed: int) -> tuple[dict | None, float | None]:
    arrow = "↑" if hib else "↓"
    if fd is not None and any(r.get(f"{name}_features") is not None for r in base.samples):
        b_value = base.methods[method].get("metrics", {}).get(name, {}).get("value")
        n_value = new.methods[method].get("metrics", {}).get(name, {}).get("value")
        if b_value is None:
            return None, None
        margin = tol.allowed(b_value)
        found = stats.set_excess_p(stats.features_of(new.samples, method, name),
                                   stats.features_of(base.samples, method, name), fd, margin, seed=seed)
        if found is None:
            return _untestable(method, f"{name} {arrow}", tol), None
        delta, ci, p = found
        return {"method": method, "metric": f"{name} {arrow}", "baseline": fmt_number(b_value),
                "new": fmt_number(n_value) if n_value is not None else "—", "delta": f"{delta:+.4g}",
                "95% CI": f"[{ci[0]:+.4g}, {ci[1]:+.4g}]", "tolerance": tol.text, "status": ""}, p
    key = "seconds" if name == "sec_per_video" else name
    a, b = stats.values_of(new.samples, method, key), stats.values_of(base.samples, method, key)
    if key == "seconds":  # the videos of one batch share one time: a baseline batch is one unit, not its prompts
        batch = {(str(r.get("prompt_id")), int(r.get("sample", 0))): str(r.get("batch") or r.get("seconds"))
                 for r in base.samples if r.get("method") == method}  # no batch id (older runs): equal times
        a, b = ({(batch.get(k, k[0]), f"{k[0]}/{k[1]}"): v for k, v in d.items()} for d in (a, b))
    xa, xb, _ = stats.matched(a, b)
    if xa.size < 2:
        return _untestable(method, f"{name} {arrow}", tol), None
    b_mean = float(xb.mean())
    margin = tol.allowed(b_mean)
    worse = (xb - xa) if hib else (xa - xb)  # > 0: NEW is worse
    p = stats.sign_flip_p(worse - margin, 0 * worse, alternative="greater", seed=seed)
    delta, ci, _ = stats.paired_test(xa, xb, seed=seed)
    return {"method": method, "metric": f"{name} {arrow}", "baseline": fmt_number(b_mean),
            "new": fmt_number(float(xa.mean())), "delta": f"{delta:+.4g}",
            "95% CI": f"[{ci[0]:+.4g}, {ci[1]:+.4g}]", "tolerance": tol.text, "status": ""}, p


def _untestable(method: str, metric: str, tol: Tolerance) -> dict:
    return {"method": method, "metric": metric, "baseline": "—", "new": "—", "delta": "—", "95% CI": "—",
            "tolerance": tol.text, "status": "not tested (fewer than 2 paired prompts)"}
