"""``ismtk align-pairs``, ``ismtk learn-matrix`` and ``ismtk fit-evalue``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ismtk.cli import console
from ismtk.cli.options import (
    DEFAULT_CHAIN_NAMES,
    DEFAULT_GAP_EXTEND,
    DEFAULT_GAP_OPEN,
    DEFAULT_MODE,
    DEFAULT_MODEL,
    DEFAULT_THREADS,
    DEFAULT_TOKENIZER,
    ChainNamesOpt,
    GapExtendOpt,
    GapOpenOpt,
    Inputs,
    ModelOpt,
    ModeOpt,
    Threads,
    TokenizerOpt,
    read_options,
)
from ismtk.search.evalue import DEFAULT_NULL_PAIRS
from ismtk.search.learn import learn_matrix as learn
from ismtk.search.matrix import write_matrix
from ismtk.search.pairs import DEFAULT_MAX_DISTANCE, DEFAULT_MIN_TM, align_structure_files
from ismtk.workflows.search import fit_matrix_evd, load_search_db

__all__ = ["align_pairs", "fit_evalue", "learn_matrix"]

NullPairsOpt = Annotated[int, typer.Option("--null-pairs", min=100, help="Unrelated pairs scored to fit E-values.")]


def align_pairs(
    inputs: Inputs,
    pairs: Annotated[Path, typer.Option("--pairs", help="Candidate pairs: two entry names per line.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Alignments to write (tmaln-06.out format).")],
    max_distance: Annotated[
        float, typer.Option("--max-distance", min=0.0, help="Aligned residues farther apart (A) are not 'close'.")
    ] = DEFAULT_MAX_DISTANCE,
    threads: Threads = DEFAULT_THREADS,
    model: ModelOpt = DEFAULT_MODEL,
    chain_names: ChainNamesOpt = DEFAULT_CHAIN_NAMES,
) -> None:
    """TM-align candidate pairs of structures (tmtools) into the training alignments of learn-matrix.

    [bold]Example[/bold]: ismtk align-pairs train/ --pairs candidates.tsv -o train.aln
    """
    count = align_structure_files(inputs, pairs, output, max_distance, threads, read_options(model, chain_names))
    console.info(f"aligned {count:,} pairs -> {output}")


def learn_matrix(
    tokens: Annotated[Path, typer.Argument(help="Token sequences of the aligned entries: a DB folder or token FASTA.")],
    alignments: Annotated[list[Path], typer.Argument(help="Alignment files (tmaln-06.out format, see align-pairs).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Matrix to write (NCBI format with header).")],
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    min_tm: Annotated[float, typer.Option("--min-tm", help="Use alignments with at least this TM-score.")] = DEFAULT_MIN_TM,
    pseudocount: Annotated[
        float, typer.Option("--pseudocount", min=0.0, help="Added to every pair count (for small data).")
    ] = 0.0,
    gap_open: GapOpenOpt = DEFAULT_GAP_OPEN,
    gap_extend: GapExtendOpt = DEFAULT_GAP_EXTEND,
    null_pairs: NullPairsOpt = DEFAULT_NULL_PAIRS,
) -> None:
    """Learn a half-bit log-odds substitution matrix from structurally aligned residue pairs (Foldseek's 3Di recipe).

    [bold]Example[/bold]: ismtk learn-matrix train.3di.fasta train.aln -o my3di.out
    """
    db = load_search_db([tokens], tokenizer)
    matrix, report = learn(db, alignments, min_tm, pseudocount, gap_open, gap_extend, null_pairs)
    write_matrix(output, matrix)
    console.info(
        f"learned from {report.pairs:,} close pairs of {report.alignments:,} alignments "
        f"({report.skipped_alignments:,} skipped: names/lengths not in the tokens) -> {output}"
    )


def fit_evalue(
    matrix: Annotated[Path, typer.Argument(help="Matrix file to fit E-value statistics for.")],
    sequences: Annotated[Path, typer.Argument(help="Representative sequences: a DB folder or token FASTA.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Matrix to write with the fitted header line.")],
    mode: ModeOpt = DEFAULT_MODE,
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    gap_open: GapOpenOpt = DEFAULT_GAP_OPEN,
    gap_extend: GapExtendOpt = DEFAULT_GAP_EXTEND,
    null_pairs: NullPairsOpt = DEFAULT_NULL_PAIRS,
) -> None:
    """Fit extreme-value (E-value) parameters of a matrix and gap penalties on null pairs and store them in its header.

    [bold]Example[/bold]: ismtk fit-evalue mat3di.out train_db/ -o mat3di.fitted.out
    """
    fitted, params = fit_matrix_evd(matrix, [sequences], mode, tokenizer, gap_open, gap_extend, null_pairs)
    write_matrix(output, fitted)
    console.info(f"lambda {params.lam:.4g}, K {params.k:.4g} for gaps {gap_open}/{gap_extend} -> {output}")
