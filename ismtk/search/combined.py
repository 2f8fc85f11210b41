"""Structure tokens and amino acids in one alignment score, as Foldseek's 3Di+AA (van Kempen et al. 2024).

Aligning query residue ``i`` with target residue ``j`` scores ``S_tok(q_i, t_j) + rint(w * S_aa(a_i, b_j))``: the
token matrix plus the amino-acid matrix (BLOSUM62 by default; half-bits, like the learned token matrices)
weighted by ``w`` (``--aa-weight``). A residue is then one symbol of the product alphabet
``token * 21 + amino acid``, too large for parasail's byte-indexed matrices, so the numba Gotoh kernels of
:mod:`ismtk.search.gotoh` align it. The reversed-query correction is the same as for tokens alone (the reversed
query keeps its token/amino-acid pairs); E-value parameters are fitted for the combined score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ismtk.errors import InputError
from ismtk.search.align import DEFAULT_GAP_EXTEND, DEFAULT_GAP_OPEN, Alignment, alignment_from_runs, check_gaps
from ismtk.search.db import AA_ALPHABET, SequenceDB, aa_indices
from ismtk.search.gotoh import sw_score_many, sw_trace
from ismtk.search.matrix import SubstitutionMatrix

__all__ = ["CombinedAligner", "CombinedProfile"]

_OPS = "MID"


@dataclass
class CombinedProfile:
    """``(K * 21, L) int32`` profiles of one query and of its reverse."""

    forward: np.ndarray
    reverse: np.ndarray


class CombinedAligner:
    """Smith-Waterman of (token, amino acid) sequences; the interface of :class:`ismtk.search.align.Aligner`."""

    def __init__(
        self,
        matrix: SubstitutionMatrix,
        alphabet_symbols: str,
        aa_matrix: SubstitutionMatrix,
        aa_weight: float,
        gap_open: int = DEFAULT_GAP_OPEN,
        gap_extend: int = DEFAULT_GAP_EXTEND,
    ) -> None:
        check_gaps(gap_open, gap_extend)
        if not aa_weight > 0:
            raise InputError(f"the amino-acid weight must be positive, got {aa_weight}")
        self.matrix, self.aa_matrix, self.aa_weight = matrix, aa_matrix, aa_weight
        self.alphabet_symbols = alphabet_symbols
        self.gap_open, self.gap_extend = gap_open, gap_extend
        self._tokens = matrix.restricted(alphabet_symbols).astype(np.int32)
        self._aa = np.rint(aa_weight * aa_matrix.restricted(AA_ALPHABET.symbols)).astype(np.int32)

    @staticmethod
    def _residues(db: SequenceDB, i: int) -> tuple[np.ndarray, np.ndarray]:
        if db.aa is None:
            raise InputError(
                "scoring with amino acids (--aa-weight) needs them on both sides: give structures or a database "
                "made from structures, not token FASTA"
            )
        return db.token_seq(i), aa_indices(db.aa[db.offsets[i] : db.offsets[i + 1]])

    def query(self, db: SequenceDB, i: int) -> CombinedProfile:
        """Profiles of entry ``i`` of ``db``: ``forward[t * 21 + a, p]`` scores query position ``p`` against
        token ``t`` with amino acid ``a``."""
        tokens, aa = self._residues(db, i)
        forward = (self._tokens[tokens].T[:, None, :] + self._aa[aa].T[None, :, :]).reshape(-1, len(tokens))
        return CombinedProfile(np.ascontiguousarray(forward), np.ascontiguousarray(forward[:, ::-1]))

    def target(self, db: SequenceDB, j: int) -> np.ndarray:
        """``(n,) int32`` product-alphabet codes of entry ``j``."""
        tokens, aa = self._residues(db, j)
        return tokens.astype(np.int32) * len(AA_ALPHABET) + aa

    def score(self, query: CombinedProfile, target: np.ndarray) -> tuple[int, int]:
        """``(raw, corrected)``: corrected = raw - score of the reversed query."""
        return tuple(int(v) for v in self.score_many(query, [target])[0])

    def score_many(self, query: CombinedProfile, targets: list[np.ndarray]) -> np.ndarray:
        """``(N, 2) int64`` :meth:`score` of ``query`` against each target, in one compiled loop."""
        offsets = np.zeros(len(targets) + 1, np.int64)
        np.cumsum([len(t) for t in targets], out=offsets[1:])
        codes = np.concatenate(targets) if targets else np.zeros(0, np.int32)
        return sw_score_many(query.forward, query.reverse, codes, offsets, self.gap_open, self.gap_extend)

    def trace(self, query: CombinedProfile, target: np.ndarray) -> Alignment:
        """The optimal local alignment with its traceback."""
        score, qstart, tstart, ops = sw_trace(query.forward, target, self.gap_open, self.gap_extend)
        if not len(ops):
            return alignment_from_runs(int(score), int(qstart), int(tstart), [])
        change = np.flatnonzero(np.diff(ops)) + 1
        starts = np.concatenate([[0], change])
        lengths = np.diff(np.concatenate([starts, [len(ops)]]))
        runs = [(int(n), _OPS[ops[s]]) for s, n in zip(starts, lengths, strict=True)]
        return alignment_from_runs(int(score), int(qstart), int(tstart), runs)
