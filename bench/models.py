"""Base T2I components (vae, text_encoder, tokenizer, unet, scheduler) shared by every method.

Real weights load with diffusers/transformers `from_pretrained` from a hub id or a local folder in the diffusers
layout (`vae/`, `text_encoder/`, `tokenizer/`, `unet/`, `scheduler/`). The `tiny` preset is built in code from a
seed: same architecture family, random weights, the real CLIP BPE tokenizer. It saves to that same layout, so tests
load it through the same code path as real weights.
"""
from __future__ import annotations

import gzip
import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from bench.errors import UserError

SUBFOLDERS = ("vae", "text_encoder", "tokenizer", "unet", "scheduler")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class BaseComponents:
    vae: Any
    text_encoder: Any
    tokenizer: Any
    unet: Any
    scheduler: Any
    source: dict[str, Any] = field(default_factory=dict)  # what was loaded, for the run record
    execution_device: torch.device | None = None  # where the work runs when modules are offloaded to the CPU
    text_cache: Any = None  # a bench.text_cache.TextEmbeddingCache, attached by the runner

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def device(self) -> torch.device:
        return self.execution_device or self.unet.device

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def to(self, device: torch.device | str, dtype: torch.dtype) -> "BaseComponents":
        for module in (self.vae, self.text_encoder, self.unet):
            module.to(device)
            if module.dtype != dtype:  # skip a no-op cast: diffusers warns on every .to(dtype)
                module.to(dtype)
            module.eval().requires_grad_(False)
        return self

    def save_pretrained(self, folder: str | Path) -> Path:
        folder = Path(folder)
        for name in SUBFOLDERS:
            getattr(self, name).save_pretrained(folder / name)
        return folder

    def parameter_count(self) -> int:
        return sum(p.numel() for m in (self.vae, self.text_encoder, self.unet) for p in m.parameters())


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    return torch.device(name)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name not in DTYPES:
        raise UserError(f"unknown dtype '{name}'; choose from {', '.join(DTYPES)}")
    if device.type == "cpu" and name == "fp16":
        raise UserError("fp16 is not supported on CPU (slow or missing kernels); use --dtype fp32 or bf16 on CPU")
    return DTYPES[name]


# ----------------------------------------------------------------------------------------------- tokenizer
@lru_cache(maxsize=1)
def clip_bpe_tokenizer(model_max_length: int = 77):
    """The real CLIP BPE tokenizer, built offline from the vocabulary file that open_clip ships.

    Same construction as CLIP's SimpleTokenizer: 256 byte tokens, their '</w>' forms, the first 48,894 merges,
    then <|startoftext|> and <|endoftext|> (49,408 ids in all).
    """
    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from transformers import CLIPTokenizer

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as fh:
        lines = fh.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1:49152 - 256 - 2 + 1]]
    vocab_list = list(bytes_to_unicode().values())
    vocab_list += [v + "</w>" for v in vocab_list]
    vocab_list += ["".join(m) for m in merges]
    vocab_list += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(vocab_list)}
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length,
                         bos_token="<|startoftext|>", eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                         unk_token="<|endoftext|>")


