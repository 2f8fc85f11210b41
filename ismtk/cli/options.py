"""Options shared by several commands, each declared once with its help text and library default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ismtk.encode import default_threads
from ismtk.structure.read import ChainNames, ReadOptions

__all__ = ["ChainNamesOpt", "Inputs", "ModelOpt", "Threads", "read_options"]

_DEFAULT_READ = ReadOptions()

Inputs = Annotated[
    list[Path],
    typer.Argument(help="Structure files (PDB/mmCIF, optionally .gz), folders (searched recursively) or .txt path lists."),
]
Threads = Annotated[
    int, typer.Option("--threads", "-t", min=1, help="Worker processes.", show_default="all cores")
]
ModelOpt = Annotated[
    int, typer.Option("--model", min=1, help="Model to read from multi-model (NMR) files, 1-based.")
]
ChainNamesOpt = Annotated[
    ChainNames,
    typer.Option("--chain-names", help="Add _CHAIN to entry names: auto (only for multi-chain files, as Foldseek)."),
]

DEFAULT_THREADS = default_threads()
DEFAULT_MODEL = _DEFAULT_READ.model
DEFAULT_CHAIN_NAMES = _DEFAULT_READ.chain_names


def read_options(model: int, chain_names: ChainNames) -> ReadOptions:
    """The library's reading options from the shared command-line options."""
    return ReadOptions(model=model, chain_names=chain_names)
