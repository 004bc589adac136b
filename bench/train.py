"""`t2v-bench train TARGET`: one training loop for every trainable thing, and the training-cost record.

TARGET is a registered method (its `trainable_parameters()` on top of the frozen base: the AnimateDiff motion
module...), or a toy-world model: `vae`, `base` (the T2I UNet), `clip`, `video-features`, `flow` (the toy RAFT), `aesthetic-head`, `imaging-head`. A target is a *task*
(bench/train_tasks.py, bench/toy/*.py) with this small interface:

    parameters() -> list[Parameter]            what the optimizer updates (everything else stays frozen)
    loss(generator, batch_size) -> Tensor      one training batch; all randomness from `generator`
    val_loss() -> float                        on a fixed validation set with fixed noise
    state_tensors() / load_state_tensors(d)    the trainable weights, for checkpoints and resume
    export(folder) -> Path | None              the deliverable (e.g. a MotionAdapter folder), safetensors; a method
                                               task returns what it wrote, and its cost record goes beside it

The batch of step k draws from a generator seeded with (seed, k), so a run resumed from its last checkpoint sees
the same data and noise as an uninterrupted one. Cost recorded in <out>/train.json: trainable parameters, seconds
per step (median), peak memory, wall time, and the step and training seconds at which the validation loss first
reached `target_val_loss`.
"""
from __future__ import annotations

import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, Protocol

import torch
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bench.errors import UserError


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # --lr nan would train to garbage silently

    out: str | None = Field(None, description="run folder (checkpoints, train.json); default results/train/<target>")
    export: str | None = Field(None, description="where the final weights go (default <out>/final)")
    data: str = Field("toy", description="'toy' (generated in memory) or a WebVid-layout folder")
    data_seed: int = 0
    num_train: int = 512
    num_val: int = 32
    num_frames: int = 8
    size: int = 32
    frame_stride: int = 1
    base: str = Field("toy", description="base T2I for method training ('toy', a folder, a hub id)")
    vae: str | None = Field(None, description="VAE folder for `train base` (default: the shipped toy VAE)")
    options: dict[str, Any] = Field(default_factory=dict, description="method options, or task options")
    steps: int = 200
    batch_size: int = 8
    lr: float = 1e-3
    lr_schedule: str = Field("constant", pattern="^(constant|cosine)$", description="cosine: decay to 0.1 x lr")
    warmup_steps: int = 0
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    seed: int = 0
    eval_every: int = 25
    checkpoint_every: int = 50
    target_val_loss: float | None = None
    target_val_ratio: float | None = Field(None, description="target = ratio x the step-0 validation loss (methods "
                                           "start from the same frozen base, so this compares them fairly)")
    threads: int = 2
    device: str = "cpu"


class Task(Protocol):
    def parameters(self) -> list[torch.nn.Parameter]: ...
    def loss(self, generator: torch.Generator, batch_size: int) -> torch.Tensor: ...
    def val_loss(self) -> float: ...
    def state_tensors(self) -> dict[str, torch.Tensor]: ...
    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None: ...
    def export(self, folder: Path) -> Path | None: ...


class ModuleTask:
    """The state of a task that trains one module, `self.model` (checkpoints save and resume through these)."""

    model: torch.nn.Module

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return dict(self.model.state_dict())

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(tensors)


