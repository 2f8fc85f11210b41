"""The vectorised multi-track kernel (swipe) against the scalar reference (gotoh), parasail and a naive SW."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import parasail
import pytest
from helpers import naive_sw

from ismtk.errors import InputError
from ismtk.search.combined import track_codes
from ismtk.search.gotoh import sw_score
from ismtk.search.matrix import load_matrix
from ismtk.search.swipe import _KERNELS, LANE_CHOICES
from ismtk.search.tracks import ScoreTracks
from ismtk.sequence import AA_ALPHABET
from ismtk.workflows.search import load_search_db


def _random_matrix(rng, k: int) -> np.ndarray:
    s = rng.integers(-6, 4, size=(k, k))
    s = np.triu(s) + np.triu(s, 1).T
    np.fill_diagonal(s, rng.integers(3, 9, size=k))
    return s


def _reference(tracks: ScoreTracks, query, targets, offsets, ids, gap_open, gap_extend, bias=None) -> np.ndarray:
    forward = tracks.profile(query, bias)
    reverse = np.ascontiguousarray(forward[:, :, ::-1])
    out = []
    for j in ids:
        target = np.ascontiguousarray(targets[:, offsets[j] : offsets[j + 1]])
        raw = sw_score(forward, target, gap_open, gap_extend)
        out.append((raw, raw - sw_score(reverse, target, gap_open, gap_extend)))
    return np.array(out, np.int64).reshape(-1, 2)


def _random_targets(rng, sizes, lengths, query=None):
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    targets = np.stack([rng.integers(0, k, offsets[-1]) for k in sizes]).astype(np.uint8)
    if query is not None:  # plant pieces of the query (all tracks, with a gap) so that alignments are not just noise
        for j in range(0, len(lengths), 7):
            n = min(lengths[j] // 2, query.shape[1] // 2)
            if not n:
                continue
            targets[:, offsets[j] : offsets[j] + n] = query[:, :n]
            targets[:, offsets[j + 1] - n : offsets[j + 1]] = query[:, -n:]
    return targets, offsets


@pytest.mark.parametrize("sizes", [(20,), (20, 21), (20, 64, 21), (5, 7, 3, 9)])
def test_swipe_equals_the_reference_kernel_on_random_tracks(sizes):
    rng = np.random.default_rng(len(sizes) * 100 + sizes[0])
    tracks = ScoreTracks.weighted([_random_matrix(rng, k) for k in sizes], [1.0] + [0.5, 0.75, 1.5][: len(sizes) - 1])
    query = np.stack([rng.integers(0, k, 90) for k in sizes]).astype(np.uint8)
    # more than one batch of lanes, lengths from 1 to well over the query's, one empty entry
    lengths = np.concatenate([[0, 1, 2], rng.integers(3, 260, 2 * max(LANE_CHOICES) + 11)])
    targets, offsets = _random_targets(rng, sizes, lengths, query)
    ids = rng.permutation(len(lengths))
    for gaps in ((10, 1), (5, 2), (3, 3)):
        got = tracks.score_many(query, targets, offsets, ids, *gaps)
        assert got.tolist() == _reference(tracks, query, targets, offsets, ids, *gaps).tolist()
    assert (got[:, 0] > 20).sum() > 10  # the planted pieces were found
    expected = _reference(tracks, query, targets, offsets, ids[:40], 10, 1).tolist()
    for lanes, kernel in _KERNELS.items():  # every lane count, whichever swipe_scores picks for these sizes
        zero = np.zeros(query.shape[1], np.int16)
        order = np.argsort(offsets[ids[:40]] - offsets[ids[:40] + 1], kind="stable")  # longest first
        args = query, zero, tracks._table16, tracks._offsets, targets, offsets, ids[:40], order, 10, 1, tracks._limit
        assert kernel(*args, 2).tolist() == expected, lanes
        assert kernel(*args, 1)[:, 0].tolist() == [raw for raw, _ in expected], lanes  # the query alone


#: A fresh process's inputs of the lane kernels (for the tests that load or compile them in new processes).
_KERNEL_INPUTS = """
import json, sys
import numpy as np
from ismtk.search import swipe
rng = np.random.default_rng(0)
query = rng.integers(0, 20, (1, 60)).astype(np.uint8)
table = rng.integers(-4, 5, (20, 21)).astype(np.int16)
lengths = rng.integers(30, 200, 150)
offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
targets = rng.integers(0, 20, (1, offsets[-1])).astype(np.uint8)
ids = np.arange(150, dtype=np.int64)
args = (query, np.zeros(60, np.int16), table, np.array([0, 20]), targets, offsets, ids, 10, 1, 30000)
"""
_CALL_KERNELS = _KERNEL_INPUTS + """
order = np.argsort(-lengths, kind="stable").astype(np.int64)
for lanes in map(int, sys.argv[1].split(",")):
    swipe._KERNELS[lanes](*args[:7], order, *args[7:], 2)
