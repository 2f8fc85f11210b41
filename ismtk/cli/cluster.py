"""``ismtk cluster``: the k-means codebook that turns autoencoder embeddings into ISM structure tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ismtk.autoencoder.codebook import ELBOW_KS, build_codebook
from ismtk.cli import console
from ismtk.cli.options import Inputs


def cluster(
    model: Annotated[Path, typer.Argument(help="Autoencoder folder (model.json + model.pt, e.g. a train-ae run).")],
    inputs: Inputs,
    output: Annotated[Path, typer.Option("--output", "-o", help="ISM tokenizer folder to write (usable as --tokenizer).")],
    k: Annotated[str, typer.Option("-k", help=f"Number of tokens, or 'auto' for the elbow over K in {list(ELBOW_KS)}.")] = "64",
    max_points: Annotated[int, typer.Option("--max-points", min=1, help="Residues clustered (random sample).")] = 1_000_000,
    residues_per_chain: Annotated[
        int, typer.Option("--residues-per-chain", min=1, help="Random residues embedded per chain.")
    ] = 1_000_000_000,
    n_init: Annotated[int, typer.Option("--n-init", min=1, help="k-means restarts (k-means++ seeding).")] = 3,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the sample and the seeding.")] = 0,
    index: Annotated[Path | None, typer.Option("--index", help="Chain index CSV (default: index.csv of an input folder).")] = None,
    elbow: Annotated[bool, typer.Option("--elbow", help="Also write the elbow curve (elbow.tsv/png) for a fixed K.")] = False,
) -> None:
    """Cluster residue embeddings of experimental structures into K structure tokens (ISM: K = 64).

    Writes OUT/codebook.json (centroids, alphabet, disorder token s*, SHA-256 of the encoder) beside a copy of the encoder. With an index.csv, chains homologous to the scope40_dev bench or TS50 are left out. s* is the cluster with the sparsest microenvironments (lowest median atom count).

    [bold]Example[/bold]: ismtk cluster runs/ae data/structures -o my_ism/ -k auto
    """
    if k != "auto" and not k.isdigit():
        raise typer.BadParameter("-k takes a number or 'auto'")
    with console.progress("embedding", total=None, unit="chains") as advance:
        report = build_codebook(model, inputs, output, None if k == "auto" else int(k), max_points,
                                residues_per_chain, seed, n_init, index, progress=advance,
                                elbow_ks=ELBOW_KS if elbow else ())
    for note in report.notes:
        console.info(note)
    if report.elbow_ks:
        console.info("elbow: " + ", ".join(f"K={a}: {b:.4g}" for a, b in zip(report.elbow_ks, report.elbow_inertias)))
    console.info(
        f"K={report.k} from {report.points:,} residues; s* = token {report.disorder_token} "
        f"({report.usage[report.disorder_token]:.1%} of residues); usage entropy {report.entropy_bits:.2f} bits; "
        f"dead tokens {report.dead_tokens} -> {output}"
    )
