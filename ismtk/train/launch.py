"""Starting a training command: on which device, and in how many processes (``torchrun``, one or more nodes).

A trainer runs unchanged alone or under ``torchrun`` (nanoGPT's pattern): :func:`relaunch` re-runs the
current command under ``torch.distributed.run`` when :class:`Processes` asks for several processes or
nodes, and every process then finds its rank in the environment (:func:`ismtk.train.distributed.setup`).
This module imports no torch until it launches, so a command line can show these options cheaply.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from ismtk.errors import InputError

__all__ = ["DEFAULT_DEVICE", "Processes", "Rendezvous", "launch", "relaunch", "under_launcher"]

#: ``auto`` = CUDA if present, else the CPU.
DEFAULT_DEVICE = "auto"


@dataclass(frozen=True)
class Rendezvous:
    """torchrun's multi-node options (``--nnodes``, ``--node-rank``, ``--rdzv-endpoint``, ``--rdzv-id``)."""

    nnodes: str = "1"
    node_rank: int | None = None
    endpoint: str | None = None
    run_id: str | None = None


@dataclass(frozen=True)
class Processes:
    """Where a training command runs.

    ``device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``. ``gpus`` > 1 starts one process per GPU (DDP over
    NCCL), ``nproc`` > 1 that many CPU processes (DDP over gloo); ``threads``: torch threads per process
    (``None``: torch's choice); ``rendezvous``: the nodes of a multi-node run.
    """

    device: str = DEFAULT_DEVICE
    gpus: int = 0
    nproc: int = 0
    threads: int | None = None
    rendezvous: Rendezvous = field(default_factory=Rendezvous)

    @property
    def count(self) -> int:
        """Processes per node."""
        return max(self.gpus, self.nproc, 1)

    @property
    def resolved_device(self) -> str:
        """``--gpus N`` implies CUDA and ``--nproc N`` the CPU; otherwise :attr:`device`."""
        return "cuda" if self.gpus else "cpu" if self.nproc else self.device


def under_launcher() -> bool:
    """True inside a process started by torchrun (or any launcher that sets ``WORLD_SIZE``)."""
    return "WORLD_SIZE" in os.environ and "RANK" in os.environ


def relaunch(processes: Processes, argv: Sequence[str]) -> int | None:
    """Re-run the command ``argv`` under torchrun when ``processes`` asks for several processes or nodes.

    Returns the launcher's exit status, or ``None`` when this process should do the work itself (one
    process, or already under a launcher). Asking for both GPUs and CPU processes is an error.
    """
    if processes.gpus and processes.nproc:
        raise InputError("use either --gpus N (one process per GPU) or --nproc N (CPU processes), not both")
    if under_launcher() or (processes.count == 1 and processes.rendezvous.nnodes in ("1", "1:1")):
        return None
    return launch(processes.count, argv, processes.rendezvous)


def launch(nproc: int, argv: Sequence[str], rendezvous: Rendezvous = Rendezvous()) -> int:
    """Run ``python -m ismtk <argv>`` in ``nproc`` processes per node under ``torch.distributed.run``.

    Returns the launcher's exit status. Single-node runs use ``--standalone``; multi-node runs need
    ``rendezvous.endpoint`` (``host:port`` of node 0) and the same ``run_id`` on every node.
    """
    if nproc < 1:
        raise InputError(f"the number of processes must be at least 1, got {nproc}")
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    options = [f"--nproc-per-node={nproc}"]
    if rendezvous.nnodes in ("1", "1:1"):
        options.append("--standalone")
    else:
        if rendezvous.endpoint is None:
            raise InputError("multi-node runs need --rdzv-endpoint HOST:PORT (the address of node 0)")
        options += [f"--nnodes={rendezvous.nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rendezvous.endpoint}"]
        options.append(f"--rdzv-id={rendezvous.run_id or 'ismtk'}")
        if rendezvous.node_rank is not None:
            options.append(f"--node-rank={rendezvous.node_rank}")
    args = get_args_parser().parse_args([*options, "-m", "ismtk"])
    # set after parsing: torchrun's parser would take an option of ours such as --nproc for an
    # abbreviation of its own --nproc-per-node
    args.training_script_args = list(argv)
    try:
        run(args)
    except ChildFailedError as exc:
        codes = [failure.exitcode for failure in exc.failures.values()]
        return next((c for c in codes if c > 0), 1)
    return 0
