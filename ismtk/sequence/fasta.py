"""Streaming FASTA reading and atomic FASTA writing for amino-acid and token strings."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from ismtk.atomic import atomic_write
from ismtk.errors import InputError

__all__ = ["FastaWriter", "read_fasta"]


def read_fasta(path: str | Path) -> Iterator[tuple[str, str]]:
    """Yield ``(name, sequence)`` records of a FASTA file (plain or ``.gz``), one at a time.

    The name is the header's first word; sequence lines are joined and stripped of whitespace.
    Raises :class:`InputError` naming the file when it is missing, binary or not FASTA.
    """
    path = Path(path)
    try:
        with path.open("rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        handle = gzip.open(path, "rt", encoding="latin-1") if gzipped else path.open("r", encoding="latin-1")
    except OSError as exc:
        raise InputError(f"{path}: cannot open FASTA ({exc.strerror or exc})") from exc
    with handle:
        name: str | None = None
        chunks: list[str] = []
        try:
            for number, line in enumerate(handle, 1):
                if "\x00" in line:
                    raise InputError(f"{path}: binary data on line {number}, not a FASTA file")
                if line.startswith(">"):
                    if name is not None:
                        yield name, "".join(chunks)
                    words = line[1:].split()
                    if not words:
                        raise InputError(f"{path}: line {number}: header without a name")
                    name, chunks = words[0], []
                elif line.strip():
                    if name is None:
                        raise InputError(f"{path}: line {number}: sequence before the first '>' header (not FASTA?)")
                    chunks.append("".join(line.split()))
        except (EOFError, OSError) as exc:
            raise InputError(f"{path}: truncated or corrupt file ({exc})") from exc
        if name is not None:
            yield name, "".join(chunks)


class FastaWriter(AbstractContextManager):
    """Write ``>name`` + one sequence line records to ``path`` atomically (``.gz`` compresses).

    The file appears at ``path`` only when the ``with`` block ends without error.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._context = atomic_write(self.path, "w")
        self._handle = None
        self.count = 0

    def __enter__(self) -> FastaWriter:
        self._handle = self._context.__enter__()
        return self

    def write(self, name: str, sequence: str) -> None:
        """Append one record."""
        self._handle.write(f">{name}\n{sequence}\n")
        self.count += 1

    def __exit__(self, *exc_info) -> bool | None:
        return self._context.__exit__(*exc_info)
