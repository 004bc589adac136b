"""FVD: Fréchet distance between Gaussians fitted to I3D features of real and generated clips.

FVD is a protocol, not a number (see fvd_protocol.py and fvd_detectors.py). The metric keeps fixed-size float64
sum states (Σx, Σxxᵀ, N) for the generated ("fake") clips and, unless a reference file gives them, for real
clips; covariances use the N-1 denominator; the distance uses the symmetric square root (frechet.py).
Reference statistics are computed once (`compute_reference_stats`, CLI `t2v-bench fvd-stats`) and stored as
.safetensors with the protocol and detector hash in the header; loading refuses any mismatch.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import torch

from bench.api import Video
from bench.errors import UserError
from bench.metrics.base import VideoMetric
from bench.metrics.frechet import COV_DENOMINATOR, FeatureSums, frechet_distance, mean_cov_from_sums
from bench.metrics.fvd_detectors import Detector, load_detector
from bench.metrics.fvd_protocol import (OFFSET_RULE_TEXT, SHORT_KINDS, FvdProtocol, clip_features, resolve_protocol,
                                        uint8_clip, video_to_uint8)
from bench.metrics.reference_videos import (PROCEDURAL_VERSION, list_videos, procedural_videos, read_video,
                                            ucf101_videos)

REF_FORMAT = "t2v-bench-fvd-reference-v1"
DEFINITION = ("||mu_r - mu_f||^2 + tr(S_r) + tr(S_f) - 2 sum sqrt(eig(sqrt(S_r) S_f sqrt(S_r))), float64, "
              "covariance denominator N-1")


@dataclass
class ReferenceStats:
    """Real-set feature sums plus what made them.

    `identity` is what defines the set: for a file, the file's sha256; for a set generated in memory, the generator,
    its version and its arguments. It never hashes the float sums themselves, whose last bits change with the CPU's
    kernels: records compare identities exactly and `summary()` statistics with a tolerance.
    """

    sums: FeatureSums
    protocol: str
    detector_kind: str
    detector_sha256: str
    name: str
    sha256: str  # the file's sha256 ("" for an in-memory set)
    meta: dict[str, str] = field(default_factory=dict)
    identity: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, float | int]:
        """Scalar statistics of the sums, recorded so that two records can check they used the same reference up to
        float drift (see bench.report.records.REFERENCE_STATS_RTOL)."""
        mean, cov = self.sums.mean_cov()
        return {"n": self.sums.count, "mean_norm": round(float(mean.norm()), 9),
                "cov_trace": round(float(cov.diagonal().sum()), 9)}

    def check(self, protocol: FvdProtocol, detector: Detector) -> None:
        """UserError unless these stats were made under the same protocol and detector file."""
        if self.protocol != protocol.id:
            raise UserError(f"reference stats '{self.name}' were made under protocol {self.protocol}, this run uses "
                            f"{protocol.id}; recompute them with t2v-bench fvd-stats --protocol {protocol.id}")
        if self.detector_sha256 != detector.sha256:
            raise UserError(f"reference stats '{self.name}' were made with detector {self.detector_kind} "
                            f"sha256 {self.detector_sha256[:12]}…, this run uses {detector.kind} "
                            f"{detector.sha256[:12]}…; recompute them with the same detector file")
        if self.sums.dim != detector.num_features:
            raise UserError(f"reference stats '{self.name}' have {self.sums.dim} features, the detector "
                            f"{detector.num_features}")


def generated_identity(generator: str, version: str, detector: Detector, protocol: FvdProtocol,
                       **arguments: Any) -> dict[str, Any]:
    """What defines a reference set generated in code: the same generator, version and arguments, seen by the same
    detector file under the same protocol, give the same set on every machine."""
    return {"kind": "generated", "generator": generator, "generator_version": version, **arguments,
            "detector_sha256": detector.sha256, "protocol": protocol.id}


def save_reference_stats(stats: ReferenceStats, path: str | Path) -> str:
    """Writes sums + count as .safetensors, provenance in the header; returns the file's sha256."""
    from safetensors.torch import save_file

    from bench.metrics.fvd_detectors import file_sha256

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {**stats.meta, "format": REF_FORMAT, "protocol": stats.protocol, "detector_kind": stats.detector_kind,
            "detector_sha256": stats.detector_sha256, "name": stats.name, "n": str(stats.sums.count),
            "num_features": str(stats.sums.dim), "covariance_denominator": COV_DENOMINATOR}
    tensors = {"sum": stats.sums.sum.contiguous(), "outer": stats.sums.outer.contiguous(),
               "count": torch.tensor([stats.sums.count], dtype=torch.int64)}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={k: str(v) for k, v in meta.items()})
    os.replace(tmp, path)  # atomic: a crash never leaves a half-written reference
    stats.sha256 = file_sha256(path)
    return stats.sha256


