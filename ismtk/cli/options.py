"""Options shared by several commands, each declared once with its help text and library default."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ismtk.errors import InputError
from ismtk.search.hit3d import ALIGNMENT_TYPES, AlignmentType, JudgeOptions
from ismtk.search.m8 import DEFAULT_COLUMNS
from ismtk.search.search import SearchOptions
from ismtk.structure.read import ChainNames, ReadOptions
from ismtk.tokenizers import TOKENIZERS
from ismtk.train.distributed import Rendezvous, launch, under_launcher
from ismtk.workflows.encode import default_threads
from ismtk.workflows.search import Mode

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
    "read_options",
    "relaunch",
]

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

# --- distributed training (train-ae, structure-tune) ----------------------------------------------------------
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA if present), cpu, cuda or cuda:N.")]
GpusOpt = Annotated[
    int, typer.Option("--gpus", min=0, help="GPUs per node: N > 1 starts N processes under torchrun (DDP, NCCL).")
]
NprocOpt = Annotated[
    int, typer.Option("--nproc", min=0, help="CPU processes: N > 1 starts N processes under torchrun (DDP, gloo).")
]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue from the checkpoint in the run folder, exactly where it stopped.")
]
TorchThreads = Annotated[
    int | None,
    typer.Option("--threads", "-t", min=1, help="Torch CPU threads per process.", show_default="torch's choice"),
]
NnodesOpt = Annotated[str, typer.Option("--nnodes", help="Nodes of a multi-node run (torchrun: N or MIN:MAX).")]
NodeRankOpt = Annotated[int | None, typer.Option("--node-rank", help="This node's rank (static rendezvous).")]
RdzvEndpointOpt = Annotated[
    str | None, typer.Option("--rdzv-endpoint", help="HOST:PORT of the rendezvous on node 0 (multi-node runs).")
]
RdzvIdOpt = Annotated[str | None, typer.Option("--rdzv-id", help="Job id shared by all nodes of a multi-node run.")]

DEFAULT_DEVICE = "auto"
DEFAULT_NNODES = Rendezvous().nnodes


def relaunch(
    gpus: int, nproc: int, device: str, nnodes: str, node_rank: int | None, endpoint: str | None, run_id: str | None
) -> tuple[int | None, str]:
    """Re-run the current command under torchrun when several processes or nodes are asked for.

    Returns ``(exit status of the launcher, or None when this process should train itself, device)``.
    ``--gpus N`` implies CUDA, ``--nproc N`` the CPU; asking for both is an error.
    """
    if gpus and nproc:
        raise InputError("use either --gpus N (one process per GPU) or --nproc N (CPU processes), not both")
    count = max(gpus, nproc, 1)
    device = "cuda" if gpus else "cpu" if nproc else device
    if under_launcher() or (count == 1 and nnodes in ("1", "1:1")):
        return None, device
    return launch(count, sys.argv[1:], Rendezvous(nnodes, node_rank, endpoint, run_id)), device


# --- search options (defaults from ismtk.search) -------------------------------------------------------------

_DEFAULT_SEARCH = SearchOptions()
#: ``encode`` writes ISM tokens of the shipped model; databases, search and matrices default to the
#: tokenizer that searches best on scope40_dev (docs/benchmarks.md).
ENCODE_TOKENIZER = "ism"
DEFAULT_TOKENIZER = "3di"
DEFAULT_MODE: Mode = "tokens"

TokenizerOpt = Annotated[
    str,
    typer.Option(
        "--tokenizer", help=f"Structure tokenizer: {', '.join(TOKENIZERS)}, or an ISM tokenizer folder (ismtk cluster)."
    ),
]
MatrixOpt = Annotated[
    str | None,
    typer.Option(
        "--matrix",
        help="Substitution matrix file or shipped name (3di, ism, blosum62).",
        show_default="the tokenizer's shipped matrix; blosum62 with --mode aa",
    ),
]
ModeOpt = Annotated[Mode, typer.Option("--mode", help="Align structure tokens, or amino acids.")]
GapOpenOpt = Annotated[int, typer.Option("--gap-open", min=1, help="Gap open penalty (a gap of n costs open + (n-1) extend).")]
GapExtendOpt = Annotated[int, typer.Option("--gap-extend", min=1, help="Gap extension penalty.")]
EvalueOpt = Annotated[float, typer.Option("-e", "--evalue", min=0.0, help="Report hits with an E-value up to this.")]
MaxSeqsOpt = Annotated[int, typer.Option("--max-seqs", min=1, help="Report at most this many hits per query.")]
ExhaustiveOpt = Annotated[
    bool, typer.Option("--exhaustive/--prefilter", help="Align every pair, or only the best ungapped-diagonal candidates (prefilter).")
]
MaxCandidatesOpt = Annotated[
    int, typer.Option("--max-candidates", min=1, help="Targets per query passed by the prefilter to Smith-Waterman.")
]
AaWeightOpt = Annotated[
    float,
    typer.Option(
        "--aa-weight",
        min=0.0,
        help="Add this weight x BLOSUM62 of the amino acids to the token score (Foldseek's 3Di+AA); 0 = tokens "
        "alone. Needs amino acids on both sides (structures or databases, not token FASTA).",
    ),
]
FormatOutputOpt = Annotated[
    str, typer.Option("--format-output", help="Comma-separated output columns (see docs/search.md).")
]
AlignmentTypeOpt = Annotated[
    AlignmentType,
    typer.Option(
        "--alignment-type",
        help=f"Alignment reported for each hit ({', '.join(ALIGNMENT_TYPES)}): sw = the Smith-Waterman alignment "
        "that ranked it; tmalign = TM-align's alignment of the two structures (the top --max-seqs hits are "
        "realigned; needs C-alpha coordinates on both sides).",
    ),
]
SortByOpt = Annotated[
    str | None,
    typer.Option(
        "--sort-by",
        help="Order each query's hits by this numeric output column (e.g. alntmscore, lddt, prob; evalue, rmsd, "
        "mismatch and gapopen smallest first, others largest first).",
        show_default="the search score",
    ),
]

DEFAULT_GAP_OPEN = _DEFAULT_SEARCH.gap_open
DEFAULT_GAP_EXTEND = _DEFAULT_SEARCH.gap_extend
DEFAULT_EVALUE = _DEFAULT_SEARCH.max_evalue
DEFAULT_MAX_SEQS = _DEFAULT_SEARCH.max_seqs
DEFAULT_EXHAUSTIVE = _DEFAULT_SEARCH.exhaustive
DEFAULT_MAX_CANDIDATES = _DEFAULT_SEARCH.max_candidates
DEFAULT_AA_WEIGHT = _DEFAULT_SEARCH.aa_weight
DEFAULT_FORMAT_OUTPUT = DEFAULT_COLUMNS
DEFAULT_ALIGNMENT_TYPE: AlignmentType = JudgeOptions().alignment_type
DEFAULT_SORT_BY = JudgeOptions().sort_by
