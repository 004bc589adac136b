"""Name -> "module:Object" registries. Nothing heavy is imported until `get()`.

Adding a method: write `methods/<name>.py` with a class that follows `bench.api.Method`, and add one line to
`METHODS` below (or expose it from another package under the `t2v_bench.methods` entry-point group).
"""
from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points
from typing import Any

from bench.errors import UserError, did_you_mean


class Registry:
    def __init__(self, kind: str, targets: dict[str, str], entry_point_group: str | None = None,
                 aliases: dict[str, str] | None = None):
        self.kind = kind
        self._targets = dict(targets)
        self._group = entry_point_group
        self._loaded_entry_points = False
        self._aliases = dict(aliases or {})  # old name -> new name: still accepted, with a warning
        self._warned: set[str] = set()

    def _load_entry_points(self) -> None:
        if self._loaded_entry_points or not self._group:
            return
        self._loaded_entry_points = True
        for ep in entry_points(group=self._group):
            self._targets.setdefault(ep.name, ep.value)

    def names(self) -> list[str]:
        self._load_entry_points()
        return sorted(self._targets)

    def target(self, name: str) -> str:
        self._load_entry_points()
        if name in self._aliases and name not in self._targets:
            if name not in self._warned:
                self._warned.add(name)
                logging.getLogger("t2v_bench").warning("%s '%s' is now called '%s'; the old name will go away",
                                                       self.kind, name, self._aliases[name])
            name = self._aliases[name]
        if name not in self._targets:
            raise UserError(f"unknown {self.kind} '{name}': {did_you_mean(name, self._targets)}")
        return self._targets[name]

    def get(self, name: str) -> Any:
        module_name, _, attr = self.target(name).partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def register(self, name: str, target: str) -> None:
        self._targets[name] = target


METHODS = Registry("method", {
    "per_frame": "methods.per_frame:PerFrame",
    "animatediff": "methods.animatediff:AnimateDiff",
    "text2video_zero": "methods.text2video_zero:Text2VideoZero",
    "causal_cross_frame": "methods.causal_cross_frame:CausalCrossFrame",
    "magicvideo": "methods.magicvideo:MagicVideo",
    "simda": "methods.simda:SimDA",
    "dual_stream": "methods.dual_stream:DualStream",
}, entry_point_group="t2v_bench.methods",
    aliases={"magicvideo_causal": "causal_cross_frame"})  # training-free causal attention is not MagicVideo

METRICS = Registry("metric", {
    "clip_score": "bench.metrics.clip:ClipScore",
    "frame_consistency": "bench.metrics.clip:FrameConsistency",
    "frame_consistency_allpairs": "bench.metrics.clip:FrameConsistencyAllPairs",
    "temporal_flickering": "bench.metrics.flicker:TemporalFlickeringStatic",
    "temporal_flickering_all": "bench.metrics.flicker:TemporalFlickering",
    "fvd": "bench.metrics.fvd:FVD",
    "motion_fidelity": "bench.metrics.motion:MotionFidelity",
    "dynamic_degree": "bench.metrics.dynamic_degree:DynamicDegree",
    "flow_magnitude": "bench.metrics.dynamic_degree:FlowMagnitude",
    "motion_smoothness": "bench.metrics.motion_smoothness:MotionSmoothness",
    "subject_consistency": "bench.metrics.subject_consistency:SubjectConsistency",
    "background_consistency": "bench.metrics.background_consistency:BackgroundConsistency",
    "aesthetic_quality": "bench.metrics.aesthetic_quality:AestheticQuality",
    "imaging_quality": "bench.metrics.imaging_quality:ImagingQuality",
})
