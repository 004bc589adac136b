"""Every weight source a run stage needs, checked before the first video: a missing file, an unknown method option
or a hub id that is not cached while offline fails in one line naming the config key, instead of after an hour of
generation (or after a minute of download retries).

What is checked without loading anything: local paths exist; under HF_HUB_OFFLINE=1 a hub id (base, unet, LoRA,
adapters, CLIP's pretrained tag) must already be in the local Hugging Face cache. Online, a hub id is left to the
loader (it downloads). Files that do exist are still validated by their loaders (shape, format).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from bench.errors import UserError, did_you_mean

# Option names that point at weights (besides a method's declared `weights_option`); 'tiny', 'toy', '' and None
# are built-in sources.
WEIGHT_OPTION = re.compile(r"(weights|adapter|lora|ckpt|checkpoint|unet)$")
BUILTIN = {None, "", "tiny", "toy", "none"}
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")
    return env or bool(constants.HF_HUB_OFFLINE)


def hub_cached(repo_id: str, revision: str | None = None, filenames: tuple[str, ...] = ()) -> bool:
    """Whether the local Hugging Face cache holds this repo (any snapshot of `revision`), or one of `filenames`."""
    from huggingface_hub import constants, snapshot_download, try_to_load_from_cache

    cache = constants.HF_HUB_CACHE  # read now, not at import, so a caller can point it elsewhere
    if filenames:
        return any(isinstance(try_to_load_from_cache(repo_id, f, cache_dir=cache, revision=revision), str)
                   for f in filenames)
    try:
        snapshot_download(repo_id, revision=revision, cache_dir=cache, local_files_only=True)
        return True
    except Exception:  # LocalEntryNotFoundError, or a malformed id/revision: either way not usable offline
        return False


def check_weight_source(key: str, spec: Any, revision: str | None = None) -> None:
    """`spec` (a local path or a hub id) given at config key `key`: raise a one-line UserError if it cannot load."""
    if not isinstance(spec, str) or spec in BUILTIN:
        return
    path = Path(spec).expanduser()
    if path.exists():
        return
    parts = spec.split("/")
    if not spec.startswith((".", "/", "~")) and len(parts) > 2 and HUB_ID.match("/".join(parts[:2])):
        repo, filename = "/".join(parts[:2]), "/".join(parts[2:])  # a file inside a hub repo: org/name/file
        if offline() and not hub_cached(repo, revision, filenames=(filename,)):
            raise UserError(f"{key}: hub file '{spec}' is not in the local Hugging Face cache and HF_HUB_OFFLINE=1; "
                            f"download it once (`huggingface-cli download {repo} {filename}`) or pass a local file")
        return
    if spec.startswith((".", "/", "~")) or spec.endswith((".safetensors", ".ckpt", ".pt", ".pth", ".bin")) \
            or not HUB_ID.match(spec):
        raise UserError(f"{key}: '{spec}' does not exist; pass an existing file or folder, or a hub id like "
                        "'org/name'")
    if offline() and not hub_cached(spec, revision):
        raise UserError(f"{key}: hub id '{spec}' is not in the local Hugging Face cache and HF_HUB_OFFLINE=1; "
                        f"download it once (`huggingface-cli download {spec}`) or pass a local folder")


def check_method_options(name: str, options: dict[str, Any]) -> None:
    from bench.registry import METHODS

    cls = METHODS.get(name)
    defaults = cls.option_defaults() if hasattr(cls, "option_defaults") else None
    if defaults is not None and hasattr(cls, "noise_schedule"):  # a LatentVideoMethod: the options every one takes
        from methods.base import COMMON_OPTIONS

        defaults = {**defaults, **COMMON_OPTIONS}
    if defaults is not None:
        unknown = sorted(set(options) - set(defaults))
        if unknown:
            hint = did_you_mean(unknown[0], defaults) if defaults else "it takes none"
            raise UserError(f"methods.{name}.{unknown[0]}: method '{name}' has no such option; {hint}")
    declared = getattr(cls, "weights_option", None)
    for option, value in options.items():
        if option == declared and value == "toy" and getattr(cls, "toy_weights", ""):
            from bench.models import toy_weights

            toy_weights(cls.toy_weights)  # shipped file missing: one line naming it
        elif option == declared or WEIGHT_OPTION.search(option):
            check_weight_source(f"methods.{name}.{option}", value)


def check_clip(clip: Any) -> None:
    model, pretrained = clip.model, clip.pretrained
    if model in ("tiny", "t2v-bench-tiny-clip"):  # seeded random weights; `pretrained` is ignored
        return
    toy = model in ("toy", "t2v-bench-toy-clip")
    if toy and pretrained in (None, "toy"):
        from bench.toy.clip_model import shipped_checkpoint

        if not Path(shipped_checkpoint()).is_file():
            raise UserError(f"clip.pretrained: the shipped toy CLIP {shipped_checkpoint()} is missing; reinstall "
                            "t2v-bench or retrain it with `t2v-bench train clip`")
        return
    if model.startswith("hf-hub:"):
        repo = model.removeprefix("hf-hub:")
        if offline() and not hub_cached(repo):
            raise UserError(f"clip.model: '{model}' is not in the local Hugging Face cache and HF_HUB_OFFLINE=1; "
                            "download it once, or set clip.pretrained to a local checkpoint file")
        return
    if not pretrained:
        return
    if Path(pretrained).expanduser().is_file():
        return
    if pretrained.startswith((".", "/", "~")) or pretrained.endswith((".pt", ".bin", ".safetensors")):
        raise UserError(f"clip.pretrained: checkpoint '{pretrained}' does not exist; pass an existing file or an "
                        "open_clip pretrained tag such as 'openai'")
    if toy:
        return
    import open_clip

    if model not in open_clip.list_models():
        raise UserError(f"clip.model: unknown open_clip model '{model}': {did_you_mean(model, open_clip.list_models())}")
    cfg = open_clip.get_pretrained_cfg(model, pretrained)
    if not cfg:
        tags = [t for m, t in open_clip.list_pretrained() if m == model]
        raise UserError(f"clip.pretrained: open_clip has no weights '{pretrained}' for model '{model}'; "
                        f"{did_you_mean(pretrained, tags) if tags else 'check clip.model'}")
    if offline() and not _clip_cached(cfg):
        raise UserError(f"clip.pretrained: CLIP '{model}' / '{pretrained}' is not in the local cache and "
                        "HF_HUB_OFFLINE=1 (a config without a `clip:` section means real CLIP); set "
                        "`clip: {model: toy, pretrained: toy}` or `{model: tiny}` for offline runs, or pass a local "
                        "checkpoint file as clip.pretrained")


def _clip_cached(cfg: dict) -> bool:
    """Mirrors open_clip's download_pretrained: the hub file (or a .safetensors twin), else the URL cache."""
    if cfg.get("file"):
        return Path(cfg["file"]).is_file()
    hub = cfg.get("hf_hub", "")
    if hub:
        repo, filename = os.path.split(hub)
        filename = filename or "open_clip_pytorch_model.bin"
        stem = filename.rsplit(".", 1)[0]
        names = ("open_clip_model.safetensors", f"{stem}.safetensors", filename)
        if hub_cached(repo, filenames=names):
            return True
    url = cfg.get("url", "")
    return bool(url) and (Path("~/.cache/clip").expanduser() / os.path.basename(url)).is_file()


