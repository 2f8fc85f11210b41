"""Options of the command line: each declared once, with its help text and library default, in a help panel.

Options that go together form a group (a frozen dataclass whose fields are Typer options); a command takes
a group as one parameter and :func:`with_option_groups` lets Typer see the group's options one by one.
Panels: ``Input`` (how inputs are read), ``Output``, ``Search``, ``Training``, ``Model``, ``Run`` (resume,
stops, checkpoints) and ``Processes and devices``. Spellings of older versions stay accepted without being
shown (:data:`HIDDEN_ALIASES`). This module imports no torch: ``ismtk --help`` and the search and encode
commands start without it.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import sys
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperOption

from ismtk.atomic import ensure_folder
from ismtk.cli import console
from ismtk.errors import InputError
from ismtk.search.combined import parse_score
from ismtk.search.hit3d import ALIGNMENT_TYPES, AlignmentType, JudgeOptions
from ismtk.search.search import DEFAULT_AA_WEIGHT, DEFAULT_OPTIONS, SearchOptions, parse_split
from ismtk.structure.read import FORMATS, ChainNames, Format, ReadOptions
from ismtk.tokenizers import DEFAULT_TOKENIZER, TOKENIZERS
from ismtk.train.launch import Processes, Rendezvous, relaunch
from ismtk.workflows.encode import default_threads
from ismtk.workflows.search import DEFAULT_MODE, Mode

__all__ = [
    "DEFAULT_THREADS",
    "HIDDEN_ALIASES",
    "INPUT",
    "MODEL",
    "OUTPUT",
    "PROCESSES",
    "RUN",
    "SEARCH",
    "TRAINING",
    "AliasedCommand",
    "Alignment",
    "Device",
    "EncodeTokenizer",
    "FormatOutput",
    "GapExtend",
    "GapOpen",
    "HitFilter",
    "Index",
    "Inputs",
    "Judging",
    "ModeOpt",
    "Overwrite",
    "Resume",
    "SearchInput",
    "StructureInput",
    "Threads",
    "TokenizerOpt",
    "TrainingProcesses",
    "check_file_output",
    "check_folder_output",
    "check_output",
    "help_text",
    "output_option",
    "rename_aliases",
    "with_option_groups",
]

INPUT = "Input"
OUTPUT = "Output"
SEARCH = "Search"
TRAINING = "Training"
MODEL = "Model"
RUN = "Run"
PROCESSES = "Processes and devices"

#: Spellings of older versions, still accepted but not shown in ``--help``: old -> current.
HIDDEN_ALIASES = {"--out": "--output", "--out-dir": "--output", "--model": "--nmr-model"}

_READ = ReadOptions()
_SEARCH = DEFAULT_OPTIONS

# --- inputs ------------------------------------------------------------------------------------------------
Inputs = Annotated[
    list[Path],
    typer.Argument(help="Structure files (PDB/mmCIF, optionally .gz), folders (searched recursively) or path "
                   "lists (.txt, .list: one path per line)."),
]
SearchInput = Annotated[
    Path, typer.Argument(help="A database folder (createdb), a token FASTA, or a structure file/folder.")
]
EncodeTokenizer = Annotated[
    str,
    typer.Option("--tokenizer", rich_help_panel=INPUT,
                 help=f"Structure tokenizer: {', '.join(TOKENIZERS)}, or an ISM tokenizer folder (ismtk cluster)."),
]
TokenizerOpt = Annotated[
    str | None,
    typer.Option(
        "--tokenizer", rich_help_panel=INPUT, show_default=f"what the inputs name, else {DEFAULT_TOKENIZER}",
        help=f"Tokenizer: {', '.join(TOKENIZERS)}, or an ISM tokenizer folder. Structure inputs are encoded with it, "
        "a database holding several token tracks is read by its track, untagged FASTA as its tokens. Databases and "
        "token FASTA written by ismtk name their own; give the folder here when theirs is not shipped.",
    ),
]
Index = Annotated[
    list[Path] | None,
    typer.Option("--index", rich_help_panel=INPUT,
                 help="Chain index table (.csv, or .tsv), repeatable; the index.csv at the top of an input folder "
                 "is used too."),
]
KeepBenchHomologs = Annotated[
    bool, typer.Option("--keep-bench-homologs", rich_help_panel=INPUT,
                       help="Keep chains homologous to scope40_dev bench domains (and bench domains).")
]
KeepTs50Homologs = Annotated[
    bool, typer.Option("--keep-ts50-homologs", rich_help_panel=INPUT, help="Keep chains homologous to TS50 chains.")
]

@dataclass(frozen=True)
class StructureInput:
    """How structure files are read (:class:`ismtk.structure.read.ReadOptions`)."""

    nmr_model: Annotated[
        int,
        typer.Option("--nmr-model", min=1, rich_help_panel=INPUT,
                     help="Model of multi-model files (NMR ensembles) to read, 1-based."),
    ] = _READ.model
    chain_names: Annotated[
        ChainNames,
        typer.Option("--chain-names", rich_help_panel=INPUT,
                     help="Add _CHAIN to entry names: auto (only for multi-chain files, as Foldseek)."),
    ] = _READ.chain_names
    format: Annotated[
        Format,
        typer.Option("--format", rich_help_panel=INPUT,
                     help=f"Structure format ({', '.join(FORMATS)}: auto goes by the name, else by the content)."),
    ] = _READ.format

    def read_options(self) -> ReadOptions:
        return ReadOptions(model=self.nmr_model, chain_names=self.chain_names, format=self.format)


# --- outputs -----------------------------------------------------------------------------------------------
def output_option(help: str, file: bool = False) -> Any:
    """The ``-o/--output`` option of a command, with what it writes; checked before any work
    (:func:`check_output`; ``file``: it names a file, not a folder)."""
    return Annotated[
        Path,
        typer.Option("--output", "-o", help=help, rich_help_panel=OUTPUT,
                     callback=check_file_output if file else check_folder_output),
    ]


def check_output(path: Path | None, file: bool = False) -> Path | None:
    """Check an output path before the work starts: with ``file``, a folder there is an error; a missing parent
    folder is created, and the user told so. Returns ``path``."""
    if path is None:
        return None
    if file and path.is_dir():
        raise InputError(f"{path} is a folder; give a file name for the output")
    if not file and path.exists() and not path.is_dir():
        raise InputError(f"{path} is a file; give a folder for the output")
    parent = path.absolute().parent
    if parent.exists() and not parent.is_dir():
        raise InputError(f"{path}: {path.parent} is a file, not a folder")
    if not parent.exists():
        ensure_folder(parent)  # names the path that cannot be a folder
        console.info(f"created folder {path.parent} for {path.name}")
    return path


def refuse_overwriting(
    inputs: Iterable[str | Path] | Callable[[], Iterable[str | Path]],
    beside: Mapping[str, tuple[str, ...]] | None = None,
    **outputs: Path | None,
) -> None:
    """Refuse (:class:`InputError`) outputs that name one of the command's ``inputs`` or each other: writing one
    would replace an input before or while it is read, or the other output. ``outputs``: option name -> path;
    ``inputs`` may be a function that lists them, called only when some output already exists. ``beside``:
    option name -> suffixes of the files written next to that output while it is made (``.part``), which must
    not be inputs either."""
    named = {option.replace("_", "-"): path for option, path in outputs.items() if path is not None}
    extra = {option.replace("_", "-"): suffixes for option, suffixes in (beside or {}).items()}
    written = [
        (option, suffix, Path(f"{path}{suffix}")) for option, path in named.items()
        for suffix in ("", *extra.get(option, ()))
    ]
    seen: dict[str, tuple[str, str]] = {}  # every file the outputs write: path -> (option, suffix)
    for option, suffix, path in written:
        where = os.path.realpath(path)
        if where not in seen:
            seen[where] = option, suffix
            continue
        other, other_suffix = seen[where]
        if not suffix and not other_suffix:
            raise InputError(f"{path}: --{option} and --{other} name the same file; give each its own")
        raise InputError(f"{path}: --{option} {named[option]} and --{other} {named[other]} both write this file "
                         "(one as its output, one beside its own); give them other names")
    present = [(option, suffix, path) for option, suffix, path in written if path.exists()]
    if not present:  # an output that does not exist yet cannot be an input
        return
    existing = {os.path.realpath(path): (option, suffix, path) for option, suffix, path in present}
    names = {os.path.basename(p) for p in [*existing, *(path for _, _, path in present)]}  # as given and resolved
    # a million inputs: string work for all of them, the file system only for a namesake of an output
    for item in inputs() if callable(inputs) else inputs:
        if os.path.basename(item) not in names:
            continue
        hit = existing.get(os.path.realpath(item))
        if hit is None:
            continue
        option, suffix, path = hit
        if not suffix:
            raise InputError(f"{item}: --{option} names this input, which writing would replace; give another name")
        raise InputError(f"{item}: writing --{option} {named[option]} goes through {path.name} beside it, which "
                         "would replace this input; give another output name")


def refuse_writing_into_databases(inputs: Iterable[str | Path], **outputs: Path | None) -> None:
    """Refuse (:class:`InputError`) an output inside an input database folder: it would replace one of the
    database's files (an .m8 written over ``names.txt``), and the database with it."""
    from ismtk.search.db import is_db

    folders = [os.path.realpath(item) for item in inputs if is_db(item)]
    for option, path in outputs.items():
        if path is None:
            continue
        where = os.path.realpath(path)
        inside = next((folder for folder in folders if where.startswith(folder + os.sep)), None)
        if inside is not None:
            raise InputError(f"{path}: --{option.replace('_', '-')} lies inside the input database {inside}, whose "
                             "files writing it would replace; give a path outside it")


