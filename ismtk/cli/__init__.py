"""The ``ismtk`` command line: a table of commands, each a thin layer over library calls.

Each command lives in a module of this package that is imported only when the command runs or shows its
help, so ``ismtk --help`` and light commands start without torch. The command list of ``ismtk --help``
reads each command's one-line summary (the first line of its docstring) from the module's source.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand, TyperGroup

from ismtk import __version__
from ismtk.cli import console
from ismtk.errors import IsmtkError

__all__ = ["COMMANDS", "app", "main"]


@dataclass(frozen=True)
class Command:
    """Where a command is defined (``module:object``, a function or a Typer app of subcommands) and the
    panel of ``ismtk --help`` that lists it."""

    target: str
    panel: str

    def load(self) -> object:
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)

    def summary(self) -> str:
        """First paragraph of the command's docstring (a function) or ``help`` (a Typer app), read without importing
        the module."""
        module, _, name = self.target.partition(":")
        spec = importlib.util.find_spec(module)
        assert spec is not None and spec.origin is not None, module
        for node in ast.parse(Path(spec.origin).read_text()).body:
            if isinstance(node, ast.FunctionDef) and node.name == name:
                return " ".join((ast.get_docstring(node) or "").split("\n\n")[0].split())
            if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
                keywords = {k.arg: k.value for k in getattr(node.value, "keywords", [])}
                return ast.literal_eval(keywords["help"]) if "help" in keywords else ""
        return ""


TOKENS, SEARCH, MATRICES, MODELS = "Structure tokens", "Search", "Substitution matrices", "Language models"
#: Every command, in the order of ``ismtk --help``.
COMMANDS = {
    "encode": Command("ismtk.cli.encode:encode", TOKENS),
    "train-ae": Command("ismtk.cli.train_ae:train_ae", TOKENS),
    "cluster": Command("ismtk.cli.cluster:cluster", TOKENS),
    "createdb": Command("ismtk.cli.search:createdb", SEARCH),
    "search": Command("ismtk.cli.search:search", SEARCH),
    "easy-search": Command("ismtk.cli.search:easy_search", SEARCH),
    "merge-hits": Command("ismtk.cli.search:merge_hits", SEARCH),
    "benchmark": Command("ismtk.cli.benchmark:benchmark_app", SEARCH),
    "align-pairs": Command("ismtk.cli.matrix:align_pairs", MATRICES),
    "learn-matrix": Command("ismtk.cli.matrix:learn_matrix", MATRICES),
    "fit-evalue": Command("ismtk.cli.matrix:fit_evalue", MATRICES),
    "structure-tune": Command("ismtk.cli.tune:structure_tune", MODELS),
    "embed": Command("ismtk.cli.embed:embed", MODELS),
    "predict-tokens": Command("ismtk.cli.predict:predict", MODELS),
}


class _LazyCommands(MutableMapping):
    """The click commands of :data:`COMMANDS` by name, each built (its module imported) on first access."""

    def __init__(self) -> None:
        self.built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self.built:
            if name not in COMMANDS:
                raise KeyError(name)
            self.built[name] = _click_command(name, COMMANDS[name])
        return self.built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        del self.built[name]

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(COMMANDS), **self.built})

    def __len__(self) -> int:
        return len({**dict.fromkeys(COMMANDS), **self.built})


class _Commands(TyperGroup):
    """The root command: its commands load when needed (:class:`_LazyCommands`), and every :class:`IsmtkError` (or
    error of the system about a path) becomes one line on stderr and exit status 1, Ctrl-C one line and exit status
    130."""

    _listing = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = _LazyCommands()

    def list_commands(self, ctx) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx, name: str):
        if self._listing and name in COMMANDS and name not in self.commands.built:
            entry = COMMANDS[name]
            return TyperCommand(name=name, short_help=entry.summary(), rich_help_panel=entry.panel)
        return super().get_command(ctx, name)

    def format_help(self, ctx, formatter) -> None:
        self._listing = True  # list the commands by the summaries in their sources, importing none of them
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except IsmtkError as exc:
            console.error(str(exc))
            raise typer.Exit(console.EXIT_ERROR) from None
        except OSError as exc:  # a path the system refused (no permission, disk full, ...): one line, not a traceback
            if exc.filename is None:
                raise
            console.error(f"{exc.filename}: {exc.strerror or exc}; check the path and its permissions")
            raise typer.Exit(console.EXIT_ERROR) from None
        except KeyboardInterrupt:
            console.error("interrupted (Ctrl-C): stopped")
            raise typer.Exit(console.EXIT_INTERRUPTED) from None


def _click_command(name: str, entry: Command):
    """The click command of ``entry``: a Typer app becomes a group (its commands are declared with
    :class:`~ismtk.cli.options.AliasedCommand`), a function a command that also accepts the hidden spellings of
    :data:`ismtk.cli.options.HIDDEN_ALIASES`."""
    from ismtk.cli.options import AliasedCommand, help_text

    target = entry.load()
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name, group.rich_help_panel = name, entry.panel
        return group
    single = typer.Typer(rich_markup_mode="rich", pretty_exceptions_show_locals=False, add_completion=False)
    single.command(name, cls=AliasedCommand, rich_help_panel=entry.panel, help=help_text(target))(target)
    return typer.main.get_command(single)


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


def main() -> None:
    """Entry point of the ``ismtk`` console script."""
    app()
