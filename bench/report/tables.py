"""Run records -> one comparison table (methods as rows), rendered as Markdown or HTML (LaTeX: latex.py).

The numbers live in a numeric DataFrame; each renderer formats them into strings. What a cell may claim comes from
bench.stats via bench.report.significance: † / ‡ when it differs significantly from the run's reference method,
bold when it is in the statistically best group of its column (measured-only columns, peak memory and training
cost, keep best bold and second underlined/italic). Styling is computed from the numbers, never from the strings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pandas as pd

from bench import stats
from bench.report.records import Run, ci95, metric_protocols, method_labels, peak_memory, record_interval
from bench.report.significance import BEST_NOTE, SIG_NOTE, WORSE, Claims, claims
from bench.store import atomic_write_bytes

ARROWS = {True: ("↑", r"$\uparrow$"), False: ("↓", r"$\downarrow$")}  # (text, LaTeX)
CI_NOTE = stats.CI_NOTE
MARKS = {"text": ("†", "‡"), "latex": (r"$^\dagger$", r"$^\ddagger$")}  # better / worse than the reference
BOUNDS_NOTE = "[lo, hi] is the 95% CI the record gives (bootstrap over videos, for set-level metrics such as FVD)"


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    higher_is_better: bool | None  # None: shown, never ranked (n, trainable params)
    kind: str  # "metric" | "perf" | "count"


@dataclass
class Table:
    values: pd.DataFrame  # rows: method labels; columns: Column.key; floats (NaN = missing)
    ci: pd.DataFrame  # 95% CI half-widths, same shape (NaN = none)
    columns: list[Column]
    runs: list[Run]
    rows: dict[str, tuple[str, str]]  # row label -> (run id, method)
    bounds: dict[tuple[str, str], tuple[float, float]]  # (label, key) -> record-provided [lo, hi]
    claims: Claims = field(default_factory=Claims)  # significance marks and best groups (bench.stats)

    def error(self, label: str, key: str) -> tuple[float, float] | None:
        """(below, above) the value: the record's interval if any, else the symmetric per-video CI."""
        v = self.values.at[label, key]
        if (label, key) in self.bounds:
            lo, hi = self.bounds[(label, key)]
            return max(v - lo, 0.0), max(hi - v, 0.0)
        ci = self.ci.at[label, key]
        return None if math.isnan(ci) else (ci, ci)


def build_table(runs: list[Run], reference: str | None = None) -> Table:
    """One row per (run, method); metrics, n, trainable parameters, seconds per video and peak memory; with the
    paired comparisons against `reference` (default: each record's own, else per_frame or the first method)."""
    labels = method_labels(runs)
    protocols: dict[str, dict] = {}
    for run in runs:
        for name, proto in metric_protocols(run.record).items():
            protocols.setdefault(name, proto)
    mem_label = next((peak_memory(e.get("perf", {}))[1] for r in runs for e in r.methods.values()
                      if peak_memory(e.get("perf", {}))[0] is not None), "peak memory MB")
    columns = [Column(m, m, bool(p.get("higher_is_better", True)), "metric") for m, p in protocols.items()]
    columns += [Column("n", "n", None, "count"), Column("trainable_params", "trainable params", None, "count"),
                Column("sec_per_video", "s/video", False, "perf"), Column("peak_mem_mb", mem_label, False, "perf")]
    if any(e.get("training") for r in runs for e in r.methods.values()):  # the seed's training efficiency
        columns += [Column(key, label, False, "training") for key, label in TRAINING_COLUMNS.items()]
    values: dict[str, dict[str, float]] = {}
    cis: dict[str, dict[str, float]] = {}
    bounds: dict[tuple[str, str], tuple[float, float]] = {}
    for run in runs:
        for method, entry in run.methods.items():
            label = labels[(run.run_id, method)]
            row, ci_row = {}, {}
            for name, m in entry.get("metrics", {}).items():
                row[name] = _num(m.get("value"))
                interval = record_interval(m)
                if interval is not None:
                    bounds[(label, name)] = interval
                else:
                    ci_row[name] = _num(ci95(stats.values_of(run.samples, method, name)))
            metric_ns = [m.get("n") or 0 for m in entry.get("metrics", {}).values()]
            row["n"] = _num(entry.get("counts", {}).get("finished", max(metric_ns, default=None)))
            row["trainable_params"] = _num(entry.get("params", {}).get("trainable"))
            perf = entry.get("perf", {})
            row["sec_per_video"] = _num(perf.get("sec_per_video_median"))
            row["peak_mem_mb"] = _num(peak_memory(perf)[0])
            row.update(training_values(entry.get("training") or {}))
            values[label], cis[label] = row, ci_row
    keys = [c.key for c in columns]
    frame = pd.DataFrame.from_dict(values, orient="index").reindex(columns=keys).astype(float)
    ci = pd.DataFrame.from_dict(cis, orient="index").reindex(index=frame.index, columns=keys).astype(float)
    found = claims(runs, {c.key: bool(c.higher_is_better) for c in columns if c.kind == "metric"}, values, reference)
    bounds.update({(label, "sec_per_video"): ci for label, ci in found.speed_bounds.items()})
    for label, v in found.speed_values.items():  # an interleaved timing replaces the run's method-by-method one
        frame.at[label, "sec_per_video"] = v
    return Table(frame, ci, columns, runs, {label: key for key, label in labels.items()}, bounds, found)


