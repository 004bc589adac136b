"""`t2v-bench score VIDEO_DIR --name NAME`: videos made anywhere, scored by the same code as generated ones.

The imported set becomes one "method" NAME of an ordinary run folder: each matched file is decoded, conformed to
the run's sampling settings by the pinned rule of bench.video_io, and written as the same lossless `.npy` frames
and `.json` sidecar a generated video has; then Runner.evaluate and Runner.record run unchanged, so `report`,
`compare` and `leaderboard` read the folder like any other. run.json says `origin: imported` and records the
source folder, its layout, the conform rule, the sha256 of every file and the counts (found, matched, scored,
failed). Nothing is written into VIDEO_DIR.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import torch

from bench.api import GenRequest
from bench.config import RunConfig, config_hash
from bench.errors import UserError
from bench.layouts import Matched, match, scan, suite_from_found
from bench.prompts import load_suite
from bench.runner import Runner, RunResult, WorkItem
from bench.video_io import CONFORM_RULE, DecodeError, conform, decode, sha256_of

MAX_MISSING_LINES = 20  # a partial copy of a 946-prompt suite should not bury the other lines


def _say(line: str) -> None:
    print(line, file=sys.stderr)


class ImportRunner(Runner):
    def __init__(self, cfg: RunConfig, video_dir: str | Path, name: str, *, layout: str = "auto",
                 prompts: str | None = None, map_file: str | None = None, out_dir: str | Path | None = None,
                 resize: str = "fit", progress: bool = False, say: Callable[[str], None] = _say):
        self.video_dir = Path(video_dir).expanduser().resolve()
        if not self.video_dir.is_dir():
            raise UserError(f"VIDEO_DIR '{video_dir}' is not a folder")
        if not name or any(c in name for c in "/\\ ") or name.startswith("."):
            raise UserError(f"--name '{name}': use a name without '/', '\\' or spaces (it names a folder)")
        if resize not in ("fit", "refuse"):
            raise UserError(f"--resize {resize}: choose fit or refuse")
        self.name, self.resize, self.say = name, resize, say
        self.layout, found, self.problems = scan(self.video_dir, layout, map_file)
        suite = load_suite(prompts) if prompts else self._default_suite(found)
        self.matched, problems, self.missing, self.rejected = match(found, suite)
        self.problems += problems
        self.found = len(found) + sum(1 for p in self.problems if ": no such file" in p)
        self.n_matched = len(found) - sum(1 for why in self.rejected.values() if why == "unmatched")
        self.all_files = found
        if not self.matched:
            for line in self.problems[:MAX_MISSING_LINES]:
                say(line)
            raise UserError(f"nothing usable in {self.video_dir}: {self.found} video(s) found, none matched a prompt "
                            f"(layout {self.layout}); check --layout, --prompts or --map")
        self.sha = {f.rel: sha256_of(f.path) for f in found}  # every file found, scored or not
        s = cfg.sampling
        self.geometry = {"num_frames": s.num_frames, "height": s.height, "width": s.width, "fps": s.fps}
        self.identity = {"origin": "imported", "name": name, "layout": self.layout, "suite_sha256": suite.sha256,
                         "files": sorted((m.found.rel, self.sha[m.found.rel]) for m in self.matched),
                         "sampling": self.geometry,
                         "conform_rule": CONFORM_RULE["version"], "resize": resize}
        identity_hash = config_hash(self.identity)
        out = Path(out_dir) if out_dir else Path("results") / "runs" / f"imported-{name}-{identity_hash[:10]}"
        if out.resolve().is_relative_to(self.video_dir):
            raise UserError(f"--out {out} is inside VIDEO_DIR; the video folder is never written to: pass another --out")
        cfg = cfg.model_copy(update={"methods": {name: {}}, "prompts": suite.source, "samples_per_prompt":
                                     max(m.sample for m in self.matched) + 1})
        super().__init__(cfg, out, progress=progress, suite=suite)
        self.generation, self.generation_hash = self.identity, identity_hash
        self.failed_files: dict[str, str] = {}
        self.scored = 0

    def _default_suite(self, found):
        if self.layout == "t2v-bench":  # a run folder names its suite in config.json (RUN, RUN/videos/<method>)
            for cfg_file in (self.video_dir / "config.json", self.video_dir.parent.parent / "config.json"):
                if not cfg_file.is_file():
                    continue
                import json
                try:
                    return load_suite(json.loads(cfg_file.read_text())["config"]["prompts"])
                except (KeyError, ValueError, UserError):
                    pass
        return suite_from_found(found, self.layout)

    # The imported set is no registered method: nothing to look up.
    def _check_methods(self) -> None:
        pass

    def method_version(self, name: str) -> str:
        return "imported"

    def plan(self) -> list[WorkItem]:
        return [self._item(m) for m in self.matched]

    def _item(self, m: Matched) -> WorkItem:
        g = self.geometry
        request = GenRequest(prompt_id=m.prompt.id, prompt=m.prompt.text, seed=None, num_frames=g["num_frames"],
                             height=g["height"], width=g["width"], num_inference_steps=1, guidance_scale=0.0,
                             fps=g["fps"])
        key = config_hash({"origin": "imported", "name": self.name, "sha256": self.sha[m.found.rel],
                           "prompt_id": m.prompt.id, "sample": m.sample, "sampling": g,
                           "conform_rule": CONFORM_RULE["version"], "resize": self.resize})
        return WorkItem(self.name, m.sample, request, key)

    def generate(self, items: list[WorkItem] | None = None) -> dict[str, dict]:
        """Decode, conform and store each matched file not already imported; bad files are named, one a line."""
        items = self.plan() if items is None else items
        counts = {"planned": len(items), "generated": 0, "skipped": 0, "failed": 0, "stage_seconds": 0.0}
        resized: dict[tuple[int, int], int] = {}
        self.conformed = {"resized": 0, "trimmed": 0, "resampled_fps": 0}
        started = time.perf_counter()
        for m, it in zip(self.matched, items):
            if self.store.is_done(it.method, it.prompt_id, it.sample, it.key):
                counts["skipped"] += 1
                continue
            try:
                frames, note = conform(decode(m.found.path), **self.geometry, resize=self.resize)
            except DecodeError as exc:
                self.failed_files[m.found.rel] = str(exc)
                counts["failed"] += 1
                continue
            if note.get("resized"):
                size = tuple(note["source_size"])
                resized[size] = resized.get(size, 0) + 1
            for what in self.conformed:
                self.conformed[what] += bool(note.get(what))
            meta = {"key": it.key, "method": self.name, "sample": it.sample, "request": it.request.to_dict(),
                    "seconds": None, "origin": "imported", "source": m.found.rel, "sha256": self.sha[m.found.rel],
                    "conform": note, "info": {}, "method_config_hash": config_hash(self.identity)}
            self.store.save_item(self.name, it.prompt_id, it.sample, torch.from_numpy(frames), self.geometry["fps"],
                                 meta)
            counts["generated"] += 1
        counts["stage_seconds"] = time.perf_counter() - started
        for (h, w), n in sorted(resized.items()):
            self.say(f"resized {n} video(s) from {h}x{w} to {self.geometry['height']}x{self.geometry['width']} "
                     f"(centre crop + bilinear antialias; --resize refuse to fail them instead)")
        if self.conformed["resampled_fps"]:
            self.say(f"resampled {self.conformed['resampled_fps']} video(s) to {self.geometry['fps']} fps (nearest frame)")
        if self.conformed["trimmed"]:
            self.say(f"kept the first {self.geometry['num_frames']} frames of {self.conformed['trimmed']} longer "
                     "video(s)")
        if counts["generated"] + counts["skipped"] == 0:
            self._say_problems()
            raise UserError(f"nothing usable in {self.video_dir}: {self.found} video(s) found, "
                            f"{len(self.matched)} matched, none could be read")
        return {self.name: counts}

    def evaluate(self, items: list[WorkItem] | None = None):
        results, rows = super().evaluate(items)
        self.scored = sum(1 for r in rows if r["method"] == self.name)
        return results, rows

    def _say_problems(self) -> None:
        for line in self.problems:
            self.say(line)
        for rel, why in self.failed_files.items():
            self.say(f"{rel}: {why}")
        for p in self.missing[:MAX_MISSING_LINES]:
            self.say(f"no video for prompt {p.id} ('{p.text[:80]}')")
        if len(self.missing) > MAX_MISSING_LINES:
            self.say(f"... and {len(self.missing) - MAX_MISSING_LINES} more prompts with no video")

    def counts(self) -> dict[str, int]:
        failed = self.found - self.scored  # unmatched, doubly claimed, unreadable, zero frames, wrong size
        return {"found": self.found, "matched": self.n_matched, "scored": self.scored, "failed": failed,
                "prompts_without_video": len(self.missing)}

    def record(self, metrics, counts, items) -> dict:
        rec = super().record(metrics, counts, items)
        status = {**self.rejected, **{rel: f"failed: {why}" for rel, why in self.failed_files.items()}}
        ids = {m.found.rel: (m.prompt.id, m.sample) for m in self.matched}
        files = [{"path": f.rel, "sha256": self.sha[f.rel], "prompt_id": ids.get(f.rel, (None,))[0],
                  "sample": ids.get(f.rel, (None, None))[1], "status": status.get(f.rel, "imported")}
                 for f in self.all_files]
        info = {"source_dir": str(self.video_dir), "layout": self.layout, "resize": self.resize,
                "conform_rule": CONFORM_RULE, "counts": self.counts(), "conformed": getattr(self, "conformed", {}), "problems": self.problems +
                [f"{rel}: {why}" for rel, why in self.failed_files.items()],
                "prompts_without_video": [p.id for p in self.missing], "files": files}
        rec["origin"] = "imported"
        rec["base"] = {"model": None, "note": "imported videos: how they were made is not known to t2v-bench"}
        rec["sampling"] = {**self.geometry, "num_inference_steps": None, "guidance_scale": None,
                           "negative_prompt": None, "seed_rule": None, "dtype": None}
        entry = rec["methods"][self.name]
        entry.update(origin="imported", source={"dir": str(self.video_dir), "layout": self.layout})
        entry["counts"].update(self.counts())
        rec["import"] = info
        return rec


def score(cfg: RunConfig, video_dir: str, name: str, **kwargs) -> tuple[RunResult, ImportRunner]:
    runner = ImportRunner(cfg, video_dir, name, **kwargs)
    result = runner.run("all")
    runner._say_problems()
    return result, runner
