"""Tracebacks of many hits side by side (swipe_trace) against the scalar reference (gotoh.sw_trace)."""

from __future__ import annotations

import numpy as np
import pytest
from test_search_swipe import _random_matrix, _random_targets

from ismtk.search import swipe_trace
from ismtk.search.gotoh import sw_trace
from ismtk.search.swipe_trace import TRACE_LANES, swipe_traces
from ismtk.search.tracks import ScoreTracks


def _case(sizes, seed, n_targets):
    rng = np.random.default_rng(seed)
    tracks = ScoreTracks.weighted([_random_matrix(rng, k) for k in sizes], [1.0] + [0.5, 0.75][: len(sizes) - 1])
    query = np.stack([rng.integers(0, k, 70) for k in sizes]).astype(np.uint8)
    lengths = np.concatenate([[0, 1], rng.integers(2, 220, n_targets - 2)])
    targets, offsets = _random_targets(rng, sizes, lengths, query)
    bias = rng.integers(-3, 4, query.shape[1]).astype(np.int16)
    return tracks, query, targets, offsets, rng.permutation(n_targets), bias


def _reference(tracks, query, targets, offsets, ids, gaps, bias):
    profile = tracks.profile(query, bias)
    return [sw_trace(profile, np.ascontiguousarray(targets[:, offsets[j] : offsets[j + 1]]), *gaps) for j in ids]


def _same(got, want) -> bool:
    return len(got) == len(want) and all(
        tuple(g[:3]) == tuple(w[:3]) and np.array_equal(g[3], w[3]) for g, w in zip(got, want, strict=True)
    )


@pytest.mark.parametrize("sizes", [(20,), (20, 21), (20, 64, 21)])
def test_lanes_trace_what_the_reference_traces(sizes):
    """Every batch of lanes (more targets than lanes, an empty and a one-residue target, lengths well past the
    query's, a per-position bias) gives the reference's score, start and operations, tie for tie."""
    tracks, query, targets, offsets, ids, bias = _case(sizes, len(sizes), 2 * TRACE_LANES + 9)
    for gaps in ((10, 1), (5, 2)):
        got = tracks.trace_many(query, targets, offsets, ids, *gaps, bias)
        want = _reference(tracks, query, targets, offsets, ids, gaps, bias)
        assert _same(got, want)
    assert sum(len(ops) > 30 for *_, ops in got) > 5  # the planted pieces were aligned, not just noise


def test_lanes_that_may_overflow_and_batches_too_large_are_traced_by_the_reference(monkeypatch):
    tracks, query, targets, offsets, ids, bias = _case((20, 21), 7, 40)
    want = _reference(tracks, query, targets, offsets, ids, (10, 1), bias)
    assert sum(score >= 25 for score, *_ in want) > 3
    args = query, bias, tracks._table16, tracks._offsets, targets, offsets, ids, 10, 1
    assert _same(swipe_traces(*args, 25), want)  # lanes scoring >= 25 are recomputed in 32 bits
    monkeypatch.setattr(swipe_trace, "MAX_TRACE_BYTES", 1)
    assert _same(swipe_traces(*args, tracks._limit), want)