def check_file_output(path: Path | None) -> Path | None:
    """:func:`check_output` of a file output (a Typer callback)."""
    return check_output(path, file=True)


def check_folder_output(path: Path | None) -> Path | None:
    """:func:`check_output` of a folder output (a Typer callback)."""
    return check_output(path)


FormatOutput = Annotated[
    str, typer.Option("--format-output", rich_help_panel=OUTPUT, help="Comma-separated output columns (see "
                      "docs/search.md).")
]

# --- search ------------------------------------------------------------------------------------------------
ModeOpt = Annotated[Mode, typer.Option("--mode", rich_help_panel=SEARCH, help="Align structure tokens, or amino "
                                       "acids.")]
GapOpen = Annotated[
    int, typer.Option("--gap-open", min=1, rich_help_panel=SEARCH,
                      help="Gap open penalty (a gap of n costs open + (n-1) extend).")
]
GapExtend = Annotated[int, typer.Option("--gap-extend", min=1, rich_help_panel=SEARCH, help="Gap extension penalty.")]


@dataclass(frozen=True)
class Alignment:
    """How queries and targets are scored and which pairs are aligned."""

    matrix: Annotated[
        str | None,
        typer.Option("--matrix", rich_help_panel=SEARCH, help="Substitution matrix file or shipped name (3di, ism, "
                     "blosum62).", show_default="the tokenizer's shipped matrix; blosum62 with --mode aa"),
    ] = None
    mode: ModeOpt = DEFAULT_MODE
    aa_weight: Annotated[
        float | None,
        typer.Option("--aa-weight", min=0.0, rich_help_panel=SEARCH,
                     help="Add this weight x BLOSUM62 of the amino acids to the token score (Foldseek's 3Di+AA); "
                     "0 = tokens alone (the fastest). Needs amino acids on both sides (structures or databases, not "
                     "token FASTA).", show_default=f"{DEFAULT_AA_WEIGHT:g} where both sides carry amino acids, else 0"),
    ] = _SEARCH.aa_weight
    score: Annotated[
        str | None,
        typer.Option("--score", rich_help_panel=SEARCH,
                     help="Weighted tracks summed per column, TRACK:WEIGHT,... (e.g. 3di:1,ism:0.25,aa:0.5); a track "
                     "is a tokenizer (3di, ism, ism-residual, an ISM folder) or aa. Every track must be on both sides "
                     "(structures, or databases made with createdb --tracks). --aa-weight W is TOKENIZER:1,aa:W; "
                     "--mode aa is aa. --matrix scores the database's own tokenizer's track.",
                     show_default="the tokenizer's tokens alone (plus --aa-weight)"),
    ] = None
    gap_open: GapOpen = _SEARCH.gap_open
    gap_extend: GapExtend = _SEARCH.gap_extend
    exhaustive: Annotated[
        bool,
        typer.Option("--exhaustive/--prefilter", rich_help_panel=SEARCH,
                     help="Align every pair, or only the targets passed by the k-mer prefilter (similar k-mers of "
                     "the tokens, and of the amino acids when they are scored; double hits)."),
    ] = _SEARCH.exhaustive
    max_candidates: Annotated[
        int, typer.Option("--max-candidates", min=1, rich_help_panel=SEARCH,
                          help="Targets per query passed by the prefilter to Smith-Waterman.")
    ] = _SEARCH.max_candidates

    def search_options(self, threads: int, hits: HitFilter | None = None) -> SearchOptions:
        """The library's options (``hits``: the E-value and count limits, else the library's)."""
        limits = {"max_evalue": hits.evalue, "max_seqs": hits.max_seqs, "split": hits.shard()} if hits else {}
        score = parse_score(self.score) if self.score is not None else ()
        return SearchOptions(gap_open=self.gap_open, gap_extend=self.gap_extend, exhaustive=self.exhaustive,
                             max_candidates=self.max_candidates, threads=threads, aa_weight=self.aa_weight,
                             score=score, **limits)


