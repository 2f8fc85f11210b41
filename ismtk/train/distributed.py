"""Distributed training plumbing: rank from the environment, process-group set-up, torchrun launch.

A trainer runs unchanged alone or under ``torchrun`` (nanoGPT's pattern): :func:`setup` reads
``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` that torchrun sets, and :func:`launch` re-runs the current
command under ``torch.distributed.run`` when ``--gpus N`` or ``--nproc N`` asks for several processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ismtk.errors import InputError

__all__ = ["DistEnv", "Rendezvous", "setup", "teardown", "under_launcher", "launch", "all_reduce_sum"]


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


@dataclass(frozen=True)
class Rendezvous:
    """torchrun's multi-node options (``--nnodes``, ``--node-rank``, ``--rdzv-endpoint``, ``--rdzv-id``)."""

    nnodes: str = "1"
    node_rank: int | None = None
    endpoint: str | None = None
    run_id: str | None = None


def under_launcher() -> bool:
    """True inside a process started by torchrun (or any launcher that sets ``WORLD_SIZE``)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def setup(device: str = "auto") -> DistEnv:
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


def launch(nproc: int, argv: Sequence[str], rendezvous: Rendezvous = Rendezvous()) -> int:
    """Run ``python -m ismtk <argv>`` in ``nproc`` processes per node under ``torch.distributed.run``.

    Returns the launcher's exit status. Single-node runs use ``--standalone``; multi-node runs need
    ``rendezvous.endpoint`` (``host:port`` of node 0) and the same ``run_id`` on every node.
    """
    if nproc < 1:
        raise InputError(f"the number of processes must be at least 1, got {nproc}")
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={nproc}"]
    if rendezvous.nnodes in ("1", "1:1"):
        cmd.append("--standalone")
    else:
        if rendezvous.endpoint is None:
            raise InputError("multi-node runs need --rdzv-endpoint HOST:PORT (the address of node 0)")
        cmd += [f"--nnodes={rendezvous.nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rendezvous.endpoint}"]
        cmd.append(f"--rdzv-id={rendezvous.run_id or 'ismtk'}")
        if rendezvous.node_rank is not None:
            cmd.append(f"--node-rank={rendezvous.node_rank}")
    # "--" stops torchrun's parser: without it, our --nproc (an abbreviation of its --nproc-per-node),
    # --nnodes or --node-rank would be taken as torchrun's own options
    cmd += ["-m", "ismtk", "--", *argv]
    return subprocess.call(cmd)
