"""Smith-Waterman alignment of token sequences with parasail (Daily 2016), striped SIMD with query profiles.

A query's profile is built once and reused for every target. Scores are corrected as in Foldseek
(van Kempen et al. 2024): the score of the reversed query against the same target is subtracted, which cancels
the high scores that low-complexity runs (helices, strands) collect against any target. parasail is called
through ctypes, which releases the GIL, so queries are spread over a thread pool.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ismtk.errors import InputError
from ismtk.search.gotoh import walk_ops
from ismtk.search.matrix import SubstitutionMatrix

if TYPE_CHECKING:
    from ismtk.search.db import SequenceDB

__all__ = [
    "DEFAULT_GAP_EXTEND",
    "DEFAULT_GAP_OPEN",
    "Aligner",
    "Alignment",
    "QueryProfile",
    "alignment_from_ops",
    "alignment_from_runs",
    "check_gaps",
    "cigar_pairs",
    "cigar_runs",
    "gapped_pair",
]

#: Gap penalties of Foldseek's 3Di search; parasail charges ``open + (n - 1) * extend`` for a gap of ``n``.
DEFAULT_GAP_OPEN = 10
DEFAULT_GAP_EXTEND = 1

_SATURATED_16 = 32767
#: CIGAR operation -> the op code of :func:`alignment_from_ops`.
_OP_CODES = {"M": 0, "=": 0, "X": 0, "I": 1, "D": 2}
#: BAM operation code (``MIDNSHP=X``) -> the op code of :func:`alignment_from_ops` (parasail emits M, I, D, =, X).
_BAM_OPS = np.array([0, 1, 2, 255, 255, 255, 255, 0, 0], np.uint8)


@dataclass(frozen=True)
class Alignment:
    """A traced local alignment: 0-based half-open ranges and aligned index pairs.

    ``pairs`` is ``(n, 2) int64`` (query index, target index) of the aligned columns; ``columns`` counts
    aligned columns plus gap columns, ``gap_opens`` the gaps.
    """

    score: int
    qstart: int
    qend: int
    tstart: int
    tend: int
    pairs: np.ndarray
    columns: int
    gap_opens: int
    cigar: str


def check_gaps(gap_open: int, gap_extend: int) -> None:
    """Raise :class:`InputError` unless ``1 <= gap_extend <= gap_open``."""
    if gap_open < 1 or gap_extend < 1 or gap_extend > gap_open:
        raise InputError(f"gap penalties must satisfy 1 <= extend <= open, got open {gap_open} extend {gap_extend}")


def alignment_from_ops(score: int, qstart: int, tstart: int, ops: np.ndarray) -> Alignment:
    """An :class:`Alignment` from its start and its ``(m,) uint8`` operations in order: 0 an aligned pair, 1 a query
    residue and 2 a target residue left unaligned (the output of :func:`ismtk.search.gotoh.sw_trace`). The walk is
    compiled and releases the GIL, so threads tracing many hits do not queue on it.

    >>> a = alignment_from_ops(7, 2, 0, np.array([0, 0, 0, 1, 0], np.uint8))
    >>> a.cigar, a.pairs.tolist(), (a.qend, a.tend, a.columns, a.gap_opens)
    ('3M1I1M', [[2, 0], [3, 1], [4, 2], [6, 3]], (7, 4, 5, 1))
    """
    pairs, lengths, codes, qend, tend = walk_ops(np.ascontiguousarray(ops, np.uint8), qstart, tstart)
    cigar = "".join(f"{n}{'MID'[c]}" for n, c in zip(lengths.tolist(), codes.tolist(), strict=True))
    return Alignment(int(score), int(qstart), int(qend), int(tstart), int(tend), pairs, len(ops),
                     int(np.count_nonzero(codes)), cigar)  # fmt: skip


def alignment_from_runs(score: int, qstart: int, tstart: int, runs: list[tuple[int, str]]) -> Alignment:
    """An :class:`Alignment` from its start and its operation runs ``(n, op)``: ``M`` (or ``=``/``X``) aligned
    pairs, ``I`` query residues and ``D`` target residues left unaligned (:func:`alignment_from_ops`).

    >>> a = alignment_from_runs(7, 2, 0, [(2, "="), (1, "X"), (1, "I"), (1, "M")])
    >>> a.cigar, a.pairs.tolist(), (a.qend, a.tend, a.columns, a.gap_opens)
    ('3M1I1M', [[2, 0], [3, 1], [4, 2], [6, 3]], (7, 4, 5, 1))
    """
    codes = np.array([_OP_CODES[op] for _, op in runs], np.uint8)
    return alignment_from_ops(score, qstart, tstart, np.repeat(codes, [n for n, _ in runs]))


def cigar_runs(cigar: str) -> list[tuple[int, str]]:
    """The ``(n, op)`` runs of a CIGAR of ``M``/``I``/``D`` (or ``=``/``X``) operations.

    >>> cigar_runs("2M1I1M")
    [(2, 'M'), (1, 'I'), (1, 'M')]
    """
    return [(int(n), op) for n, op in re.findall(r"(\d+)([MID=X])", cigar)]


def cigar_pairs(qstart: int, tstart: int, cigar: str) -> np.ndarray:
    """``(n, 2) int64`` aligned (query, target) indices, 0-based, of a ``.m8`` alignment: its 1-based ``qstart``,
    ``tstart`` and its CIGAR of ``M``/``I``/``D`` runs (as ismtk and Foldseek write them).

    >>> cigar_pairs(3, 1, "2M1I1M").tolist()
    [[2, 0], [3, 1], [5, 2]]
    """
    return alignment_from_runs(0, qstart - 1, tstart - 1, cigar_runs(cigar)).pairs


def gapped_pair(pairs: np.ndarray, seq1: str, seq2: str) -> tuple[str, str]:
    """Both whole sequences written out with ``-`` so that exactly the aligned ``pairs`` (0-based, increasing)
    share columns: the fixed-alignment input of TM-align (``-I``, tmtools' ``tm_align(..., alignment)``).

    >>> gapped_pair(np.array([[0, 1], [2, 2]]), "ABC", "xyz")
    ('-ABC', 'xy-z')
    """
    a, b, i, j = [], [], 0, 0
    for p, q in pairs:
        a += list(seq1[i:p]) + ["-"] * (q - j)
        b += ["-"] * (p - i) + list(seq2[j:q])
        a.append(seq1[p])
        b.append(seq2[q])
        i, j = p + 1, q + 1
    a += list(seq1[i:]) + ["-"] * (len(seq2) - j)
    b += ["-"] * (len(seq1) - i) + list(seq2[j:])
    return "".join(a), "".join(b)


@dataclass
class QueryProfile:
    """parasail profiles of one query and of its reverse (16-bit; 32-bit ones are made on saturation)."""

    symbols: bytes
    forward: object
    reverse: object


class Aligner:
    """Smith-Waterman scoring of token sequences over one alphabet with one matrix and gap penalties."""

    def __init__(
        self,
        matrix: SubstitutionMatrix,
        alphabet_symbols: str,
        gap_open: int = DEFAULT_GAP_OPEN,
        gap_extend: int = DEFAULT_GAP_EXTEND,
    ) -> None:
        check_gaps(gap_open, gap_extend)
        self.matrix = matrix
        self.alphabet_symbols = alphabet_symbols
        self.gap_open = gap_open
        self.gap_extend = gap_extend
        self._pmatrix = matrix.to_parasail(alphabet_symbols)
        self._symbols = np.frombuffer(alphabet_symbols.encode("ascii"), dtype=np.uint8)

    def symbols(self, tokens: np.ndarray) -> bytes:
        """The parasail input for ``(L,) uint8`` tokens: their symbols as bytes."""
        return self._symbols[tokens].tobytes()

    def profile(self, tokens: np.ndarray) -> QueryProfile:
        import parasail

        text = self.symbols(tokens)
        return QueryProfile(
            text,
            parasail.profile_create_16(text, self._pmatrix),
            parasail.profile_create_16(text[::-1], self._pmatrix),
        )

    def query(self, db: SequenceDB, i: int) -> QueryProfile:
        """The profile of entry ``i`` of ``db`` as a query."""
        return self.profile(db.token_seq(i))

    def target(self, db: SequenceDB, j: int) -> bytes:
        """Entry ``j`` of ``db`` as a target."""
        return self.symbols(db.token_seq(j))

    def _wide(self, text: bytes, target: bytes) -> int:
        import parasail

        profile = parasail.profile_create_32(text, self._pmatrix)
        return int(parasail.sw_striped_profile_32(profile, target, self.gap_open, self.gap_extend).score)

    def score(self, query: QueryProfile, target: bytes) -> tuple[int, int]:
        """``(raw, corrected)`` Smith-Waterman scores: corrected = raw - score of the reversed query."""
        return self.score_many(query, [target])[0]

    def score_many(self, query: QueryProfile, targets: list[bytes]) -> list[tuple[int, int]]:
        """:meth:`score` of ``query`` against each target; the hot loop of a search, kept to two parasail calls
        per target (a 16-bit score at the ceiling means overflow and is recomputed in 32 bits)."""
        import parasail

        sw, forward, reverse = parasail.sw_striped_profile_16, query.forward, query.reverse
        gap_open, gap_extend = self.gap_open, self.gap_extend
        out = []
        for target in targets:
            raw = sw(forward, target, gap_open, gap_extend).score
            backward = sw(reverse, target, gap_open, gap_extend).score
            if raw >= _SATURATED_16 or backward >= _SATURATED_16:
                raw, backward = self._wide(query.symbols, target), self._wide(query.symbols[::-1], target)
            out.append((raw, raw - backward))
        return out

    def trace(self, query: QueryProfile, target: bytes) -> Alignment:
        """Full alignment of a query and a target (striped SW with traceback)."""
        import parasail

        result = parasail.sw_trace_striped_32(query.symbols, target, self.gap_open, self.gap_extend, self._pmatrix)
        cigar = result.get_cigar()
        runs = np.asarray(cigar.seq, np.uint32)  # BAM-style: length << 4 | operation
        ops = np.repeat(_BAM_OPS[runs & 0xF], runs >> 4)
        # parasail may start or end a local alignment's CIGAR with gap runs; they are not part of it.
        aligned = np.flatnonzero(ops == 0)
        first, last = (aligned[0], aligned[-1] + 1) if len(aligned) else (len(ops), len(ops))
        i = cigar.beg_query + int(np.count_nonzero(ops[:first] == 1))
        j = cigar.beg_ref + int(np.count_nonzero(ops[:first] == 2))
        return alignment_from_ops(int(result.score), i, j, ops[first:last])
