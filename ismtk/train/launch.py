"""Starting a command: on which device, and in how many processes (``torchrun``, one or more nodes).

:func:`resolve_device` turns a ``--device`` value into this process's device, for training and inference
alike. A trainer runs unchanged alone or under ``torchrun`` (nanoGPT's pattern): :func:`relaunch` re-runs
the current command under ``torch.distributed.run`` when :class:`Processes` asks for several processes or
nodes, and every process then finds its rank in the environment (:func:`ismtk.train.distributed.setup`).
This module imports no torch until it resolves a device or launches, so a command line can show these
options cheaply.
"""

from __future__ import annotations

import os
import signal
import site
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import ismtk
from ismtk.errors import InputError

if TYPE_CHECKING:
    import torch

__all__ = [
    "BYTES_PER_PAIR",
    "DEFAULT_DEVICE",
    "Processes",
    "Rendezvous",
    "check_gpus",
    "is_main_process",
    "launch",
    "package_path",
    "relaunch",
    "resolve_device",
    "under_launcher",
]

#: ``auto`` = CUDA if present, else the CPU.
DEFAULT_DEVICE = "auto"


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` is a GPU that computes bf16 natively (Ampere and later; V100 and T4 only emulate it,
    slowly, and the fused attention kernels refuse it there). False on the CPU, where training stays float32."""
    import torch

    return device.type == "cuda" and torch.cuda.is_bf16_supported(including_emulation=False)


#: The autoencoder's training memory per padded atom pair (25 GB for 16M pairs, measured once on an H200); an upper
#: bound for inference, which keeps no activations for the backward pass.
BYTES_PER_PAIR = 1600


def gpu_pairs(device: torch.device, share: float, cap: int) -> int:
    """Padded atom pairs (environments x atoms^2) that fill ``share`` of the memory of the GPU ``device`` at
    :data:`BYTES_PER_PAIR`, at most ``cap``."""
    import torch

    total = torch.cuda.get_device_properties(device).total_memory
    return int(min(cap, share * total / BYTES_PER_PAIR))


def resolve_device(device: str | torch.device = DEFAULT_DEVICE) -> torch.device:
    """This process's device for a ``--device`` value: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` (or any
    device torch knows).

    ``auto`` is ``cuda`` when a CUDA GPU is visible, else the CPU; ``cuda`` is the GPU of this process's
    ``LOCAL_RANK`` (0 outside torchrun), so the processes of a node use one GPU each. ``cuda:N`` names one
    GPU, which only one process per node can use. Raises :class:`InputError` for a device that is not
    there, with the reason.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    import torch

    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        resolved = torch.device(device)
    except RuntimeError:
        resolved = None
    if resolved is None or resolved.type not in ("cpu", "cuda"):  # (torch knows mps, xpu, meta: not run here)
        raise InputError(f"--device {device}: expected auto, cpu, cuda or cuda:N")
    if resolved.type != "cuda":
        return resolved
    if not torch.cuda.is_available():
        raise InputError(f"--device {device}: no CUDA GPU is visible (CPU-only torch, no driver, or "
                         "CUDA_VISIBLE_DEVICES empty); use --device cpu")
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", 1))
    if resolved.index is not None and local_processes > 1:
        raise InputError(
            f"--device {device} names one GPU, but this node runs {local_processes} processes; use --device cuda "
            "(process i uses GPU i) and CUDA_VISIBLE_DEVICES to choose the GPUs"
        )
    index = local_rank if resolved.index is None else resolved.index
    visible = torch.cuda.device_count()
    if index >= visible:
        why = f"local rank {local_rank}" if resolved.index is None else device
        raise InputError(f"{why} needs GPU {index}, but only {visible} CUDA GPU(s) are visible")
    return torch.device("cuda", index)


