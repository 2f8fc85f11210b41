"""Affine-gap Smith-Waterman (Gotoh 1982) over several score tracks: the scalar reference kernels, compiled with numba.

A column aligning query residue ``i`` with target residue ``j`` scores the sum over tracks ``t`` (3Di tokens, ISM
tokens, amino acids, ...) of a per-track substitution score:

    S(i, j) = sum_t profile[t, target[t, j], i]

``profile`` is ``(T, C, L) int32``: ``profile[t, c, i]`` scores query position ``i`` against symbol ``c`` of track
``t`` (:meth:`ismtk.search.tracks.ScoreTracks.profile` builds it, weights applied); ``target`` is ``(T, n)`` symbol
codes. The recurrences are parasail's, so both give the same scores on the same matrix:

    E(i, j) = max(E(i, j-1) - extend, H(i, j-1) - open)      # gap in the query (target residue j unaligned)
    F(i, j) = max(F(i-1, j) - extend, H(i-1, j) - open)      # gap in the target (query residue i unaligned)
    H(i, j) = max(0, H(i-1, j-1) + S(i, j), E(i, j), F(i, j))

A gap of ``n`` costs ``open + (n - 1) * extend``. These kernels are exact in 32 bits and simple: they define the
scores that the vectorised kernels of :mod:`ismtk.search.swipe` must reproduce, take over where 16 bits would
overflow, and trace the reported hits. They release the GIL.
"""

from __future__ import annotations

import numpy as np

from ismtk.compiled import jit

__all__ = ["TRACE_BITS", "sw_score", "sw_trace", "walk_back", "walk_ops"]

# traceback bits of one cell: where H came from (2 bits), whether E and F extended a gap
_FROM_ZERO, _FROM_DIAG, _FROM_E, _FROM_F = 0, 1, 2, 3
_E_EXTENDED, _F_EXTENDED = 4, 8
#: The traceback bits, for kernels that fill them elsewhere: (from zero, diagonal, E, F, E extended, F extended).
TRACE_BITS = (_FROM_ZERO, _FROM_DIAG, _FROM_E, _FROM_F, _E_EXTENDED, _F_EXTENDED)
_NEG = -(2**30)


@jit
def _column(profile, target, j, out):  # pragma: no cover - numba
    """``out[i] = S(i, j)``: the summed track scores of target column ``j`` against every query position."""
    out[:] = profile[0, target[0, j]]
    for t in range(1, profile.shape[0]):
        out += profile[t, target[t, j]]


@jit
def sw_score(profile, target, gap_open, gap_extend):  # pragma: no cover - numba
    """Best local score of the profile's query against ``target`` (``(T, n)`` codes), linear memory."""
    length = profile.shape[2]
    h = np.zeros(length, np.int32)
    e = np.full(length, _NEG, np.int32)
    column = np.empty(length, np.int32)
    best = 0
    for j in range(target.shape[1]):
        _column(profile, target, j, column)
        diagonal = 0
        f = _NEG
        up = 0
        for i in range(length):
            left = h[i]
            e_i = max(e[i] - gap_extend, left - gap_open)
            f = max(f - gap_extend, up - gap_open)
            score = max(diagonal + column[i], e_i, f, 0)
            diagonal = left
            h[i] = score
            e[i] = e_i
            up = score
            best = max(best, score)
    return best