"""


def test_lane_kernels_cached_by_different_processes_load_together(tmp_path):
    """numba names compiled code, and the Environment of constants its wrapper reads, by qualified name, argument
    types and a counter that restarts in every process: the lane kernels shared one name, so one cached by one
    process and another compiled beside it by a second shared one Environment, and a third process loading both
    failed on return ("In 'NRT_adapt_ndarray_to_python', 'descr' is NULL"), until the cache was deleted."""
    assert len({kernel.py_func.__qualname__ for kernel in _KERNELS.values()}) == len(_KERNELS)
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(Path(__file__).parents[2])}
    for lanes in ("64", "64,32", "64,32"):
        run = subprocess.run([sys.executable, "-c", _CALL_KERNELS, lanes], env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr[-500:]


def test_a_per_position_bias_is_scored_like_the_reference_profile():
    rng = np.random.default_rng(9)
    tracks = ScoreTracks.weighted([_random_matrix(rng, 20), _random_matrix(rng, 21)], [1.0, 0.5])
    query = np.stack([rng.integers(0, 20, 70), rng.integers(0, 21, 70)]).astype(np.uint8)
    targets, offsets = _random_targets(rng, (20, 21), rng.integers(1, 150, 100), query)
    bias = rng.integers(-3, 4, 70).astype(np.int16)
    ids = np.arange(100)
    for subset in (ids, ids[:2]):  # the lanes and the one-by-one path
        got = tracks.score_many(query, targets, offsets, subset, 10, 1, bias)
        assert got.tolist() == _reference(tracks, query, targets, offsets, subset, 10, 1, bias).tolist()
    assert got.tolist() != tracks.score_many(query, targets, offsets, ids[:2], 10, 1).tolist()


def test_composition_bias_follows_its_formula():
    rng = np.random.default_rng(10)
    matrices = [_random_matrix(rng, 6), _random_matrix(rng, 4)]
    tracks = ScoreTracks(tuple(m.astype(np.int32) for m in matrices))
    query = np.stack([rng.integers(0, 6, 30), rng.integers(0, 4, 30)]).astype(np.uint8)
    query[0, 10:20] = 2  # a low-complexity run: its residues are corrected down
    background = [np.full(6, 1 / 6), np.array([0.1, 0.2, 0.3, 0.4])]
    got = tracks.composition_bias(query, background, 0.5, window=8)
    for i in range(30):
        window = [j for j in range(max(0, i - 4), min(30, i + 4)) if j != i]
        delta = sum(
            m[query[t, i]] @ background[t] - np.mean([m[query[t, i], query[t, j]] for j in window])
            for t, m in enumerate(matrices)
        )
        assert got[i] == np.rint(0.5 * delta)
    assert got[12:18].mean() < got[:8].mean()


def test_two_tracks_are_smith_waterman_over_the_product_alphabet():
    rng = np.random.default_rng(7)
    tok, aa = _random_matrix(rng, 6), _random_matrix(rng, 4)
    tracks = ScoreTracks.weighted([tok, aa], [1.0, 0.5])
    product = (tok[:, None, :, None] + np.rint(0.5 * aa)[None, :, None, :]).reshape(24, 24).astype(np.int64)
    query = np.stack([rng.integers(0, 6, 40), rng.integers(0, 4, 40)]).astype(np.uint8)
    targets, offsets = _random_targets(rng, (6, 4), rng.integers(1, 60, 12), query)
    got = tracks.score_many(query, targets, offsets, np.arange(12), 7, 2)
    flat_query = query[0].astype(np.int64) * 4 + query[1]
    for j in range(12):
        flat = targets[0, offsets[j] : offsets[j + 1]].astype(np.int64) * 4 + targets[1, offsets[j] : offsets[j + 1]]
        raw = naive_sw(flat_query, flat, product, 7, 2)
        assert got[j].tolist() == [raw, raw - naive_sw(flat_query[::-1], flat, product, 7, 2)]


def test_scores_past_sixteen_bits_are_recomputed_exactly():
    rng = np.random.default_rng(3)
    matrix = _random_matrix(rng, 20) + 8 * np.eye(20, dtype=np.int64)
    tracks = ScoreTracks((matrix.astype(np.int32),))
    query = rng.integers(0, 20, (1, 3000)).astype(np.uint8)  # a self-alignment scores over 32,767
    targets = np.concatenate([query, rng.integers(0, 20, (1, 200)).astype(np.uint8)], axis=1)
    offsets = np.array([0, 3000, 3200])
    got = tracks.score_many(query, targets, offsets, np.array([0, 1]), 10, 1)
    assert got[0, 0] > 32767
    assert got.tolist() == _reference(tracks, query, targets, offsets, [0, 1], 10, 1).tolist()


def test_one_track_equals_parasail_on_real_structures(domains_dir):
    db = load_search_db([domains_dir], "3di")
    matrix = load_matrix(None, "3di")
    symbols = db.alphabet.symbols
    tracks = ScoreTracks((matrix.restricted(symbols).astype(np.int32),))
    pmatrix = matrix.to_parasail(symbols)
    ascii_symbols = np.frombuffer(symbols.encode(), np.uint8)
    letters = [ascii_symbols[db.token_seq(j)].tobytes() for j in range(len(db))]
    codes = np.asarray(db.tokens)[None, :]
    for i in range(len(db)):
        got = tracks.score_many(db.token_seq(i)[None, :], codes, db.offsets, np.arange(len(db)), 10, 1)
        for j in range(len(db)):
            raw = parasail.sw_striped_16(letters[i], letters[j], 10, 1, pmatrix).score
            backward = parasail.sw_striped_16(letters[i][::-1], letters[j], 10, 1, pmatrix).score
            assert got[j].tolist() == [raw, raw - backward]


def test_tokens_and_amino_acids_equal_the_reference_on_real_structures(domains_dir):
    db = load_search_db([domains_dir], "3di")
    tracks = ScoreTracks.weighted(
        [
            load_matrix(None, "3di").restricted(db.alphabet.symbols),
            load_matrix(None, "aa").restricted(AA_ALPHABET.symbols),
        ],
        [1.0, 0.5],
    )
    codes = track_codes(db, ("tokens", "aa"))
    ids = np.arange(len(db))
    for i in range(len(db)):
        query = track_codes(db, ("tokens", "aa"), i)
        got = tracks.score_many(query, codes, db.offsets, ids, 10, 1)
        assert got.tolist() == _reference(tracks, query, codes, db.offsets, ids, 10, 1).tolist()


def test_tracks_are_checked():
    with pytest.raises(InputError, match="positive weight"):
        ScoreTracks.weighted([np.eye(3)], [0.0])
    with pytest.raises(InputError, match="square"):
        ScoreTracks((np.zeros((3, 4), np.int32),))
    tracks = ScoreTracks((np.eye(3, dtype=np.int32),))
    with pytest.raises(InputError, match="1 track"):
        tracks.score_many(
            np.zeros((2, 5), np.uint8), np.zeros((1, 5), np.uint8), np.array([0, 5]), np.array([0]), 10, 1
        )


def test_search_with_composition_bias_traces_the_scores_it_ranks(domains_dir):
    from ismtk.search.search import Searcher, SearchOptions

    db = load_search_db([domains_dir], "3di")
    for weight in (0.0, 0.5):
        searcher = Searcher(
            db, load_matrix(None, "3di"), SearchOptions(aa_weight=weight, comp_bias=0.5, max_evalue=1e9)
        )
        assert searcher.evd_fitted
        hits = searcher.search_one(db, 0)
        assert hits[0].target == 0 and len(hits) == len(db)
        assert all(h.alignment.score == h.raw for h in hits)
        plain = Searcher(db, load_matrix(None, "3di"), SearchOptions(aa_weight=weight, max_evalue=1e9)).search_one(
            db, 0
        )
        assert [h.raw for h in hits] != [h.raw for h in plain]


_LOAD_KERNELS = _KERNEL_INPUTS + """
swipe.load_kernels(*args, subsets=sys.argv[1] == "subsets")
print(json.dumps({"picked": swipe._lanes(lengths), "one_by_one": bool(swipe._one_by_one.signatures),
                  "loaded": sorted(n for n, k in swipe._KERNELS.items() if k.signatures)}))
"""


@pytest.mark.parametrize("subsets", [False, True])
def test_load_kernels_loads_what_the_threads_will_call_and_no_more(subsets):
    """A fresh process (nothing loaded yet): fixed targets load only their lane count's kernel; a prefilter's
    subsets may pick any, so all of them and the one-by-one path are loaded before the threads start."""
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_KERNELS, "subsets" if subsets else "fixed"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)
    if subsets:
        assert state["loaded"] == sorted(LANE_CHOICES) and state["one_by_one"]
    else:
        assert state["loaded"] == [state["picked"]] and not state["one_by_one"]
