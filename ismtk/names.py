"""Name lists: text files with one name, path or short record per line.

Every list ismtk reads follows the same rules: blank lines and lines whose first non-blank character is ``#``
are skipped, and fields are separated by white space (and by commas where the list allows). Lists of this
kind: structure path lists (``*.txt``/``*.list`` inputs), query names (``benchmark scope40 --queries``),
held-out records (``structure-tune --val-names``), record groups (``--groups``), candidate pairs
(``align-pairs --pairs``) and SCOP lookups.

>>> import tempfile
>>> path = Path(tempfile.mkdtemp()) / "queries.txt"
>>> _ = path.write_text("# bench queries\\nd1ycca_  a.3.1.1\\n\\nd451ca_\\n")
>>> read_names(path)
['d1ycca_', 'd451ca_']
>>> read_rows(path, "labels", fields=2, expect="a name and a label")
Traceback (most recent call last):
ismtk.errors.InputError: ...queries.txt: line 4: expected a name and a label
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from ismtk.errors import InputError

__all__ = ["Row", "read_lines", "read_names", "read_rows"]


class Row(NamedTuple):
    """One used line of a list: its 1-based ``number`` and its ``fields``."""

    number: int
    fields: list[str]


def read_lines(path: str | Path, what: str = "list") -> list[tuple[int, str]]:
    """``(line number, line stripped of surrounding white space)`` of every line that is neither blank nor a
    comment. Raises :class:`InputError` naming the file when it cannot be read (``what`` names the list)."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read {what} ({getattr(exc, 'strerror', None) or exc})") from exc
    lines = ((number, line.strip()) for number, line in enumerate(text.splitlines(), 1))
    return [(number, line) for number, line in lines if line and not line.startswith("#")]


def read_rows(
    path: str | Path, what: str, fields: int = 1, expect: str = "", commas: bool = False, allow_empty: bool = False
) -> list[Row]:
    """The fields of every used line (see the module docstring), each line with at least ``fields`` of them.

    ``commas`` also splits at commas. Raises :class:`InputError` naming the file and line when a line has too
    few fields (``expect`` says what a line should hold), and naming the file when no line is left (unless
    ``allow_empty``).
    """
    rows = []
    for number, line in read_lines(path, what):
        words = (line.replace(",", " ") if commas else line).split()
        if len(words) < fields:
            raise InputError(f"{path}: line {number}: expected {expect or f'{fields} fields'}")
        rows.append(Row(number, words))
    if not rows and not allow_empty:
        raise InputError(f"{path}: no {what}")
    return rows


def read_names(path: str | Path, what: str = "names") -> list[str]:
    """The first word of every used line, in file order. Raises :class:`InputError` if there is none."""
    return [row.fields[0] for row in read_rows(path, what)]
