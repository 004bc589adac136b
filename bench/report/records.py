"""Loading run records for reports and gates, and deciding which records may share one table.

A record is a run.json; its run folder (when known) also holds samples.jsonl (per-video metric values, used for
confidence intervals and the gallery) and the videos. Records made under different settings are never merged
silently: `settings_key` names what must match, `check_comparable` refuses with one line naming the difference.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.errors import UserError

# Record fields that change what a number means. Anything else (harness sha, timestamps, method options) may differ.
SAMPLING_KEYS = ("num_frames", "height", "width", "num_inference_steps", "guidance_scale", "negative_prompt",
                 "scheduler", "eta")
# Per-metric keys that are results or bookkeeping, not protocol (FVD records its own counts, CI and verdict).
METRIC_VALUE_KEYS = {"value", "n", "stderr", "ci95", "ci95_bootstrap", "n_fake", "n_real", "comparable",
                     "not_comparable_because", "by_group", "n_by_group", "by_tag", "by_tag_note",
                     "vs_reference"}
# Reference-set statistics (FVD's real-side mean norm and covariance trace) are float sums whose last bits change with
# the CPU's kernels and the thread count (measured: ~1e-7 relative); a different reference set moves them by far more.
REFERENCE_STATS_RTOL = 1e-4
# How videos were made: a property of the method, not of the scoring, so not compared when a side was imported
# (`t2v-bench score`): an imported set is compared on suite, frames, size, device and metric protocols only.
GENERATION_KEYS = {"num_inference_steps", "guidance_scale", "negative_prompt", "scheduler", "eta", "base model", "base unet",
                   "base lora", "dtype"}
INTERVAL_KEYS = ("ci95_bootstrap", "ci95")  # a record-provided [lo, hi] wins over the per-video t interval


@dataclass
class Run:
    """One record, the folder it was read from (media paths in samples are relative to it), per-video rows."""

    record: dict
    folder: Path | None
    samples: list[dict] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return str(self.record.get("run_id") or (self.folder.name if self.folder else "run"))

    @property
    def methods(self) -> dict[str, dict]:
        return self.record.get("methods", {})


def load_run(path: str | Path) -> Run:
    """A run folder or a run.json path -> Run. Unusable input is a UserError (exit 2)."""
    p = Path(path)
    file = p / "run.json" if p.is_dir() else p
    if not file.is_file():
        raise UserError(f"{path}: no run.json there; pass a run folder (results/runs/<id>) or a run.json file")
    try:
        record = json.loads(file.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{file}: not a readable JSON record ({exc})") from None
    if not isinstance(record, dict) or not isinstance(record.get("methods"), dict):
        raise UserError(f"{file}: not a t2v-bench run record (no 'methods' section)")
    return Run(record, file.parent, read_samples(file.parent / "samples.jsonl"))


def read_samples(path: Path) -> list[dict]:
    """Per-video rows of samples.jsonl; [] when the file is absent (a bare run.json was given)."""
    if not path.is_file():
        return []
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON lines ({exc})") from None


def metric_protocols(record: dict) -> dict[str, dict]:
    """metric name -> its description (definition, model, weights, direction) without values."""
    out: dict[str, dict] = {}
    for entry in record.get("methods", {}).values():
        for name, m in entry.get("metrics", {}).items():
            out.setdefault(name, {k: v for k, v in m.items() if k not in METRIC_VALUE_KEYS})
    return out


def settings_key(record: dict) -> dict[str, Any]:
    """Everything that must match for two records' numbers to be compared."""
    suite = record.get("suite", {})
    sampling = record.get("sampling", {})
    base = record.get("base", {})
    device = str(record.get("env", {}).get("device", "")).split(":")[0]
    key: dict[str, Any] = {"suite": f"{suite.get('name')} sha256 {str(suite.get('sha256'))[:12]}"}
    key.update({k: sampling.get(k) for k in SAMPLING_KEYS})
    key.update({"base model": base.get("model"), "base unet": base.get("unet"), "base lora": base.get("lora"),
                "dtype": sampling.get("dtype"), "device": device})
    return key


def _content_keyed(d: Any) -> Any:
    """A protocol description without file locations where it also names the file's sha256: the same weights at
    another path (another checkout, another machine) compare equal."""
    if not isinstance(d, dict):
        return d
    out = {k: _content_keyed(v) for k, v in d.items()}
    if out.get("sha256"):
        out.pop("source", None)
    if out.get("pretrained_sha256"):
        out.pop("pretrained", None)
    return out


def _close(x: Any, y: Any, rtol: float) -> bool:
    if isinstance(x, (int, float)) and isinstance(y, (int, float)):
        return math.isclose(float(x), float(y), rel_tol=rtol, abs_tol=1e-12)
    return x == y


