"""Typed errors raised to users; the CLI turns each into one line and an exit code."""

from __future__ import annotations

from pathlib import Path

__all__ = ["IsmtkError", "StructureError", "InputError", "RunInterrupted", "TooFewToFit"]


class IsmtkError(Exception):
    """Base class of every error ismtk raises on purpose (bad input, bad options, bad files)."""


class InputError(IsmtkError):
    """A user-supplied value, path or file is unusable; the message says what to do."""


class RunInterrupted(InputError):
    """A run stopped part-way for a reason outside its inputs (a device failure, a worker process killed): what it
    finished is kept for ``--resume``."""


class TooFewToFit(InputError):
    """Too few sequences or scores to fit E-value statistics on."""


class StructureError(IsmtkError):
    """A structure file (or one chain of it) cannot be used.

    Parameters
    ----------
    path
        The file at fault.
    reason
        One line saying what is wrong with it.
    chain
        The chain at fault, or ``None`` when the whole file is unusable.
    """

    def __init__(self, path: str | Path, reason: str, chain: str | None = None) -> None:
        self.path = str(path)
        self.reason = reason
        self.chain = chain
        where = self.path if chain is None else f"{self.path} chain {chain!r}"
        super().__init__(f"{where}: {reason}")

    def __reduce__(self):  # keep the fields when sent back from a worker process
        return type(self), (self.path, self.reason, self.chain)
