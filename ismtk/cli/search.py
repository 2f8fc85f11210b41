"""``ismtk createdb``, ``ismtk search`` and ``ismtk easy-search``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ismtk.cli import console
from ismtk.cli.options import (
    DEFAULT_AA_WEIGHT,
    DEFAULT_ALIGNMENT_TYPE,
    DEFAULT_CHAIN_NAMES,
    DEFAULT_EVALUE,
    DEFAULT_EXHAUSTIVE,
    DEFAULT_FORMAT_OUTPUT,
    DEFAULT_GAP_EXTEND,
    DEFAULT_GAP_OPEN,
    DEFAULT_MAX_CANDIDATES,
    DEFAULT_MAX_SEQS,
    DEFAULT_MODE,
    DEFAULT_MODEL,
    DEFAULT_SORT_BY,
    DEFAULT_THREADS,
    DEFAULT_TOKENIZER,
    AaWeightOpt,
    AlignmentTypeOpt,
    ChainNamesOpt,
    EvalueOpt,
    ExhaustiveOpt,
    FormatOutputOpt,
    GapExtendOpt,
    GapOpenOpt,
    MatrixOpt,
    MaxCandidatesOpt,
    MaxSeqsOpt,
    ModelOpt,
    ModeOpt,
    SortByOpt,
    Threads,
    TokenizerOpt,
    read_options,
)
from ismtk.search.hit3d import JudgeOptions
from ismtk.search.search import SearchOptions
from ismtk.tokenizers import load_tokenizer
from ismtk.workflows.search import load_input, search_to_m8

__all__ = ["createdb", "easy_search", "search"]

#: Fewer target entries than this give a rough E-value fit (random pairs of few sequences repeat).
_RELIABLE_FIT = 100

SearchInput = Annotated[
    Path, typer.Argument(help="A database folder (createdb), a token FASTA, or a structure file/folder.")
]


def _skip(problem) -> None:
    console.warn(f"skipped {problem}")


def createdb(
    inputs: Annotated[list[Path], typer.Argument(help="Structure files/folders or token FASTA files, then the DB folder.")],
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    threads: Threads = DEFAULT_THREADS,
    model: ModelOpt = DEFAULT_MODEL,
    chain_names: ChainNamesOpt = DEFAULT_CHAIN_NAMES,
) -> None:
    """Encode structures once (or read token FASTA) into a search database folder (format: docs/search.md).

    [bold]Example[/bold]: ismtk createdb structs/ db/
    """
    if len(inputs) < 2:
        raise typer.BadParameter("give at least one input and the database folder")
    *sources, target = inputs
    db = load_input(sources, load_tokenizer(tokenizer), read_options(model, chain_names), threads, _skip)
    db.save(target)
    console.info(f"wrote {len(db):,} entries ({db.residues:,} residues, {db.tokenizer}) -> {target}")


def search(
    query: SearchInput,
    target: SearchInput,
    output: Annotated[Path, typer.Option("--output", "-o", help="Hits table to write (.m8, tab-separated).")],
    matrix: MatrixOpt = None,
    mode: ModeOpt = DEFAULT_MODE,
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    evalue: EvalueOpt = DEFAULT_EVALUE,
    max_seqs: MaxSeqsOpt = DEFAULT_MAX_SEQS,
    exhaustive: ExhaustiveOpt = DEFAULT_EXHAUSTIVE,
    max_candidates: MaxCandidatesOpt = DEFAULT_MAX_CANDIDATES,
    aa_weight: AaWeightOpt = DEFAULT_AA_WEIGHT,
    gap_open: GapOpenOpt = DEFAULT_GAP_OPEN,
    gap_extend: GapExtendOpt = DEFAULT_GAP_EXTEND,
    format_output: FormatOutputOpt = DEFAULT_FORMAT_OUTPUT,
    alignment_type: AlignmentTypeOpt = DEFAULT_ALIGNMENT_TYPE,
    sort_by: SortByOpt = DEFAULT_SORT_BY,
    threads: Threads = DEFAULT_THREADS,
    model: ModelOpt = DEFAULT_MODEL,
    chain_names: ChainNamesOpt = DEFAULT_CHAIN_NAMES,
    predictor: Annotated[
        Path | None,
        typer.Option(
            "--predictor",
            help="structure-tune export folder: QUERY is then a protein FASTA whose structure tokens are predicted "
            "from sequence alone (no structure needed).",
        ),
    ] = None,
) -> None:
    """Search queries against a target with Smith-Waterman over structure tokens; hits as a Foldseek-style .m8.

    Scores are corrected by the reversed-query score; E-values come from the matrix header's fitted extreme-value
    parameters (fitted on the target when the header has none).

    From sequence alone: ismtk search seqs.fasta db/ --predictor run/export -o hits.m8

    Judged in 3D: ismtk search query.pdb db/ -o hits.m8 --format-output query,target,prob,lddt,alntmscore
    --alignment-type tmalign --sort-by alntmscore

    [bold]Example[/bold]: ismtk search query.pdb db/ -o hits.m8 -e 0.001
    """
    options = SearchOptions(
        gap_open=gap_open, gap_extend=gap_extend, max_evalue=evalue, max_seqs=max_seqs, exhaustive=exhaustive,
        max_candidates=max_candidates, threads=threads, aa_weight=aa_weight,
    )
    run = search_to_m8(
        [query], [target], output, matrix, tokenizer, mode, format_output, options, read_options(model, chain_names),
        _skip, predictor, JudgeOptions(alignment_type, sort_by),
    )
    if run.evd_fitted and run.targets < _RELIABLE_FIT:
        console.warn(f"E-value parameters fitted on only {run.targets} target entries are rough; search a larger "
                     f"database or store parameters with 'ismtk fit-evalue' (E-values only, the ranking is unaffected)")
    if run.evd_fitted and aa_weight > 0:
        console.info(f"E-values of token + {aa_weight:g} x amino-acid scores: lambda {run.evd.lam:.4g}, K {run.evd.k:.4g}"
                     " (fitted on the target)")
    elif run.evd_fitted:
        console.warn(
            f"the matrix has no E-value parameters for gaps {gap_open}/{gap_extend}; fitted on the target "
            f"(lambda {run.evd.lam:.4g}, K {run.evd.k:.4g}); store them with 'ismtk fit-evalue'"
        )
    console.info(
        f"{run.queries:,} queries x {run.targets:,} targets: {run.hits:,} hits in {run.seconds:.1f} s -> {output}"
    )


def easy_search(
    query: SearchInput,
    target: SearchInput,
    output: Annotated[Path, typer.Argument(help="Hits table to write (.m8).")],
    matrix: MatrixOpt = None,
    mode: ModeOpt = DEFAULT_MODE,
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    evalue: EvalueOpt = DEFAULT_EVALUE,
    max_seqs: MaxSeqsOpt = DEFAULT_MAX_SEQS,
    exhaustive: ExhaustiveOpt = DEFAULT_EXHAUSTIVE,
    max_candidates: MaxCandidatesOpt = DEFAULT_MAX_CANDIDATES,
    aa_weight: AaWeightOpt = DEFAULT_AA_WEIGHT,
    gap_open: GapOpenOpt = DEFAULT_GAP_OPEN,
    gap_extend: GapExtendOpt = DEFAULT_GAP_EXTEND,
    format_output: FormatOutputOpt = DEFAULT_FORMAT_OUTPUT,
    alignment_type: AlignmentTypeOpt = DEFAULT_ALIGNMENT_TYPE,
    sort_by: SortByOpt = DEFAULT_SORT_BY,
    threads: Threads = DEFAULT_THREADS,
    model: ModelOpt = DEFAULT_MODEL,
    chain_names: ChainNamesOpt = DEFAULT_CHAIN_NAMES,
) -> None:
    """Structures in, hits out, in one step (Foldseek's easy-search layout: QUERY TARGET OUTPUT).

    [bold]Example[/bold]: ismtk easy-search query.pdb structs/ hits.m8
    """
    search(query, target, output, matrix, mode, tokenizer, evalue, max_seqs, exhaustive, max_candidates, aa_weight,
           gap_open, gap_extend, format_output, alignment_type, sort_by, threads, model, chain_names)
