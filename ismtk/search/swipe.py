"""Smith-Waterman scores of one query against many targets, vectorised across targets (SWIPE, Rognes 2011).

Up to 64 targets (:data:`LANE_CHOICES`) are aligned at once, one per 16-bit lane: every cell update of the Gotoh
recurrences of :mod:`ismtk.search.gotoh` is done for all lanes by one loop that the compiler turns into SIMD
instructions. For each target column ``j`` a score table ``col[r, lane] = table[r, target_lane(j)]`` is gathered,
one row ``r`` per query symbol of each track, so a cell's score is a sum of ``T`` contiguous loads:

    S(i, j)[lane] = sum_t col[offset_t + q_t(i), lane]

The query and the reversed query (Foldseek's correction) share the gathered tables. Scores of several tracks (3Di,
ISM tokens, amino acids, ...) are summed into a spare row of ``col`` before the cells of query row ``i``, so the cell
loop reads one score per lane whatever the number of tracks (summing inside the cell loop took 1.6x the time of one
track; so summed, 1.16x), and any weighted combination costs about as much as one track.

Sixteen bits: a lane whose best score reaches ``limit = 32767 - (largest one-step score gain)`` may have
overflowed; it is recomputed exactly in 32 bits by the reference kernel (so scores are always exact). Padding
columns of shorter targets score :data:`PAD_SCORE`, which can only lower cells, never the best score.
The per-row carried vectors live in one array and the H/E states in another, so the compiler checks for aliasing
between few arrays (with one array per vector the checks cost more than the cells).
"""

from __future__ import annotations

import numpy as np

from ismtk.compiled import jit
from ismtk.search.gotoh import sw_score

__all__ = ["LANE_CHOICES", "MAX_STEP", "PAD_SCORE", "load_kernels", "query_profile", "swipe_scores"]

#: Targets aligned at once: 64 16-bit lanes (two AVX-512 or four AVX2 registers per loop turn), or fewer.
LANE_CHOICES = (64, 32, 16)
#: Relative cost of one column step per lane count, for one track and for several (measured with
#: ``benchmarks/swipe_lanes.py``: one track, fewer lanes do less work per step; with several, the 32- and
#: 16-lane loops that sum the tracks compile to slower code than the 64-lane one, so 64 lanes nearly always win).
_LANE_COST = {1: {64: 1.0, 32: 0.62, 16: 0.42}, 2: {64: 1.0, 32: 1.4, 16: 1.0}}
#: Up to this many targets are aligned one by one by the scalar kernel.
_SCALAR_MAX = 2
#: Score of any query symbol against a padding column (only in the first track's table).
PAD_SCORE = -(1 << 14)
#: Largest |score| of one column and largest gap penalty the 16-bit kernel takes (else callers use 32 bits).
MAX_STEP = 1 << 12
_NEG = np.int16(-(1 << 14))
_DIAG, _F, _UP, _BEST, _BEST_REVERSED = range(5)


@jit
def _cell(he, v, i, lane, best, score, gap_open, gap_extend):  # pragma: no cover - numba
    """One Gotoh cell for one lane: ``he[i, 0]`` = H, ``he[i, 1]`` = E of query row ``i``; ``v`` the carried rows."""
    left = he[i, 0, lane]
    e = max(np.int16(he[i, 1, lane] - gap_extend), np.int16(left - gap_open))
    f = max(np.int16(v[_F, lane] - gap_extend), np.int16(v[_UP, lane] - gap_open))
    h = max(max(np.int16(v[_DIAG, lane] + score), np.int16(0)), max(e, f))
    v[_DIAG, lane] = left
    he[i, 0, lane] = h
    he[i, 1, lane] = e
    v[_F, lane] = f
    v[_UP, lane] = h
    v[best, lane] = max(v[best, lane], h)


@jit
def query_profile(query, bias, table, offsets):  # pragma: no cover - numba
    """``(T, P + 1, L) int32`` profile of the scalar kernels (:mod:`ismtk.search.gotoh`) from the kernels' table:
    ``[t, c, i]`` the score of query position ``i`` against symbol ``c`` of track ``t``, ``bias`` added to track 0."""
    tracks, length = query.shape
    forward = np.empty((tracks, table.shape[1], length), np.int32)
    for t in range(tracks):
        for i in range(length):
            forward[t, :, i] = table[offsets[t] + query[t, i]]
    for i in range(length):
        forward[0, :, i] += bias[i]
    return forward


@jit
def _exact(query, bias, table, offsets, target, gap_open, gap_extend):  # pragma: no cover - numba
    """``(raw, reversed-query raw)`` of one target in 32 bits with the reference kernel."""
    forward = query_profile(query, bias, table, offsets)
    reverse = np.ascontiguousarray(forward[:, :, ::-1])
    return sw_score(forward, target, gap_open, gap_extend), sw_score(reverse, target, gap_open, gap_extend)


