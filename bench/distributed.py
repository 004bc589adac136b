"""Many processes, the same numbers: accelerate's PartialState when launched with `accelerate launch` or `torchrun`,
a 1-process stand-in otherwise (accelerate not installed, or plain `t2v-bench run`).

Only what the runner needs: rank, world size, a contiguous split, a barrier and gathering Python objects.
Metric states sync through torchmetrics itself (sum states), never through hand-written gathers.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence, TypeVar

import torch

T = TypeVar("T")


@dataclass
class Dist:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    _state: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def split(self, items: Sequence[T]) -> list[T]:
        """This process's contiguous block (accelerate's rule: the first len % world ranks get one more)."""
        if self.world_size == 1:
            return list(items)
        with self._state.split_between_processes(list(items)) as mine:
            return list(mine)

    def barrier(self) -> None:
        if self.world_size > 1:
            self._state.wait_for_everyone()

    def gather_objects(self, obj: Any) -> list[Any]:
        """Every rank's `obj`, in rank order, on every rank."""
        if self.world_size == 1:
            return [obj]
        out: list[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(out, obj)
        return out

    def device(self, requested: str) -> str:
        """One GPU per process: `auto`/`cuda` pin this process to cuda:<local_rank>."""
        if self.world_size > 1 and requested in ("auto", "cuda") and torch.cuda.is_available():
            torch.cuda.set_device(self.local_rank)
            return f"cuda:{self.local_rank}"
        return requested


def launched_world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_dist() -> Dist:
    """Join the process group that the launcher set up (gloo on CPU, nccl on GPU), or run alone."""
    if launched_world_size() <= 1:
        return Dist()
    try:
        from accelerate import PartialState
    except ImportError as exc:  # launched by torchrun without accelerate installed
        raise RuntimeError("multi-process runs need accelerate: pip install accelerate") from exc
    cpu = not torch.cuda.is_available()
    state = PartialState(cpu=cpu, backend="gloo" if cpu else None)
    return Dist(rank=state.process_index, world_size=state.num_processes, local_rank=state.local_process_index,
                _state=state)
