"""plan -> generate (cached, resumable) -> evaluate -> record.

Every work item (method, prompt, sample index) is independent: its seed derives from (base seed, prompt id,
sample index) only, and its video is written atomically under a cache key, so a rerun skips finished items and an
interrupted run loses nothing.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

import bench
from bench.api import GenRequest, Video
from bench.breakdown import add_tag_breakdown
from bench.config import RunConfig, config_hash
from bench.distributed import Dist
from bench.errors import UserError
from bench.models import load_base, resolve_device, resolve_dtype
from bench.accel import prepare_base, prepare_method
from bench.generation import generate_method
from bench.perf import summarize
from bench.prompts import PromptSuite, combined_negative, load_suite
from bench.registry import METHODS
from bench.store import SCHEMA_VERSION, RunStore, atomic_write_json, environment, git_state, write_jsonl
from bench.text_cache import TextEmbeddingCache

log = logging.getLogger("t2v_bench")
SEED_RULE = "int(sha256(f'{seed}/{prompt_id}/{sample}').hexdigest()[:8], 16)"


def derive_seed(base_seed: int, prompt_id: str, sample: int) -> int:
    """The seed of one sample: independent of method, batch position, rank and world size."""
    return int(hashlib.sha256(f"{base_seed}/{prompt_id}/{sample}".encode()).hexdigest()[:8], 16)


@dataclass(frozen=True)
class WorkItem:
    method: str
    sample: int
    request: GenRequest
    key: str  # cache key: method name + version + options + base + dtype + request

    @property
    def prompt_id(self) -> str:
        return self.request.prompt_id


@dataclass
class RunResult:
    out_dir: Path
    record: dict
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(c.get("failed", 0) for c in self.counts.values())


class Runner:
    def __init__(self, cfg: RunConfig, out_dir: str | Path | None = None, progress: bool = True,
                 dist: Dist | None = None, suite: PromptSuite | None = None, reference: str | None = None):
        self.cfg = cfg
        self.reference = reference  # method the paired comparisons in run.json are against (bench.stats)
        self.dist = dist or Dist()
        self._check_methods()  # unknown names fail now, before any work
        from bench.registry import METRICS
        for name in cfg.metrics:
            METRICS.target(name)
        self.suite: PromptSuite = suite or load_suite(cfg.prompts)
        self.device = resolve_device(self.dist.device(cfg.device))
        self.dtype = resolve_dtype(cfg.dtype, self.device)
        if self.device.type == "cpu" and self.dtype == torch.bfloat16 and self.dist.is_main:
            log.warning("bf16 on CPU is slower than fp32 (few CPUs have fast bf16 kernels; up to 13x on a whole toy "
                        "run); use --dtype fp32 on CPU")
        self.generation = cfg.generation_dict(self.suite.sha256, self.device.type)
        self.generation_hash = config_hash(self.generation)
        self.out_dir = Path(out_dir) if out_dir else default_out_dir(cfg, self.generation_hash)
        self.store = RunStore(self.out_dir)
        self.progress = progress and self.dist.is_main
        self._base = None
        self.accel_applied: dict[str, Any] = {}

    def _check_methods(self) -> None:
        for name in self.cfg.methods:
            METHODS.target(name)

    def method_version(self, name: str) -> str:
        return getattr(METHODS.get(name), "version", "0")

    # ------------------------------------------------------------------ plan
    def plan(self) -> list[WorkItem]:
        s = self.cfg.sampling
        items = []
        for method in self.cfg.methods:
            cls = METHODS.get(method)
            version = getattr(cls, "version", "0")
            identity = {"method": method, "version": version, "options": self.method_options(method),
                        "base": self.cfg.base.model_dump(), "dtype": self.cfg.dtype, "device": self.device.type}
            if hasattr(cls, "noise_schedule"):  # the method's default schedule (the options hold any override)
                identity["noise_schedule"] = dict(cls.noise_schedule)
            if self.cfg.base.model == "toy" or "toy" in self.cfg.methods[method].values():
                # Toy weights are retrainable under the same name: key on their content.
                identity["toy_weights_sha256"] = _toy_fingerprint()
            if self.cfg.accel.output_changing():
                identity["accel"] = self.cfg.accel.output_changing()
            for prompt in self.suite.prompts:
                for k in range(self.cfg.samples_per_prompt):
                    request = GenRequest(prompt_id=prompt.id, prompt=prompt.text,
                                         seed=derive_seed(self.cfg.seed, prompt.id, k), num_frames=s.num_frames,
                                         height=s.height, width=s.width, num_inference_steps=s.num_inference_steps,
                                         guidance_scale=s.guidance_scale, fps=s.fps,
                                         negative_prompt=combined_negative(s.negative_prompt, prompt.negative_prompt))
                    key = config_hash({**identity, "request": request.to_dict()})
                    items.append(WorkItem(method, k, request, key))
        return items

    # ------------------------------------------------------------------ generate
    def base(self):
        if self._base is None:
            b, accel = self.cfg.base, self.cfg.accel
            load_device = torch.device("cpu") if accel.cpu_offload and self.device.type == "cuda" else self.device
            base = load_base(b.model, revision=b.revision, unet=b.unet, lora=b.lora, lora_scale=b.lora_scale,
                             seed=b.seed, device=load_device, dtype=self.dtype, config=b.config)
            self.accel_applied = prepare_base(base, accel, self.device, self.dtype)
            base.execution_device = self.device
            base.text_cache = TextEmbeddingCache()
            self._base = base
        return self._base

    def method_options(self, name: str) -> dict[str, Any]:
        """A method's options with the run's sampler (sampling.scheduler, sampling.eta) filled in where the
        method's own options leave it unset. Methods outside LatentVideoMethod get them only if they are set."""
        from methods.base import COMMON_OPTIONS, LatentVideoMethod

        s, own = self.cfg.sampling, dict(self.cfg.methods[name])
        sampler = {"scheduler": s.scheduler, "eta": s.eta}
        cls = METHODS.get(name)
        if isinstance(cls, type) and issubclass(cls, LatentVideoMethod):
            return {**sampler, **own}
        if any(sampler[k] != COMMON_OPTIONS[k] for k in sampler):
            raise UserError(f"method '{name}' does not take sampling.scheduler/eta; leave them at ddim/0 or set "
                            "them per method")
        return own

    def build_method(self, name: str):
        method = METHODS.get(name)(self.base(), **self.method_options(name))
        prepare_method(method, self.cfg.accel, self.device)
        return method

    def generate(self, items: list[WorkItem] | None = None) -> dict[str, dict[str, int]]:
        """Generate every item of this process's share not already on disk; returns counts per method, summed
        over processes. The plan is cut into batches first and each process takes a contiguous block of whole
        batches (of the whole plan, not of what is left): every process agrees on its share whatever another has
        finished meanwhile, and a batch holds the same requests at any world size, so results do not depend on it
        (kernels may round differently for another batch composition)."""
        items = self.plan() if items is None else items
        counts: dict[str, dict[str, int]] = {}
        for method_name in self.cfg.methods:
            planned = [it for it in items if it.method == method_name]
            size = self.cfg.accel.auto_batch_max if self.cfg.batch_size == "auto" else self.cfg.batch_size
            my_batches = self.dist.split([planned[i:i + size] for i in range(0, len(planned), size)])
            todo_batches = [[it for it in b if not self.store.is_done(it.method, it.prompt_id, it.sample, it.key)]
                            for b in my_batches]
            todo_batches = [b for b in todo_batches if b]
            n_mine, n_todo = sum(map(len, my_batches)), sum(map(len, todo_batches))
            counts[method_name] = {"planned": len(planned), "generated": 0, "skipped": n_mine - n_todo,
                                   "failed": 0, "stage_seconds": 0.0}
            if not todo_batches:
                continue
            generate_method(self, method_name, todo_batches, counts[method_name])
        return _sum_counts(self.dist.gather_objects(counts))

    def _progress(self, total: int, desc: str) -> Callable[[int], None]:
        if not self.progress:
            return lambda n: None
        from tqdm import tqdm
        bar = tqdm(total=total, desc=f"generate {desc}", unit="video", leave=False)
        return bar.update

    # ------------------------------------------------------------------ evaluate
    def evaluate(self, items: list[WorkItem] | None = None) -> tuple[dict[str, dict], list[dict]]:
        """Score every finished video; returns ({method: {metric: summary}}, per-video rows in plan order).

        Each process scores its contiguous share, one video at a time (so no value depends on which videos
        shared a batch); metric states sync through torchmetrics in compute(), rows are gathered in plan order."""
        from bench.metrics import build_metrics

        items = self.plan() if items is None else items
        done = [it for it in items if self.store.is_done(it.method, it.prompt_id, it.sample, it.key)]
        metrics = build_metrics(self.cfg.metrics, self.cfg, self.device) if done else {}
        self.set_references = {n: m.reference.sums for n, m in metrics.items() if getattr(m, "reference", None)}
        order = {it.key: i for i, it in enumerate(items)}
        results: dict[str, dict] = {}
        rows: list[dict] = []
        for method_name in self.cfg.methods:
            finished = [it for it in done if it.method == method_name]
            for metric in metrics.values():
                metric.reset()
            local_rows = [self._score(it, metrics) for it in self.dist.split(finished)]
            values = {name: (_finite(metric.compute()), metric.describe())  # collective: every rank calls it
                      for name, metric in metrics.items()} if finished else {}
            method_rows = sorted((r for part in self.dist.gather_objects(local_rows) for r in part),
                                 key=lambda r: order[r["key"]])
            rows += method_rows
            results[method_name] = {name: self._summary(name, metric, value, describe, method_rows)
                                    for name, metric in metrics.items() for value, describe in [values[name]]} \
                if finished else {}
            if finished:
                results[method_name].update(self._quality_scores(results[method_name], method_rows))
        return results, rows

    def _quality_scores(self, summaries: dict[str, dict], rows: list[dict]) -> dict[str, dict]:
        """VBench's aggregate over the quality dimensions measured, and t2v-bench's motion-gated one."""
        from bench.metrics import quality_score as q

        static = {p.id for p in self.suite.prompts if set(p.tags) & set(self.cfg.vbench.static_tags)}
        found = {q.NAME: q.summarise(summaries, rows), q.GATED_NAME: q.summarise_gated(rows, static)}
        return {name: entry for name, entry in found.items() if entry is not None}

    def _score(self, it: WorkItem, metrics: dict[str, Any]) -> dict:
        video = Video.from_uint8(self.store.load_frames(it.method, it.prompt_id, it.sample), it.request.fps)
        values: dict[str, float] = {}
        extra: dict[str, Any] = {}
        for name, metric in metrics.items():
            metric.update([video], [it.request.prompt])
            if metric.last_values is not None:
                values[name] = metric.last_values[0]
            features = getattr(metric, "last_features", None)
            if features is not None:  # kept so the metric can be recomputed against another reference
                extra[f"{name}_features"] = [round(x, 7) for x in features[0].tolist()]
                extra[f"{name}_offset"] = metric.last_offsets[0]
        return {**self._sample_row(it, values), **extra}

    def _summary(self, name: str, metric: Any, value: float | None, describe: dict, rows: list[dict]) -> dict:
        summary = {"value": value, "n": len(rows), "higher_is_better": metric.higher_is_better, **describe}
        feature_key = f"{name}_features"
        if getattr(metric, "reference", None) is not None and len(rows) >= 2 and feature_key in rows[0]:
            from bench.metrics.fvd import bootstrap_fvd_ci
            feats = torch.tensor([r[feature_key] for r in rows], dtype=torch.float64)
            lo, hi = bootstrap_fvd_ci(feats, metric.reference, n_boot=200, seed=0)
            summary["ci95_bootstrap"] = [round(lo, 4), round(hi, 4)]
        if hasattr(metric, "group_of"):  # e.g. motion fidelity per kind of motion the caption asks for
            groups: dict[str, list[float]] = {}
            for r in rows:
                v, g = r["metrics"].get(name), metric.group_of(r["prompt"])
                if g is not None and v is not None and math.isfinite(v):
                    groups.setdefault(g, []).append(v)
            summary["by_group"] = {g: round(sum(v) / len(v), 6) for g, v in sorted(groups.items())}
            summary["n_by_group"] = {g: len(v) for g, v in sorted(groups.items())}
        return summary

    def _sample_row(self, it: WorkItem, values: dict[str, float]) -> dict:
        path = functools.partial(self.store.item_path, it.method, it.prompt_id, it.sample)
        meta = self.store.load_item_meta(it.method, it.prompt_id, it.sample)
        return {"method": it.method, "prompt_id": it.prompt_id, "prompt": it.request.prompt, "sample": it.sample,
                "seed": it.request.seed, "key": it.key, "video": self.store.relpath(path(".mp4")),
                "frames": self.store.relpath(path(".npy")), "seconds": meta.get("seconds"),
                "warmup": bool(meta.get("warmup")), "batch": meta.get("batch"),
                "metrics": {k: round(v, 6) for k, v in values.items()}}

    # ------------------------------------------------------------------ record
    def record(self, metrics: dict[str, dict], counts: dict[str, dict[str, int]], items: list[WorkItem]) -> dict:
        s = self.cfg.sampling
        methods: dict[str, Any] = {}
        for name in self.cfg.methods:
            mine = [it for it in items if it.method == name]
            metas = [self.store.load_item_meta(it.method, it.prompt_id, it.sample) for it in mine
                     if self.store.is_done(it.method, it.prompt_id, it.sample, it.key)]
            perf_file = self.store.load_method_perf(name)
            c = dict(counts.get(name) or {"planned": len(mine), "generated": 0, "skipped": len(metas), "failed": 0})
            perf = summarize([m for m in metas if m.get("seconds") is not None], s.num_frames, s.num_inference_steps)
            stage_seconds = c.pop("stage_seconds", 0.0)
            c.pop("oom", None)
            # frames that failed verification and were not regenerated (evaluate-only): failed, not finished
            c["failed"] += sum(1 for it in mine if (it.method, it.prompt_id, it.sample) in self.store.bad_items)
            if perf.get("sec_per_video_median"):
                perf["videos_per_hour_per_process"] = round(3600 / perf["sec_per_video_median"], 1)
            if c["generated"] and stage_seconds:  # this session's wall clock, all processes together
                perf["videos_per_hour_total"] = round(3600 * c["generated"] / stage_seconds, 1)
            methods[name] = {
                "version": self.method_version(name),
                "options": self.cfg.methods[name],
                "config_hash": metas[0]["method_config_hash"] if metas else None,
                "params": perf_file.get("params", {}),
                **({"training": perf_file["training"]} if perf_file.get("training") else {}),
                **perf_file.get("setup", {}),
                "metrics": metrics.get(name, {}),
                "perf": {**perf, **{k: v for k, v in perf_file.items() if k not in ("params", "training", "setup")},
                         "world_size": self.dist.world_size},
                "counts": {**c, "finished": len(metas)},
            }
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.out_dir.name,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "harness": {"version": bench.__version__, **git_state(Path(bench.__file__).parent)},
            "env": environment(self.device),
            "config_name": self.cfg.name,
            "world_size": self.dist.world_size,
            "generation_hash": self.generation_hash,
            "base": self.cfg.base.model_dump(),
            "suite": {"name": self.suite.name, "version": self.suite.version, "sha256": self.suite.sha256,
                      "n_prompts": len(self.suite.prompts), "samples_per_prompt": self.cfg.samples_per_prompt,
                      "source": self.suite.source},
            "sampling": {**s.model_dump(), "base_seed": self.cfg.seed, "seed_rule": SEED_RULE,
                         "generator": "torch.Generator('cpu') per item",
                         "dtype": self.cfg.dtype, "batch_size": self.cfg.batch_size,
                         # what guidance did: the shared sampler runs classifier-free guidance only above 1
                         "cfg": s.guidance_scale > 1.0},
            "accel": {**self.cfg.accel.model_dump(), **self.accel_applied},
            "methods": methods,
        }

    # ------------------------------------------------------------------ all stages
    def run(self, stage: str = "all") -> RunResult:
        """All stages. Every process generates and scores its share; only rank 0 writes run-level files."""
        from bench.preflight import check_sources

        self.store.regenerate = stage != "evaluate"
        # every weight a stage needs, before the first video; a subclass with its own generate (importing files)
        # loads no base or method weights, so only what scoring needs is checked for it
        check_sources(self.cfg, stage if type(self).generate is Runner.generate else
                      {"all": "evaluate", "evaluate": "evaluate"}.get(stage, "none"))
        items = self.plan()
        if stage == "evaluate":
            self.store.claim(self.cfg.model_dump(), self.generation_hash, write=False)
            if not any(self.store.is_done(it.method, it.prompt_id, it.sample, it.key) for it in items):
                raise UserError(f"no finished videos of this config to evaluate in {self.out_dir}; run "
                                "`t2v-bench generate` (or `run`) with the same arguments first")
        self.store.claim(self.cfg.model_dump(), self.generation_hash, write=self.dist.is_main)
        self.dist.barrier()
        counts: dict[str, dict[str, int]] = {}
        if stage in ("all", "generate"):
            counts = self.generate(items)
            self.dist.barrier()
        metrics, rows = ({}, [])
        if stage in ("all", "evaluate"):
            metrics, rows = self.evaluate(items)
            add_tag_breakdown(metrics, rows, self.suite, getattr(self, "set_references", {}))
        if not self.dist.is_main:
            return RunResult(self.out_dir, {}, counts)
        if stage in ("all", "evaluate"):
            write_jsonl(self.out_dir / "samples.jsonl", rows)
            from bench.stats import attach_comparisons
            attach_comparisons(metrics, rows, self.reference, getattr(self, "set_references", {}), self.out_dir)
        record = self.record(metrics, counts, items)
        from bench.speed_stats import attach_file, plan_keys  # a `t2v-bench speed` measurement of this run
        attach_file(record, self.out_dir, plan_keys(items))
        atomic_write_json(self.out_dir / "run.json", record)
        from bench.report.tables import write_run_report
        write_run_report(record, self.out_dir / "report.md")
        return RunResult(self.out_dir, record, counts)


def default_out_dir(cfg: RunConfig, generation_hash: str) -> Path:
    """Derived from the config, so the same command twice resumes instead of starting over."""
    return Path("results") / "runs" / f"{cfg.name}-{generation_hash[:10]}"


def _sum_counts(per_rank: list[dict[str, dict]]) -> dict[str, dict]:
    """Counts of all processes: items add up, the stage took as long as its slowest process."""
    total: dict[str, dict] = {}
    for counts in per_rank:
        for method, c in counts.items():
            t = total.setdefault(method, {"planned": c["planned"], "generated": 0, "skipped": 0, "failed": 0,
                                          "stage_seconds": 0.0})
            for key in ("generated", "skipped", "failed", "oom"):
                t[key] = t.get(key, 0) + c.get(key, 0)
            t["stage_seconds"] = max(t["stage_seconds"], c["stage_seconds"])
    return total


@functools.lru_cache(maxsize=1)
def _toy_fingerprint() -> str:
    from bench.models import toy_weights, weights_fingerprint

    return weights_fingerprint(toy_weights("."))


def _finite(value: torch.Tensor) -> float | None:
    v = float(value)
    return None if math.isnan(v) else round(v, 6)