@dataclass(frozen=True)
class HitFilter:
    """Which hits are reported."""

    evalue: Annotated[
        float, typer.Option("-e", "--evalue", min=0.0, rich_help_panel=SEARCH,
                            help="Report hits with an E-value up to this.")
    ] = _SEARCH.max_evalue
    max_seqs: Annotated[
        int, typer.Option("--max-seqs", min=1, rich_help_panel=SEARCH,
                          help="Report at most this many hits per query (a cap on the output even with exhaustive "
                               "search, unlike Foldseek's prefilter cap of that name).")
    ] = _SEARCH.max_seqs
    split: Annotated[
        str | None, typer.Option("--split", rich_help_panel=SEARCH, show_default="the whole database",
                                 help="I/N: search only shard I of N of the target database (for job arrays); "
                                 "E-values count the whole database. Join the N outputs with 'ismtk merge-hits'.")
    ] = None

    def shard(self) -> tuple[int, int] | None:
        """``(I, N)`` of ``--split``, if given."""
        return parse_split(self.split) if self.split is not None else None


@dataclass(frozen=True)
class Judging:
    """How reported hits are aligned and ordered (:class:`ismtk.search.hit3d.JudgeOptions`)."""

    alignment_type: Annotated[
        AlignmentType,
        typer.Option("--alignment-type", rich_help_panel=SEARCH,
                     help=f"Alignment reported for each hit ({', '.join(ALIGNMENT_TYPES)}): sw = the Smith-Waterman "
                     "alignment that ranked it; tmalign = TM-align's alignment of the two structures (the top "
                     "--max-seqs hits are realigned; needs C-alpha coordinates on both sides)."),
    ] = JudgeOptions().alignment_type
    sort_by: Annotated[
        str | None,
        typer.Option("--sort-by", rich_help_panel=SEARCH, show_default="the search score",
                     help="Order each query's hits by this numeric output column (e.g. alntmscore, lddt, prob; "
                     "evalue, rmsd, mismatch and gapopen smallest first, others largest first)."),
    ] = JudgeOptions().sort_by

    def options(self) -> JudgeOptions:
        return JudgeOptions(self.alignment_type, self.sort_by)