def load_train_config(path: str | None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    doc: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            shipped = Path(__file__).parent / "configs" / "train" / f"{path}.yaml"
            if not shipped.is_file():
                raise UserError(f"train config '{path}' is neither a file nor a shipped name under bench/configs/train/")
            p = shipped
        doc = yaml.safe_load(p.read_text()) or {}
    doc.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        return TrainConfig.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise UserError(f"train config: {'.'.join(map(str, err['loc']))}: {err['msg']}") from None


def build_task(target: str, cfg: TrainConfig) -> Task:
    """The task for a target name: a toy-world model or a registered method."""
    if target == "vae":
        from bench.toy.base import VaeTask
        return VaeTask(cfg)
    if target == "base":
        from bench.toy.base import UNetTask
        return UNetTask(cfg)
    if target == "clip":
        from bench.toy.clip_model import ClipTask
        return ClipTask(cfg)
    if target in ("aesthetic-head", "imaging-head"):
        from bench.toy.quality_heads import AestheticHeadTask, ImagingHeadTask
        return (AestheticHeadTask if target == "aesthetic-head" else ImagingHeadTask)(cfg)
    if target == "flow":
        from bench.toy.flow_model import FlowTask
        return FlowTask(cfg)
    if target == "video-features":
        from bench.toy.video_features import VideoFeaturesTask
        return VideoFeaturesTask(cfg)
    if target == "motion-lora":
        from bench.toy.motion_loras import MotionLoraTask
        return MotionLoraTask(cfg)
    from bench.train_tasks import MethodTask
    return MethodTask(target, cfg)


def _step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator("cpu").manual_seed(seed * 1_000_003 + step)


def first_reaching(history: list[dict], target: float | None) -> dict | None:
    """The first evaluation whose validation loss is <= target: {step, train_seconds, val_loss}, or None."""
    if target is None:
        return None
    hit = next((h for h in history if h["val_loss"] <= target), None)
    return None if hit is None else {"step": hit["step"], "train_seconds": hit["train_seconds"],
                                     "val_loss": hit["val_loss"]}


def _target(cfg: TrainConfig, history: list[dict]) -> float | None:
    if cfg.target_val_loss is not None:
        return cfg.target_val_loss
    if cfg.target_val_ratio is not None and history:
        return cfg.target_val_ratio * history[0]["val_loss"]
    return None


def _lr(cfg: TrainConfig, step: int) -> float:
    if step <= cfg.warmup_steps:
        return cfg.lr * step / max(1, cfg.warmup_steps)
    if cfg.lr_schedule == "cosine":
        progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))
    return cfg.lr


