"""``ismtk encode``: structures to token FASTA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ismtk.cli import console
from ismtk.cli.options import (
    DEFAULT_CHAIN_NAMES,
    DEFAULT_MODEL,
    DEFAULT_THREADS,
    ENCODE_TOKENIZER,
    ChainNamesOpt,
    Inputs,
    ModelOpt,
    Threads,
    TokenizerOpt,
    read_options,
)
from ismtk.structure.read import find_structure_files
from ismtk.tokenizers import load_tokenizer
from ismtk.workflows.encode import encode_files, write_fasta


def encode(
    inputs: Inputs,
    output: Annotated[Path, typer.Option("--output", "-o", help="Token FASTA to write (.gz compresses).")],
    tokenizer: TokenizerOpt = ENCODE_TOKENIZER,
    aa_output: Annotated[
        Path | None, typer.Option("--aa-output", help="Also write the amino-acid FASTA of the encoded chains.")
    ] = None,
    threads: Threads = DEFAULT_THREADS,
    model: ModelOpt = DEFAULT_MODEL,
    chain_names: ChainNamesOpt = DEFAULT_CHAIN_NAMES,
) -> None:
    """Encode protein structures as one structure token per residue, written as FASTA.

    Each protein chain becomes one record, named as in Foldseek. Unreadable files and unusable chains are reported one line each and skipped; the exit status is 3 when anything was skipped.

    [bold]Example[/bold]: ismtk encode structs/ -o tokens.fasta --aa-output aa.fasta
    """
    tok = load_tokenizer(tokenizer)
    paths = find_structure_files(inputs)
    results = encode_files(paths, tok, read_options(model, chain_names), threads=threads)
    with console.progress("encoding", total=len(paths), unit="files") as advance:

        def report(result) -> None:
            for problem in result.skipped:
                console.warn(f"skipped {problem}")
            advance(1)

        summary = write_fasta(results, tok, output, aa_output, on_result=report)
    skipped_chains = len(summary.skipped) - summary.failed_files
    console.info(
        f"encoded {summary.chains:,} chains ({summary.residues:,} residues) from "
        f"{summary.files - summary.failed_files:,} of {summary.files:,} files in {summary.seconds:.1f} s "
        f"({summary.residues_per_second:,.0f} residues/s) -> {output}"
    )
    if summary.skipped:
        console.warn(f"skipped {summary.failed_files:,} file(s) and {skipped_chains:,} chain(s); see the lines above")
        raise typer.Exit(console.EXIT_SKIPPED)