# --- training runs -----------------------------------------------------------------------------------------
Resume = Annotated[
    bool, typer.Option("--resume", rich_help_panel=RUN, help="Continue from the run folder's latest checkpoint, "
                       "exactly where it stopped (with the same training options).")
]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", rich_help_panel=RUN,
                       help="Start afresh in a run folder that holds a run (its files are removed).")
]

# --- processes and devices ---------------------------------------------------------------------------------
Threads = Annotated[
    int, typer.Option("--threads", "-t", min=1, rich_help_panel=PROCESSES, show_default="all cores",
                      help="Parallel workers: processes that read and encode, threads that align.")
]
#: Default of :data:`Threads`: every core this process may use.
DEFAULT_THREADS = default_threads()


Device = Annotated[str, typer.Option("--device", rich_help_panel=PROCESSES,
                                     help="auto (CUDA if present), cpu, cuda or cuda:N.")]


_PROCESSES = Processes()
_RDZV = _PROCESSES.rendezvous


@dataclass(frozen=True)
class TrainingProcesses:
    """Where a trainer runs: device, torch threads, processes per node and the nodes of a multi-node run."""

    device: Device = _PROCESSES.device
    gpus: Annotated[
        int, typer.Option("--gpus", min=0, rich_help_panel=PROCESSES,
                          help="GPUs per node: N > 1 starts N processes under torchrun (DDP, NCCL).")
    ] = _PROCESSES.gpus
    nproc: Annotated[
        int, typer.Option("--nproc", min=0, rich_help_panel=PROCESSES,
                          help="CPU processes: N > 1 starts N processes under torchrun (DDP, gloo).")
    ] = _PROCESSES.nproc
    threads: Annotated[
        int | None, typer.Option("--threads", "-t", min=1, rich_help_panel=PROCESSES,
                                 help="Torch CPU threads per process.", show_default="torch's choice")
    ] = _PROCESSES.threads
    nnodes: Annotated[str, typer.Option("--nnodes", rich_help_panel=PROCESSES,
                                        help="Nodes of a multi-node run (torchrun: N or MIN:MAX).")] = _RDZV.nnodes
    node_rank: Annotated[int | None, typer.Option("--node-rank", rich_help_panel=PROCESSES,
                                                  help="This node's rank (static rendezvous).")] = _RDZV.node_rank
    rdzv_endpoint: Annotated[
        str | None, typer.Option("--rdzv-endpoint", rich_help_panel=PROCESSES,
                                 help="HOST:PORT of the rendezvous on node 0 (multi-node runs).")
    ] = _RDZV.endpoint
    rdzv_id: Annotated[str | None, typer.Option("--rdzv-id", rich_help_panel=PROCESSES,
                                                help="Job id shared by all nodes of a multi-node run.")] = _RDZV.run_id

    def processes(self) -> Processes:
        rendezvous = Rendezvous(self.nnodes, self.node_rank, self.rdzv_endpoint, self.rdzv_id)
        return Processes(self.device, self.gpus, self.nproc, self.threads, rendezvous)

    def relaunch(self) -> str:
        """Re-run this command under torchrun when several processes or nodes are asked for (then exit with the
        launcher's status); returns the device this process trains on."""
        status = relaunch(self.processes(), sys.argv[1:])
        if status is not None:
            raise typer.Exit(status)
        return self.processes().resolved_device


