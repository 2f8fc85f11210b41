"""``ismtk encode``: structures to token FASTA."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ismtk.cli import console
from ismtk.cli.options import (
    DEFAULT_THREADS,
    OUTPUT,
    PROCESSES,
    RUN,
    Device,
    EncodeTokenizer,
    Inputs,
    StructureInput,
    Threads,
    output_option,
    with_option_groups,
)
from ismtk.tokenizers import ENCODE_TOKENIZER
from ismtk.workflows.encode import Shard

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
    shard: Annotated[
        str, typer.Option("--shard", rich_help_panel=RUN,
                          help="Job I of N (1-based): encode the I-th contiguous share of the inputs.")
    ] = str(Shard()),
    resume: Annotated[
        bool, typer.Option("--resume", rich_help_panel=RUN,
                           help="Continue a killed run with the same inputs from its OUTPUT.part.")
    ] = False,
    threads: Threads = DEFAULT_THREADS,
    device: Device = "auto",
    gpus: Annotated[
        int, typer.Option("--gpus", min=0, rich_help_panel=PROCESSES,
                          help="Use N GPUs, one worker process each (ISM; overrides --threads).")
    ] = 0,
) -> None:
    """Encode protein structures as one structure token per residue, written as FASTA.

    Each protein chain becomes one record, named as in Foldseek; its header also names the tokenizer (tokenizer=3di,
    tokenizer=ism:...), so that search reads the tokens with it. Unreadable files and unusable chains are reported one
    line each and skipped; the exit status is 3 when anything was skipped.

    A job array splits the inputs with --shard I/N; a killed run continues with --resume (docs/encode.md).

    [bold]Example[/bold]: ismtk encode structs/ -o tokens.fasta --aa-output aa.fasta
    """
    from ismtk.structure.read import find_structure_files
    from ismtk.tokenizers import load_tokenizer
    from ismtk.workflows.encode import encode_to_fasta, resolve_device

    part = Shard.parse(shard)
    tok = load_tokenizer(tokenizer)
    devices = [f"cuda:{i}" for i in range(gpus)] if gpus else [resolve_device(device, tok)] * threads
    if gpus:
        resolve_device(devices[-1], tok)
    paths = find_structure_files(inputs)
    with console.progress("encoding", total=None, unit="files") as advance:

        def start(done: int, total: int) -> None:
            if done:
                console.info(f"resuming: {done:,} of {total:,} files already encoded")
            advance(done, total=total)

        def report(result) -> None:
            for problem in result.skipped:
                console.warn(f"skipped {problem}")
            advance(1)

        summary = encode_to_fasta(
            paths, tok, output, aa_output, reading.read_options(), devices=devices, shard=part, resume=resume,
            on_start=start, on_result=report,
        )
    skipped_chains = summary.skip_count - summary.failed_files
    console.info(
        f"encoded {summary.chains:,} chains ({summary.residues:,} residues) from "
        f"{summary.files - summary.failed_files:,} of {summary.files:,} files in {summary.seconds:.1f} s "
        f"({summary.residues_per_second:,.0f} residues/s) -> {output}"
    )
    if summary.skip_count:
        console.warn(f"skipped {summary.failed_files:,} file(s) and {skipped_chains:,} chain(s); see the lines above")
        raise typer.Exit(console.EXIT_SKIPPED)
