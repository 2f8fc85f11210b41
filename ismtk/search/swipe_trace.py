"""Tracebacks of many hits of one query at once, vectorised across targets like the scores (:mod:`ismtk.search.swipe`).

A search traces every reported hit. The scalar reference (:func:`ismtk.search.gotoh.sw_trace`) fills one cell at a
time, a chain of dependent operations per cell; here up to :data:`TRACE_LANES` targets fill their score matrices
side by side, one per 16-bit lane, keeping each cell's traceback bits, and each lane is then walked back from its
first best cell (target-major order, as the reference). Cells, tie rules and bits are the reference's, so the
alignments are identical; a lane whose score may have overflowed 16 bits (``>= limit``) is traced again by the
reference in 32 bits.
"""

from __future__ import annotations

import numpy as np

from ismtk.compiled import jit
from ismtk.search.gotoh import TRACE_BITS, sw_trace, walk_back
from ismtk.search.swipe import query_profile

__all__ = ["TRACE_LANES", "swipe_traces"]

#: Targets traced at once (one AVX-512 register of 16-bit lanes, two AVX2 registers); few hits cost about as much
#: as one, since a turn of the lane loop is a few vector instructions.
TRACE_LANES = 32
#: Most bytes of traceback bits one batch may hold (``lanes x longest target x query length``); larger batches are
#: traced one by one by the reference, which holds one target's bits at a time.
MAX_TRACE_BYTES = 1 << 26
_ZERO, _DIAG, _E, _F, _E_EXTENDED, _F_EXTENDED = TRACE_BITS
_NEG = np.int16(-(1 << 14))
_MAX_ROWS = 2**15 - 1  # query rows are counted in 16 bits
_UP, _GAP, _LEFT, _BEST = range(4)


@jit
def _fill_lanes(query, bias, table, offsets, targets, target_offsets, ids, gap_open, gap_extend):  # pragma: no cover
    """Traceback bits ``(n, L, TRACE_LANES) uint8`` of the targets ``ids`` (lane ``k``: ``ids[k]``; lanes past
    them score padding) and each lane's best cell: ``(bits, best, where)`` with ``where[0]`` / ``where[1]`` the
    query row / target column of the first best cell (-1: no positive cell). Query rows must fit 16 bits."""
    lanes = TRACE_LANES
    tracks, length = query.shape
    pad = table.shape[1] - 1
    count = ids.shape[0]
    lengths = target_offsets[ids + 1] - target_offsets[ids]
    n = lengths.max() if count else 0
    bits = np.empty((n, length, lanes), np.uint8)
    col = np.empty((table.shape[0], lanes), np.int16)  # each table row gathered for each lane's target symbol
    scores = np.empty((length, lanes), np.int16)  # the column's summed score of each query row
    he = np.empty((length, 2, lanes), np.int16)  # H and E of each query row in the previous column
    he[:, 0, :] = 0
    he[:, 1, :] = _NEG
    v = np.zeros((4, lanes), np.int16)  # carried down a column: H above, F, H of the diagonal; and the best
    top = np.empty((2, lanes), np.int16)  # the column's first maximum and its row
    where = np.full((2, lanes), -1, np.int32)
    symbols = np.full((tracks, lanes), pad, np.uint8)
    gap_open, gap_extend = np.int16(gap_open), np.int16(gap_extend)
    for j in range(n):
        for lane in range(count):
            for t in range(tracks):
                symbols[t, lane] = targets[t, target_offsets[ids[lane]] + j] if j < lengths[lane] else pad
        for t in range(tracks):
            for a in range(offsets[t], offsets[t + 1]):
                for lane in range(lanes):
                    col[a, lane] = table[a, symbols[t, lane]]
        # summed before the cells, in loops of their own: summing inside the row loop kept it from vectorising
        for i in range(length):
            a, b = query[0, i], bias[i]
            for lane in range(lanes):
                scores[i, lane] = np.int16(col[a, lane] + b)
        for t in range(1, tracks):
            for i in range(length):
                a = offsets[t] + query[t, i]
                for lane in range(lanes):
                    scores[i, lane] = np.int16(scores[i, lane] + col[a, lane])
        for lane in range(lanes):
            v[_UP, lane] = 0
            v[_GAP, lane] = _NEG
            v[_LEFT, lane] = 0
            top[0, lane] = 0
            top[1, lane] = -1
        for i in range(length):
            row, summed, cells = np.int16(i), scores[i], bits[j, i]
            for lane in range(lanes):
                left = he[i, 0, lane]
                e_opened, e_extended = np.int16(left - gap_open), np.int16(he[i, 1, lane] - gap_extend)
                e = max(e_opened, e_extended)
                f_opened, f_extended = np.int16(v[_UP, lane] - gap_open), np.int16(v[_GAP, lane] - gap_extend)
                f = max(f_opened, f_extended)
                match = np.int16(v[_LEFT, lane] + summed[lane])
                score = max(match, np.int16(0))  # ties prefer a match, then E, then F
                source = np.int16(_DIAG) if match > 0 else np.int16(_ZERO)
                source = np.int16(_E) if e > score else source
                score = max(score, e)
                source = np.int16(_F) if f > score else source
                score = max(score, f)
                extended = (np.int16(_E_EXTENDED) if e_extended > e_opened else np.int16(0)) | (
                    np.int16(_F_EXTENDED) if f_extended > f_opened else np.int16(0)
                )
                cells[lane] = np.uint8(source | extended)
                v[_LEFT, lane] = left
                he[i, 0, lane] = score
                he[i, 1, lane] = e
                v[_GAP, lane] = f
                v[_UP, lane] = score
                better = score > top[0, lane]
                top[1, lane] = row if better else top[1, lane]
                top[0, lane] = max(top[0, lane], score)
        for lane in range(lanes):  # the first maximum in target-major order, as the reference's
            if top[0, lane] > v[_BEST, lane]:
                v[_BEST, lane] = top[0, lane]
                where[0, lane] = top[1, lane]
                where[1, lane] = j
    return bits, v[_BEST], where


