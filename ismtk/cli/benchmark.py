"""``ismtk benchmark scope40`` (homology-search sensitivity of a tokenizer + matrix on SCOPe40-style labels) and
``ismtk benchmark tokens`` (a report card of structure tokens)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ismtk.bench.scope40 import LEVELS, run_scope40
from ismtk.cli import console
from ismtk.cli.options import (
    DEFAULT_AA_WEIGHT,
    DEFAULT_EXHAUSTIVE,
    DEFAULT_GAP_EXTEND,
    DEFAULT_GAP_OPEN,
    DEFAULT_MAX_CANDIDATES,
    DEFAULT_MODE,
    DEFAULT_THREADS,
    DEFAULT_TOKENIZER,
    AaWeightOpt,
    ExhaustiveOpt,
    GapExtendOpt,
    GapOpenOpt,
    MatrixOpt,
    MaxCandidatesOpt,
    ModeOpt,
    Threads,
    TokenizerOpt,
)
from ismtk.search.search import SearchOptions

__all__ = ["benchmark_app", "scope40", "tokens"]

benchmark_app = typer.Typer(no_args_is_help=True, help="Benchmarks of tokenizers and search.")


def scope40(
    database: Annotated[Path, typer.Argument(help="Searched entries: a DB folder, token FASTA or structure folder.")],
    lookup: Annotated[Path, typer.Argument(help="SCOP labels, 'sid<TAB>sccs' (unlabelled DB entries are decoys).")],
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="Folder for per-query TSVs, summaries, plots.")],
    queries: Annotated[
        Path | None, typer.Option("--queries", help="Query names, one per line.", show_default="every labelled entry")
    ] = None,
    label: Annotated[str, typer.Option("--label", help="Method name in the outputs.")] = "ismtk",
    matrix: MatrixOpt = None,
    mode: ModeOpt = DEFAULT_MODE,
    tokenizer: TokenizerOpt = DEFAULT_TOKENIZER,
    exhaustive: ExhaustiveOpt = DEFAULT_EXHAUSTIVE,
    max_candidates: MaxCandidatesOpt = DEFAULT_MAX_CANDIDATES,
    aa_weight: AaWeightOpt = DEFAULT_AA_WEIGHT,
    gap_open: GapOpenOpt = DEFAULT_GAP_OPEN,
    gap_extend: GapExtendOpt = DEFAULT_GAP_EXTEND,
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """All-vs-all search, then Foldseek's sensitivity up to the first false positive per family/superfamily/fold.

    Writes <label>.selfhit.rocx / <label>.noselfhit.rocx (per query), summary.*.tsv and cumulative.*.png.

    [bold]Example[/bold]: ismtk benchmark scope40 db/ lookup.tsv --queries bench.txt -o bench_out/
    """
    options = SearchOptions(
        gap_open=gap_open,
        gap_extend=gap_extend,
        exhaustive=exhaustive,
        max_candidates=max_candidates,
        threads=threads,
        aa_weight=aa_weight,
    )
    summaries = run_scope40(database, lookup, out_dir, queries, label, matrix, tokenizer, mode, options)
    for variant, by_method in summaries.items():
        s = by_method[label]
        levels = ", ".join(f"{lv} {v:.3f} (n={n})" for lv, v, n in zip(LEVELS, s.per_level, s.per_level_queries))
        console.info(f"{label} {variant}: {levels}")
    console.info(f"per-query tables, summaries and plots -> {out_dir}")


def tokens(
    data: Annotated[Path, typer.Argument(help="Shared data folder (scope40_dev/, cath2738/, structures/).")],
    out_dir: Annotated[Path, typer.Option("--out-dir", "-o", help="Folder for report.tsv, report.png, databases.")],
    tokenizer: Annotated[
        list[str],
        typer.Option("--tokenizer", help="Tokenizer to judge (3di, ism, or an ISM tokenizer folder); repeatable."),
    ],
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """A report card of structure tokens: homology, reconstruction and predictability, one row per tokenizer.

    Homology: SCOPe40 sensitivity up to the 1st false positive (noselfhit) of the scope40_dev bench against
    scope40_dev + cath2738, with each tokenizer's own matrix (a folder's matrix.out). Reconstruction (ISM
    tokens): aligned RMSD of validation microenvironments decoded from z and from its token's centroid.
    Predictability: a linear +-7 amino-acid window probe fitted on the matrix-training domains and scored on
    the bench: accuracy (majority token beside it) and bits per residue over the token frequencies.

    [bold]Example[/bold]: ismtk benchmark tokens ../shared/data -o card/ --tokenizer 3di --tokenizer ism
    """
    from ismtk.bench.tokens import token_report

    reports = token_report(tokenizer, data, out_dir, threads, log=console.info)
    console.info("tokenizer | K | family | superfamily | fold | RMSD z | RMSD centroid | probe acc | majority | bits")
    for r in reports:
        recon = [f"{v:.2f}" if v is not None else "-" for v in (r.rmsd_z, r.rmsd_centroid)]
        console.info(
            f"{r.name} | {r.k} | {r.family:.3f} | {r.superfamily:.3f} | {r.fold:.3f} | {' | '.join(recon)} | "
            f"{r.probe.accuracy:.3f} | {r.probe.majority_accuracy:.3f} | {r.probe.bits_over_baseline:.2f}"
        )
    console.info(f"table and picture -> {out_dir}/report.tsv, {out_dir}/report.png")


benchmark_app.command("scope40")(scope40)
benchmark_app.command("tokens")(tokens)