TRAINING_NOTE = ("train columns: the record that t2v-bench train left beside the loaded weights: median seconds per "
                 "step, peak memory, and the step and training seconds (evaluation excluded) at which the validation "
                 "loss first reached the target; '-' for training-free methods")
TRAINING_COLUMNS = {"train_sec_per_step": "train s/step", "train_peak_mem_mb": "train peak MB",
                    "train_steps_to_target": "train steps to target", "train_sec_to_target": "train s to target"}


def training_values(training: dict) -> dict[str, float]:
    """The training-cost columns of a method's `training` record (NaN where it has none: training-free methods,
    or a target validation loss never reached)."""
    reached = training.get("reached_target") or {}
    memory = training.get("memory") or {}
    return {"train_sec_per_step": _num(training.get("sec_per_step_median")),
            "train_peak_mem_mb": _num(peak_memory(memory)[0]),
            "train_steps_to_target": _num(reached.get("step")),
            "train_sec_to_target": _num(reached.get("train_seconds"))}


def _num(v: object) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan


def ranks(table: Table) -> pd.DataFrame:
    """1 = best, 2 = second per ranked column; 0 = not highlighted. Metric and s/video columns: 1 for the
    statistically best group (bench.report.significance), never a 2; measured-only columns: dense ranks of the
    displayed values (ties share a rank)."""
    out = pd.DataFrame(0, index=table.values.index, columns=table.values.columns)
    for col in table.columns:
        if col.kind == "metric" or col.key == "sec_per_video":
            best = table.claims.best.get(col.key, set())
            out.loc[[lab for lab in out.index if lab in best], col.key] = 1
            continue
        # rank what the reader sees: values equal at display precision are ties, not a best and a runner-up
        series = table.values[col.key].dropna().map(lambda v: float(fmt_number(v)))
        if col.higher_is_better is None or series.nunique() < 2:
            continue  # one value (or all tied) is not a "best"
        r = series.rank(method="dense", ascending=not col.higher_is_better)
        keep = 2 if series.size >= 3 else 1  # with two rows, underlining the worse one says nothing
        out.loc[r.index, col.key] = r.where(r <= keep, 0).astype(int)
    return out


def fmt_number(v: float, decimals: int | None = None) -> str:
    """Four significant digits in fixed notation (0.9835, -10.55, 988.5); '—' for a value that is not finite (a
    per-video score a metric does not define for that video, e.g. flickering on a moving prompt)."""
    if not math.isfinite(v):
        return "—"
    if decimals is None:
        decimals = max(0, min(4, 3 - math.floor(math.log10(abs(v))))) if v else 2
    return f"{v:.{decimals}f}"


def fmt_params(v: float) -> str:
    for div, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{int(v)}"


