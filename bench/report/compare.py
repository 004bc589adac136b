"""Regression gate: a NEW record against a BASELINE record, per metric, each in its own direction.

Exit codes (see cli.cmd_compare): 0 within tolerance, 1 a regression (or a baseline method missing from NEW),
2 unusable input (unreadable record, records made under different settings or metric protocols, bad --fail-on).

Default tolerances: quality metrics are deterministic on the tiny CPU models (same seeds, fp32, CPU generator; a
rerun reproduces them to the 6 recorded decimals), so they get 0.1% relative: room for float drift across CPUs and
library versions (expected ~1e-5), tight enough to catch a change that moves a mean by more (per-video temporal
flickering spreads about +-0.25% on the smoke suite). Timing runs on shared CI machines where the same kind of video
took 2.9 s to 16.5 s within one smoke run and a second smoke run on the same machine measured +143% seconds per video
with bit-identical quality, so seconds per video only fails past +300% (4x slower); peak RSS moved 2.5% and fails
past +50%.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from bench.errors import UserError, did_you_mean
from bench.report.records import Run, differences, metric_protocols, peak_memory
from bench.report.tables import fmt_number

# gate name -> perf key (None: peak memory, CUDA allocated on GPU else RSS); all lower-is-better
PERF_GATES = {"sec_per_video": "sec_per_video_median", "sec_per_step": "sec_per_step", "peak_mem_mb": None}
from bench.report.gate_defaults import DEFAULT_FAIL_ON, QUALITY_DEFAULT  # noqa: E402  (the CLI reads them cheaply)
RECORD_RESOLUTION = 1e-6  # run.json rounds metric values to 6 decimals
SPEC = re.compile(r"^(?P<sign>[+-]?)(?P<num>\d+(\.\d*)?|\.\d+)(?P<pct>%?)$")


@dataclass(frozen=True)
class Tolerance:
    amount: float  # how far a value may move in its worse direction
    relative: bool  # amount is a fraction of |baseline|
    text: str

    def allowed(self, baseline: float) -> float:
        return self.amount * abs(baseline) if self.relative else self.amount


def parse_tolerance(name: str, spec: str, higher_is_better: bool) -> Tolerance | None:
    """'-1%', '1%', '+0.02', 'off' -> Tolerance (None = not gated); a sign must point the metric's worse way."""
    spec = spec.strip()
    if spec.lower() == "off":
        return None
    m = SPEC.match(spec)
    if not m:
        raise UserError(f"--fail-on {name}:{spec}: write a relative '-1%' or absolute '-0.5' tolerance, or 'off'")
    worse = "-" if higher_is_better else "+"
    if m["sign"] and m["sign"] != worse:
        raise UserError(f"--fail-on {name}:{spec}: {name} is {'higher' if higher_is_better else 'lower'}-is-better, "
                        f"so its tolerance is a {'drop' if higher_is_better else 'rise'}: write {name}:{worse}"
                        f"{m['num']}{m['pct']}")
    amount = float(m["num"]) / (100 if m["pct"] else 1)
    return Tolerance(amount, bool(m["pct"]), f"{worse}{m['num']}{m['pct']}")


