"""RunConfig: what a run is. Validated YAML in, canonical JSON hash out."""
from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bench.accel import AccelConfig
from bench.errors import UserError
from bench.vbench_config import VBenchConfig

CONFIGS_DIR = Path(__file__).parent / "configs"
DEFAULT_CONFIG = "toy"  # `t2v-bench run` with no --config: the toy world (every model trained by the project)


class _Strict(BaseModel):
    # allow_inf_nan=False: a nan or inf float option (YAML .nan, --guidance inf) is refused, never silently used
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class BaseModelConfig(_Strict):
    """The base T2I every method builds on."""

    model: str = Field("tiny", description="'tiny' (built in code), a hub id, or a local diffusers folder")
    revision: str | None = None
    config: str | None = Field(None, description="for a single-file model (.safetensors/.ckpt with LDM keys): the "
                               "diffusers config folder or hub id of its family (default: SD 1.5's, from the cache)")
    unet: str | None = Field(None, description="personalized UNet: a folder (or hub id) holding a diffusers UNet")
    lora: str | None = Field(None, description="LoRA weights (.safetensors file, folder or hub id) fused into the UNet")
    lora_scale: float = 1.0
    seed: int = Field(0, description="weight seed of the tiny preset")


class SamplingConfig(_Strict):
    num_frames: int = 8
    height: int = 64
    width: int = 64
    num_inference_steps: int = 4
    guidance_scale: float = 7.5
    negative_prompt: str | None = None
    fps: int = 8
    scheduler: Literal["ddim", "euler", "euler_ancestral", "dpmpp", "lcm"] = Field(
        "ddim", description="sampler on each method's own noise schedule; a method's `scheduler` option overrides it")
    eta: float = Field(0.0, ge=0.0, description="DDIM eta (0 = deterministic); a method's `eta` option overrides it")

    @field_validator("num_frames", "num_inference_steps", "fps")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be >= 1 (got {v})")
        return v

    @field_validator("height", "width")
    @classmethod
    def _multiple_of_8(cls, v: int) -> int:
        if v < 8 or v % 8:
            raise ValueError(f"must be a positive multiple of 8 (got {v}; try {max(8, round(v / 8) * 8)})")
        if v > MAX_SIDE:  # refused now, not as one out-of-memory error per video
            raise ValueError(f"must be <= {MAX_SIDE} (got {v}); video models sample at 256-1024")
        return v

    @field_validator("guidance_scale")
    @classmethod
    def _guidance(cls, v: float) -> float:
        if v < 0:
            raise ValueError(f"must be >= 0 (got {v}); values up to 1 turn classifier-free guidance off, "
                             "7.5 is the usual Stable Diffusion scale")
        return v


class ClipConfig(_Strict):
    """The open_clip model behind clip_score and frame_consistency."""

    model: str = Field("ViT-B-32-quickgelu", description="open_clip model name, or 'tiny' (seeded random weights)")
    pretrained: str | None = Field("openai", description="open_clip pretrained tag or a local checkpoint path")
    seed: int = 0
    batch_frames: int = 64


class FvdConfig(_Strict):
    """FVD detector, protocol and reference set. The defaults are the CPU smoke setup (random tiny detector,
    procedural reference): its numbers are plumbing checks, recorded as not comparable."""

    detector: str = Field("smoke", description="'smoke' (seeded random Conv3d), 'toy' (the shipped toy-world "
                                               "video net) or a file: piergiaj-layout I3D state dict "
                                               "(rgb_imagenet.pt) or StyleGAN-V i3d_torchscript.pt")
    detector_kind: Literal["auto", "i3d_state_dict", "i3d_torchscript", "smoke", "toy"] = Field(
        "auto", description="'auto' loads state dicts only; TorchScript runs code, so it needs 'i3d_torchscript'; "
                            "a toy video net file needs 'toy'")
    protocol: str = Field("auto", description="'auto' (fvd_<kind>_<T>f for the smoke/toy detectors, else "
                                              "fvd_i3d_16f), 'fvd_i3d_16f', 'fvd_smoke(_<T>f)' or 'fvd_toy(_<T>f)'")
    num_frames: int | None = Field(None, description="smoke/toy protocol frame count; None = sampling.num_frames")
    reference: str = Field("procedural", description="'procedural' (random moving shapes at the run's size), "
                                                     "'toy' (real toy-world videos) or a .safetensors file from "
                                                     "`t2v-bench fvd-stats`")
    procedural_videos: int = Field(64, description="clips in the procedural or toy reference set")
    procedural_seed: int = 0
    seed: int = Field(0, description="seed of the random clip offset when a video has more frames than the protocol")
    offset_rule: Literal["random", "first"] = "random"
    min_n: int = Field(2048, description="below this many real or generated clips the record says comparable: false")
    batch_size: int = Field(4, description="clips per detector forward pass")

    @field_validator("procedural_videos", "batch_size", "min_n")
    @classmethod
    def _positive(cls, v: int) -> int:
        if v < 1:
            raise ValueError(f"must be >= 1 (got {v})")
        return v

    @field_validator("num_frames")
    @classmethod
    def _frames(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"must be >= 1 or null (got {v})")
        return v


