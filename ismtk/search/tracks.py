"""Multi-track alignment scores: one substitution matrix per track, summed per column, and their kernels.

A residue carries one symbol per track (its 3Di state, its ISM token, its amino acid, ...). Aligning query residue
``i`` with target residue ``j`` scores

    S(i, j) = sum_t rint(w_t * M_t[q_t(i), t_t(j)])

with ``M_t`` the track's substitution matrix (half-bits) and ``w_t`` its weight (Foldseek's 3Di+AA is the tracks
3Di and amino acids with weights 1 and a fraction). :class:`ScoreTracks` holds the weighted matrices once and
scores a query against many targets with the vectorised kernel (:mod:`ismtk.search.swipe`) and traces them with
another (:mod:`ismtk.search.swipe_trace`) or with the scalar reference (:mod:`ismtk.search.gotoh`); all give the
same scores and alignments (parasail, which traces the main tokens alone, gives the same scores but may pick
another of several equally scoring alignments). Sequences are ``(T, n) uint8`` symbol codes, one row per track in
the order of the matrices.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ismtk.errors import InputError
from ismtk.search.gotoh import sw_score, sw_trace
from ismtk.search.swipe import MAX_STEP, PAD_SCORE, load_kernels, swipe_scores
from ismtk.search.swipe_trace import swipe_traces

__all__ = ["BIAS_WINDOW", "ScoreTracks"]

#: Positions around a residue whose scores against it estimate its local compositional bias (MMseqs2's window).
BIAS_WINDOW = 40


@dataclass(frozen=True)
class ScoreTracks:
    """Weighted per-track substitution scores: ``matrices[t]`` is ``(K_t, K_t)`` integer scores, already weighted
    and rounded (see :meth:`weighted`); every track's symbols are ``0 .. K_t - 1``."""

    matrices: tuple[np.ndarray, ...]
    _table: np.ndarray = field(init=False, repr=False, compare=False)
    _offsets: np.ndarray = field(init=False, repr=False, compare=False)
    _table16: np.ndarray = field(init=False, repr=False, compare=False)
    _limit: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.matrices:
            raise InputError("scoring needs at least one track")
        sizes = [m.shape[0] for m in self.matrices]
        if any(m.ndim != 2 or m.shape[0] != m.shape[1] for m in self.matrices) or max(sizes) > 255:
            raise InputError(
                f"track matrices must be square with at most 255 symbols, got {[m.shape for m in self.matrices]}"
            )
        pad = max(sizes)
        offsets = np.zeros(len(sizes) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        table = np.zeros((offsets[-1], pad + 1), np.int32)
        for t, m in enumerate(self.matrices):
            table[offsets[t] : offsets[t + 1], : m.shape[1]] = m
        table[: sizes[0], pad] = PAD_SCORE
        step = sum(int(np.abs(m).max()) for m in self.matrices)
        object.__setattr__(self, "_table", table)
        object.__setattr__(
            self, "_table16", table.astype(np.int16) if step <= MAX_STEP else table[:0, :0].astype(np.int16)
        )
        object.__setattr__(self, "_offsets", offsets)
        object.__setattr__(self, "_limit", 32767 - step if step <= MAX_STEP else -1)

    @classmethod
    def weighted(cls, matrices: Sequence[np.ndarray], weights: Sequence[float]) -> ScoreTracks:
        """Tracks scoring ``rint(w_t * M_t)``; a weight of 1 keeps a matrix as it is."""
        if len(matrices) != len(weights) or any(not w > 0 for w in weights):
            raise InputError(f"each track needs a positive weight, got {list(weights)}")
        tables = tuple(
            np.rint(w * np.asarray(m, np.float64)).astype(np.int32) for m, w in zip(matrices, weights, strict=True)
        )
        for k, (table, w) in enumerate(zip(tables, weights, strict=True)):
            largest = float(np.abs(np.asarray(matrices[k], np.float64)).max(initial=0.0))
            if largest > 0 and not table.any():  # (its E-values would still be fitted as for another score)
                raise InputError(f"a weight of {w:g} rounds every score of track {k + 1} to 0 (its largest is "
                                 f"{largest:g} half-bits); give at least {0.5 / largest:.3g}, or leave the track out")
        return cls(tables)

    def __len__(self) -> int:
        return len(self.matrices)

    def check(self, codes: np.ndarray, what: str = "sequence") -> np.ndarray:
        """``codes`` as a ``(T, n) uint8`` array (raises :class:`InputError` if its tracks do not fit)."""
        codes = np.asarray(codes)
        if codes.ndim != 2 or codes.shape[0] != len(self):
            raise InputError(f"{what}: expected {len(self)} track(s) of symbol codes, got shape {codes.shape}")
        return codes.astype(np.uint8, copy=False)

    def profile(self, query: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
        """``(T, C, L) int32`` per-track profile of ``(T, L)`` query codes: ``[t, c, i]`` = score of position ``i``
        against symbol ``c`` of track ``t`` (the scalar kernels' input); ``bias`` ``(L,)`` is added to track 0."""
        query = self.check(query, "query")
        rows = self._table[self._offsets[:-1, None] + query.astype(np.int64)]  # (T, L, C + 1)
        profile = np.ascontiguousarray(rows[:, :, :-1].transpose(0, 2, 1))
        if bias is not None:
            profile[0] += np.asarray(bias, np.int32)[None, :]
        return profile

    def composition_bias(
        self, query: np.ndarray, background: Sequence[np.ndarray], scale: float, window: int = BIAS_WINDOW
    ) -> np.ndarray:
        """``(L,) int16`` composition-bias correction of a query (MMseqs2/Foldseek's ``--comp-bias-corr``):

            delta(i) = scale * sum_t [ sum_c p_t(c) S_t(q_t(i), c) - mean_{j in W(i), j != i} S_t(q_t(i), q_t(j)) ]

        with ``W(i)`` the ``window`` positions centred on ``i`` and ``p_t`` the background frequencies of track
        ``t``: a residue in a run of residues it scores well against (a low-complexity stretch, a long helix of
        one 3Di state) loses what that run would give it against any sequence, and regains what a background
        residue would score. Added to every column score of position ``i``, rounded once."""
        query = self.check(query, "query")
        length = query.shape[1]
        delta = np.zeros(length)
        half = window // 2
        lo = np.maximum(np.arange(length) - half, 0)
        hi = np.minimum(np.arange(length) + half, length)
        for t, m in enumerate(self.matrices):
            scores = m[query[t][:, None], query[t][None, :]].astype(np.float64)  # (L, L): S(q_i, q_j)
            cumulative = np.concatenate([np.zeros((length, 1)), np.cumsum(scores, axis=1)], axis=1)
            local = cumulative[np.arange(length), hi] - cumulative[np.arange(length), lo] - np.diag(scores)
            local /= np.maximum(hi - lo - 1, 1)
            delta += m[query[t]].astype(np.float64) @ np.asarray(background[t], np.float64) - local
        return np.rint(scale * delta).astype(np.int16)

    def score_many(
        self,
        query: np.ndarray,
        targets: np.ndarray,
        offsets: np.ndarray,
        ids: np.ndarray,
        gap_open: int,
        gap_extend: int,
        bias: np.ndarray | None = None,
        warm_up: bool = False,
        subsets: bool = True,
        reverse: bool = True,
    ) -> np.ndarray | None:
        """``(n, 2) int64`` (raw, raw - reversed-query raw) of ``(T, L)`` query codes against the entries ``ids``
        of ``(T, R)`` target codes split by ``(N + 1,)`` offsets; one compiled call without the GIL. ``bias``
        ``(L,)`` is added to every column score of a query position (:meth:`composition_bias`). ``warm_up``:
        only load every kernel these arguments (with ``subsets``: any subset of ``ids``) may use (see
        :func:`ismtk.search.swipe.load_kernels`). Without ``reverse`` only the raw scores (column 0) are computed."""
        query = np.ascontiguousarray(self.check(query, "query"))
        ids = self._ids(ids, offsets)
        bias, limit = self._sixteen_bits(query, bias, gap_open, gap_extend)
        if limit is None:
            return self._score_exact(query, bias, targets, offsets, ids[:1] if warm_up else ids, gap_open, gap_extend)
        args = query, bias, self._table16, self._offsets, targets, offsets, ids, gap_open, gap_extend, limit
        return load_kernels(*args, subsets=subsets) if warm_up else swipe_scores(*args, reverse=reverse)

    def trace_many(
        self, query: np.ndarray, targets: np.ndarray, offsets: np.ndarray, ids: np.ndarray, gap_open: int,
        gap_extend: int, bias: np.ndarray | None = None,
    ) -> list[tuple[int, int, int, np.ndarray]]:  # fmt: skip
        """Optimal local alignments ``(score, qstart, tstart, ops)`` (as :func:`ismtk.search.gotoh.sw_trace` gives
        them) of ``(T, L)`` query codes against each of the entries ``ids`` (arguments as :meth:`score_many`),
        traced side by side in 16-bit lanes (:mod:`ismtk.search.swipe_trace`) where the scores fit."""
        query = np.ascontiguousarray(self.check(query, "query"))
        ids = self._ids(ids, offsets)
        bias, limit = self._sixteen_bits(query, bias, gap_open, gap_extend)
        if limit is None:
            profile = self.profile(query, bias)
            return [sw_trace(profile, np.ascontiguousarray(targets[:, offsets[j] : offsets[j + 1]]), gap_open,
                             gap_extend) for j in ids]  # fmt: skip
        return swipe_traces(query, bias, self._table16, self._offsets, targets, offsets, ids, gap_open, gap_extend,
                            limit)  # fmt: skip

    @staticmethod
    def _ids(ids: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if len(ids) and (ids.min() < 0 or ids.max() >= len(offsets) - 1):
            raise InputError(f"target ids must lie in 0..{len(offsets) - 2}")
        return ids

    def _sixteen_bits(
        self, query: np.ndarray, bias: np.ndarray | None, gap_open: int, gap_extend: int
    ) -> tuple[np.ndarray, int | None]:
        """``(bias, limit)``: the ``(L,) int16`` bias (zeros for none) and the score from which a 16-bit lane may
        have overflowed, or ``None`` where the 16-bit kernels cannot take these scores (32 bits then)."""
        bias = np.zeros(query.shape[1], np.int16) if bias is None else np.ascontiguousarray(bias, dtype=np.int16)
        limit = self._limit - (int(np.abs(bias).max()) if len(bias) else 0)
        if self._limit < 0 or limit < 1 << 14 or max(gap_open, gap_extend) > MAX_STEP:
            return bias, None
        return bias, limit

    def _score_exact(self, query, bias, targets, offsets, ids, gap_open, gap_extend) -> np.ndarray:
        forward = self.profile(query, bias)
        reverse = np.ascontiguousarray(forward[:, :, ::-1])
        out = np.empty((len(ids), 2), np.int64)
        for k, j in enumerate(ids):
            target = targets[:, offsets[j] : offsets[j + 1]]
            raw = sw_score(forward, target, gap_open, gap_extend)
            out[k] = raw, raw - sw_score(reverse, target, gap_open, gap_extend)
        return out
