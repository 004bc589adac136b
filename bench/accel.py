"""GPU-side options of a run (the `accel:` config block and `batch_size: auto`), applied to the loaded base and to
each method, and recorded in run.json.

- `vae_upcast`: a VAE whose config says `force_upcast` (SD 1.x/2.x VAEs overflow in fp16) decodes in float32 when
  the run is fp16, as diffusers' pipelines do; `always` / `never` override.
- `compile`: `torch.compile` of the method's noise prediction (the denoiser forward); shapes seen for the first
  time run as warm-up and are not timed.
- `channels_last`: UNet(s) and VAE in NHWC memory format (faster convolutions on tensor cores).
- `vae_slicing` / `vae_tiling`: diffusers' `AutoencoderKL.enable_slicing()` / `enable_tiling()`: one frame at a
  time, and tiles for sizes above the VAE's sample size (tiling changes pixels at tile seams, so it is part of the
  cache key; slicing does not).
- `cpu_offload`: text encoder, denoiser(s) and VAE live in CPU memory and move to the GPU only while they run
  (accelerate's `cpu_offload_with_hook` chain, what `enable_model_cpu_offload` does); CUDA only.
- `batch_size: auto` starts at 1 and doubles after each batch that fits up to `auto_batch_max`; a CUDA out-of-memory
  error halves the batch and retries the same items (also for a fixed batch size) instead of failing them.

Importing this module stays cheap (no torch): the config imports it.
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class AccelConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    compile: bool = Field(False, description="torch.compile the denoiser forward (warm-up excluded from timing)")
    compile_mode: str | None = Field(None, description="torch.compile mode, e.g. 'max-autotune', 'reduce-overhead'")
    compile_backend: str = Field("inductor", description="torch.compile backend ('eager' checks tracing only)")
    channels_last: bool = False
    vae_slicing: bool = False
    vae_tiling: bool = False
    cpu_offload: bool = Field(False, description="model CPU offload for small GPUs (CUDA only)")
    vae_upcast: Literal["auto", "always", "never"] = "auto"
    auto_batch_max: int = Field(16, ge=1, description="the largest batch `batch_size: auto` tries")

    def output_changing(self) -> dict[str, Any]:
        """The non-default options that change pixels beyond float rounding: they go into cache keys and the run
        hash (an all-default block adds nothing, so existing runs keep their hash)."""
        out = {}
        if self.vae_tiling:
            out["vae_tiling"] = True
        if self.vae_upcast != "auto":
            out["vae_upcast"] = self.vae_upcast
        return out


def denoiser_modules(method: Any) -> list:
    """The networks a method's noise prediction runs: its own UNet(s) where it has them, else the base UNet."""
    import torch

    own = [getattr(method, a) for a in ("unet", "content", "motion", "interaction")
           if isinstance(getattr(method, a, None), torch.nn.Module)]
    return own or [method.base.unet]


def needs_vae_upcast(accel: AccelConfig, vae: Any, dtype: Any) -> bool:
    import torch

    if accel.vae_upcast == "never":
        return False
    if accel.vae_upcast == "always":
        return dtype != torch.float32
    return dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))


def prepare_base(base: Any, accel: AccelConfig, device: Any, dtype: Any) -> dict[str, Any]:
    """Apply the base-level options in place; returns what was applied, for the record."""
    import torch

    from bench.errors import UserError

    applied: dict[str, Any] = {"vae_dtype": str(dtype).removeprefix("torch.")}
    if needs_vae_upcast(accel, base.vae, dtype):
        base.vae.to(torch.float32)
        applied["vae_dtype"] = "float32"
    if accel.vae_slicing:
        base.vae.enable_slicing()
    if accel.vae_tiling:
        base.vae.enable_tiling()
    if accel.channels_last:
        for module in (base.unet, base.vae):
            module.to(memory_format=torch.channels_last)
    if accel.cpu_offload and device.type != "cuda":
        raise UserError(f"accel.cpu_offload needs a CUDA device (this run is on {device.type}, where every module "
                        "already lives in host memory); set accel.cpu_offload: false")
    return applied


def prepare_method(method: Any, accel: AccelConfig, device: Any) -> None:
    """Apply the method-level options in place: channels_last on its own networks, offload hooks, compile."""
    import torch

    modules = denoiser_modules(method)
    if accel.channels_last:
        for module in modules:
            module.to(memory_format=torch.channels_last)
    if accel.cpu_offload:
        offload_chain([method.base.text_encoder, *modules, method.base.vae], device)
    if accel.compile:
        kwargs = {"backend": accel.compile_backend, **({"mode": accel.compile_mode} if accel.compile_mode else {})}
        method.predict_noise = torch.compile(method.predict_noise, **kwargs)


def offload_chain(modules: list, device: Any) -> list:
    """Model CPU offload: each module moves to `device` when its forward runs and sends the previous one in the
    chain back to the CPU (the first one's predecessor is the last: the loop repeats every batch)."""
    from accelerate import cpu_offload_with_hook

    hooks: list = []
    for module in dict.fromkeys(modules):  # a module listed twice is hooked once
        if getattr(module, "_t2v_offload_hook", None) is not None:
            hooks.append(module._t2v_offload_hook)
            continue
        module.to("cpu")
        _, hook = cpu_offload_with_hook(module, execution_device=device,
                                        prev_module_hook=hooks[-1] if hooks else None)
        module._t2v_offload_hook = hook
        hooks.append(hook)
    if len(hooks) > 1 and hooks[0].hook.prev_module_hook is None:
        hooks[0].hook.prev_module_hook = hooks[-1]
    return hooks


def is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or "CUDA out of memory" in str(exc)


class BatchSizer:
    """The batch size to try next: fixed, or `auto` (1, 2, 4, ... up to `maximum`, capped for good by the first
    out-of-memory error). An out-of-memory error halves the size, so the same items are retried smaller."""

    def __init__(self, batch_size: int | str, maximum: int = 16):
        self.auto = batch_size == "auto"
        self.requested = batch_size
        self.size = 1 if self.auto else int(batch_size)
        self.maximum = maximum if self.auto else self.size
        self.capped = not self.auto
        self.halvings = 0
        self.sizes: list[int] = []

    def take(self, remaining: int) -> int:
        return max(1, min(self.size, remaining))

    def fitted(self, n: int) -> None:
        if n not in self.sizes:
            self.sizes.append(n)
        if not self.capped and n == self.size:
            self.size = min(self.size * 2, self.maximum)

    def shrink(self, n: int, exc: BaseException) -> bool:
        """After a failed batch of n: True (retry with a smaller batch) if it ran out of memory and n > 1."""
        if n <= 1 or not is_oom(exc):
            return False
        self.size, self.capped = max(1, n // 2), True
        self.halvings += 1
        try:
            import torch
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # freeing the cache is best effort
            pass
        return True

    def record(self) -> dict[str, Any]:
        return {"batch_size": self.requested, "batch_sizes_used": sorted(self.sizes),
                "oom_halvings": self.halvings}