def reference_differences(metric: str, a: dict, b: dict) -> list[str]:
    """A metric's reference set (FVD): identical `identity` fields (what defines the set: generator, version, n,
    seed, size, frames, detector, protocol; or a file's sha256), statistics equal within REFERENCE_STATS_RTOL, and
    any other field (name, protocol) equal. Its location (`source`) may differ."""
    out = []
    ia, ib = a.get("identity") or {}, b.get("identity") or {}
    for k in sorted(set(ia) | set(ib)):
        if ia.get(k) != ib.get(k):
            out.append(f"{metric} reference {k} {ia.get(k)!r} vs {ib.get(k)!r}")
    sa, sb = a.get("stats") or {}, b.get("stats") or {}
    for k in sorted(set(sa) | set(sb)):
        if not _close(sa.get(k), sb.get(k), REFERENCE_STATS_RTOL):
            out.append(f"{metric} reference statistic {k} {sa.get(k)!r} vs {sb.get(k)!r} (differs beyond "
                       f"{REFERENCE_STATS_RTOL:g} relative: not the same reference set)")
    for k in sorted((set(a) | set(b)) - {"identity", "stats", "source"}):
        if a.get(k) != b.get(k):
            out.append(f"{metric} reference {k} {a.get(k)!r} vs {b.get(k)!r}")
    return out


def differences(a: dict, b: dict) -> list[str]:
    """Human-readable differences between two records' settings and shared metric protocols."""
    out = []
    ka, kb = settings_key(a), settings_key(b)
    skip = GENERATION_KEYS if "imported" in (a.get("origin"), b.get("origin")) else set()
    for k in ka:
        if k not in skip and ka[k] != kb.get(k):
            out.append(f"{k} {ka[k]!r} vs {kb.get(k)!r}")
    pa = {k: _content_keyed(v) for k, v in metric_protocols(a).items()}
    pb = {k: _content_keyed(v) for k, v in metric_protocols(b).items()}
    for name in sorted(set(pa) & set(pb)):
        for k in sorted(set(pa[name]) | set(pb[name])):
            x, y = pa[name].get(k), pb[name].get(k)
            if k == "reference" and isinstance(x, dict) and isinstance(y, dict):
                out.extend(reference_differences(name, x, y))
            elif x != y:
                out.append(f"{name} {k} {x!r} vs {y!r}")
    return out


def check_comparable(runs: list[Run], hint: str = "") -> None:
    """Refuse (UserError, exit 2) when any run differs from the first in settings or metric protocol."""
    for run in runs[1:]:
        diff = differences(runs[0].record, run.record)
        if diff:
            raise UserError(f"runs '{runs[0].run_id}' and '{run.run_id}' are not comparable: {'; '.join(diff)}"
                            f"{hint}")


def group_runs(runs: list[Run]) -> list[list[Run]]:
    """Runs split into groups of mutually comparable records, in input order."""
    groups: list[list[Run]] = []
    for run in runs:
        for g in groups:
            if not differences(g[0].record, run.record):
                g.append(run)
                break
        else:
            groups.append([run])
    return groups


def per_video_values(run: Run, method: str, metric: str) -> list[float]:
    return [float(r["metrics"][metric]) for r in run.samples
            if r.get("method") == method and isinstance(r.get("metrics", {}).get(metric), (int, float))]


def record_interval(summary: dict) -> tuple[float, float] | None:
    """[lo, hi] the record itself gives (e.g. FVD's bootstrap over videos), else None."""
    for key in INTERVAL_KEYS:
        v = summary.get(key)
        if isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, (int, float)) for x in v):
            return float(v[0]), float(v[1])
    return None


def ci95(values: list[float] | dict) -> float | None:
    """Half-width of the 95% Student-t interval of the mean (bench.stats.mean_ci; a dict keyed by (prompt_id,
    sample) is averaged per prompt first); None below two values."""
    from bench.stats import mean_ci

    interval = mean_ci(values)
    return None if interval is None else (interval[1] - interval[0]) / 2


def peak_memory(perf: dict) -> tuple[float | None, str]:
    """Peak CUDA allocated when measured on a GPU, else peak RSS; with its label."""
    if perf.get("peak_cuda_allocated_mb") is not None:
        return float(perf["peak_cuda_allocated_mb"]), "peak CUDA alloc MB"
    if perf.get("peak_rss_mb") is not None:
        return float(perf["peak_rss_mb"]), "peak RSS MB"
    return None, "peak memory MB"


def method_labels(runs: list[Run]) -> dict[tuple[str, str], str]:
    """(run_id, method) -> row label; prefixed with the run id only when a method appears in several runs."""
    seen: dict[str, int] = {}
    for run in runs:
        for m in run.methods:
            seen[m] = seen.get(m, 0) + 1
    labels: dict[tuple[str, str], str] = {}
    for run in runs:
        for m in run.methods:
            labels[(run.run_id, m)] = f"{run.run_id}/{m}" if seen[m] > 1 else m
    if len(set(labels.values())) != len(labels):
        raise UserError("two runs share a run id and a method; give one of them another --out folder name")
    return labels