def swipe_traces(
    query, bias, table, offsets, targets, target_offsets, ids, gap_open, gap_extend, limit
) -> list[tuple[int, int, int, np.ndarray]]:
    """``(score, qstart, tstart, ops)`` of one query against each of the targets ``ids`` (in their order), equal to
    :func:`ismtk.search.gotoh.sw_trace`'s. Arguments as :func:`ismtk.search.swipe.swipe_scores` takes them."""
    ids = np.asarray(ids, np.int64)
    lengths = target_offsets[ids + 1] - target_offsets[ids]
    order = np.argsort(-lengths, kind="stable")  # batches of similar lengths pad little
    out: list = [None] * len(ids)

    def reference(k: int) -> tuple[int, int, int, np.ndarray]:
        target = np.ascontiguousarray(targets[:, target_offsets[ids[k]] : target_offsets[ids[k] + 1]])
        return sw_trace(query_profile(query, bias, table, offsets), target, gap_open, gap_extend)

    for start in range(0, len(ids), TRACE_LANES):
        batch = order[start : start + TRACE_LANES]
        if query.shape[1] > _MAX_ROWS or int(lengths[batch].max()) * query.shape[1] * TRACE_LANES > MAX_TRACE_BYTES:
            for k in batch.tolist():
                out[k] = reference(k)
            continue
        bits, best, where = _fill_lanes(
            query, bias, table, offsets, targets, target_offsets, ids[batch], gap_open, gap_extend
        )
        for lane, k in enumerate(batch.tolist()):
            if best[lane] >= limit:  # may have overflowed 16 bits
                out[k] = reference(k)
            else:
                qstart, tstart, ops = walk_back(bits, int(where[0, lane]), int(where[1, lane]), lane)
                out[k] = (int(best[lane]), qstart, tstart, ops)
    return out