def load_reference_stats(path: str | Path, protocol: FvdProtocol | None = None,
                         detector: Detector | None = None) -> ReferenceStats:
    """Reads a file written by save_reference_stats; with protocol/detector given, refuses a mismatch."""
    from safetensors import safe_open

    from bench.metrics.fvd_detectors import file_sha256

    path = Path(path).expanduser()
    if not path.is_file():
        raise UserError(f"FVD reference stats '{path}' do not exist; make them with "
                        "`t2v-bench fvd-stats REF_DIR --out ref.safetensors`")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = dict(fh.metadata() or {})
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad file
        raise UserError(f"'{path}' is not a safetensors file ({str(exc)[:160]})") from None
    if meta.get("format") != REF_FORMAT or not {"sum", "outer", "count"} <= set(tensors):
        raise UserError(f"'{path}' is not a t2v-bench FVD reference file (format {meta.get('format')!r})")
    sums = FeatureSums(tensors["sum"].to(torch.float64), tensors["outer"].to(torch.float64),
                       int(tensors["count"][0]))
    sha = file_sha256(path)
    stats = ReferenceStats(sums, meta["protocol"], meta["detector_kind"], meta["detector_sha256"],
                           meta.get("name", path.stem), sha, meta,
                           {"kind": "file", "sha256": sha, "detector_sha256": meta["detector_sha256"],
                            "protocol": meta["protocol"]})
    if protocol is not None and detector is not None:
        stats.check(protocol, detector)
    return stats


def fvd_from_features(fake_feats: torch.Tensor, ref_stats: ReferenceStats | FeatureSums) -> float:
    """FVD of per-video features (N, D) against reference stats (e.g. features stored by the runner)."""
    ref = ref_stats.sums if isinstance(ref_stats, ReferenceStats) else ref_stats
    # same argument order as FVD.compute (reference first): the symmetric root is taken of the reference
    return frechet_distance(*ref.mean_cov(), *FeatureSums.from_features(fake_feats).mean_cov())


