"""pytest-benchmark hooks: record torch, CUDA and the GPU in every saved benchmark JSON.

pytest-benchmark's own machine_info names the CPU and Python but no GPU (its machine id has none either), so a
timing saved on an A100 and one saved on a laptop would otherwise look alike.
"""
from __future__ import annotations

from typing import Any


def pytest_benchmark_update_machine_info(config: Any, machine_info: dict[str, Any]) -> None:
    import platform

    import diffusers
    import torch

    machine_info["torch"] = torch.__version__
    machine_info["diffusers"] = diffusers.__version__
    machine_info["torch_threads"] = torch.get_num_threads()
    machine_info["cuda"] = torch.version.cuda
    machine_info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        machine_info["gpu"] = props.name
        machine_info["gpu_count"] = torch.cuda.device_count()
        machine_info["gpu_memory_gb"] = round(props.total_memory / 2**30, 1)
        machine_info["cudnn"] = torch.backends.cudnn.version()
    else:
        machine_info["gpu"] = None
    machine_info["machine"] = platform.machine()
