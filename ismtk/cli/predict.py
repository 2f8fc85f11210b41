"""``ismtk predict-tokens``: structure tokens from sequence alone."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from ismtk.cli import console
from ismtk.cli.options import INPUT, OUTPUT, PROCESSES, Device, output_option, refuse_overwriting
from ismtk.plm.predict import PREDICT_DEFAULTS
from ismtk.train.launch import DEFAULT_DEVICE

__all__ = ["predict"]


def predict(
    model: Annotated[
        str, typer.Argument(help="structure-tune export folder (backbone + heads.pt), or a backbone with --heads.")
    ],
    fasta: Annotated[Path, typer.Argument(help="Protein FASTA.")],
    *,
    heads: Annotated[Path | None, typer.Option("--heads", rich_help_panel=INPUT,
                                               help="Heads file (structure-tune's export/heads.pt).")] = None,
    stream: Annotated[str | None, typer.Option("--stream", rich_help_panel=OUTPUT,
                                               help="Token stream to predict.", show_default="the first head")] = None,
    output: output_option("Token FASTA to write, in input order.", file=True),
    toks_per_batch: Annotated[int, typer.Option("--toks-per-batch", min=1, rich_help_panel=PROCESSES,
                                                help="Token budget of a batch.")] = PREDICT_DEFAULTS.toks_per_batch,
    device: Device = DEFAULT_DEVICE,
) -> None:
    """Predict structure tokens (3Di, ISM, ...) for protein sequences, without a structure.

    Sequences longer than 1,022 residues are cut into overlapping windows whose outputs are averaged, so every residue
    gets a token.

    [bold]Example[/bold]: ismtk predict-tokens run/export seqs.fasta -o predicted_3di.fasta --stream 3di
    """
    from ismtk.plm.predict import predict_tokens

    refuse_overwriting([fasta], output=output)
    options = replace(PREDICT_DEFAULTS, toks_per_batch=toks_per_batch)
    with console.progress("predicting", total=None, unit="sequences") as advance:
        summary = predict_tokens(model, fasta, output, stream, heads, options, device, on_batch=advance)
    for note in summary.notes:
        console.warn(note)
    console.info(f"predicted {summary.stream} tokens for {summary.sequences:,} sequences ({summary.residues:,} "
                 f"residues) -> {output}")