def display(table: Table, pm: str, dash: str, extra: Callable[[str], str] = str,
            marks: tuple[str, str] = MARKS["text"]) -> pd.DataFrame:
    """Formatted cells: value (± CI) for metrics, human counts, dash for missing; `extra` styles the " ± ci" or
    " [lo, hi]" after a value (LaTeX sets it smaller); `marks` (better, worse) follow a value that differs
    significantly from the reference."""
    cells = pd.DataFrame("", index=table.values.index, columns=table.values.columns, dtype=object)
    for col in table.columns:
        for label in table.values.index:
            v, ci = table.values.at[label, col.key], table.ci.at[label, col.key]
            if math.isnan(v):
                text = dash
            elif col.key in ("n", "train_steps_to_target"):
                text = str(int(v))
            elif col.key == "trainable_params":
                text = fmt_params(v)
            else:
                text = fmt_number(v)
                decimals = len(text.split(".")[1]) if "." in text else 0
                if (label, col.key) in table.bounds:
                    lo, hi = table.bounds[(label, col.key)]
                    text += extra(f" [{fmt_number(lo, decimals)}, {fmt_number(hi, decimals)}]")
                elif not math.isnan(ci):
                    text += extra(f" {pm} {fmt_number(ci, decimals)}")
                sig = table.claims.vs_reference.get((label, col.key))
                if sig:
                    text += marks[1] if sig == WORSE else marks[0]
            cells.at[label, col.key] = text
    return cells


def header(col: Column) -> str:
    return col.label if col.higher_is_better is None else f"{col.label} {ARROWS[col.higher_is_better][0]}"


def to_markdown(table: Table, rank: list[int] | None = None) -> str:
    """GitHub Markdown; `rank` (leaderboard) adds a leading rank column."""
    cells = display(table, "±", "—")
    rk = ranks(table)
    cells = cells.mask(rk == 1, "**" + cells + "**").mask(rk == 2, "_" + cells + "_")
    cells.columns = [header(c) for c in table.columns]
    if rank is not None:
        cells.insert(0, "rank", [str(r) for r in rank])
    cells.index.name = "method"
    return cells.to_markdown(colalign=["left"] + ["right"] * len(cells.columns))


def to_html(table: Table, rank: list[int] | None = None) -> str:
    """Styled HTML (bold: the statistically best group, see ranks); `rank` (leaderboard) adds a leading rank
    column. On a narrow page a cell may wrap between its value and its CI, never inside either."""
    cells = display(table, "±", "—", extra=lambda s: " " + s.strip().replace(" ", "\u00a0"))
    rk = ranks(table)
    css = pd.DataFrame("", index=cells.index, columns=cells.columns)
    css = css.mask(rk == 1, "font-weight: bold;").mask(rk == 2, "text-decoration: underline;")
    # a zero-width space after each underscore lets a narrow page wrap long metric names in the head
    # and a no-break space keeps the arrow with the name
    cells.columns = css.columns = [header(c).replace("_", "_\u200b").replace(" ↑", "\u00a0↑").replace(" ↓", "\u00a0↓")
                                   for c in table.columns]
    if rank is not None:
        cells.insert(0, "rank", [str(r) for r in rank])
        css.insert(0, "rank", "")
    styler = cells.style.apply(lambda _: css, axis=None).format(escape="html").format_index(escape="html", axis=0)
    styler = styler.format_index(escape="html", axis=1)  # names come from records: never markup
    return styler.set_uuid("results").set_table_attributes('class="results"').to_html()


def settings_sentence(rec: dict) -> str:
    """Suite, N and sampling settings of a record, as one plain sentence."""
    suite, s = rec.get("suite", {}), rec.get("sampling", {})
    n = suite.get("n_prompts", 0) * suite.get("samples_per_prompt", 0)
    return (f"Prompt suite {suite.get('name')} v{suite.get('version')} (sha256 {str(suite.get('sha256'))[:12]}): "
            f"{suite.get('n_prompts')} prompts x {suite.get('samples_per_prompt')} samples, N = {n} videos per "
            f"method; {s.get('num_frames')} frames at {s.get('height')}x{s.get('width')}, "
            f"{s.get('num_inference_steps')} {s.get('scheduler', 'DDIM')} steps, guidance {s.get('guidance_scale')}, "
            f"base model {rec.get('base', {}).get('model')}, {s.get('dtype')} on {rec.get('env', {}).get('device')}.")


def definitions(rec: dict) -> list[tuple[str, str, str | None]]:
    """(metric, definition, model or None) per metric protocol of a record."""
    return [(name, str(proto.get("definition", "see record")), proto.get("model") or proto.get("weights"))
            for name, proto in metric_protocols(rec).items()]


