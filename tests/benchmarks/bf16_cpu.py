"""fp32 vs bf16 on CPU, the toy base UNet forward (8 frames, 32x32 latents 4x4), alternated side by side, median of
7 timed rounds of 5 calls after one warm-up round. Backs the runner's bf16-on-CPU warning.

    PYTHONPATH=. python tests/benchmarks/bf16_cpu.py
"""
import copy
import statistics
import time

import torch

from bench.models import load_base

torch.set_num_threads(1)
base = load_base("toy")
x = torch.randn(8, 4, 4, 4)
t = torch.tensor(500)
emb = torch.randn(8, base.tokenizer.model_max_length, base.unet.config.cross_attention_dim)
unets = {"fp32": (base.unet, torch.float32), "bf16": (copy.deepcopy(base.unet).to(torch.bfloat16), torch.bfloat16)}
times: dict[str, list[float]] = {k: [] for k in unets}
with torch.no_grad():
    for r in range(8):
        for name, (unet, dtype) in unets.items():
            started = time.perf_counter()
            for _ in range(5):
                unet(x.to(dtype), t, encoder_hidden_states=emb.to(dtype))
            if r:
                times[name].append(time.perf_counter() - started)
median = {k: statistics.median(v) for k, v in times.items()}
print({k: round(v, 4) for k, v in median.items()}, "bf16/fp32 =", round(median["bf16"] / median["fp32"], 2))
