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
    check_file_output,
    output_option,
    refuse_overwriting,
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
    output: output_option(
        "Token FASTA to write (.gz compresses); its records name the tokenizer (tokenizer=...).", file=True
    ),
    aa_output: Annotated[
        Path | None,
        typer.Option("--aa-output", rich_help_panel=OUTPUT, callback=check_file_output,
                     help="Also write the amino-acid FASTA of the encoded chains."),
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
                          help="Use N GPUs, one worker process each (ISM; overrides --threads). A "
                          "single GPU (--device cuda[:N], or auto on a GPU machine) runs one process.")
    ] = 0,
) -> None:
    """Encode protein structures as one structure token per residue, written as FASTA.

    Each protein chain becomes one record, named as in Foldseek; its header also names the tokenizer (tokenizer=3di,
    tokenizer=ism:...), so that search reads the tokens with it. Missing or unreadable files, unusable chains and chains
    whose name an earlier chain has are reported one line each and skipped; the exit status is 3 when anything was
    skipped. Atoms with non-finite coordinates are dropped (with their residue when a backbone atom), with a warning.

    A job array splits the inputs with --shard I/N; a killed run continues with --resume (docs/encode.md).

    [bold]Example[/bold]: ismtk encode structs/ -o tokens.fasta --aa-output aa.fasta
    """
    from ismtk.structure.read import find_structure_files
    from ismtk.tokenizers import load_tokenizer, tokenizer_module
    from ismtk.workflows.encode import encode_to_fasta, resolve_device, start_workers, worker_devices
    from ismtk.workflows.resumable import JOURNAL_SUFFIX, PART_SUFFIX

    if gpus:
        from ismtk.train.launch import check_gpus

        check_gpus(gpus)
    part = Shard.parse(shard)
    paths = find_structure_files(inputs, keep_missing=True)
    beside = {"output": (PART_SUFFIX, JOURNAL_SUFFIX), "aa_output": (PART_SUFFIX,)}
    refuse_overwriting([*inputs, *paths], beside, output=output, aa_output=aa_output)  # path lists are inputs too
    start_workers(len(part.select(paths)), gpus or threads, [tokenizer_module(tokenizer)])
    tok = load_tokenizer(tokenizer)
    devices = worker_devices(resolve_device(device, tok), threads, gpus)
    done = 0
    with console.progress("encoding", total=None, unit="files") as advance:

        def start(before: int, total: int) -> None:
            nonlocal done
            done = before
            if before:
                console.info(f"resuming: {before:,} of {total:,} files already encoded")
            advance(before, total=total)

        def report(result) -> None:
            nonlocal done
            for problem in result.skipped:
                console.warn(f"skipped {problem}")
            for warning in result.warnings:
                console.warn(warning)
            done += 1
            advance(1)

        try:
            summary = encode_to_fasta(
                paths, tok, output, aa_output, reading.read_options(), devices=devices, shard=part, resume=resume,
                on_start=start, on_result=report,
            )
        except KeyboardInterrupt:
            console.info(f"stopped after {done:,} files; continue with the same command and --resume")
            raise
    console.info(
        f"encoded {summary.chains:,} chains ({summary.residues:,} residues) from {summary.files:,} files in "
        f"{summary.seconds:.1f} s ({summary.residues_per_second:,.0f} residues/s) -> {output}"
    )
    if summary.skip_count:
        skipped_chains = summary.skip_count - summary.failed_files
        console.warn(f"skipped {summary.failed_files:,} file(s) and {skipped_chains:,} chain(s); see the lines above")
        raise typer.Exit(console.EXIT_SKIPPED)