def check_fvd(fvd: Any) -> None:
    if fvd.detector not in ("smoke", "toy") and not Path(fvd.detector).expanduser().is_file():
        raise UserError(f"fvd.detector: '{fvd.detector}' is not 'smoke', 'toy' or an existing I3D weights file")
    if fvd.reference not in ("procedural", "toy") and not Path(fvd.reference).expanduser().is_file():
        raise UserError(f"fvd.reference: '{fvd.reference}' is not 'procedural', 'toy' or an existing .safetensors "
                        "file (make one with `t2v-bench fvd-stats`)")


def check_sources(cfg: Any, stage: str = "all") -> None:
    """Everything `stage` ('all', 'generate', 'evaluate' or 'none') will load, checked up front."""
    if stage in ("all", "generate"):
        b = cfg.base
        if b.model == "toy":
            from bench.models import toy_weights

            toy_weights("base")
        elif b.model != "tiny":
            check_weight_source("base.model", b.model, b.revision)
        check_weight_source("base.unet", b.unet, b.revision)
        check_weight_source("base.lora", b.lora)
        for name, options in cfg.methods.items():
            check_method_options(name, options)
    if stage in ("all", "evaluate"):
        from bench.registry import METRICS

        if any(m.startswith(("clip_", "frame_consistency")) for m in cfg.metrics):
            check_clip(cfg.clip)
        if "fvd" in cfg.metrics:
            check_fvd(cfg.fvd)
        for name in cfg.metrics:  # a metric with weights of its own can say what it needs
            check = getattr(METRICS.get(name), "check_sources", None)
            if check is not None:
                check(cfg)
