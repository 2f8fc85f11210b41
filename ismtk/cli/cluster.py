"""``ismtk cluster``: the k-means codebook that turns autoencoder embeddings into ISM structure tokens."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated

import typer

from ismtk.autoencoder.codebook import ELBOW_KS, AlignedPairs, aligned_pair_embeddings, build_codebook
from ismtk.autoencoder.corpus import CorpusFilter
from ismtk.cli import console
from ismtk.cli.options import OUTPUT, TRAINING, Index, Inputs, KeepBenchHomologs, KeepTs50Homologs, output_option
from ismtk.search.pairs import DEFAULT_MIN_TM
from ismtk.sequence.alphabet import MAX_TOKENS

__all__ = ["cluster"]

#: The library's defaults (arguments of :func:`build_codebook`).
_D = {name: p.default for name, p in inspect.signature(build_codebook).parameters.items()}


def cluster(
    model: Annotated[Path, typer.Argument(help="Autoencoder folder (model.json + model.pt, e.g. a train-ae run).")],
    inputs: Inputs,
    *,
    index: Index = _D["index"],
    keep_bench_homologs: KeepBenchHomologs = False,
    keep_ts50_homologs: KeepTs50Homologs = False,
    k: Annotated[str, typer.Option("-k", rich_help_panel=TRAINING,
                                   help=f"Number of tokens, or 'auto' for the elbow over K in {list(ELBOW_KS)}.")
                 ] = str(_D["k"]),
    max_points: Annotated[int, typer.Option("--max-points", min=1, rich_help_panel=TRAINING,
                                            help="Residues clustered (random sample).")] = _D["max_points"],
    residues_per_chain: Annotated[
        int, typer.Option("--residues-per-chain", min=1, rich_help_panel=TRAINING,
                          help="Random residues embedded per chain.")
    ] = _D["residues_per_chain"],
    n_init: Annotated[int, typer.Option("--n-init", min=1, rich_help_panel=TRAINING,
                                        help="k-means restarts (k-means++ seeding).")] = _D["n_init"],
    seed: Annotated[int, typer.Option("--seed", rich_help_panel=TRAINING,
                                      help="Seed of the sample and the seeding.")] = _D["seed"],
    output: output_option("ISM tokenizer folder to write (usable as --tokenizer)."),
    alignments: Annotated[
        Path | None,
        typer.Option("--alignments", rich_help_panel=TRAINING,
                     help="Structural alignments of training chains (ismtk align-pairs): cluster in the metric in "
                          "which aligned residues agree (needs --aligned-structures).")
    ] = None,
    aligned_structures: Annotated[
        list[Path] | None,
        typer.Option("--aligned-structures", rich_help_panel=TRAINING,
                     help="Structure files, folders or .txt lists holding the chains the alignments name (repeatable).")
    ] = None,
    min_tm: Annotated[float, typer.Option("--min-tm", min=0.0, max=1.0, rich_help_panel=TRAINING,
                                          help="Alignments with a lower TM-score are not used.")] = DEFAULT_MIN_TM,
    metric_dims: Annotated[int, typer.Option("--metric-dims", min=1, rich_help_panel=TRAINING,
                                             help="Directions of the aligned-pair metric.")] = _D["metric_dims"],
    overwrite: Annotated[bool, typer.Option("--overwrite", rich_help_panel=OUTPUT,
                                            help="Replace the tokenizer in the output folder.")] = False,
    elbow: Annotated[bool, typer.Option("--elbow", rich_help_panel=OUTPUT,
                                        help="Also write the elbow curve (elbow.tsv/png) for a fixed K.")] = False,
    residual: Annotated[
        bool,
        typer.Option("--residual", rich_help_panel=TRAINING,
                     help="MODEL is an ISM tokenizer folder: cluster what its tokens leave (z minus the token's "
                          "centroid) into a second, residual token per residue, a track of its own for search. "
                          "Write it into a subfolder of MODEL to share its encoder.")
    ] = False,
) -> None:
    """Cluster residue embeddings of experimental structures into K structure tokens (ISM: K = 64).

    Writes OUT/codebook.json (centroids, alphabet, disorder token s*, SHA-256 of the encoder) beside a copy of the
    encoder. Chains that an index (--index, an index.csv in or above the inputs) marks as homologous to the scope40_dev
    bench or TS50 are left out (an unused table that marks some stops the command). s* is the cluster with
    the sparsest microenvironments (lowest median atom count). With --alignments, k-means runs in the directions in
    which structurally aligned residues agree (Fisher's discriminant over aligned pairs), and tokens are nearest
    centroids there. With --residual, the second stage of residual quantisation: tokens of z - c(token).

    [bold]Example[/bold]: ismtk cluster runs/ae data/structures -o my_ism/ -k auto

    [bold]Residual tokens[/bold]: ismtk cluster my_ism/ data/structures -o my_ism/residual --residual
    """
    if k != "auto" and not (k.isdigit() and 2 <= int(k) <= MAX_TOKENS):
        raise typer.BadParameter(f"-k takes a number of tokens (2 to {MAX_TOKENS}, one symbol each) or 'auto'")
    if (alignments is None) != (not aligned_structures):
        raise typer.BadParameter("--alignments and --aligned-structures go together")
    if residual and alignments is not None:
        raise typer.BadParameter("--residual clusters plain embeddings: leave out --alignments")
    aligned: AlignedPairs | None = None
    if alignments is not None:
        with console.progress("embedding aligned chains", total=None, unit="chains") as advance:
            aligned = aligned_pair_embeddings(model, aligned_structures, alignments, min_tm, progress=advance)
        for line in aligned.skipped:
            console.warn(f"skipped {line}")
        console.info(f"{len(aligned.first):,} aligned residue pairs from {aligned.alignments:,} alignments "
                     f"-> {metric_dims}-direction metric")
    with console.progress("embedding", total=None, unit="chains") as advance:
        report = build_codebook(model, inputs, output, None if k == "auto" else int(k), max_points,
                                residues_per_chain, seed, n_init, index, progress=advance,
                                elbow_ks=ELBOW_KS if elbow else (), aligned=aligned, metric_dims=metric_dims,
                                residual=residual, overwrite=overwrite,
                                corpus_filter=CorpusFilter(not keep_bench_homologs, not keep_ts50_homologs))
    for note in report.notes:
        console.info(note)
    if report.elbow_ks:
        ks = zip(report.elbow_ks, report.elbow_inertias, strict=True)
        console.info("elbow: " + ", ".join(f"K={a}: {b:.4g}" for a, b in ks))
    star = ("residual tokens" if report.disorder_token is None else
            f"s* = token {report.disorder_token} ({report.usage[report.disorder_token]:.1%} of residues)")
    console.info(f"K={report.k} from {report.points:,} residues; {star}; usage entropy {report.entropy_bits:.2f} bits; "
                 f"dead tokens {report.dead_tokens} -> {output}")
