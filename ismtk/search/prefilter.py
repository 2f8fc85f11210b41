"""k-mer prefilter: keep only targets that share a diagonal of exact token k-mer matches with the query.

Like the first stage of BLAST and of Foldseek/MMseqs2 (Steinegger & Soeding 2017), in a simpler form: exact
k-mers of the tokens are indexed once; for a query, every k-mer hit votes for (target, diagonal band) with weight
``log(n_kmers / n_code)`` (rare k-mers count more: the helix runs of 3Di would otherwise drown the signal); a
target's prefilter score is its best band's total, and the ``max_candidates`` best targets go on to
Smith-Waterman. Works for any alphabet size (k-mers are coded in int64).
"""

from __future__ import annotations

import numpy as np

from ismtk.errors import InputError
from ismtk.search.db import SequenceDB

__all__ = ["DEFAULT_BAND", "DEFAULT_KMER", "DEFAULT_MAX_CANDIDATES", "KmerIndex", "kmer_codes"]

#: k-mer length of the prefilter.
DEFAULT_KMER = 3
#: Targets kept per query for Smith-Waterman.
DEFAULT_MAX_CANDIDATES = 300
#: Diagonals are pooled in bands of this width, so small indels do not split a run of hits.
DEFAULT_BAND = 4


def kmer_codes(tokens: np.ndarray, k: int, alphabet_size: int) -> np.ndarray:
    """``(max(L - k + 1, 0),) int64`` codes ``sum_p tokens[i + p] * K^p`` of the k-mers starting at each position."""
    tokens = np.asarray(tokens, dtype=np.int64)
    n = len(tokens) - k + 1
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    codes = np.zeros(n, dtype=np.int64)
    for p in range(k):
        codes += tokens[p : p + n] * alphabet_size**p
    return codes


class KmerIndex:
    """Sorted k-mer positions of a database; :meth:`candidates` ranks targets for one query."""

    def __init__(self, db: SequenceDB, k: int = DEFAULT_KMER, band: int = DEFAULT_BAND) -> None:
        if k < 1 or len(db.alphabet) ** k >= 2**62:
            raise InputError(f"k-mer length {k} is not usable with an alphabet of {len(db.alphabet)} symbols")
        self.k, self.band, self.size = k, band, len(db.alphabet)
        self.offsets = np.asarray(db.offsets)
        codes, starts = [], []
        for i in range(len(db)):
            c = kmer_codes(db.token_seq(i), k, self.size)
            codes.append(c)
            starts.append(np.arange(len(c), dtype=np.int64) + self.offsets[i])
        codes_all = np.concatenate(codes) if codes else np.zeros(0, np.int64)
        order = np.argsort(codes_all, kind="stable")
        self.codes = codes_all[order]
        self.positions = np.concatenate(starts)[order] if codes else np.zeros(0, np.int64)
        self.entries = len(db)
        self.max_length = int(np.diff(self.offsets).max()) if len(db) else 0

    def scores(self, query: np.ndarray) -> np.ndarray:
        """``(N,) float64`` prefilter score of every target: the largest weighted k-mer vote of one diagonal band."""
        q = kmer_codes(query, self.k, self.size)
        lo = np.searchsorted(self.codes, q, "left")
        hi = np.searchsorted(self.codes, q, "right")
        counts = hi - lo
        best = np.zeros(self.entries, dtype=np.float64)
        total = int(counts.sum())
        if total == 0:
            return best
        # expand the [lo, hi) ranges into one array of database positions, remembering the query position
        qpos = np.repeat(np.arange(len(q)), counts)
        starts = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(total)
        dbpos = self.positions[starts]
        target = np.searchsorted(self.offsets, dbpos, "right") - 1
        diagonal = dbpos - self.offsets[target] - qpos + len(q)
        width = (self.max_length + len(q)) // self.band + 1
        key = target * width + diagonal // self.band
        weight = np.repeat(np.log(len(self.codes) / np.maximum(counts, 1)), counts)
        keys, inverse = np.unique(key, return_inverse=True)
        np.maximum.at(best, keys // width, np.bincount(inverse, weights=weight))
        return best

    def candidates(self, query: np.ndarray, max_candidates: int = DEFAULT_MAX_CANDIDATES) -> np.ndarray:
        """Indices of the ``max_candidates`` best-scoring targets with at least one hit (ties: lower index)."""
        s = self.scores(query)
        hit = np.flatnonzero(s > 0)
        if len(hit) > max_candidates:
            hit = hit[np.argsort(-s[hit], kind="stable")[:max_candidates]]
        return np.sort(hit)