# --- composition -------------------------------------------------------------------------------------------
def help_text(func: Callable[..., Any]) -> str:
    """``func``'s docstring with the lines of each paragraph joined: the help wraps them to the terminal, so
    docstrings can keep to the 120 columns of the source."""
    doc = inspect.getdoc(func) or ""
    return "\n\n".join(" ".join(paragraph.split("\n")) for paragraph in doc.split("\n\n"))


def given_options(ctx: typer.Context) -> set[str]:
    """Names of the command's parameters set on the command line (or by environment), not left at their default."""
    return {name for name in ctx.params if (source := ctx.get_parameter_source(name)) and source.name != "DEFAULT"}


def with_option_groups(func: Callable[..., Any]) -> Callable[..., Any]:
    """Let Typer see the options of every parameter of ``func`` typed with an option group, one by one; ``func``
    is called with the group (a dataclass) built from them. Field names must be unique within a command."""
    signature = inspect.signature(func, eval_str=True)
    params: list[inspect.Parameter] = []
    groups: dict[str, tuple[type, list[str]]] = {}
    for param in signature.parameters.values():
        group = param.annotation
        if isinstance(group, type) and dataclasses.is_dataclass(group):
            hints = typing.get_type_hints(group, include_extras=True)
            fields = dataclasses.fields(group)
            groups[param.name] = (group, [f.name for f in fields])
            params += [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                         annotation=hints[f.name]) for f in fields]
        else:
            params.append(param.replace(kind=inspect.Parameter.KEYWORD_ONLY))
    names = [p.name for p in params]
    if len(set(names)) != len(names):
        raise TypeError(f"{func.__name__}: option groups repeat a parameter name ({names})")

    @functools.wraps(func)
    def command(**values: Any) -> Any:
        for name, (group, fields) in groups.items():
            values[name] = group(**{field: values.pop(field) for field in fields})
        return func(**values)

    command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params} | {"return": signature.return_annotation}
    return command