@jit
def _fill(profile, target, gap_open, gap_extend):  # pragma: no cover - numba
    """Score matrix pass keeping ``(n, L) uint8`` traceback bits (target-major: a column's bits are contiguous);
    returns (bits, best, i_best, j_best). H's source is chosen by selects, not branches (which source wins is
    unpredictable): 1.17x the branching loop's speed on the bench's traced hits."""
    length, n = profile.shape[2], target.shape[1]
    bits = np.empty((n, length), np.uint8)
    h = np.zeros(length, np.int32)
    e = np.full(length, _NEG, np.int32)
    column = np.empty(length, np.int32)
    best, i_best, j_best = 0, -1, -1
    for j in range(n):
        _column(profile, target, j, column)
        row = bits[j]
        diagonal = 0
        f = _NEG
        up = 0
        top, i_top = 0, -1  # the column's first maximum
        for i in range(length):
            left = h[i]
            e_opened, e_extended = left - gap_open, e[i] - gap_extend
            e_i = max(e_opened, e_extended)
            f_opened, f_extended = up - gap_open, f - gap_extend
            f = max(f_opened, f_extended)
            match = diagonal + column[i]
            score = max(match, 0)  # ties prefer a match, then E, then F
            source = _FROM_DIAG if match > 0 else _FROM_ZERO
            source = _FROM_E if e_i > score else source
            score = max(score, e_i)
            source = _FROM_F if f > score else source
            score = max(score, f)
            extended = (_E_EXTENDED if e_extended > e_opened else 0) | (_F_EXTENDED if f_extended > f_opened else 0)
            row[i] = source | extended
            diagonal = left
            h[i] = score
            e[i] = e_i
            up = score
            i_top = i if score > top else i_top
            top = max(top, score)
        if top > best:
            best, i_best, j_best = top, i_top, j
    return bits, best, i_best, j_best


@jit
def sw_trace(profile, target, gap_open, gap_extend):  # pragma: no cover - numba
    """Optimal local alignment: ``(score, qstart, tstart, ops)`` with ``ops`` ``(m,) uint8`` in alignment order,
    0 = aligned pair, 1 = query residue unaligned (``I``), 2 = target residue unaligned (``D``).

    The best cell is the first maximum in target-major order; ties prefer a match, then E, then F.
    """
    bits, best, i, j = _fill(profile, target, gap_open, gap_extend)
    qstart, tstart, ops = walk_back(bits.reshape(bits.shape[0], bits.shape[1], 1), i, j, 0)
    return best, qstart, tstart, ops


@jit
def walk_back(bits, i, j, lane):  # pragma: no cover - numba
    """``(qstart, tstart, ops)`` of the alignment ending at the best cell ``(i, j)``, walked back through the
    ``(n, L, lanes)`` traceback bits of a score pass (target-major; :func:`sw_trace` fills one lane, the kernels
    of :mod:`ismtk.search.swipe_trace` one lane per target) in ``lane``."""
    ops = np.empty(bits.shape[0] + bits.shape[1], np.uint8)
    m = 0
    state = _FROM_DIAG  # H
    while i >= 0 and j >= 0:
        cell = bits[j, i, lane]
        if state == _FROM_DIAG:
            source = cell & 3
            if source == _FROM_ZERO:
                break
            if source == _FROM_DIAG:
                ops[m] = 0
                m += 1
                i -= 1
                j -= 1
            else:
                state = source
        elif state == _FROM_E:
            ops[m] = 2
            m += 1
            state = _FROM_E if cell & _E_EXTENDED else _FROM_DIAG
            j -= 1
        else:
            ops[m] = 1
            m += 1
            state = _FROM_F if cell & _F_EXTENDED else _FROM_DIAG
            i -= 1
    return i + 1, j + 1, ops[:m][::-1].copy()


@jit
def walk_ops(ops, qstart, tstart):  # pragma: no cover - numba
    """Walk an alignment's ``ops`` (as :func:`sw_trace` gives them) from ``(qstart, tstart)``: ``(pairs, lengths,
    codes, qend, tend)`` with ``pairs`` ``(n, 2) int64`` the aligned (query, target) indices and ``lengths`` /
    ``codes`` the runs of equal ops, in order."""
    pairs = np.empty((ops.shape[0], 2), np.int64)
    lengths = np.empty(ops.shape[0], np.int64)
    codes = np.empty(ops.shape[0], np.uint8)
    i, j, n, runs = qstart, tstart, 0, 0
    for k in range(ops.shape[0]):
        op = ops[k]
        if runs and codes[runs - 1] == op:
            lengths[runs - 1] += 1
        else:
            codes[runs], lengths[runs] = op, 1
            runs += 1
        if op == 0:
            pairs[n, 0], pairs[n, 1] = i, j
            n += 1
        if op != 2:
            i += 1
        if op != 1:
            j += 1
    return pairs[:n].copy(), lengths[:runs].copy(), codes[:runs].copy(), i, j