@jit
def _one_by_one(query, bias, table, offsets, targets, target_offsets, ids, gap_open, gap_extend):  # pragma: no cover
    """:func:`swipe_scores` of a few targets with the scalar kernel (lanes would mostly idle)."""
    out = np.empty((ids.shape[0], 2), np.int64)
    for k in range(ids.shape[0]):
        target = targets[:, target_offsets[ids[k]] : target_offsets[ids[k] + 1]]
        raw, backward = _exact(query, bias, table, offsets, target, gap_open, gap_extend)
        out[k, 0] = raw
        out[k, 1] = raw - backward
    return out


def _kernel(lanes: int):
    """The compiled kernel for ``lanes`` lanes (a compile-time constant, so the lane loops become SIMD code).

    Each lane count has a name of its own (``kernel64``, ...): numba names compiled code, and the Environment of
    constants its wrapper reads, by qualified name, argument types and a counter that restarts in every process,
    so kernels of one name cached by different processes could share one Environment once loaded together and
    read past its constants (``In 'NRT_adapt_ndarray_to_python', 'descr' is NULL``)."""

    def kernel(
        query, bias, table, offsets, targets, target_offsets, ids, order, gap_open, gap_extend, limit, passes
    ):  # pragma: no cover
        """:func:`swipe_scores` on ``lanes`` lanes. Each lane streams targets in ``order`` (indices into ``ids``,
        longest first, so empty targets come last): when its target ends, its scores are read, its column of states
        is reset and the next target starts in the following column, so lanes idle only at the very end.
        ``passes``: 2 scores the query and the reversed query, 1 the query alone (the reversed raw is then 0)."""
        tracks, length = query.shape
        pad = table.shape[1] - 1
        both = np.empty((tracks, 2 * length), np.uint8)  # the query, then the reversed query
        both[:, :length] = query
        both[:, length:] = query[:, ::-1]
        shift = np.empty(2 * length, np.int16)  # the per-position bias of the query and of the reversed query
        shift[:length] = bias
        shift[length:] = bias[::-1]
        lengths = target_offsets[ids + 1] - target_offsets[ids]
        out = np.zeros((ids.shape[0], 2), np.int64)
        col = np.empty((table.shape[0] + 1, lanes), np.int16)
        he = np.empty((2 * length, 2, lanes), np.int16)
        he[:, 0, :] = 0
        he[:, 1, :] = _NEG
        v = np.zeros((5, lanes), np.int16)
        symbols = np.full((tracks, lanes), pad, np.uint8)
        current = np.full(lanes, -1, np.int64)  # index into ids of each lane's target
        position = np.zeros(lanes, np.int64)  # residue (in targets) of the lane's next column
        end = np.zeros(lanes, np.int64)
        gap_open, gap_extend = np.int16(gap_open), np.int16(gap_extend)
        waiting = 0  # next position in order
        while waiting < order.shape[0] and lengths[order[waiting]] == 0:
            waiting += 1  # nothing to align: scores 0 (order is longest first, so empty targets come last)
        busy = 0
        for lane in range(lanes):
            if waiting < order.shape[0] and lengths[order[waiting]] > 0:
                k = order[waiting]
                current[lane], position[lane], end[lane] = k, target_offsets[ids[k]], target_offsets[ids[k] + 1]
                waiting += 1
                busy += 1
        while busy:
            for lane in range(lanes):
                if current[lane] >= 0:
                    symbols[:, lane] = targets[:, position[lane]]
                else:
                    symbols[:, lane] = pad
            for t in range(tracks):
                for a in range(offsets[t], offsets[t + 1]):
                    row, gathered = table[a], col[a]
                    for lane in range(lanes):
                        gathered[lane] = row[symbols[t, lane]]
            for reverse in range(passes):  # rows of the query, then of the reversed query
                best = _BEST + reverse
                for lane in range(lanes):
                    v[_DIAG, lane] = 0
                    v[_F, lane] = _NEG
                    v[_UP, lane] = 0
                for i in range(reverse * length, (reverse + 1) * length):
                    first, b = col[both[0, i]], shift[i]
                    if tracks == 1:
                        for lane in range(lanes):
                            _cell(he, v, i, lane, best, np.int16(first[lane] + b), gap_open, gap_extend)
                        continue
                    summed = col[-1]  # the spare row: the sum of every track's score, then the cells
                    other = col[offsets[1] + both[1, i]]
                    for lane in range(lanes):
                        summed[lane] = np.int16(first[lane] + other[lane] + b)
                    for t in range(2, tracks):
                        other = col[offsets[t] + both[t, i]]
                        for lane in range(lanes):
                            summed[lane] = np.int16(summed[lane] + other[lane])
                    for lane in range(lanes):
                        _cell(he, v, i, lane, best, summed[lane], gap_open, gap_extend)
            for lane in range(lanes):
                k = current[lane]
                if k < 0:
                    continue
                position[lane] += 1
                if position[lane] < end[lane]:
                    continue
                raw, backward = np.int64(v[_BEST, lane]), np.int64(v[_BEST_REVERSED, lane])
                if raw >= limit or backward >= limit:
                    raw, backward = _exact(
                        query,
                        bias,
                        table,
                        offsets,
                        targets[:, end[lane] - lengths[k] : end[lane]],
                        gap_open,
                        gap_extend,
                    )
                out[k, 0] = raw
                out[k, 1] = raw - backward
                he[:, 0, lane] = 0
                he[:, 1, lane] = _NEG
                v[_BEST, lane] = 0
                v[_BEST_REVERSED, lane] = 0
                if waiting < order.shape[0] and lengths[order[waiting]] > 0:
                    k = order[waiting]
                    current[lane], position[lane], end[lane] = k, target_offsets[ids[k]], target_offsets[ids[k] + 1]
                    waiting += 1
                else:
                    current[lane] = -1
                    busy -= 1
        return out

    kernel.__qualname__ += str(lanes)
    return jit(kernel)


