"""Tab-separated hit tables in Foldseek/BLAST ``.m8`` style: no header, one hit per line, chosen columns."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterable
from functools import partial
from typing import TextIO

from ismtk.errors import InputError
from ismtk.search.align import cigar_runs
from ismtk.search.db import SequenceDB
from ismtk.search.hit3d import COLUMNS_3D, PROB_COLUMN, JudgedHit, column_3d, geometry_of
from ismtk.search.search import Hit

__all__ = [
    "ASCENDING_COLUMNS",
    "COLUMNS",
    "DEFAULT_COLUMNS",
    "SORTABLE_COLUMNS",
    "column_value",
    "format_hit",
    "needs_alignment",
    "needs_coordinates",
    "parse_columns",
    "sort_hits",
    "write_m8",
]

#: Foldseek's default output columns.
DEFAULT_COLUMNS = "query,target,fident,alnlen,mismatch,gapopen,qstart,qend,tstart,tend,evalue,bits"


def _identity(hit: Hit, query: SequenceDB, target: SequenceDB) -> int:
    """Identical aligned pairs: amino acids when both sides have them (as Foldseek reports), else tokens."""
    pairs = hit.alignment.pairs
    if query.aa is not None and target.aa is not None:
        a = query.aa[query.offsets[hit.query] + pairs[:, 0]]
        b = target.aa[target.offsets[hit.target] + pairs[:, 1]]
    else:
        a = query.token_seq(hit.query)[pairs[:, 0]]
        b = target.token_seq(hit.target)[pairs[:, 1]]
    return int((a == b).sum())


def _aligned(db: SequenceDB, entry: int, hit: Hit, side: int) -> str:
    """One side (0 = query, 1 = target) of the aligned region with ``-`` for gaps, column by column as the CIGAR
    runs (``M`` both sides, ``I`` the query's, ``D`` the target's). Amino acids if the database has them, else token
    symbols."""
    text = db.aa_seq(entry) if db.aa is not None else db.alphabet.decode(db.token_seq(entry))
    at = hit.alignment.qstart if side == 0 else hit.alignment.tstart
    own = "MI" if side == 0 else "MD"
    out = []
    for n, op in cigar_runs(hit.alignment.cigar):
        if op in own:
            out.append(text[at : at + n])
            at += n
        else:
            out.append("-" * n)
    return "".join(out)


Column = Callable[[Hit, SequenceDB, SequenceDB], object]

#: Every column ``--format-output`` accepts and how it is computed.
COLUMNS: dict[str, Column] = {
    "query": lambda h, q, t: q.names[h.query],
    "target": lambda h, q, t: t.names[h.target],
    "fident": lambda h, q, t: f"{1000 * _identity(h, q, t) // max(h.alignment.columns, 1) / 1000:.3f}",  # cut
    "alnlen": lambda h, q, t: h.alignment.columns,
    "mismatch": lambda h, q, t: len(h.alignment.pairs) - _identity(h, q, t),
    "gapopen": lambda h, q, t: h.alignment.gap_opens,
    "qstart": lambda h, q, t: h.alignment.qstart + 1,
    "qend": lambda h, q, t: h.alignment.qend,
    "tstart": lambda h, q, t: h.alignment.tstart + 1,
    "tend": lambda h, q, t: h.alignment.tend,
    "evalue": lambda h, q, t: f"{h.evalue:.3E}",
    "bits": lambda h, q, t: f"{h.bits:.0f}",
    "raw": lambda h, q, t: h.raw,
    "corrected": lambda h, q, t: h.score,
    "qlen": lambda h, q, t: int(q.offsets[h.query + 1] - q.offsets[h.query]),
    "tlen": lambda h, q, t: int(t.offsets[h.target + 1] - t.offsets[h.target]),
    "cigar": lambda h, q, t: h.alignment.cigar,
    "qaln": lambda h, q, t: _aligned(q, h.query, h, 0),
    "taln": lambda h, q, t: _aligned(t, h.target, h, 1),
}
# computed only when asked, from C-alpha coordinates (ismtk.search.hit3d)
COLUMNS.update({name: partial(column_3d, name) for name in (*COLUMNS_3D, PROB_COLUMN)})
_NEEDS_ALIGNMENT = set(COLUMNS) - {"query", "target", "evalue", "bits", "raw", "corrected", "qlen", "tlen", PROB_COLUMN}
#: ``--sort-by`` puts the smallest first for these columns, the largest first for the other numeric ones.
ASCENDING_COLUMNS = ("evalue", "rmsd", "mismatch", "gapopen")
#: Numeric columns ``--sort-by`` accepts.
SORTABLE_COLUMNS = tuple(
    c for c in COLUMNS if c not in ("query", "target", "cigar", "qaln", "taln", "u", "t", "lddtfull")
)


def parse_columns(spec: str) -> list[str]:
    """Column names of a comma-separated ``--format-output`` value (unknown names raise :class:`InputError`)."""
    names = [c.strip() for c in spec.split(",") if c.strip()]
    unknown = [c for c in names if c not in COLUMNS]
    if unknown or not names:
        raise InputError(
            f"unknown output column(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(COLUMNS)}"
        )
    return names


def needs_alignment(columns: Iterable[str]) -> bool:
    """Whether any of ``columns`` needs the traced alignment."""
    return bool(set(columns) & _NEEDS_ALIGNMENT)


def needs_coordinates(columns: Iterable[str]) -> bool:
    """Whether any of ``columns`` is computed from C-alpha coordinates."""
    return bool(set(columns) & set(COLUMNS_3D))


def column_value(hit: Hit, query: SequenceDB, target: SequenceDB, column: str) -> float:
    """A numeric column of a hit as a float (3D columns and ``prob`` unrounded, the others as printed)."""
    if column == PROB_COLUMN and isinstance(hit, JudgedHit):
        return hit.prob
    if column in COLUMNS_3D:
        return geometry_of(hit, query, target).value(column)
    return float(COLUMNS[column](hit, query, target))


def sort_hits(hits: list[Hit], query: SequenceDB, target: SequenceDB, column: str) -> list[Hit]:
    """One query's hits ordered by a :data:`SORTABLE_COLUMNS` column, best first (:data:`ASCENDING_COLUMNS`:
    smallest first, others largest first); ties keep their order."""
    if column not in SORTABLE_COLUMNS:
        raise InputError(f"cannot sort by {column!r}; numeric columns: {', '.join(SORTABLE_COLUMNS)}")
    sign = 1.0 if column in ASCENDING_COLUMNS else -1.0
    keys = [sign * column_value(h, query, target, column) for h in hits]
    return [hits[k] for k in sorted(range(len(hits)), key=keys.__getitem__)]


def format_hit(hit: Hit, query: SequenceDB, target: SequenceDB, columns: list[str]) -> str:
    return "\t".join(str(COLUMNS[c](hit, query, target)) for c in columns)


def write_m8(
    out: TextIO,
    hits: Iterable[list[Hit]],
    query: SequenceDB,
    target: SequenceDB,
    columns: list[str],
    keys: TextIO | None = None,
) -> int:
    """Write every hit, queries in order; returns the number of lines. ``keys`` (a shard's key file, see
    :mod:`ismtk.search.merge`) gets ``query index, corrected score, target index, CRC-32 of the line`` of each
    line."""
    count = 0
    for query_hits in hits:
        for hit in query_hits:
            line = format_hit(hit, query, target, columns)
            out.write(line + "\n")
            if keys is not None:
                keys.write(f"{hit.query}\t{hit.score}\t{hit.target}\t{zlib.crc32(line.encode()):08x}\n")
            count += 1
    return count

