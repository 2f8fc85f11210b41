"""The ``ismtk`` command line: a table of commands, each a thin layer over one library call."""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperGroup

from ismtk import __version__
from ismtk.cli import console
from ismtk.errors import IsmtkError

__all__ = ["app", "main"]


class _Commands(TyperGroup):
    """Turns every :class:`IsmtkError` into one line on stderr and exit status 1."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except IsmtkError as exc:
            console.error(str(exc))
            raise typer.Exit(console.EXIT_ERROR) from None


app = typer.Typer(
    cls=_Commands,
    no_args_is_help=True,
    rich_markup_mode="rich",
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Implicit structure models: structure tokens, structure-tuned ESM2 and token search.",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ismtk {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Implicit structure models: structure tokens, structure-tuned ESM2 and token search."""


from ismtk.cli.benchmark import benchmark_app  # noqa: E402  (commands import `console` from this package)
from ismtk.cli.cluster import cluster  # noqa: E402
from ismtk.cli.embed import embed  # noqa: E402
from ismtk.cli.encode import encode  # noqa: E402
from ismtk.cli.matrix import align_pairs, fit_evalue, learn_matrix  # noqa: E402
from ismtk.cli.predict import predict  # noqa: E402
from ismtk.cli.search import createdb, easy_search, merge_hits, search  # noqa: E402
from ismtk.cli.train_ae import train_ae  # noqa: E402
from ismtk.cli.tune import structure_tune  # noqa: E402

app.command("encode")(encode)
app.command("align-pairs")(align_pairs)
app.command("learn-matrix")(learn_matrix)
app.command("fit-evalue")(fit_evalue)
app.command("createdb")(createdb)
app.command("search")(search)
app.command("easy-search")(easy_search)
app.command("merge-hits")(merge_hits)
app.command("train-ae")(train_ae)
app.command("cluster")(cluster)
app.add_typer(benchmark_app, name="benchmark")
app.command("structure-tune")(structure_tune)
app.command("embed")(embed)
app.command("predict-tokens")(predict)


def main() -> None:
    """Entry point of the ``ismtk`` console script."""
    app()