def is_main_process() -> bool:
    """True outside torchrun and in its rank 0: the process that draws progress and prints results."""
    return int(os.environ.get("RANK", 0)) == 0


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
    if processes.gpus and processes.device not in (DEFAULT_DEVICE, "cuda"):
        raise InputError(f"--gpus {processes.gpus} runs one process on each of GPUs 0 to {processes.gpus - 1}; "
                         f"leave out --device {processes.device} (choose GPUs with CUDA_VISIBLE_DEVICES)")
    if processes.nproc and processes.device not in (DEFAULT_DEVICE, "cpu"):
        raise InputError(f"--nproc runs CPU processes; for GPUs use --gpus N instead of --device {processes.device}")
    if processes.gpus and not under_launcher():
        check_gpus(processes.gpus)
    if under_launcher() or (processes.count == 1 and processes.rendezvous.nnodes in ("1", "1:1")):
        return None
    return launch(processes.count, argv, processes.rendezvous)


def check_gpus(wanted: int) -> None:
    """Fail before starting anything when fewer than ``wanted`` CUDA GPUs are visible."""
    import torch

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if wanted > visible:
        mask = os.environ.get("CUDA_VISIBLE_DEVICES")
        where = f" (CUDA_VISIBLE_DEVICES={mask})" if mask is not None else ""
        raise InputError(f"--gpus {wanted}: {visible} CUDA GPU(s) visible on this node{where}")


def package_path() -> str:
    """``PYTHONPATH`` for child processes that must import this very copy of ismtk: the folder holding the
    package first (a source checkout run by ``bin/ismtk``, or any other copy), then the inherited path. An
    installed copy in site-packages is found there already and adds nothing."""
    root = str(Path(ismtk.__file__).resolve().parent.parent)
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    installed = {str(Path(p).resolve()) for p in [*site.getsitepackages(), site.getusersitepackages()]}
    first = [] if root in installed else [root]
    return os.pathsep.join(first + [p for p in inherited if p != root])


#: Seconds the launcher gives its processes to finish a step and save after a scheduler's SIGTERM before it kills
#: them (torchrun's own default, 30 s, is shorter than a large model's step and checkpoint);
#: ``TORCH_ELASTIC_SHUTDOWN_TIMEOUT`` overrides it.
STOP_GRACE_SECONDS = 600


def launch(nproc: int, argv: Sequence[str], rendezvous: Rendezvous = Rendezvous()) -> int:
    """Run ``python -m ismtk <argv>`` in ``nproc`` processes per node under ``torch.distributed.run``.

    Returns the launcher's exit status: 0 after a SIGTERM (passed on to the processes, which stop after their step
    with a checkpoint, given :data:`STOP_GRACE_SECONDS`), ``128 + signal`` after another signal. Single-node runs
    use ``--standalone``; multi-node runs need ``rendezvous.endpoint`` (``host:port`` of node 0) and the same
    ``run_id`` on every node. The processes import the copy of ismtk this one runs (:func:`package_path`), whatever
    the working directory.
    """
    if nproc < 1:
        raise InputError(f"the number of processes must be at least 1, got {nproc}")
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    options = [f"--nproc-per-node={nproc}"]
    if "TORCH_ELASTIC_SHUTDOWN_TIMEOUT" not in os.environ:
        options.append(f"--shutdown-timeout={STOP_GRACE_SECONDS}")
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
    # Python >= 3.11: `-m` does not put the working directory first, where another checkout could shadow this one
    children = {"PYTHONPATH": package_path(), "PYTHONSAFEPATH": "1"}
    before = {name: os.environ.get(name) for name in children}
    os.environ.update(children)
    try:
        run(args)
    except ChildFailedError as exc:
        codes = [failure.exitcode for failure in exc.failures.values()]
        return next((c for c in codes if c > 0), 1)
    except SignalException as exc:  # the processes had the signal too and have ended
        return 0 if exc.sigval == signal.SIGTERM else 128 + int(exc.sigval)
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return 0
