"""Hits judged in three dimensions: Foldseek's structural output columns, TM-align realignment, homology probability.

Token alignments rank hits; these columns say how good each hit is in space, from the C-alpha coordinates that
databases made from structures (and structure queries) carry. All of them are computed only when asked, once per
hit (:class:`HitGeometry` caches them), from the hit's aligned residue pairs:

* ``lddt``: mean over aligned pairs of their LDDT, the query as reference; ``lddtfull``: each pair's, in alignment
  order (:func:`ismtk.search.structural.lddt`);
* ``alntmscore``, ``qtmscore``, ``ttmscore``: TM-score of the aligned pairs normalised by the alignment length
  (``alnlen``: aligned pairs plus gap columns), the query length and the target length, each with the ``d0`` of its
  length and its own best superposition (:func:`ismtk.search.structural.tm_superpose`);
* ``rmsd``: RMSD of all aligned pairs after their least-squares superposition;
* ``u``, ``t``: rotation (row-major, 9 numbers) and translation (3) of the ``alntmscore`` superposition, applied to
  the *target*: ``u @ target + t`` lies on the query, as Foldseek prints them;
* ``prob``: probability that query and target are homologous, from the corrected score (:mod:`ismtk.search.prob`).

``--alignment-type tmalign`` replaces each reported hit's alignment by TM-align's (:func:`tmalign_hit`), so every
alignment column then describes the structural alignment.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, fields, replace
from functools import cached_property
from typing import Literal

import numpy as np

from ismtk.errors import InputError
from ismtk.search.align import Alignment, alignment_from_runs
from ismtk.search.db import SequenceDB
from ismtk.search.search import Hit
from ismtk.search.structural import Superposition, lddt, rmsd, tm_superpose

__all__ = [
    "ALIGNMENT_TYPES",
    "COLUMNS_3D",
    "PROB_COLUMN",
    "AlignmentType",
    "HitGeometry",
    "JudgeOptions",
    "JudgedHit",
    "column_3d",
    "geometry_of",
    "tmalign_hit",
]

AlignmentType = Literal["sw", "tmalign"]
#: ``sw``: the Smith-Waterman alignment that ranked the hit; ``tmalign``: TM-align's alignment of the two chains.
ALIGNMENT_TYPES: tuple[AlignmentType, ...] = ("sw", "tmalign")
#: Columns computed from C-alpha coordinates.
COLUMNS_3D = ("lddt", "lddtfull", "alntmscore", "qtmscore", "ttmscore", "rmsd", "u", "t")
PROB_COLUMN = "prob"


@dataclass(frozen=True)
class JudgeOptions:
    """How reported hits are aligned and ordered; the defaults are those of the command line (hits as searched)."""

    alignment_type: AlignmentType = "sw"
    #: Order each query's hits by this numeric column instead of the search score (``None``: search order).
    sort_by: str | None = None


class HitGeometry:
    """3D scores of one alignment, each computed on first use: ``query``/``target`` ``(L, 3)`` C-alpha coordinates,
    ``pairs`` ``(n, 2)`` aligned (query, target) indices, ``alnlen`` the alignment's columns."""

    def __init__(self, query: np.ndarray, target: np.ndarray, pairs: np.ndarray, alnlen: int) -> None:
        self.query, self.target = query, target
        self.pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
        self.alnlen = alnlen
        self._tm: dict[int, Superposition] = {}

    @cached_property
    def _x(self) -> np.ndarray:
        return self.query[self.pairs[:, 0]]

    @cached_property
    def _y(self) -> np.ndarray:
        return self.target[self.pairs[:, 1]]

    def superposition(self, length: int) -> Superposition:
        """Best TM-score superposition of the query pairs onto the target pairs, normalised by ``length``."""
        if length not in self._tm:
            self._tm[length] = tm_superpose(self._x, self._y, max(length, 1))
        return self._tm[length]

    @cached_property
    def lddtfull(self) -> np.ndarray:
        """``(n,)`` LDDT of each aligned pair."""
        return lddt(self.query, self.target, self.pairs)

    @property
    def lddt(self) -> float:
        return float(self.lddtfull.mean()) if len(self.pairs) else 0.0

    @property
    def alntmscore(self) -> float:
        return self.superposition(self.alnlen).tm_score

    @property
    def qtmscore(self) -> float:
        return self.superposition(len(self.query)).tm_score

    @property
    def ttmscore(self) -> float:
        return self.superposition(len(self.target)).tm_score

    @cached_property
    def rmsd(self) -> float:
        return rmsd(self._x, self._y)

    @property
    def target_onto_query(self) -> tuple[np.ndarray, np.ndarray]:
        """``(u, t)`` with ``u @ target + t`` superposed on the query (the inverse of the alntmscore superposition)."""
        fit = self.superposition(self.alnlen)
        return fit.u.T, -fit.u.T @ fit.t

    def value(self, column: str) -> float:
        """A numeric 3D column (``lddt``, ``alntmscore``, ``qtmscore``, ``ttmscore``, ``rmsd``) as a float."""
        return float(getattr(self, column))


