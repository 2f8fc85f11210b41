"""Options shared by several commands, each declared once with its help text and library default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from ismtk.encode import default_threads
from ismtk.errors import InputError
from ismtk.structure.read import ChainNames, ReadOptions
from ismtk.train.distributed import Rendezvous

__all__ = [
    "ChainNamesOpt",
    "DeviceOpt",
    "GpusOpt",
    "Inputs",
    "ModelOpt",
    "NnodesOpt",
    "NodeRankOpt",
    "NprocOpt",
    "RdzvEndpointOpt",
    "RdzvIdOpt",
    "ResumeOpt",
    "Threads",
    "TorchThreads",
    "processes",
    "read_options",
    "rendezvous",
]

_DEFAULT_READ = ReadOptions()

Inputs = Annotated[
    list[Path],
    typer.Argument(
        help="Structure files (PDB/mmCIF, optionally .gz), folders (searched recursively) or .txt path lists."
    ),
]
Threads = Annotated[int, typer.Option("--threads", "-t", min=1, help="Worker processes.", show_default="all cores")]
ModelOpt = Annotated[int, typer.Option("--model", min=1, help="Model to read from multi-model (NMR) files, 1-based.")]
ChainNamesOpt = Annotated[
    ChainNames,
    typer.Option("--chain-names", help="Add _CHAIN to entry names: auto (only for multi-chain files, as Foldseek)."),
]

# -- training (train-ae, structure-tune) -------------------------------------------------------------------
Device = Literal["auto", "cpu", "cuda"]
DeviceOpt = Annotated[Device, typer.Option("--device", help="Where to train: auto = CUDA if available, else CPU.")]
GpusOpt = Annotated[
    int, typer.Option("--gpus", min=1, help="GPUs per node: N > 1 starts N processes under torchrun (DDP, NCCL).")
]
NprocOpt = Annotated[
    int, typer.Option("--nproc", min=1, help="CPU processes: N > 1 starts N processes under torchrun (DDP, gloo).")
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue from the newest checkpoint in the run folder (same options).")
]
TorchThreads = Annotated[int, typer.Option("--threads", "-t", min=1, help="Torch threads per process.")]
NnodesOpt = Annotated[str, typer.Option("--nnodes", help="Nodes of a multi-node run (torchrun's --nnodes, e.g. 2).")]
NodeRankOpt = Annotated[
    int | None, typer.Option("--node-rank", help="Rank of this node in a multi-node run (torchrun's --node-rank).")
]
RdzvEndpointOpt = Annotated[
    str | None, typer.Option("--rdzv-endpoint", help="HOST:PORT of node 0, for multi-node runs (c10d rendezvous).")
]
RdzvIdOpt = Annotated[str | None, typer.Option("--rdzv-id", help="Job id shared by all nodes of a multi-node run.")]

_DEFAULT_RDZV = Rendezvous()
DEFAULT_DEVICE: Device = "auto"
DEFAULT_NNODES = _DEFAULT_RDZV.nnodes
DEFAULT_TORCH_THREADS = 1

DEFAULT_THREADS = default_threads()
DEFAULT_MODEL = _DEFAULT_READ.model
DEFAULT_CHAIN_NAMES = _DEFAULT_READ.chain_names


def read_options(model: int, chain_names: ChainNames) -> ReadOptions:
    """The library's reading options from the shared command-line options."""
    return ReadOptions(model=model, chain_names=chain_names)


def rendezvous(nnodes: str, node_rank: int | None, endpoint: str | None, run_id: str | None) -> Rendezvous:
    """torchrun's rendezvous settings from the shared multi-node options."""
    return Rendezvous(nnodes=nnodes, node_rank=node_rank, endpoint=endpoint, run_id=run_id)


def processes(gpus: int, nproc: int, device: str) -> tuple[int, str]:
    """``(processes per node, device)`` from ``--gpus``/``--nproc``/``--device``; both counts > 1 is an error."""
    if gpus > 1 and nproc > 1:
        raise InputError("use either --gpus N (one process per GPU) or --nproc N (CPU processes), not both")
    if gpus > 1:
        return gpus, "cuda"
    if nproc > 1:
        return nproc, "cpu"
    return 1, device
