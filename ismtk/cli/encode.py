"""``ismtk encode``: structures to token FASTA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ismtk.cli import console
from ismtk.cli.options import (
    DEFAULT_THREADS,
    OUTPUT,
    EncodeTokenizer,
    Inputs,
    StructureInput,
    Threads,
    output_option,
    with_option_groups,
)
from ismtk.tokenizers import ENCODE_TOKENIZER

__all__ = ["encode"]


@with_option_groups
def encode(
    inputs: Inputs,
    *,
    tokenizer: EncodeTokenizer = ENCODE_TOKENIZER,
    reading: StructureInput = StructureInput(),
    output: output_option("Token FASTA to write (.gz compresses); its records name the tokenizer (tokenizer=...)."),
    aa_output: Annotated[
        Path | None,
        typer.Option("--aa-output", rich_help_panel=OUTPUT, help="Also write the amino-acid FASTA of the encoded "
                     "chains."),
    ] = None,
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """Encode protein structures as one structure token per residue, written as FASTA.

    Each protein chain becomes one record, named as in Foldseek; its header also names the tokenizer (tokenizer=3di,
    tokenizer=ism:...), so that search reads the tokens with it. Unreadable files and unusable chains are reported one
    line each and skipped; the exit status is 3 when anything was skipped.

    [bold]Example[/bold]: ismtk encode structs/ -o tokens.fasta --aa-output aa.fasta
    """
    from ismtk.structure.read import find_structure_files
    from ismtk.tokenizers import load_tokenizer
    from ismtk.workflows.encode import encode_files, write_fasta

    tok = load_tokenizer(tokenizer)
    paths = find_structure_files(inputs)
    results = encode_files(paths, tok, reading.read_options(), threads=threads)
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
