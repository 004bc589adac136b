"""`t2v-bench power RUN_DIR --metric NAME --delta D`: how many prompts x samples a paired comparison needs to detect
a difference D (80% power, two-sided alpha 0.05), from the run's own paired differences against the reference."""
from __future__ import annotations

from bench import power, stats
from bench.errors import UserError, did_you_mean
from bench.report.records import load_run

SAMPLE_CHOICES = (1, 2, 4, 8)


def power_report(run_dir: str, metric: str, delta: float, method: str | None = None,
                 reference: str | None = None) -> str:
    """Plain-text answer, one block per method compared with the reference."""
    run = load_run(run_dir)
    if not run.samples:
        raise UserError(f"{run_dir}: no samples.jsonl beside run.json; power needs the per-video values")
    if not delta > 0:
        raise UserError(f"--delta {delta}: give the difference to detect as a positive number in {metric}'s units")
    methods = list(run.methods)
    names = {n for e in run.methods.values() for n in e.get("metrics", {})}
    if metric not in names:
        raise UserError(f"--metric '{metric}': {did_you_mean(metric, names)}")
    if not any(stats.values_of(run.samples, m, metric) for m in methods):
        raise UserError(f"--metric '{metric}' has no per-video values (a set-level metric such as FVD); power "
                        "needs a per-video metric")
    ref = stats.default_reference(methods, reference)
    if method is not None and method not in methods:
        raise UserError(f"--method '{method}': {did_you_mean(method, methods)}")
    others = [method] if method else [m for m in methods if m != ref]
    lines = [f"power for {metric}: detect a paired difference of {delta:g} against '{ref}' with "
             f"{stats.POWER:.0%} power at two-sided alpha {stats.ALPHA} (paired t over prompts, from this run's "
             f"paired variance)"]
    for other in others:
        a, b = stats.values_of(run.samples, other, metric), stats.values_of(run.samples, ref, metric)
        try:
            between, within, n_prompts, samples = power.variance_components(a, b)
        except ValueError:
            lines.append(f"- {other}: fewer than two prompts paired with '{ref}'; nothing to estimate from")
            continue
        sd_now = (between + (within or 0.0) / samples) ** 0.5
        mde = power.min_detectable(sd_now, n_prompts)
        spread = (f"between-prompt SD {between ** 0.5:.4g}, within-prompt SD {within ** 0.5:.4g}" if within is not None
                  else f"SD {between ** 0.5:.4g} (one sample per prompt: within-prompt spread not separable, "
                       "counted as between prompts, so more samples per prompt are assumed not to help)")
        lines.append(f"- {other} vs {ref}: {n_prompts} prompts x {samples} samples now; paired {spread}; "
                     f"this run detects {mde:.4g}" if mde is not None else f"- {other} vs {ref}: no spread")
        for s in sorted(set(SAMPLE_CHOICES) | {samples}) if within is not None else [samples]:
            need = power.required_prompts(delta, between, within, s)
            lines.append(f"    {s} sample(s) per prompt: "
                         + (f"{need} prompts ({need * s} videos per method)" if need else "more than 10^6 prompts"))
    return "\n".join(lines) + "\n"