# ----------------------------------------------------------------------------------------------- tiny preset
TINY_UNET = dict(block_out_channels=(32, 64), layers_per_block=1, norm_num_groups=32, cross_attention_dim=32,
                 attention_head_dim=2, sample_size=16,
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                 up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"))
TINY_VAE = dict(block_out_channels=(16, 32, 32), latent_channels=4, norm_num_groups=16, layers_per_block=1,
                down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, sample_size=64)
TINY_TEXT = dict(vocab_size=49408, hidden_size=32, intermediate_size=64, num_attention_heads=4, num_hidden_layers=2,
                 max_position_embeddings=77, projection_dim=32, bos_token_id=49406, eos_token_id=49407,
                 pad_token_id=49407)


def sd_scheduler():
    """DDIM with the Stable Diffusion 1.x noise schedule (integer timesteps, 'leading' spacing)."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                         set_alpha_to_one=False, steps_offset=1)


def tiny_unet(seed: int, **overrides: Any):
    from diffusers import UNet2DConditionModel

    torch.manual_seed(seed)
    return UNet2DConditionModel(**{**TINY_UNET, **overrides})


def tiny_components(seed: int = 0, **unet_overrides: Any) -> BaseComponents:
    """A small SD-shaped T2I with random weights, deterministic from `seed` (CPU, fp32)."""
    from diffusers import AutoencoderKL
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    vae = AutoencoderKL(**TINY_VAE)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TINY_TEXT))
    unet = tiny_unet(seed + 1, **unet_overrides)
    components = BaseComponents(vae=vae, text_encoder=text_encoder, tokenizer=clip_bpe_tokenizer(), unet=unet,
                                scheduler=sd_scheduler(), source={"model": "tiny", "seed": seed})
    return components.to("cpu", torch.float32)


# ----------------------------------------------------------------------------------------------- loading
# The shipped toy base's text context (toy captions are <= 13 tokens; a short context makes cross-attention cheap).
# It lives here, not in bench/toy: the loader must not import the toy world, whose trainers import the loader.
TOY_TOKEN_LENGTH = 16


def toy_tokenizer():
    """The toy base ships no tokenizer/ folder (3.6 MB): it is the CLIP BPE tokenizer, 16 tokens long."""
    import copy

    tok = copy.deepcopy(clip_bpe_tokenizer())  # the cached instance is shared: do not change its length
    tok.model_max_length = TOY_TOKEN_LENGTH
    return tok


def weights_fingerprint(folder: str | Path) -> str:
    """sha256 (16 hex) over a safetensors file, or over the safetensors files under a small weights folder: it goes
    into cache keys so that retrained toy weights never reuse videos generated with the old ones."""
    import hashlib

    digest = hashlib.sha256()
    folder = Path(folder)
    files = [folder] if folder.is_file() else sorted(folder.rglob("*.safetensors"))
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode() if path != folder else b"")
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def training_record_path(weights: str | Path) -> Path:
    """Where `t2v-bench train` leaves the cost record of exported weights: <folder>/training.json for a weights
    folder, <name>.training.json beside a weights file."""
    weights = Path(weights)
    return weights / "training.json" if weights.is_dir() else weights.with_suffix(".training.json")


def read_training_record(weights: str | Path) -> dict[str, Any] | None:
    """The training cost of these exact weights (None when no record is beside them, or it was written for other
    weights: the fingerprint must match)."""
    import json

    path = training_record_path(weights)
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    return record if record.get("weights_sha256") == weights_fingerprint(weights) else None


def toy_weights(name: str) -> Path:
    """A shipped toy-world weight folder or file (bench/toy/weights/<name>)."""
    path = Path(__file__).parent / "toy" / "weights" / name
    if not path.exists():
        raise UserError(f"toy weights '{name}' are missing at {path}; reinstall t2v-bench, or retrain them with "
                        "`t2v-bench train` (see bench/configs/train/)")
    return path


def portable_path(path: str | Path) -> str:
    """A file's name for records: files shipped inside the package as 'bench/...' (the same in every checkout and
    install), anything else as its absolute path."""
    p = Path(path).expanduser().resolve()
    try:
        return p.relative_to(Path(__file__).resolve().parent.parent).as_posix()
    except ValueError:
        return str(p)


def resolve_shipped(spec: str, toy_name: str) -> str:
    """An option value naming weights: 'toy' means the project's shipped toy-world file `toy_name`."""
    return str(toy_weights(toy_name)) if str(spec) == "toy" else str(spec)



def _check_source(spec: str, what: str) -> None:
    """A path that does not exist is a typo, not a hub id: say so before diffusers tries the network."""
    if spec.startswith((".", "/", "~")) and not Path(spec).expanduser().exists():
        raise UserError(f"{what} path '{spec}' does not exist; pass an existing local folder or a hub id like "
                        "'stable-diffusion-v1-5/stable-diffusion-v1-5'")


def _from_pretrained(cls: Any, spec: str, what: str, **kwargs: Any) -> Any:
    try:
        return cls.from_pretrained(os.path.expanduser(spec), **kwargs)
    except (OSError, ValueError, EnvironmentError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"could not load {what} from '{spec}' ({first[:200]}); check the path, or that the hub id is "
                        "cached locally when offline (HF_HUB_OFFLINE=1)") from None


def load_unet(spec: str, revision: str | None = None):
    """A UNet from a folder holding config.json, a model folder holding unet/, or a hub id."""
    from diffusers import UNet2DConditionModel

    _check_source(spec, "unet")
    path = Path(spec).expanduser()
    subfolder = "unet" if (path / "unet").is_dir() or not path.exists() and not spec.endswith("unet") else None
    if path.is_dir() and (path / "config.json").is_file():
        subfolder = None
    return _from_pretrained(UNet2DConditionModel, spec, "unet", subfolder=subfolder, revision=revision)


