"""parasail striped Smith-Waterman against a naive Gotoh implementation, traceback, saturation, threads."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import naive_sw

from ismtk.errors import InputError
from ismtk.search.align import Aligner, alignment_from_runs
from ismtk.search.matrix import SubstitutionMatrix
from ismtk.tokenizers import Alphabet


def _random_matrix(rng, k: int) -> SubstitutionMatrix:
    s = rng.integers(-6, 3, size=(k, k))
    s = np.triu(s) + np.triu(s, 1).T
    np.fill_diagonal(s, rng.integers(3, 9, size=k))
    return SubstitutionMatrix(Alphabet.of_size(k).symbols, s.astype(np.int32))


@pytest.mark.parametrize("k", [5, 20, 64])
def test_scores_match_naive_smith_waterman_with_reversed_query_correction(k):
    rng = np.random.default_rng(k)
    matrix = _random_matrix(rng, k)
    aligner = Aligner(matrix, matrix.symbols, gap_open=7, gap_extend=2)
    for _ in range(6):
        q = rng.integers(0, k, rng.integers(10, 40)).astype(np.uint8)
        t = rng.integers(0, k, rng.integers(10, 40)).astype(np.uint8)
        t[3:9] = q[: len(t[3:9])]  # give the pair something to find
        raw, corrected = aligner.score(aligner.profile(q), aligner.symbols(t))
        forward = naive_sw(q, t, matrix.scores, 7, 2)
        assert raw == forward
        assert corrected == forward - naive_sw(q[::-1], t, matrix.scores, 7, 2)


def test_traceback_rescores_to_the_optimal_score():
    rng = np.random.default_rng(3)
    matrix = _random_matrix(rng, 20)
    aligner = Aligner(matrix, matrix.symbols, gap_open=5, gap_extend=1)
    for _ in range(10):
        q = rng.integers(0, 20, 60).astype(np.uint8)
        t = np.concatenate([q[10:30], rng.integers(0, 20, 4), q[30:50]]).astype(np.uint8)
        aln = aligner.trace(aligner.profile(q), aligner.symbols(t))
        pairs = aln.pairs
        gap_cost = 0
        for (i0, j0), (i1, j1) in zip(pairs[:-1], pairs[1:], strict=True):
            for n in (i1 - i0 - 1, j1 - j0 - 1):
                gap_cost += 5 + (n - 1) * 1 if n > 0 else 0
        rescored = int(matrix.scores[q[pairs[:, 0]], t[pairs[:, 1]]].sum()) - gap_cost
        assert rescored == aln.score == naive_sw(q, t, matrix.scores, 5, 1)
        assert (aln.qstart, aln.tstart) == tuple(pairs[0]) and (aln.qend, aln.tend) == tuple(pairs[-1] + 1)


def test_alignment_from_runs_walks_and_merges_runs_like_a_plain_loop():
    rng = np.random.default_rng(11)
    for _ in range(200):
        size = int(rng.integers(0, 12))
        lengths, ops = rng.integers(1, 5, size), rng.choice(list("=XMID"), size)
        runs = [(int(n), str(op)) for n, op in zip(lengths, ops, strict=True)]
        qstart, tstart = (int(x) for x in rng.integers(0, 30, 2))
        i, j, pairs, merged = qstart, tstart, [], []
        for n, op in runs:
            op = "M" if op in "=X" else op
            merged = merged[:-1] + [[merged[-1][0] + n, op]] if merged and merged[-1][1] == op else [*merged, [n, op]]
            for _ in range(n):
                if op == "M":
                    pairs.append((i, j))
                i, j = i + (op != "D"), j + (op != "I")
        aln = alignment_from_runs(5, qstart, tstart, runs)
        assert aln.pairs.reshape(-1, 2).tolist() == [list(p) for p in pairs]
        assert (aln.score, aln.qstart, aln.qend, aln.tstart, aln.tend) == (5, qstart, i, tstart, j)
        assert aln.cigar == "".join(f"{n}{op}" for n, op in merged)
        assert (aln.columns, aln.gap_opens) == (sum(n for n, _ in runs), sum(op != "M" for _, op in merged))


def test_16_bit_saturation_falls_back_to_32_bit():
    matrix = SubstitutionMatrix("AB", np.array([[10, -1], [-1, 10]], np.int32))
    aligner = Aligner(matrix, "AB")
    q = np.zeros(4000, np.uint8)
    raw, _ = aligner.score(aligner.profile(q), aligner.symbols(q))
    assert raw == 40000


def test_bad_gap_penalties_are_rejected():
    matrix = SubstitutionMatrix("AB", np.eye(2, dtype=np.int32))
    with pytest.raises(InputError):
        Aligner(matrix, "AB", gap_open=1, gap_extend=3)


def test_aligned_text_columns_follow_the_cigar():
    """qaln/taln are written column by column as the CIGAR runs, also where a target-only run comes right before a
    query-only one (parasail's traces have such runs), so that the three columns agree."""
    from ismtk.search.db import SequenceDB
    from ismtk.search.m8 import COLUMNS
    from ismtk.search.search import Hit
    from ismtk.sequence import AA_ALPHABET, aa_indices

    def db(name: str, seq: str) -> SequenceDB:
        return SequenceDB.from_records([(name, aa_indices(np.frombuffer(seq.encode(), np.uint8)), seq)],
                                       AA_ALPHABET, "aa")

    query, target = db("q", "ABCDEF"), db("t", "UVWXYZ")
    aln = alignment_from_runs(5, 0, 0, [(2, "M"), (1, "D"), (1, "I"), (2, "M")])
    hit = Hit(0, 0, 5, 5, 1.0, 1.0, aln)
    assert (aln.cigar, COLUMNS["qaln"](hit, query, target), COLUMNS["taln"](hit, query, target)) == (
        "2M1D1I2M", "AB-CDE", "UVW-XY")
