"""``ismtk benchmark scope40`` (homology-search sensitivity of a tokenizer + matrix on SCOPe40-style labels) and
``ismtk benchmark tokens`` (a report card of structure tokens)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ismtk.bench.scope40 import DEFAULT_LABEL
from ismtk.cli import console
from ismtk.cli.options import (
    DEFAULT_THREADS,
    INPUT,
    OUTPUT,
    AliasedCommand,
    Alignment,
    Threads,
    TokenizerOpt,
    help_text,
    output_option,
    with_option_groups,
)

__all__ = ["benchmark_app", "scope40", "tokens"]

benchmark_app = typer.Typer(no_args_is_help=True, rich_markup_mode="rich", help="Benchmarks of tokenizers and search.")


@with_option_groups
def scope40(
    database: Annotated[Path, typer.Argument(help="Searched entries: a DB folder, token FASTA or structure folder.")],
    lookup: Annotated[Path, typer.Argument(help="SCOP labels, 'sid<TAB>sccs' (unlabelled DB entries are decoys).")],
    *,
    queries: Annotated[
        Path | None, typer.Option("--queries", rich_help_panel=INPUT, help="Query names, one per line.",
                                  show_default="every labelled entry")
    ] = None,
    tokenizer: TokenizerOpt = None,
    alignment: Alignment = Alignment(),
    output: output_option("Folder for per-query TSVs, summaries, plots."),
    label: Annotated[
        str, typer.Option("--label", rich_help_panel=OUTPUT, help="Method name in the outputs.")
    ] = DEFAULT_LABEL,
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """All-vs-all search, then Foldseek's sensitivity up to the first false positive per family/superfamily/fold.

    Writes <label>.selfhit.rocx / <label>.noselfhit.rocx (per query), summary.*.tsv and cumulative.*.png.

    [bold]Example[/bold]: ismtk benchmark scope40 db/ lookup.tsv --queries bench.txt -o bench_out/
    """
    from ismtk.bench.scope40 import LEVELS, run_scope40

    options = alignment.search_options(threads)
    skips = console.Skips()
    summaries = run_scope40(database, lookup, output, queries, label, alignment.matrix, tokenizer, alignment.mode,
                            options, skips)
    for variant, by_method in summaries.items():
        s = by_method[label]
        levels = ", ".join(f"{lv} {v:.3f} (n={n})" for lv, v, n in zip(LEVELS, s.per_level, s.per_level_queries,
                                                                       strict=True))
        console.info(f"{label} {variant}: {levels}")
    console.info(f"per-query tables, summaries and plots -> {output}")
    skips.finish()


@with_option_groups
def tokens(
    data: Annotated[Path, typer.Argument(help="Shared data folder (scope40_dev/, cath2738/, structures/).")],
    *,
    tokenizer: Annotated[
        list[str],
        typer.Option("--tokenizer", rich_help_panel=INPUT,
                     help="Tokenizer to judge (3di, ism, or an ISM tokenizer folder); repeatable."),
    ],
    output: output_option("Folder for report.tsv, report.png and the databases."),
    threads: Threads = DEFAULT_THREADS,
) -> None:
    """A report card of structure tokens: homology, reconstruction and predictability, one row per tokenizer.

    Homology: SCOPe40 sensitivity up to the 1st false positive (noselfhit) of the scope40_dev bench against
    scope40_dev + cath2738, the tokens alone (no amino-acid term, unlike 'benchmark scope40' by default) with each
    tokenizer's own matrix (a folder's matrix.out). Reconstruction (ISM tokens):
    aligned RMSD of validation microenvironments decoded from z and from its token's centroid. Predictability: a
    linear +-7 amino-acid window probe fitted on the matrix-training domains and scored on the bench: accuracy
    (majority token beside it) and bits per residue over the token frequencies.

    [bold]Example[/bold]: ismtk benchmark tokens ../shared/data -o card/ --tokenizer 3di --tokenizer ism
    """
    from ismtk.bench.tokens import token_report

    reports = token_report(tokenizer, data, output, threads, log=console.info)
    console.info("tokenizer | K | family | superfamily | fold | RMSD z | RMSD centroid | probe acc | majority | bits")
    for r in reports:
        recon = [f"{v:.2f}" if v is not None else "-" for v in (r.rmsd_z, r.rmsd_centroid)]
        console.info(
            f"{r.name} | {r.k} | {r.family:.3f} | {r.superfamily:.3f} | {r.fold:.3f} | {' | '.join(recon)} | "
            f"{r.probe.accuracy:.3f} | {r.probe.majority_accuracy:.3f} | {r.probe.bits_over_baseline:.2f}"
        )
    console.info(f"table and picture -> {output}/report.tsv, {output}/report.png")


benchmark_app.command("scope40", cls=AliasedCommand, help=help_text(scope40))(scope40)
benchmark_app.command("tokens", cls=AliasedCommand, help=help_text(tokens))(tokens)