def load_base(model: str = "tiny", *, revision: str | None = None, unet: str | None = None, lora: str | None = None,
              lora_scale: float = 1.0, seed: int = 0, device: torch.device | str = "cpu",
              dtype: torch.dtype = torch.float32, config: str | None = None) -> BaseComponents:
    """Load the base T2I: 'tiny', a hub id, a local diffusers folder, or a single .safetensors/.ckpt file (with
    `config`, the diffusers config folder or hub id of its family); optionally swap in a personalized UNet and
    fuse a LoRA (diffusers or kohya/A1111 format)."""
    from bench.checkpoints import is_checkpoint_file

    if model == "tiny":
        components = tiny_components(seed)
    elif is_checkpoint_file(model):  # a single-file personalized base (CivitAI-style LDM keys)
        components = _single_file_components(model, config)
    else:
        name = model
        if model == "toy":  # the toy-world base the project trains and ships (bench/toy/weights/base)
            model = str(toy_weights("base"))
        from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
        from transformers import CLIPTextModel, CLIPTokenizer

        _check_source(model, "base model")
        kw = {"revision": revision}
        components = BaseComponents(
            vae=_from_pretrained(AutoencoderKL, model, "vae", subfolder="vae", **kw),
            text_encoder=_from_pretrained(CLIPTextModel, model, "text_encoder", subfolder="text_encoder", **kw),
            tokenizer=toy_tokenizer() if name == "toy" and not (Path(model) / "tokenizer").is_dir()
            else _from_pretrained(CLIPTokenizer, model, "tokenizer", subfolder="tokenizer", **kw),
            unet=_from_pretrained(UNet2DConditionModel, model, "unet", subfolder="unet", **kw),
            # DDIM on the checkpoint's own noise schedule: integer timesteps, which Text2Video-Zero needs.
            scheduler=DDIMScheduler.from_config(
                _from_pretrained(DDIMScheduler, model, "scheduler", subfolder="scheduler", **kw).config),
            source={"model": name, "revision": revision,
                    **({"weights_sha256": weights_fingerprint(model)} if name == "toy" else {})})
    if unet:
        components.unet = load_unet(unet, revision)
        components.source["unet"] = unet
    if lora:
        _fuse_lora(components, lora, lora_scale)
        components.source.update(lora=lora, lora_scale=lora_scale)
        if Path(lora).expanduser().is_file():  # by content too: a path says nothing about what the file held
            from bench.checkpoints import fingerprint_file
            components.source["lora_sha256"] = fingerprint_file(lora)
    return components.to(device, dtype)


def _single_file_components(path: str, config: str | None) -> BaseComponents:
    from diffusers import DDIMScheduler

    from bench.checkpoints import DEFAULT_BASE_CONFIG, file_record, load_single_file_base

    if not Path(path).expanduser().is_file():
        raise UserError(f"base model file '{path}' does not exist; pass an existing .safetensors/.ckpt file, a "
                        "diffusers folder or a hub id")
    pipe = load_single_file_base(path, config)
    return BaseComponents(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer, unet=pipe.unet,
                          scheduler=DDIMScheduler.from_config(pipe.scheduler.config),
                          source={"model": path, "single_file": file_record(path),
                                  "config": config or DEFAULT_BASE_CONFIG})


def _fuse_lora(components: BaseComponents, lora: str, scale: float) -> None:
    """Fuse LoRA weights into the UNet (and text encoder, if the file has them) with diffusers' own loader."""
    from diffusers import StableDiffusionPipeline

    _check_source(lora, "lora")
    pipe = StableDiffusionPipeline(vae=components.vae, text_encoder=components.text_encoder,
                                   tokenizer=components.tokenizer, unet=components.unet,
                                   scheduler=components.scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    path = Path(lora).expanduser()
    kwargs = {"weight_name": path.name} if path.is_file() else {}
    source = str(path.parent) if path.is_file() else lora
    try:
        pipe.load_lora_weights(source, adapter_name="personalized", **kwargs)
    except (OSError, ValueError) as exc:
        raise UserError(f"could not load LoRA from '{lora}' ({str(exc).splitlines()[0][:200]})") from None
    pipe.fuse_lora(lora_scale=scale)
    pipe.unload_lora_weights()