class AliasedCommand(TyperCommand):
    """A command that also accepts the hidden spellings of :data:`HIDDEN_ALIASES` for its options."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, rename_aliases(self.params, args))


def rename_aliases(params: list[Any], args: list[str]) -> list[str]:
    """``args`` with every hidden alias in option position (not an option's value, not after ``--``) replaced
    by the current spelling, when the command has that option and no option of the alias's name."""
    takes_value = {name: not (p.is_flag or p.count) for p in params if isinstance(p, TyperOption)
                   for name in [*p.opts, *p.secondary_opts]}
    renamed: list[str] = []
    value_next = False
    for i, arg in enumerate(args):
        if value_next:
            renamed.append(arg)
            value_next = False
            continue
        if arg == "--":
            renamed += args[i:]
            break
        name, equals, value = arg.partition("=")
        current = HIDDEN_ALIASES.get(name)
        if current in takes_value and name not in takes_value:
            name = current
        renamed.append(name + equals + value)
        value_next = takes_value.get(name, False) and not equals
    return renamed


def warn_untagged(
    inputs: list[Path],
    read_as: str | None = None,
    advice: str = "if it holds amino acids, search it with --mode aa or from sequence with --predictor",
) -> None:
    """Warn of each token FASTA without a ``tokenizer=`` tag, read as ``read_as`` tokens when no ``--tokenizer`` is
    given (default: those of the first tagged file among ``inputs``, else the default tokenizer's): an amino-acid
    FASTA (encode --aa-output) looks exactly like 3Di tokens, which share its 20 letters, and the 64 ISM letters
    hold both."""
    from ismtk.sequence.fasta import TOKENIZER_TAG, header_tag, read_fasta_records
    from ismtk.workflows.search import is_fasta

    firsts = {path: next(read_fasta_records(path), None) for path in inputs if is_fasta(path) and Path(path).is_file()}
    tags = {path: header_tag(first.description, TOKENIZER_TAG) for path, first in firsts.items() if first is not None}
    if read_as is None:
        tagged = next((f"{path}'s ({tag})" for path, tag in tags.items() if tag is not None), None)
        read_as = tagged or f"the default tokenizer's ({DEFAULT_TOKENIZER})"
    for path, tag in tags.items():
        if tag is None:  # (a file without records: an error later)
            console.warn(f"{path}: no tokenizer= tag, read as {read_as} tokens; {advice}")
