"""``ismtk align-pairs``, ``ismtk learn-matrix`` and ``ismtk fit-evalue``."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from ismtk.cli import console
from ismtk.cli.options import (
    DEFAULT_THREADS,
    INPUT,
    PROCESSES,
    SEARCH,
    GapExtend,
    GapOpen,
    Inputs,
    ModeOpt,
    StructureInput,
    TokenizerOpt,
    output_option,
    refuse_overwriting,
    warn_untagged,
    with_option_groups,
)
from ismtk.search.align import DEFAULT_GAP_EXTEND, DEFAULT_GAP_OPEN
from ismtk.search.evalue import DEFAULT_NULL_PAIRS
from ismtk.search.learn import DEFAULT_PSEUDOCOUNT
from ismtk.search.pairs import DEFAULT_MAX_DISTANCE, DEFAULT_MIN_TM
from ismtk.workflows.search import DEFAULT_MODE

__all__ = ["align_pairs", "fit_evalue", "learn_matrix"]

NullPairs = Annotated[
    int, typer.Option("--null-pairs", min=100, rich_help_panel=SEARCH, help="Unrelated pairs scored to fit E-values.")
]


@with_option_groups
def align_pairs(
    inputs: Inputs,
    *,
    pairs: Annotated[Path, typer.Option("--pairs", rich_help_panel=INPUT, help="Candidate pairs: two entry names "
                                        "per line.")],
    reading: StructureInput = StructureInput(),
    max_distance: Annotated[
        float, typer.Option("--max-distance", min=0.0, rich_help_panel=SEARCH,
                            help="Aligned residues farther apart (A) are not 'close'.")
    ] = DEFAULT_MAX_DISTANCE,
    output: output_option("Alignments to write (tmaln-06.out format).", file=True),
    threads: Annotated[
        int, typer.Option("--threads", "-t", min=1, rich_help_panel=PROCESSES, show_default="all cores",
                          help="Processes that run TM-align on the pairs (the structures are read once, here).")
    ] = DEFAULT_THREADS,
) -> None:
    """TM-align candidate pairs of structures (tmtools) into the training alignments of learn-matrix.

    [bold]Example[/bold]: ismtk align-pairs train/ --pairs candidates.tsv -o train.aln
    """
    from ismtk.search.pairs import align_structure_files
    from ismtk.structure.read import find_structure_files

    refuse_overwriting(partial(find_structure_files, [*inputs, pairs], keep_missing=True), output=output)
    skips = console.Skips("file(s) or pair(s)")
    with console.progress("aligning", total=None, unit="pairs") as advance:
        count = align_structure_files(inputs, pairs, output, max_distance, threads, reading.read_options(), advance,
                                      skips)  # fmt: skip
    console.info(f"aligned {count:,} pairs -> {output}")
    skips.finish()


#: What to do about an untagged FASTA of amino acids given as tokens.
_TOKENS_ADVICE = "if it holds amino acids, give the tokens ismtk encode writes (or a database) instead"


def learn_matrix(
    tokens: Annotated[Path, typer.Argument(help="Token sequences of the aligned entries: a DB folder or token FASTA.")],
    alignments: Annotated[list[Path], typer.Argument(help="Alignment files (tmaln-06.out format, see align-pairs).")],
    *,
    tokenizer: TokenizerOpt = None,
    min_tm: Annotated[float, typer.Option("--min-tm", min=0.0, max=1.0, rich_help_panel=INPUT,
                                          help="Use alignments with at least this TM-score.")] = DEFAULT_MIN_TM,
    pseudocount: Annotated[
        float, typer.Option("--pseudocount", min=0.0, max=1e6, rich_help_panel=SEARCH,
                            help="Added to every pair count (for small data).")
    ] = DEFAULT_PSEUDOCOUNT,
    gap_open: GapOpen = DEFAULT_GAP_OPEN,
    gap_extend: GapExtend = DEFAULT_GAP_EXTEND,
    null_pairs: NullPairs = DEFAULT_NULL_PAIRS,
    output: output_option("Matrix to write (NCBI format with header).", file=True),
) -> None:
    """Learn a half-bit log-odds substitution matrix from structurally aligned residue pairs (Foldseek's 3Di recipe).

    [bold]Example[/bold]: ismtk learn-matrix train.3di.fasta train.aln -o my3di.out
    """
    from ismtk.search.learn import learn_matrix as learn
    from ismtk.search.matrix import write_matrix
    from ismtk.workflows.search import RELIABLE_FIT_ENTRIES, load_search_db

    refuse_overwriting([tokens, *alignments], output=output)
    if tokenizer is None:
        warn_untagged([tokens], advice=_TOKENS_ADVICE)
    skips = console.Skips()
    db = load_search_db([tokens], tokenizer, on_skip=skips)
    matrix, report = learn(db, alignments, min_tm, pseudocount, gap_open, gap_extend, null_pairs)
    if len(db) < RELIABLE_FIT_ENTRIES:
        console.warn(f"its E-value parameters were fitted on only {len(db)} entries and are rough; store better ones "
                     "with 'ismtk fit-evalue' on a larger set of representative sequences")
    write_matrix(output, matrix)
    console.info(
        f"learned from {report.pairs:,} close pairs of {report.alignments:,} alignments "
        f"({report.below_tm:,} below --min-tm {min_tm:g}; {report.skipped_alignments:,} skipped: names/lengths not "
        f"in the tokens) -> {output}"
    )
    skips.finish()


def fit_evalue(
    matrix: Annotated[Path, typer.Argument(help="Matrix file to fit E-value statistics for.")],
    sequences: Annotated[Path, typer.Argument(help="Representative sequences: a DB folder or token FASTA.")],
    *,
    tokenizer: TokenizerOpt = None,
    mode: ModeOpt = DEFAULT_MODE,
    gap_open: GapOpen = DEFAULT_GAP_OPEN,
    gap_extend: GapExtend = DEFAULT_GAP_EXTEND,
    null_pairs: NullPairs = DEFAULT_NULL_PAIRS,
    output: output_option("Matrix to write with the fitted header line.", file=True),
) -> None:
    """Fit extreme-value (E-value) parameters of a matrix and gap penalties on null pairs and store them in its header.

    [bold]Example[/bold]: ismtk fit-evalue mat3di.out train_db/ -o mat3di.fitted.out
    """
    from ismtk.search.matrix import write_matrix
    from ismtk.workflows.search import fit_matrix_evd

    refuse_overwriting([sequences], output=output)  # (the matrix itself may be rewritten in place)
    if tokenizer is None and mode != "aa":
        warn_untagged([sequences], advice=_TOKENS_ADVICE)
    skips = console.Skips()
    fitted, params = fit_matrix_evd(matrix, [sequences], mode, tokenizer, gap_open, gap_extend, null_pairs, skips,
                                    console.warn)
    write_matrix(output, fitted)
    console.info(f"lambda {params.lam:.4g}, K {params.k:.4g} for gaps {gap_open}/{gap_extend} -> {output}")
    skips.finish()