def sentence(note: str) -> str:
    return f"{note[0].upper()}{note[1:]}."


PERF_NOTE = "s/video is the median seconds per video (warm-up excluded)"
RANK_NOTE = "Best per column in bold, second underlined."


def caption(table: Table) -> str:
    """Suite, N, settings and every metric's protocol (definition + model), from the first record (plain text)."""
    rec = table.runs[0].record
    parts = [settings_sentence(rec)]
    parts += [f"{name}: {d}" + (f" (model {model})." if model else ".") for name, d, model in definitions(rec)]
    if any(key != "sec_per_video" for _, key in table.bounds):
        parts.append(f"{BOUNDS_NOTE}.")
    if any(c.kind == "training" for c in table.columns):
        parts.append(sentence(TRAINING_NOTE))
    if base_note(rec):
        parts.append(base_note(rec).replace("**", ""))
    parts += [f"Values are means over videos; {CI_NOTE}."] + [f"{n}." for n in claim_notes(table)]
    return " ".join(parts)


def claim_notes(table: Table) -> list[str]:
    """What the marks mean (significance vs the reference, best groups, speed intervals), as sentences."""
    refs = sorted(set(table.claims.references.values()))
    notes = [SIG_NOTE.format(refs=", ".join(refs))] if refs else []
    return notes + [BEST_NOTE, table.claims.speed_note]


def power_table(table: Table) -> list[str]:
    """Markdown: per method and metric, the smallest paired difference against the reference this run detects
    with 80% power at alpha 0.05 (bench.power.min_detectable, from the run's own paired spread)."""
    mde = table.claims.mde
    if not mde:
        return []
    labels = list(dict.fromkeys(lab for lab, _ in mde))
    metrics = [c.key for c in table.columns if c.kind == "metric" and any(k == c.key for _, k in mde)]
    frame = pd.DataFrame([[mde.get((lab, m), math.nan) for m in metrics] for lab in labels], index=labels,
                         columns=metrics)
    cells = frame.map(lambda v: "—" if math.isnan(v) else fmt_number(v)).astype(object)
    cells.index.name = "method"
    refs = ", ".join(sorted(set(table.claims.references.values())))
    return [f"Smallest paired difference against the reference ({refs}) this run detects with 80% power at alpha "
            "0.05 (paired t approximation over prompts; `t2v-bench power RUN_DIR --metric NAME --delta D` gives "
            "the prompts needed for a smaller one):", "",
            cells.to_markdown(colalign=["left"] + ["right"] * len(cells.columns)), ""]


BASE_NOTES = {
    "tiny": "Base model: the built-in **tiny** preset with random weights. CLIP score and frame consistency on tiny "
            "random models are a plumbing check, not a quality signal; temporal flickering and timings are "
            "meaningful.",
    "toy": "**Toy-world numbers.** Base, CLIP, FVD features and every method's trainable part were trained by "
           "t2v-bench on its procedural toy world (bench/toy); they compare methods with each other inside that "
           "world and are not comparable with numbers on real models or data.",
}


def base_note(rec: dict) -> str:
    """The label a run's base model calls for (tiny: plumbing check; toy: toy-world numbers), or ''."""
    return BASE_NOTES.get(str(rec.get("base", {}).get("model")), "")


def settings_line(run: Run) -> str:
    rec = run.record
    s, suite = rec.get("sampling", {}), rec.get("suite", {})
    if rec.get("origin") == "imported":  # `t2v-bench score`: how the videos were made is not known
        return (f"Suite **{suite.get('name')}** v{suite.get('version')} ({suite.get('n_prompts')} prompts), imported "
                f"videos ({rec.get('import', {}).get('layout')} layout) conformed to {s.get('num_frames')} frames "
                f"{s.get('height')}x{s.get('width')} at {s.get('fps')} fps, scored on {rec.get('env', {}).get('device')}.")
    return (f"Suite **{suite.get('name')}** v{suite.get('version')} ({suite.get('n_prompts')} prompts x "
            f"{suite.get('samples_per_prompt')} samples), {s.get('num_frames')} frames {s.get('height')}x"
            f"{s.get('width')}, {s.get('num_inference_steps')} steps, guidance {s.get('guidance_scale')}, "
            f"{s.get('dtype')} on {rec.get('env', {}).get('device')}.")