def parse_fail_on(text: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in filter(None, (t.strip() for t in (text or "").split(","))):
        name, sep, spec = item.partition(":")
        if not sep or not name.strip():
            raise UserError(f"--fail-on '{item}': write NAME:TOLERANCE, e.g. clip_score:-1%,sec_per_video:+25%")
        out[name.strip()] = spec
    return out


def gate_values(entry: dict) -> dict[str, tuple[float | None, bool]]:
    """name -> (value, higher_is_better) for every gateable quantity of one method entry."""
    out: dict[str, tuple[float | None, bool]] = {
        name: (m.get("value"), bool(m.get("higher_is_better", True))) for name, m in entry.get("metrics", {}).items()}
    perf = entry.get("perf", {})
    for name, key in PERF_GATES.items():
        out[name] = (peak_memory(perf)[0] if key is None else perf.get(key), False)
    return out


@dataclass
class Comparison:
    table: pd.DataFrame
    regressions: int
    messages: list[str]

    def markdown(self) -> str:
        align = ["left", "left", "right", "right", "right", "right", "left", "left"]  # keep the signs of deltas
        body = (self.table.to_markdown(index=False, disable_numparse=True, colalign=align) if len(self.table)
                else "(nothing to compare)")
        verdict = (f"**{self.regressions} regression(s)**" if self.regressions else "**within tolerance**")
        return "\n".join([body, "", *[f"- {m}" for m in self.messages], "", verdict]) + "\n"


def tolerances(base: Run, fail_on: dict[str, str], messages: list[str]) -> dict[str, Tolerance | None]:
    """Defaults (every quality metric of the baseline, timing, memory) overridden by --fail-on.

    A registered metric the baseline lacks (e.g. fvd in a config without it) is noted, not an error, so one
    --fail-on line serves several configs; an unknown name is a typo and exits 2.
    """
    from bench.registry import METRICS

    directions = {name: bool(p.get("higher_is_better", True)) for name, p in metric_protocols(base.record).items()}
    directions.update({name: False for name in PERF_GATES})
    specs = {**{name: QUALITY_DEFAULT for name in metric_protocols(base.record)}, **DEFAULT_FAIL_ON}
    for name in list(fail_on):
        if name in directions:
            specs[name] = fail_on[name]
        elif name in METRICS.names():
            messages.append(f"--fail-on {name}: not measured in the baseline; tolerance unused")
        else:
            known = set(directions) | set(METRICS.names())
            raise UserError(f"--fail-on: unknown name '{name}': {did_you_mean(name, known)}")
    return {name: parse_tolerance(name, spec, directions[name]) for name, spec in specs.items()}


def thread_note(base: Run, new: Run) -> str | None:
    """CPU results move in the last bits with torch's thread count (sum order); name it when it differs."""
    a, b = (r.record.get("env", {}).get("torch_threads", r.record.get("env", {}).get("cpu_threads"))
            for r in (base, new))
    if a is not None and b is not None and a != b:
        return (f"torch threads per process differ ({a} in the baseline, {b} in NEW): CPU numbers then differ in the "
                "last digits (measured up to 2e-5 relative), within the default tolerance")
    return None


def require_comparable(base: Run, new: Run) -> list[str]:
    """UserError (exit 2) naming every setting or protocol that differs; else the gate's opening messages (a
    thread-count difference, named in a refusal too). Both gate modes start here."""
    diff = differences(base.record, new.record)
    note = thread_note(base, new)
    if diff:
        raise UserError(f"'{base.run_id}' and '{new.run_id}' are not comparable: {'; '.join(diff)}"
                        + (f" (also: {note})" if note else ""))
    return [note] if note else []


def compare(base: Run, new: Run, fail_on: dict[str, str] | None = None) -> Comparison:
    messages = require_comparable(base, new)
    tols = tolerances(base, fail_on or {}, messages)
    rows: list[dict] = []
    regressions = 0
    for method, entry in base.methods.items():
        if method not in new.methods:
            messages.append(f"baseline method '{method}' is missing from NEW (regression)")
            regressions += 1
            continue
        new_entry = new.methods[method]
        n_base, n_new = entry.get("counts", {}).get("finished"), new_entry.get("counts", {}).get("finished")
        if isinstance(n_base, int) and isinstance(n_new, int) and n_new < n_base:
            messages.append(f"{method}: {n_new} finished videos in NEW, {n_base} in the baseline (regression)")
            regressions += 1
        new_values = gate_values(new_entry)
        for name, (b, hib) in gate_values(entry).items():
            if name not in tols or b is None:
                continue
            row, bad = _row(method, name, b, new_values.get(name, (None, hib))[0], hib, tols[name])
            rows.append(row)
            regressions += bad
    for method in new.methods:
        if method not in base.methods:
            messages.append(f"method '{method}' is new in NEW (not in the baseline, not gated)")
    return Comparison(pd.DataFrame(rows), regressions, messages)


def _row(method: str, name: str, b: float, n: float | None, hib: bool, tol: Tolerance | None) -> tuple[dict, int]:
    row = {"method": method, "metric": f"{name} {'↑' if hib else '↓'}", "baseline": fmt_number(b),
           "new": "—" if n is None else fmt_number(n), "delta": "—", "delta %": "—",
           "tolerance": tol.text if tol else "off"}
    if n is None:
        row["status"] = "REGRESSION (missing)" if tol else "missing"
        return row, int(tol is not None)
    delta = n - b
    row["delta"] = f"{delta:+.4g}"
    row["delta %"] = f"{100 * delta / abs(b):+.2f}%" if b else "—"
    worse = -delta if hib else delta
    if tol is None:
        row["status"] = "not gated"
        return row, 0
    # slack of the record's resolution (values are written to 6 decimals), so a value equal to the limit after
    # rounding passes, and a baseline of exactly 0 still tolerates last-digit drift
    if worse > tol.allowed(b) + RECORD_RESOLUTION + 1e-12 * abs(b) or math.isnan(n):
        row["status"] = "REGRESSION"
        return row, 1
    row["status"] = "better" if worse < 0 else "ok"
    return row, 0
