"""Distributed training plumbing inside each process: its rank, its device, the process group, collectives.

A trainer runs unchanged alone or under ``torchrun`` (nanoGPT's pattern): :func:`setup` reads
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` that torchrun sets (:mod:`ismtk.train.launch` starts the processes).
:func:`on_main` and :func:`broadcast_object` let rank 0 alone read a file or decide, and tell the others.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn

from ismtk.errors import IsmtkError
from ismtk.train.launch import DEFAULT_DEVICE, resolve_device

__all__ = [
    "DistEnv",
    "all_reduce_sum",
    "any_rank",
    "broadcast_object",
    "materialise",
    "on_main",
    "process_group",
    "setup",
    "teardown",
]

T = TypeVar("T")


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


#: How long a rank waits in a collective for the others (NCCL's default: 10 minutes). Rank 0 alone loads a
#: backbone, writes checkpoints and exports while the others wait in the next collective; for a 15B model with its
#: optimiser state that takes longer than NCCL's default, which would abort the waiting ranks.
COLLECTIVE_TIMEOUT = timedelta(minutes=60)


def setup(device: str = DEFAULT_DEVICE) -> DistEnv:
    """Initialise the process group if launched by torchrun and pick this rank's device.

    ``device``: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` (GPU ``LOCAL_RANK``) or ``cuda:N``
    (:func:`ismtk.train.launch.resolve_device`). NCCL is used on CUDA, gloo on CPU.
    """
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", 0))
    dev = resolve_device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
    return DistEnv(rank=rank, world_size=world, local_rank=local, device=dev)


def teardown() -> None:
    """Destroy the process group, if any."""
    if dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def process_group(device: str = DEFAULT_DEVICE) -> Iterator[DistEnv]:
    """:func:`setup` for the block, then :func:`teardown` once every rank has ended it (a rank that leaves while
    rank 0 still writes a checkpoint can be aborted by gloo). After an error the group is left as it is: destroying
    it collectively could hang on ranks that are still training; the launcher stops them."""
    env = setup(device)
    yield env
    if dist.is_initialized():
        dist.barrier()
    teardown()


def all_reduce_sum(value: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (identity when not distributed)."""
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value


def any_rank(flag: bool, device: torch.device | str) -> bool:
    """Whether ``flag`` is set on any rank: a collective when distributed (every rank must call it), else ``flag``."""
    if not dist.is_initialized():
        return flag
    return bool(all_reduce_sum(torch.tensor([float(flag)], device=device)).item() > 0)


def broadcast_object(value: T) -> T:
    """Rank 0's ``value`` (any picklable object) on every rank; ``value`` itself when not distributed."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_main(work: Callable[[], T]) -> T | None:
    """Run ``work`` on rank 0 only (reading a backbone or a checkpoint once, not once per process); other
    ranks get ``None``. An :class:`~ismtk.errors.IsmtkError` it raises is raised on every rank, so no rank
    waits forever for one that stopped."""
    result, failure = None, None
    if not dist.is_initialized() or dist.get_rank() == 0:
        try:
            result = work()
        except IsmtkError as exc:
            failure = exc
    failure = broadcast_object(failure)
    if failure is not None:
        raise failure
    return result


def materialise(model: nn.Module, device: torch.device) -> nn.Module:
    """Allocate the parameters and buffers of a ``meta``-device ``model`` on ``device`` (values undefined until
    loaded), keeping tied parameters tied (``Module.to_empty`` alone gives each module its own copy)."""
    owners: dict[int, list[tuple[nn.Module, str]]] = {}
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            owners.setdefault(id(param), []).append((module, name))
    model.to_empty(device=device)
    for (first, first_name), *others in (o for o in owners.values() if len(o) > 1):
        for module, name in others:
            setattr(module, name, getattr(first, first_name))
    return model