def markdown_notes(runs: list[Run], table: Table | None = None) -> list[str]:
    rec = runs[0].record
    table = table if table is not None else build_table(runs)
    marks = " ".join(f"{n.replace('Bold', '**Bold**', 1)}." for n in claim_notes(table))
    lines = [f"Values are means over videos; {CI_NOTE}. {marks} Direction per arrow.", ""]
    if any(record_interval(m) for r in runs for e in r.methods.values() for m in e.get("metrics", {}).values()):
        lines[-1:-1] = [f"{BOUNDS_NOTE}."]
    if any(e.get("training") for r in runs for e in r.methods.values()):
        lines[-1:-1] = [f"{TRAINING_NOTE[0].upper()}{TRAINING_NOTE[1:]}."]
    note = base_note(rec)
    if note:
        lines += [f"> {note}", ""]
    for name, proto in metric_protocols(rec).items():
        model = proto.get("model") or proto.get("weights")
        lines.append(f"- `{name}`: {proto.get('definition', '')}" + (f" (model `{model}`)" if model else ""))
    lines.append("")
    for run in runs:
        h = run.record.get("harness", {})
        lines.append(f"`{run.run_id}`: harness {h.get('version')} @ {str(h.get('git_sha'))[:10]}"
                     f"{' (dirty)' if h.get('dirty') else ''}, generation hash "
                     f"`{str(run.record.get('generation_hash'))[:12]}`, created {run.record.get('created_at')}.")
    return lines


def breakdown_tables(runs: list[Run]) -> list[str]:
    """Markdown tables of metrics the record also gives per caption group (`by_group`, e.g. motion fidelity per
    kind of motion): methods as rows, groups as columns, n per group in the header, best per column in bold."""
    labels = method_labels(runs)
    by_metric: dict[str, dict[str, dict[str, float]]] = {}
    counts: dict[str, dict[str, int]] = {}
    higher: dict[str, bool] = {}
    for run in runs:
        for method, entry in run.methods.items():
            for name, m in entry.get("metrics", {}).items():
                if m.get("by_group"):
                    by_metric.setdefault(name, {})[labels[(run.run_id, method)]] = m["by_group"]
                    counts.setdefault(name, {}).update(m.get("n_by_group", {}))
                    higher[name] = bool(m.get("higher_is_better", True))
    lines: list[str] = []
    for name, rows in by_metric.items():
        frame = pd.DataFrame.from_dict(rows, orient="index").astype(float)
        cells = frame.map(lambda v: "—" if math.isnan(v) else fmt_number(v)).astype(object)
        cells.columns = [f"{g} (n={counts[name].get(g, '?')}) {ARROWS[higher[name]][0]}" for g in frame.columns]
        cells.index.name = "method"
        lines += [f"`{name}` by caption group (per-video means; n = videos per method; no best is marked: "
                  "a group holds a fraction of the videos):", "",
                  cells.to_markdown(colalign=["left"] + ["right"] * len(cells.columns)), ""]
    return lines


def markdown_report(groups: list[list[Run]], reference: str | None = None) -> str:
    """The Markdown report: one section (settings, table, notes) per group of comparable runs."""
    ids = [r.run_id for g in groups for r in g]
    lines = [f"# t2v-bench {'run' if len(ids) == 1 else 'runs'} " + ", ".join(f"`{i}`" for i in ids), ""]
    for i, runs in enumerate(groups, 1):
        if len(groups) > 1:
            lines += [f"## Group {i}", ""]
        from bench.report.tag_tables import tag_tables
        table = build_table(runs, reference)
        lines += [settings_line(runs[0]), "", to_markdown(table), "", *breakdown_tables(runs), *tag_tables(runs),
                  *power_table(table), *markdown_notes(runs, table), ""]
    return "\n".join(lines).rstrip() + "\n"


def write_run_report(record: dict, path: Path) -> None:
    """report.md of one run (called by the runner); CIs come from samples.jsonl beside it when present."""
    from bench.report.records import read_samples

    path = Path(path)
    run = Run(record, path.parent, read_samples(path.parent / "samples.jsonl"))
    atomic_write_bytes(path, markdown_report([[run]]).encode())
