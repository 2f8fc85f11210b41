"""Streaming FASTA reading and atomic FASTA writing for amino-acid and token strings.

A record's name is the first word of its header; the rest is its description. ismtk writes ``key=value``
tags there (as UniProt does, e.g. ``>1abc_A tokenizer=3di``): readers that take the first word as the name,
ismtk's own older versions included, ignore them.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "tokens.fasta"
>>> with FastaWriter(path) as out:
...     out.write("1abc_A", "DPVVLVV", "tokenizer=3di")
>>> print(path.read_text(), end="")
>1abc_A tokenizer=3di
DPVVLVV
>>> [(r.name, header_tag(r.description, "tokenizer"), r.sequence) for r in read_fasta_records(path)]
[('1abc_A', '3di', 'DPVVLVV')]
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import NamedTuple

from ismtk.atomic import atomic_write
from ismtk.errors import InputError

__all__ = [
    "TOKENIZER_TAG",
    "FastaRecord",
    "FastaWriter",
    "header_tag",
    "read_fasta",
    "read_fasta_records",
    "tokenizer_tag",
]

#: Header tag of token FASTA records naming the tokenizer that made them (``>1abc_A tokenizer=ism:3f2a9c01d4e7``).
TOKENIZER_TAG = "tokenizer"


class FastaRecord(NamedTuple):
    """One record: ``name`` (first word of the header), ``description`` (the rest of it) and ``sequence``."""

    name: str
    description: str
    sequence: str


def header_tag(description: str, key: str) -> str | None:
    """The value of the ``key=value`` word of a header description, or ``None`` when it has none."""
    prefix = f"{key}="
    return next((word[len(prefix) :] for word in description.split() if word.startswith(prefix)), None)


def tokenizer_tag(path: str | Path) -> str | None:
    """The tokenizer identity tagged on the first record of a token FASTA (``None``: untagged or empty)."""
    first = next(read_fasta_records(path), None)
    return header_tag(first.description, TOKENIZER_TAG) if first is not None else None


def read_fasta(path: str | Path) -> Iterator[tuple[str, str]]:
    """Yield ``(name, sequence)`` records of a FASTA file (plain or ``.gz``), one at a time.

    The name is the header's first word; sequence lines are joined and stripped of whitespace.
    Raises :class:`InputError` naming the file when it is missing, binary or not FASTA.
    """
    for name, _, sequence in read_fasta_records(path):
        yield name, sequence


def read_fasta_records(path: str | Path) -> Iterator[FastaRecord]:
    """Yield the :class:`FastaRecord` of each record, as :func:`read_fasta` reads them, with descriptions."""
    path = Path(path)
    try:
        with path.open("rb") as probe:
            gzipped = probe.read(2) == b"\x1f\x8b"
        # UTF-8, as every writer here writes; a byte that is not UTF-8 reads as U+FFFD instead of failing the file
        text = {"encoding": "utf-8", "errors": "replace"}
        handle = gzip.open(path, "rt", **text) if gzipped else path.open("r", **text)
    except OSError as exc:
        raise InputError(f"{path}: cannot open FASTA ({exc.strerror or exc})") from exc
    with handle:
        name: str | None = None
        description = ""
        chunks: list[str] = []
        try:
            for number, line in enumerate(handle, 1):
                if "\x00" in line:
                    raise InputError(f"{path}: binary data on line {number}, not a FASTA file")
                if line.startswith(">"):
                    if name is not None:
                        yield FastaRecord(name, description, "".join(chunks))
                    words = line[1:].split(maxsplit=1)
                    if not words:
                        raise InputError(f"{path}: line {number}: header without a name")
                    name, description, chunks = words[0], words[1].strip() if len(words) > 1 else "", []
                elif line.strip():
                    if name is None:
                        raise InputError(f"{path}: line {number}: sequence before the first '>' header (not FASTA?)")
                    chunks.append("".join(line.split()))
        except (EOFError, OSError, zlib.error) as exc:
            raise InputError(f"{path}: truncated or corrupt file ({exc})") from exc
        if name is not None:
            yield FastaRecord(name, description, "".join(chunks))


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

    def write(self, name: str, sequence: str, description: str = "") -> None:
        """Append one record (``description``: the header's text after the name, e.g. tags)."""
        self._handle.write(f">{name} {description}\n{sequence}\n" if description else f">{name}\n{sequence}\n")
        self.count += 1

    def __exit__(self, *exc_info) -> bool | None:
        return self._context.__exit__(*exc_info)