_KERNELS = {lanes: _kernel(lanes) for lanes in LANE_CHOICES}
_ONE = np.zeros(1, np.int64)  # the order of a single target


def load_kernels(
    query, bias, table, offsets, targets, target_offsets, ids, gap_open, gap_extend, limit, subsets: bool = True
) -> None:
    """Compile (or load from the cache) every kernel :func:`swipe_scores` may pick for these argument types and
    the targets ``ids`` or, with ``subsets``, any subset of them (a prefilter's candidates): do it on one thread
    before many threads score (numba loading one function on two threads at once can fail). Each kernel costs
    seconds to compile into an empty cache, so a search of fixed targets compiles only the one it uses."""
    if not len(ids):
        return
    if subsets or len(ids) <= _SCALAR_MAX:
        _one_by_one(query, bias, table, offsets, targets, target_offsets, ids[:1], gap_open, gap_extend)
    if subsets:
        picked = LANE_CHOICES
    else:
        lengths = target_offsets[ids + 1] - target_offsets[ids]
        picked = (_lanes(lengths, query.shape[0]),) if len(ids) > _SCALAR_MAX else ()
    for lanes in picked:
        _KERNELS[lanes](
            query, bias, table, offsets, targets, target_offsets, ids[:1], _ONE, gap_open, gap_extend, limit, 2
        )


def _lanes(lengths: np.ndarray, tracks: int = 1) -> int:
    """The lane count for targets of these lengths scored on ``tracks`` tracks: the most lanes that the work fills
    (a lane can finish no sooner than its longest target, so few targets run on fewer lanes where those are
    cheaper per step)."""
    longest, total, cost = int(lengths.max()), int(lengths.sum()), _LANE_COST[min(tracks, 2)]
    return max(LANE_CHOICES, key=lambda n: -max(total / n, longest) * cost[n])


def swipe_scores(
    query, bias, table, offsets, targets, target_offsets, ids, gap_open, gap_extend, limit, reverse: bool = True
) -> np.ndarray:
    """``(n, 2) int64`` (raw, raw - reversed-query raw) Smith-Waterman scores of one query against targets ``ids``.

    ``query`` ``(T, L) uint8`` symbol codes per track; ``bias`` ``(L,) int16`` added to every column score of a
    query position (composition-bias correction; zeros for none); ``table`` ``(rows, P + 1) int16`` with
    ``table[offsets[t] + a, c]`` the (weighted) score of query symbol ``a`` against target symbol ``c`` of track
    ``t``, column ``P`` the padding column; ``targets`` ``(T, R) uint8`` codes (< P) of all entries, entry ``k`` at
    ``target_offsets[k]:target_offsets[k + 1]``; ``ids`` ``(n,) int64`` entries to score, any order; the lane
    count is :func:`_lanes`'s. Without ``reverse``, only column 0 (the raw score) is meaningful: the reversed query
    is not aligned (about two thirds of the work: the per-column gather of score rows is shared by both passes).
    """
    if len(ids) <= _SCALAR_MAX:
        return _one_by_one(query, bias, table, offsets, targets, target_offsets, ids, gap_open, gap_extend)
    lengths = target_offsets[ids + 1] - target_offsets[ids]
    lanes = _lanes(lengths, query.shape[0])
    order = np.argsort(-lengths, kind="stable")  # sorted here: a sort inside the kernel doubles its compile time
    return _KERNELS[lanes](
        query, bias, table, offsets, targets, target_offsets, ids, order, gap_open, gap_extend, limit, 2 if reverse
        else 1
    )
