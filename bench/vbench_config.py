"""Models and protocol knobs of the VBench-style dimensions (`vbench:` in a run config)."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class VBenchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    raft: str | None = Field(None, description="optical flow weights: 'toy' (the shipped toy RAFT) or a torchvision "
                                               "RAFT state dict file (.pth / .safetensors), e.g. raft_large_C_T_SKHT_V2")
    raft_arch: Literal["auto", "toy_raft", "raft_small", "raft_large"] = Field(
        "auto", description="torchvision RAFT class the weights load into ('auto': toy_raft for 'toy', else "
                            "raft_large, the size VBench uses)")
    raft_iters: int | None = Field(None, description="RAFT flow updates; None = 20 (VBench) for real weights, the "
                                                     "trained count for the toy RAFT")
    dynamic_fps: float = Field(8.0, description="dynamic_degree resamples to about this fps: every "
                                                "max(1, round(fps / dynamic_fps))-th frame (VBench: 8)")
    amt_s: str | None = Field(None, description="VBench's AMT-S checkpoint (amt-s.pth) for motion_smoothness: protocol "
                                                "vbench_amt_s; None = RAFT warp interpolator (t2v_bench_raft_warp)")
    dino: str | None = Field(None, description="subject_consistency features: 'toy' (the toy video net on single frames) "
                                         "or a transformers ViT folder (facebook/dino-vitb16 layout)")
    aesthetic_head: str | None = Field(None, description="'toy' (head trained on the toy world's blur/noise level) or the "
                                                   "LAION sa_0_4_vit_l_14_linear.pth state dict (nn.Linear(768, 1))")
    aesthetic_clip_model: str = Field("ViT-L-14", description="open_clip model under the LAION head (real runs)")
    aesthetic_clip_pretrained: str | None = Field("openai", description="its pretrained tag or local file")
    musiq: str | None = Field(None, description="pyiqa MUSIQ weights file (SPAQ-trained, as VBench) for imaging_quality")
    static_tags: list[str] = Field(default_factory=lambda: ["static", "still"],
                                   description="prompt tags that mark a static scene (temporal_flickering counts "
                                               "only these, VBench's rule)")

    @field_validator("raft_iters")
    @classmethod
    def _iters(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"must be >= 1 or null (got {v})")
        return v

    @field_validator("dynamic_fps")
    @classmethod
    def _fps(cls, v: float) -> float:
        if not v > 0:
            raise ValueError(f"must be > 0 (got {v})")
        return v
