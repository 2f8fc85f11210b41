"""Terminal output of the CLI: messages to stderr, progress bars, exit codes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ismtk.train.launch import is_main_process

if TYPE_CHECKING:
    from ismtk.train.progress import TrainProgress

__all__ = ["EXIT_ERROR", "EXIT_SKIPPED", "error", "info", "progress", "step_reporter", "warn"]

#: Exit status of a command that failed.
EXIT_ERROR = 1
#: Exit status of a command that finished but skipped some inputs.
EXIT_SKIPPED = 3

stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def info(message: str) -> None:
    stderr.print(escape(message))


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/yellow] {escape(message)}")


def error(message: str) -> None:
    stderr.print(f"[bold red]error:[/bold red] {escape(message)}")


@contextmanager
def progress(description: str, total: int | None, unit: str = "") -> Iterator[Callable[..., None]]:
    """A progress bar on stderr; yields ``advance(n=1, total=None)`` (``total`` sets a total learnt
    late). Hidden when stderr is not a terminal, and in the processes of torchrun but rank 0."""
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    shown = stderr.is_terminal and is_main_process()
    with Progress(*columns, console=stderr, transient=False, disable=not shown) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1, total=None: bar.update(task, advance=n, total=total)


def step_reporter(advance: Callable[..., None]) -> Callable[[TrainProgress], None]:
    """A trainer's progress callback that moves the bar of :func:`progress` to each reported step."""
    done = 0

    def report(progress: TrainProgress) -> None:
        nonlocal done
        advance(progress.step - done, total=progress.total_steps)
        done = progress.step

    return report