@dataclass(frozen=True)
class JudgedHit(Hit):
    """A hit with its homology probability (NaN: not computed) and the cache of its 3D scores."""

    prob: float = math.nan
    geometry: HitGeometry | None = None

    @classmethod
    def of(cls, hit: Hit, query: SequenceDB, target: SequenceDB, prob: float = math.nan) -> JudgedHit:
        """``hit`` with ``prob`` and a geometry cache when both databases carry coordinates."""
        geometry = None
        if query.ca is not None and target.ca is not None and hit.alignment is not None:
            geometry = HitGeometry(query.ca_coords(hit.query), target.ca_coords(hit.target), hit.alignment.pairs,
                                   hit.alignment.columns)
        return cls(**{f.name: getattr(hit, f.name) for f in fields(Hit)}, prob=prob, geometry=geometry)


def geometry_of(hit: Hit, query: SequenceDB, target: SequenceDB) -> HitGeometry:
    """The hit's cached geometry, or a new one (:class:`InputError` when a side has no coordinates)."""
    if isinstance(hit, JudgedHit) and hit.geometry is not None:
        return hit.geometry
    for side, db in (("query", query), ("target", target)):
        if db.ca is None:
            raise InputError(f"3D output columns need the {side}'s C-alpha coordinates, which it does not carry")
    return JudgedHit.of(hit, query, target).geometry  # type: ignore[return-value]


def _numbers(values: np.ndarray) -> str:
    return ",".join(f"{v:.3f}" for v in np.ravel(values))


def column_3d(name: str, hit: Hit, query: SequenceDB, target: SequenceDB) -> str:
    """One structural column or ``prob`` of a hit, formatted as Foldseek prints it."""
    if name == PROB_COLUMN:
        if not isinstance(hit, JudgedHit) or math.isnan(hit.prob):
            raise InputError("column prob needs the search's probability fit (ismtk.workflows.search.judge_hits)")
        return f"{hit.prob:.3f}"
    geometry = geometry_of(hit, query, target)
    if name == "lddtfull":
        return _numbers(geometry.lddtfull)
    if name in ("u", "t"):
        return _numbers(geometry.target_onto_query[0 if name == "u" else 1])
    return f"{geometry.value(name):.3E}"


#: TM-align's shortest chain.
TMALIGN_MIN_LENGTH = 3


def tmalign_hit(hit: Hit, query: SequenceDB, target: SequenceDB) -> Hit:
    """``hit`` with TM-align's alignment of the two chains (Zhang & Skolnick 2005, via tmtools) in place of its own;
    unaligned residues before the first and after the last aligned pair are left out, as in a local alignment. A
    chain of fewer than :data:`TMALIGN_MIN_LENGTH` residues, which TM-align refuses, keeps the hit's alignment."""
    from ismtk.search.pairs import align_structures

    q, t = hit.query, hit.target
    qlen, tlen = int(query.offsets[q + 1] - query.offsets[q]), int(target.offsets[t + 1] - target.offsets[t])
    if min(qlen, tlen) < TMALIGN_MIN_LENGTH:
        return hit
    qseq = query.aa_seq(q) if query.aa is not None else "A" * qlen
    tseq = target.aa_seq(t) if target.aa is not None else "A" * tlen
    result = align_structures(query.names[q], query.ca_coords(q), qseq, target.names[t], target.ca_coords(t), tseq)
    return replace(hit, alignment=_local(hit.raw, result.cigar))


def _local(score: int, cigar: str) -> Alignment:
    """An :class:`Alignment` from a whole-chain CIGAR of ``P``/``M`` (pairs), ``D`` (query-only) and ``I``
    (target-only) runs, trimmed to its first and last pair."""
    runs = [(int(n), "M" if op in "PM" else "I" if op == "D" else "D") for n, op in re.findall(r"(\d+)([PMDI])", cigar)]
    merged: list[list] = []
    for n, op in runs:
        if merged and merged[-1][1] == op:
            merged[-1][0] += n
        else:
            merged.append([n, op])
    qstart = tstart = 0
    while merged and merged[0][1] != "M":
        n, op = merged.pop(0)
        qstart, tstart = (qstart + n, tstart) if op == "I" else (qstart, tstart + n)
    while merged and merged[-1][1] != "M":
        merged.pop()
    return alignment_from_runs(score, qstart, tstart, [(n, op) for n, op in merged])
