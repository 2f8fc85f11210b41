"""Terminal output of the CLI: messages to stderr, progress bars, exit codes."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ismtk.train.launch import is_main_process

if TYPE_CHECKING:
    from ismtk.train.progress import TrainProgress

__all__ = [
    "EXIT_ERROR",
    "EXIT_INTERRUPTED",
    "EXIT_SKIPPED",
    "LOG_SECONDS",
    "Skips",
    "error",
    "info",
    "progress",
    "step_reporter",
    "warn",
]

#: Exit status of a command that failed.
EXIT_ERROR = 1
#: Exit status of a command that finished but skipped some inputs.
EXIT_SKIPPED = 3
#: Exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it).
EXIT_INTERRUPTED = 130
#: Seconds between progress lines when stderr is not a terminal.
LOG_SECONDS = 5.0

stderr = Console(stderr=True, highlight=False, soft_wrap=True, emoji=False)  # a file named a:smile:b stays so


def info(message: str) -> None:
    stderr.print(escape(message))


def warn(message: str) -> None:
    stderr.print(f"[yellow]warning:[/yellow] {escape(message)}")


def error(message: str) -> None:
    stderr.print(f"[bold red]error:[/bold red] {escape(message)}")


class Skips:
    """Reports each input left out, one line each, and at the end their count (:meth:`finish`: exit status
    :data:`EXIT_SKIPPED` when any)."""

    def __init__(self, what: str = "input(s) (files, chains or records)") -> None:
        self.count = 0
        self.what = what

    def __call__(self, problem) -> None:
        self.count += 1
        warn(f"skipped {problem}")

    def finish(self) -> None:
        if self.count:
            warn(f"skipped {self.count:,} {self.what}; see the lines above")
            raise typer.Exit(EXIT_SKIPPED)


@contextmanager
def progress(description: str, total: int | None, unit: str = "") -> Iterator[Callable[..., None]]:
    """A progress bar on stderr; yields ``advance(n=1, total=None)`` (``total`` sets a total learnt
    late). When stderr is not a terminal (a log file, a batch job), a line every :data:`LOG_SECONDS` instead; in
    the processes of torchrun, only rank 0 shows progress."""
    if not is_main_process():
        yield lambda n=1, total=None: None
        return
    if not stderr.is_terminal:
        log = _ProgressLog(description, total, unit)
        yield log.advance
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=stderr, transient=False) as bar:
        task = bar.add_task(description, total=total)
        yield lambda n=1, total=None: bar.update(task, advance=n, total=total)


class _ProgressLog:
    """Progress as log lines: ``encoding: 1,200 of 54,000 files (2.2 %), 0:01:10 elapsed, about 0:50:40 left``,
    at most one every :data:`LOG_SECONDS`."""

    def __init__(self, description: str, total: int | None, unit: str) -> None:
        self.description, self.total, self.unit = description, total, unit
        self.done = 0
        self.start = self.last = time.monotonic()

    def advance(self, n: int = 1, total: int | None = None) -> None:
        self.done += n
        if total is not None:
            self.total = total
        now = time.monotonic()
        if not n or now - self.last < LOG_SECONDS:
            return
        self.last = now
        elapsed = now - self.start
        line = f"{self.description}: {self.done:,}"
        if self.total:
            line += f" of {self.total:,} {self.unit} ({100 * self.done / self.total:.1f} %)"
        else:
            line += f" {self.unit}"
        line += f", {_clock(elapsed)} elapsed"
        if self.total and self.done:
            line += f", about {_clock(elapsed * max(self.total - self.done, 0) / self.done)} left"
        info(line)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}"


def step_reporter(advance: Callable[..., None]) -> Callable[[TrainProgress], None]:
    """A trainer's progress callback that moves the bar of :func:`progress` to each reported step."""
    done = 0

    def report(progress: TrainProgress) -> None:
        nonlocal done
        advance(progress.step - done, total=progress.total_steps)
        done = progress.step

    return report
