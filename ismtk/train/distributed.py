"""Distributed training plumbing inside each process: its rank, its device, the process group, all-reduce.

A trainer runs unchanged alone or under ``torchrun`` (nanoGPT's pattern): :func:`setup` reads
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` that torchrun sets (:mod:`ismtk.train.launch` starts the processes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ismtk.errors import InputError
from ismtk.train.launch import DEFAULT_DEVICE

__all__ = ["DistEnv", "all_reduce_sum", "setup", "teardown"]


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints, logs and plots."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str = DEFAULT_DEVICE) -> DistEnv:
    """Initialise the process group if launched by torchrun and pick this rank's device.

    ``device``: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``. NCCL is used
    on CUDA, gloo on CPU.
    """
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("--device cuda was requested but no CUDA GPU is visible")
        dev = torch.device("cuda", local if device == "cuda" else int(device.split(":")[1]))
        torch.cuda.set_device(dev)
    else:
        dev = torch.device(device)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank=rank, world_size=world, local_rank=local, device=dev)


def teardown() -> None:
    """Destroy the process group, if any."""
    if dist.is_initialized():
        dist.destroy_process_group()


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (identity when not distributed)."""
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value