class RunConfig(_Strict):
    name: str = "run"
    base: BaseModelConfig = BaseModelConfig()
    methods: dict[str, dict[str, Any]] = Field(default_factory=lambda: {"per_frame": {}, "animatediff": {}})
    prompts: str = "smoke"
    samples_per_prompt: int = 1
    seed: int = 0
    sampling: SamplingConfig = SamplingConfig()
    metrics: list[str] = Field(default_factory=lambda: ["clip_score", "frame_consistency", "temporal_flickering_all"])
    clip: ClipConfig = ClipConfig()
    fvd: FvdConfig = FvdConfig()
    vbench: VBenchConfig = VBenchConfig()  # models and knobs of the VBench-style dimensions
    batch_size: int | Literal["auto"] = Field(1, description="videos per batch, or 'auto' (see bench/accel.py)")
    accel: AccelConfig = AccelConfig()
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    dtype: Literal["fp32", "fp16", "bf16"] = "fp32"

    @field_validator("samples_per_prompt", "batch_size")
    @classmethod
    def _positive(cls, v: int | str) -> int | str:
        if v != "auto" and v < 1:
            raise ValueError(f"must be >= 1 (got {v})")
        return v

    @field_validator("methods", mode="before")
    @classmethod
    def _methods_list_or_dict(cls, v: Any) -> Any:
        if isinstance(v, (list, tuple)):  # `methods: [per_frame, animatediff]` is shorthand for empty options
            return {str(name): {} for name in v}
        if isinstance(v, dict):
            return {k: (opts or {}) for k, opts in v.items()}
        return v

    @field_validator("methods")
    @classmethod
    def _at_least_one(cls, v: dict) -> dict:
        if not v:
            raise ValueError("name at least one method")
        for name, options in v.items():
            for key, value in options.items():
                if not _finite_tree(value):
                    raise ValueError(f"{name}.{key}: {value!r} is not a finite number")
        return v

    def generation_dict(self, suite_sha256: str, device: str) -> dict[str, Any]:
        """Everything that determines the videos: their hash names the default output folder."""
        return {"base": self.base.model_dump(), "methods": self.methods, "prompts_sha256": suite_sha256,
                "samples_per_prompt": self.samples_per_prompt, "seed": self.seed,
                "sampling": self.sampling.model_dump(), "dtype": self.dtype, "device": device,
                **({"accel": self.accel.output_changing()} if self.accel.output_changing() else {})}


MAX_SIDE = 4096


def _finite_tree(value: Any) -> bool:
    """False if a float anywhere in a nested option value is nan or inf."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite_tree(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return all(_finite_tree(v) for v in value)
    return True


def config_hash(obj: Any) -> str:
    """sha256 of canonical JSON (sorted keys, no whitespace)."""
    blob = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def config_names() -> list[str]:
    return sorted(p.stem for p in CONFIGS_DIR.glob("*.yaml"))


def _field_loc(loc: tuple) -> str:
    """'batch_size.int' -> 'batch_size': pydantic names the branch of a union (int | 'auto') it tried; the user
    wrote a key, not a branch."""
    parts = [str(x) for x in loc if not (isinstance(x, str) and (x in {"int", "float", "str", "bool"}
                                                                  or x.startswith(("literal[", "function-"))))]
    return ".".join(parts) or "(top level)"


def _format_validation_error(where: str, exc: ValidationError) -> str:
    errors = list({_field_loc(e["loc"]): e for e in reversed(exc.errors())}.items())[::-1]  # one per key
    loc, err = errors[0]
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "finite_number":
        msg = f"must be a finite number (got {err.get('input')!r})"
    if err["type"] == "extra_forbidden":
        msg = "unknown key; check the spelling against README's config reference"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {loc}: {msg}{more}"


def load_config(name_or_path: str | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Load a named config (bench/configs/<name>.yaml) or a YAML file, then apply dotted overrides."""
    name_or_path = name_or_path or DEFAULT_CONFIG
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = CONFIGS_DIR / f"{name_or_path}.yaml"
        if not path.is_file():
            from bench.errors import did_you_mean
            raise UserError(f"unknown config '{name_or_path}': {did_you_mean(name_or_path, config_names())}, "
                            "or pass a path to a .yaml file")
    if not path.is_file():
        raise UserError(f"config file '{path}' does not exist")
    try:
        doc = yaml.safe_load(path.read_bytes().decode("utf-8")) or {}
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text (byte {exc.start}); save the config as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise UserError(f"{path}{line}: malformed YAML ({getattr(exc, 'problem', exc)})") from None
    if not isinstance(doc, dict):
        raise UserError(f"{path}: a config must be a YAML mapping (key: value)")
    doc.setdefault("name", path.stem)
    for dotted, value in (overrides or {}).items():
        node = doc
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise UserError(f"{path}: '{key}' must be a mapping (key: value) to set {dotted} on it")
        node[leaf] = value
    try:
        return RunConfig.model_validate(doc)
    except ValidationError as exc:
        raise UserError(_format_validation_error(str(path), exc)) from None
