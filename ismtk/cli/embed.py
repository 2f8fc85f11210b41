"""``ismtk embed``: features from sequences alone, as fair-esm's esm-extract writes them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ismtk.cli import console
from ismtk.cli.options import INPUT, OUTPUT, PROCESSES, Device, refuse_overwriting
from ismtk.plm.embed import INCLUDE, EmbedOptions, LongMode
from ismtk.train.launch import DEFAULT_DEVICE

__all__ = ["embed"]

_D = EmbedOptions()


def embed(
    model: Annotated[
        str, typer.Argument(help="fair-esm hub name, fair-esm .pt, state dict, HF ESM folder or ismtk export.")
    ],
    fasta: Annotated[Path, typer.Argument(help="Protein FASTA (names = first word of each header, unique).")],
    out: Annotated[Path, typer.Argument(help="Output folder of <name>.pt files (esm-extract format), or FILE.h5.")],
    *,
    truncation_seq_length: Annotated[
        int, typer.Option("--truncation-seq-length", min=1, rich_help_panel=INPUT,
                          help="Longest sequence (residues) fed at once.")
    ] = _D.truncation_seq_length,
    long: Annotated[
        LongMode, typer.Option("--long", rich_help_panel=INPUT,
                               help="Longer sequences: truncate (esm-extract) or overlapping windows, averaged.")
    ] = _D.long,
    window_overlap: Annotated[int, typer.Option("--window-overlap", min=0, rich_help_panel=INPUT,
                                                help="Residues shared by windows.")] = _D.window_overlap,
    repr_layers: Annotated[
        list[int], typer.Option("--repr-layers", rich_help_panel=OUTPUT,
                                help="Layer to return, repeatable; negative counts from the end (-1 = last).")
    ] = list(_D.repr_layers),  # noqa: B006 -- Typer copies it
    include: Annotated[
        list[str], typer.Option("--include", rich_help_panel=OUTPUT, help=f"What to save, repeatable: "
                                f"{', '.join(INCLUDE)}.")
    ] = list(_D.include),  # noqa: B006 -- Typer copies it
    toks_per_batch: Annotated[int, typer.Option("--toks-per-batch", min=1, rich_help_panel=PROCESSES,
                                                help="Token budget of a batch.")] = _D.toks_per_batch,
    device: Device = DEFAULT_DEVICE,
) -> None:
    """Embed protein sequences with ESM2 or a structure-tuned ISM model, without any structure.

    Output files load as esm-extract's do: torch.load(OUT/name.pt) gives label, representations, mean_representations,
    bos_representations and contacts as asked by --include. OUT ending in .h5 writes one HDF5 file instead (see
    docs/embed.md). The arguments are esm-extract's: MODEL FASTA OUT.

    [bold]Example[/bold]: ismtk embed esm2_t33_650M_UR50D seqs.fasta emb/ --include mean --include per_tok
    """
    from ismtk.plm.embed import embed_fasta

    refuse_overwriting([fasta], output=out)
    options = EmbedOptions(tuple(repr_layers), tuple(include), toks_per_batch, truncation_seq_length, long,
                           window_overlap)
    with console.progress("embedding", total=None, unit="sequences") as advance:

        def start(n: int, notes: list[str]) -> None:
            for note in notes:
                console.warn(note)
            advance(0, total=n)

        summary = embed_fasta(model, fasta, out, options, device, on_batch=advance, on_start=start)
    console.info(f"embedded {summary.sequences:,} sequences ({summary.residues:,} residues) -> {out}")