def _save_checkpoint(folder: Path, task: Task, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Weights (safetensors), optimizer state and trainer state; written to a temp folder then renamed."""
    from safetensors.torch import save_file

    tmp = folder.with_name(folder.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in task.state_tensors().items()}, tmp / "trainable.safetensors")
    torch.save(opt.state_dict(), tmp / "optimizer.pt")
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=1))
    if folder.exists():
        old = folder.with_name(folder.name + ".old")
        folder.rename(old)
        tmp.rename(folder)
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    else:
        tmp.rename(folder)


def _load_checkpoint(folder: Path, task: Task, opt: torch.optim.Optimizer) -> dict[str, Any]:
    from safetensors.torch import load_file

    task.load_state_tensors(load_file(folder / "trainable.safetensors"))
    opt.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True))
    return json.loads((folder / "trainer_state.json").read_text())


def train(target: str, cfg: TrainConfig, progress: bool = True) -> dict[str, Any]:
    """Train `target`, resuming from <out>/checkpoint when it exists; returns the train record."""
    from tqdm import tqdm

    from bench.perf import MemoryWatch

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out or f"results/train/{target}")
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)  # any weights a task creates from scratch
    task = build_task(target, cfg)
    params = task.parameters()
    if not params:
        raise UserError(f"'{target}' has nothing to train (no trainable parameters); training-free methods such as "
                        "per_frame run as they are")
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    ckpt = out / "checkpoint"
    state: dict[str, Any] = {"step": 0, "train_seconds": 0.0, "eval_seconds": 0.0, "history": [],
                             "step_seconds": [], "resumed_at": []}
    if (ckpt / "trainer_state.json").is_file():
        state = _load_checkpoint(ckpt, task, opt)
        state["resumed_at"].append(state["step"])
    watch = MemoryWatch(cfg.device).__enter__()

    def evaluate(step: int) -> float:
        t0 = time.perf_counter()
        value = task.val_loss()
        state["eval_seconds"] += time.perf_counter() - t0
        state["history"].append({"step": step, "val_loss": value, "train_seconds": round(state["train_seconds"], 3)})
        return value

    if state["step"] == 0 and not state["history"]:
        evaluate(0)
    bar = tqdm(total=cfg.steps, initial=state["step"], desc=f"train {target}", disable=not progress, dynamic_ncols=True)
    recent: list[float] = []
    try:
        while state["step"] < cfg.steps:
            step = state["step"] + 1
            t0 = time.perf_counter()
            loss = task.loss(_step_generator(cfg.seed, step), cfg.batch_size)
            value = float(loss.detach())
            if not math.isfinite(value):
                raise UserError(f"loss became {value} at step {step}; lower --lr")
            for group in opt.param_groups:  # a function of the step only, so resume needs no scheduler state
                group["lr"] = _lr(cfg, step)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
            opt.step()
            dt = time.perf_counter() - t0
            state["train_seconds"] += dt
            state["step_seconds"].append(round(dt, 4))
            state["step"] = step
            recent = (recent + [value])[-20:]
            bar.update(1)
            bar.set_postfix(loss=f"{statistics.fmean(recent):.4f}")
            if step % cfg.eval_every == 0 or step == cfg.steps:
                bar.set_postfix(loss=f"{statistics.fmean(recent):.4f}", val=f"{evaluate(step):.4f}")
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                _save_checkpoint(ckpt, task, opt, state)
    finally:
        bar.close()
    export = Path(cfg.export or out / "final")
    weights = task.export(export)
    record = _record(target, cfg, task, state, watch.result(), export)
    (out / "train.json").write_text(json.dumps(record, indent=1))
    if weights is not None:  # beside the weights, so a run that loads them can report what they cost
        write_training_record(record, weights)
    return record


def write_training_record(record: dict[str, Any], weights: str | Path) -> Path:
    """The cost summary of a train record (train.json), written beside the weights it produced and tied to them by
    their fingerprint: <folder>/training.json or <file stem>.training.json (bench.models.read_training_record)."""
    from bench.models import training_record_path, weights_fingerprint

    env, cfg = record.get("environment", {}), record.get("config", {})
    summary = {k: v for k, v in record.items() if k not in ("history", "config", "environment", "export")}
    summary.update(weights_sha256=weights_fingerprint(weights), device=env.get("gpu") or env.get("device"),
                   threads=cfg.get("threads"), batch_size=cfg.get("batch_size"), num_frames=cfg.get("num_frames"),
                   data=cfg.get("data"), seed=cfg.get("seed"), data_seed=cfg.get("data_seed"))
    path = training_record_path(weights)
    path.write_text(json.dumps(summary, indent=1) + "\n")
    return path


def _record(target: str, cfg: TrainConfig, task: Task, state: dict[str, Any], memory: dict, export: Path) -> dict:
    from bench.store import environment

    step_secs = state["step_seconds"][1:] or state["step_seconds"]  # the first step pays for lazy init
    history = state["history"]
    return {
        "target": target, "config": cfg.model_dump(),
        "trainable_parameters": sum(p.numel() for p in task.parameters()),
        "steps": state["step"], "train_seconds": round(state["train_seconds"], 3),
        "eval_seconds": round(state["eval_seconds"], 3),
        "sec_per_step_median": round(statistics.median(step_secs), 4) if step_secs else None,
        "samples_per_sec": round(cfg.batch_size / statistics.median(step_secs), 3) if step_secs else None,
        "val_loss_initial": history[0]["val_loss"] if history else None,
        "val_loss_final": history[-1]["val_loss"] if history else None,
        "val_loss_best": min(h["val_loss"] for h in history) if history else None,
        "target_val_loss": _target(cfg, history),
        "reached_target": first_reaching(history, _target(cfg, history)),
        "history": history, "resumed_at": state["resumed_at"], "memory": memory, "export": str(export),
        "environment": environment(torch.device(cfg.device)),
    }