def bootstrap_fvd_ci(fake_feats: torch.Tensor, ref_stats: ReferenceStats | FeatureSums, n_boot: int = 200,
                     seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Bootstrap interval of FVD, resampling the generated videos with replacement (the reference is a fixed set
    of sums), shifted by the bootstrap's bias estimate (mean of the resamples - FVD): a resample repeats videos,
    which alone raises FD by roughly d/N, so plain percentiles can lie entirely above the value itself (measured on
    the 12-video toy run: FVD 28.6, percentile interval [29.9, 44.8]). The interval shows sampling noise at this N;
    it does not remove FD's own small-N bias."""
    from bench.metrics.frechet import sqrt_psd

    feats = torch.as_tensor(fake_feats).to(torch.float64)
    if feats.ndim != 2 or feats.shape[0] < 2:
        raise ValueError("bootstrap needs features (N >= 2, D)")
    ref = ref_stats.sums if isinstance(ref_stats, ReferenceStats) else ref_stats
    mu_r, cov_r = ref.mean_cov()
    root_r = sqrt_psd(cov_r)  # fixed across resamples: compute once
    tr_r = torch.trace(cov_r)
    gen = torch.Generator().manual_seed(seed)
    n = feats.shape[0]
    values = []
    for _ in range(n_boot):
        sample = feats[torch.randint(0, n, (n,), generator=gen)]
        mu_f, cov_f = mean_cov_from_sums(sample.sum(0), sample.T @ sample, n)
        mid = root_r @ cov_f @ root_r
        tr_sqrt = torch.linalg.eigvalsh((mid + mid.T) / 2).clamp_min(0).sqrt().sum()
        diff = mu_f - mu_r
        values.append(float(diff @ diff + tr_r + torch.trace(cov_f) - 2 * tr_sqrt))
    q = torch.tensor(values, dtype=torch.float64)
    alpha = (1 - level) / 2
    bias = float(q.mean()) - fvd_from_features(feats, ref)
    return float(torch.quantile(q, alpha)) - bias, float(torch.quantile(q, 1 - alpha)) - bias


class FVD(VideoMetric):
    """update(videos, prompts) adds generated clips; update(videos, prompts, real=True) adds real clips when no
    reference file is given. `last_values` stays None (FVD has no per-video value); `last_features` holds the
    batch's (N, D) float64 features and `last_offsets` the clip start frames, for samples.jsonl."""

    metric_name = "fvd"
    higher_is_better = False

    def __init__(self, detector: Detector, protocol: FvdProtocol, reference: ReferenceStats | None = None, *,
                 seed: int = 0, offset_rule: str = "random", min_n: int = 2048, batch_size: int = 4,
                 **kwargs: Any):
        super().__init__(**kwargs)
        if offset_rule not in OFFSET_RULE_TEXT:
            raise UserError(f"unknown fvd.offset_rule '{offset_rule}': choose from {', '.join(OFFSET_RULE_TEXT)}")
        if reference is not None:
            reference.check(protocol, detector)
        self.detector, self.protocol, self.reference = detector, protocol, reference
        self.seed, self.offset_rule, self.min_n, self.batch_size = seed, offset_rule, min_n, batch_size
        d = detector.num_features
        for side in ("fake", "real"):
            self.add_state(f"{side}_sum", torch.zeros(d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(d, d, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_n", torch.tensor(0, dtype=torch.long), dist_reduce_fx="sum")
        self.last_features: torch.Tensor | None = None
        self.last_offsets: list[int] | None = None

    def features(self, videos: Sequence[Video]) -> tuple[torch.Tensor, list[int]]:
        """Protocol clips of the videos -> (features (N, D) float64, offsets)."""
        clips, offsets = [], []
        for video in videos:
            clip, offset = uint8_clip(video_to_uint8(video), self.protocol, self.offset_rule, self.seed)
            clips.append(clip)
            offsets.append(offset)
        return clip_features(clips, self.detector, self.batch_size), offsets

    def update(self, videos: Sequence[Video], prompts: Sequence[str] | None = None, real: bool = False,
               features: torch.Tensor | None = None) -> None:
        """Adds videos (or, with `features`, precomputed protocol features (N, D)) to the fake or real side."""
        if real and self.reference is not None:
            raise UserError("this FVD has reference stats from a file; do not also add real videos")
        offsets = None
        if features is None:
            features, offsets = self.features(videos)
        self.last_offsets = offsets
        f = torch.as_tensor(features).to(torch.float64)
        if f.ndim != 2 or f.shape[1] != self.detector.num_features:
            raise ValueError(f"features must be (N, {self.detector.num_features}), got {tuple(f.shape)}")
        self.last_values, self.last_features = None, f.cpu()
        f = f.to(self.fake_sum.device)
        side = "real" if real else "fake"
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + f.sum(0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + f.T @ f)
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + f.shape[0])

    def add_features(self, feats: torch.Tensor, real: bool = False) -> None:
        """Adds precomputed protocol features (e.g. reloaded from samples.jsonl) without running the detector."""
        self.update((), real=real, features=feats)

    def fake_sums(self) -> FeatureSums:
        return FeatureSums(self.fake_sum.cpu(), self.fake_outer.cpu(), int(self.fake_n))

    def real_sums(self) -> FeatureSums:
        if self.reference is not None:
            return self.reference.sums
        return FeatureSums(self.real_sum.cpu(), self.real_outer.cpu(), int(self.real_n))

    def compute(self) -> torch.Tensor:
        fake, real = self.fake_sums(), self.real_sums()
        if fake.count < 2 or real.count < 2:  # a covariance needs two clips per side
            return torch.tensor(float("nan"), dtype=torch.float64)
        return torch.tensor(frechet_distance(*real.mean_cov(), *fake.mean_cov()), dtype=torch.float64)

    def describe(self) -> dict[str, Any]:
        n_fake, n_real = int(self.fake_n), self.real_sums().count
        reasons = []
        if not self.detector.comparable:
            reasons.append(f"{self.detector.kind} detector (random weights, plumbing check only)")
        if n_fake < 2 or n_real < 2:
            reasons.append("fewer than 2 clips on a side: no covariance, the value is NaN")
        if n_fake < self.min_n or n_real < self.min_n:
            reasons.append(f"N below {self.min_n} (real {n_real}, fake {n_fake}); FD bias grows like d/N")
        ref = self.reference
        return {
            **self.protocol.describe(), "definition": DEFINITION, "covariance_denominator": COV_DENOMINATOR,
            "stats_dtype": "float64", "detector": self.detector.describe(),
            "n_real": n_real, "n_fake": n_fake, "min_n_comparable": self.min_n,
            "reference": {"name": ref.name, "protocol": ref.protocol, "identity": ref.identity,
                          "stats": ref.summary(), "source": ref.meta.get("source")}
            if ref else {"name": "real videos passed to update"},
            "frame_offset_rule": self.offset_rule, "frame_offset_rule_text": OFFSET_RULE_TEXT[self.offset_rule],
            "frame_offset_seed": self.seed, "comparable": not reasons, "not_comparable_because": reasons,
        }

    @classmethod
    def from_run_config(cls, cfg: Any, device: torch.device | str = "cpu") -> "FVD":
        """Builds detector, protocol and reference from `cfg.fvd` (defaults: the smoke setup)."""
        fc = cfg.fvd
        detector = load_detector(fc.detector, fc.detector_kind, device=device)
        # the smoke and toy protocols follow the run's frame count unless fvd.num_frames pins it
        frames = (fc.num_frames or cfg.sampling.num_frames) if detector.kind in SHORT_KINDS else fc.num_frames
        protocol = resolve_protocol(fc.protocol, detector, frames)
        if fc.reference == "procedural":
            reference = procedural_reference(detector, protocol, n=fc.procedural_videos, seed=fc.procedural_seed,
                                             height=cfg.sampling.height, width=cfg.sampling.width,
                                             batch_size=fc.batch_size)
        elif fc.reference == "toy":
            reference = toy_reference(detector, protocol, n=fc.procedural_videos, seed=fc.procedural_seed,
                                      size=cfg.sampling.height, batch_size=fc.batch_size)
        else:
            reference = load_reference_stats(fc.reference, protocol, detector)
        return cls(detector, protocol, reference, seed=fc.seed, offset_rule=fc.offset_rule, min_n=fc.min_n,
                   batch_size=fc.batch_size)


def procedural_reference(detector: Detector, protocol: FvdProtocol, n: int = 64, seed: int = 0, height: int = 64,
                         width: int = 64, batch_size: int = 4) -> ReferenceStats:
    """Reference stats of `n` procedural moving-shape clips (reference_videos.procedural_video), in memory."""
    clips = (uint8_clip(v.to_uint8(), protocol, "first", 0)[0]
             for v in procedural_videos(n, seed, protocol.num_frames, height, width))
    sums = FeatureSums.from_features(clip_features(clips, detector, batch_size))
    name = f"procedural:n={n},seed={seed},{height}x{width},{protocol.num_frames}f"
    identity = generated_identity("bench.metrics.reference_videos.procedural_video", PROCEDURAL_VERSION, detector,
                                  protocol, n=n, seed=seed, height=height, width=width,
                                  num_frames=protocol.num_frames)
    return ReferenceStats(sums, protocol.id, detector.kind, detector.sha256, name, "",
                          {"source": f"bench.metrics.reference_videos.procedural_video {PROCEDURAL_VERSION}"},
                          identity)


def toy_reference(detector: Detector, protocol: FvdProtocol, n: int = 64, seed: int = 0, size: int = 32,
                  batch_size: int = 4) -> ReferenceStats:
    """Reference stats of `n` real toy-world videos (bench.toy.world.toy_videos: every motion, shape, colour and
    background), rendered at the run's size, in memory."""
    from bench.toy.world import WORLD_VERSION, toy_videos

    try:
        videos = list(toy_videos(n, seed, protocol.num_frames, size))
    except ValueError as exc:  # too many frames for the world's speeds
        raise UserError(f"toy FVD reference: {exc} (fvd.num_frames or sampling.num_frames)") from None
    clips = (uint8_clip(Video(s.frames).to_uint8(), protocol, "first", 0)[0] for s in videos)
    sums = FeatureSums.from_features(clip_features(clips, detector, batch_size))
    name = f"toy-world:n={n},seed={seed},{size}x{size},{protocol.num_frames}f"
    identity = generated_identity("bench.toy.world.toy_videos", WORLD_VERSION, detector, protocol, n=n, seed=seed,
                                  size=size, num_frames=protocol.num_frames)
    return ReferenceStats(sums, protocol.id, detector.kind, detector.sha256, name, "",
                          {"source": "bench.toy.world.toy_videos"}, identity)


def _reference_clips(paths: Iterable[Path], protocol: FvdProtocol, offset_rule: str, seed: int,
                     max_frames: int | None, skipped: list[str]) -> Iterable[torch.Tensor]:
    for path in paths:
        frames = read_video(path, max_frames)
        if frames.shape[0] < protocol.num_frames:
            skipped.append(str(path))  # like StyleGAN-V's discard_short_videos; counted in the header
            continue
        yield uint8_clip(frames, protocol, offset_rule, seed)[0]


def compute_reference_stats(ref_dir: str | Path, out_path: str | Path, detector: Detector, protocol: FvdProtocol,
                            *, layout: str = "folder", max_videos: int | None = None,
                            max_per_folder: int | None = None, split_list: str | Path | None = None,
                            offset_rule: str = "random", seed: int = 0, max_frames: int | None = None,
                            batch_size: int = 4, name: str | None = None) -> ReferenceStats:
    """Extracts features once from the videos under `ref_dir` and saves their sums to `out_path`."""
    if layout == "ucf101":
        paths = ucf101_videos(ref_dir, max_per_class=max_per_folder, split_list=split_list)
    elif layout == "folder":
        paths = list_videos(ref_dir, max_per_folder=max_per_folder)
    else:
        raise UserError(f"unknown reference layout '{layout}': choose folder or ucf101")
    paths = paths[:max_videos] if max_videos is not None else paths
    skipped: list[str] = []
    feats = clip_features(_reference_clips(paths, protocol, offset_rule, seed, max_frames, skipped), detector,
                          batch_size)
    if feats.shape[0] < 2:
        raise UserError(f"only {feats.shape[0]} of {len(paths)} videos under '{ref_dir}' have "
                        f"{protocol.num_frames} frames; FVD reference stats need at least 2")
    meta = {"source": str(Path(ref_dir).expanduser().resolve()), "layout": layout, "videos_listed": str(len(paths)),
            "videos_skipped_short": str(len(skipped)), "frame_offset_rule": offset_rule,
            "frame_offset_seed": str(seed), "num_frames": str(protocol.num_frames),
            "max_frames_read": str(max_frames), "detector_source": detector.source,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    stats = ReferenceStats(FeatureSums.from_features(feats), protocol.id, detector.kind, detector.sha256,
                           name or Path(ref_dir).name, "", meta)
    save_reference_stats(stats, out_path)
    return stats


def fvd_stats_main(ref_dir: str, out: str, detector: str = "smoke", protocol: str = "auto", *,
                   detector_kind: str = "auto", num_frames: int | None = None, layout: str = "folder",
                   max_videos: int | None = None, max_per_folder: int | None = None, split_list: str | None = None,
                   offset_rule: str = "random", seed: int = 0, max_frames: int | None = None, batch_size: int = 4,
                   device: str = "cpu", name: str | None = None) -> dict[str, Any]:
    """CLI entry (`t2v-bench fvd-stats REF_DIR --out ref.safetensors`): returns a JSON-ready summary."""
    det = load_detector(detector, detector_kind, device=device)
    proto = resolve_protocol(protocol, det, num_frames)
    stats = compute_reference_stats(ref_dir, out, det, proto, layout=layout, max_videos=max_videos,
                                    max_per_folder=max_per_folder, split_list=split_list, offset_rule=offset_rule,
                                    seed=seed, max_frames=max_frames, batch_size=batch_size, name=name)
    return {"out": str(out), "sha256": stats.sha256, "name": stats.name, "n": stats.sums.count,
            "skipped_short": int(stats.meta["videos_skipped_short"]), "protocol": stats.protocol,
            "detector_kind": stats.detector_kind, "detector_sha256": stats.detector_sha256,
            "comparable_detector": det.comparable}
