"""Ungapped-diagonal prefilter: rank targets by their best ungapped local diagonal, align only the best.

The ungapped stage of BLAST and of MMseqs2/Foldseek's prefilter (Steinegger & Soeding 2017), run on every
target: a target's prefilter score is the best score of a gap-free segment on any diagonal,

    U(i, j) = max(0, U(i-1, j-1) + S(q_i, t_j)),    score = max_ij U(i, j)

with the search's token matrix. A cell needs no gap states and no dependency along the query, so the compiled loop
runs on SIMD lanes in 16 bits (saturating at :data:`_CAP`, which only matters for ranking ties of huge identical
chains). The ``max_candidates`` best targets go on to Smith-Waterman.
"""

from __future__ import annotations

import numba
import numpy as np

from ismtk.search.db import SequenceDB
from ismtk.search.matrix import SubstitutionMatrix

__all__ = ["DEFAULT_MAX_CANDIDATES", "UngappedPrefilter", "ungapped_scores"]

#: Targets kept per query for Smith-Waterman.
DEFAULT_MAX_CANDIDATES = 300
_CAP = 32000


@numba.njit(cache=True, nogil=True)
def ungapped_scores(profile, tokens, offsets):  # pragma: no cover - numba
    """``(N,) int32`` best ungapped diagonal score of the query of ``profile`` (``(K, L) int16``,
    ``profile[t, i]`` = score of query position ``i`` against token ``t``) against each target
    ``tokens[offsets[k]:offsets[k + 1]]``."""
    length = profile.shape[1]
    out = np.zeros(offsets.shape[0] - 1, np.int32)
    previous = np.zeros(length + 1, np.int16)
    current = np.zeros(length + 1, np.int16)
    for k in range(offsets.shape[0] - 1):
        previous[:] = 0
        best = np.int16(0)
        for j in range(offsets[k], offsets[k + 1]):
            column = profile[tokens[j]]
            for i in range(length):
                value = min(max(previous[i] + column[i], 0), _CAP)
                current[i + 1] = value
                best = max(best, value)
            previous, current = current, previous
        out[k] = best
    return out


class UngappedPrefilter:
    """The prefilter over one target database and token matrix; :meth:`candidates` picks a query's targets."""

    def __init__(self, db: SequenceDB, matrix: SubstitutionMatrix) -> None:
        self._scores = matrix.restricted(db.alphabet.symbols).astype(np.int16)
        self._tokens = np.ascontiguousarray(db.tokens, dtype=np.int64)
        self._offsets = np.ascontiguousarray(db.offsets, dtype=np.int64)

    def scores(self, query: np.ndarray) -> np.ndarray:
        """``(N,) int32`` prefilter score of every target for ``(L,) uint8`` query tokens."""
        profile = np.ascontiguousarray(self._scores[np.asarray(query, dtype=np.int64)].T)
        return ungapped_scores(profile, self._tokens, self._offsets)

    def candidates(self, query: np.ndarray, max_candidates: int = DEFAULT_MAX_CANDIDATES) -> np.ndarray:
        """Sorted indices of the ``max_candidates`` best-scoring targets (ties: lower index first)."""
        s = self.scores(query)
        return np.sort(np.argsort(-s, kind="stable")[:max_candidates])
