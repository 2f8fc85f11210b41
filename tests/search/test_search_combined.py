"""Token + amino-acid scoring (3Di+AA): the numba Gotoh kernels against parasail and a naive Smith-Waterman."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers import naive_sw

from ismtk.errors import InputError
from ismtk.search.align import Aligner
from ismtk.search.combined import CombinedAligner
from ismtk.search.db import SequenceDB
from ismtk.search.matrix import SubstitutionMatrix, load_matrix
from ismtk.sequence import AA_ALPHABET
from ismtk.tokenizers import Alphabet

AA = AA_ALPHABET.symbols


def _random_matrix(rng, symbols: str) -> SubstitutionMatrix:
    k = len(symbols)
    s = rng.integers(-6, 3, size=(k, k))
    s = np.triu(s) + np.triu(s, 1).T
    np.fill_diagonal(s, rng.integers(3, 9, size=k))
    return SubstitutionMatrix(symbols, s.astype(np.int32))


def _db(rng, k: int, lengths: list[int]) -> SequenceDB:
    records = []
    for n, length in enumerate(lengths):
        tokens = rng.integers(0, k, length).astype(np.uint8)
        aa = "".join(rng.choice(list(AA[:20]), length))
        records.append((f"s{n}", tokens, aa))
    # a shared segment (tokens and amino acids) so alignments have something to find
    shared_tokens, shared_aa = records[0][1][5:25], records[0][2][5:25]
    t1, a1 = records[1][1].copy(), records[1][2]
    t1[10:30] = shared_tokens
    records[1] = ("s1", t1, a1[:10] + shared_aa + a1[30:])
    return SequenceDB.from_records(records, Alphabet.of_size(k), "t")


@pytest.mark.parametrize("k", [20, 64])
def test_combined_score_is_smith_waterman_over_the_summed_matrix(k):
    rng = np.random.default_rng(k)
    tokens, aa = _random_matrix(rng, Alphabet.of_size(k).symbols), _random_matrix(rng, AA)
    db = _db(rng, k, [45, 50, 17, 33])
    aligner = CombinedAligner(tokens, tokens.symbols, aa, 0.5, gap_open=7, gap_extend=2)
    summed = tokens.scores[:, None, :, None] + np.rint(0.5 * aa.scores)[None, :, None, :]
    summed = summed.reshape(k * 21, k * 21).astype(np.int64)
    codes = [db.token_seq(i).astype(np.int64) * 21 + np.array([AA.index(c) for c in db.aa_seq(i)]) for i in range(4)]
    profile = aligner.query(db, 0)
    scores = aligner.score_many(profile, [aligner.target(db, j) for j in range(4)])
    for j in range(4):
        forward = naive_sw(codes[0], codes[j], summed, 7, 2)
        assert scores[j, 0] == forward
        assert scores[j, 1] == forward - naive_sw(codes[0][::-1], codes[j], summed, 7, 2)


def test_zero_amino_acid_matrix_gives_parasail_token_scores():
    rng = np.random.default_rng(2)
    tokens = _random_matrix(rng, Alphabet.of_size(20).symbols)
    zero = SubstitutionMatrix(AA, np.zeros((21, 21), np.int32))
    db = _db(rng, 20, [120, 90, 300, 60, 75])
    combined = CombinedAligner(tokens, tokens.symbols, zero, 1.0)
    plain = Aligner(tokens, tokens.symbols)
    for i in range(len(db)):
        got = combined.score_many(combined.query(db, i), [combined.target(db, j) for j in range(len(db))])
        want = plain.score_many(plain.query(db, i), [plain.target(db, j) for j in range(len(db))])
        assert got.tolist() == [list(w) for w in want]


def test_traceback_rescores_to_the_optimal_score():
    rng = np.random.default_rng(3)
    tokens, aa = _random_matrix(rng, Alphabet.of_size(20).symbols), _random_matrix(rng, AA)
    aligner = CombinedAligner(tokens, tokens.symbols, aa, 1.0, gap_open=5, gap_extend=1)
    for seed in range(8):
        db = _db(np.random.default_rng(seed), 20, [60, 70, 40])
        for j in (1, 2):
            profile, target = aligner.query(db, 0), aligner.target(db, j)
            aln = aligner.trace(profile, target)
            pairs = aln.pairs
            gap_cost = sum(
                5 + (n - 1)
                for (i0, j0), (i1, j1) in zip(pairs[:-1], pairs[1:], strict=True)
                for n in (i1 - i0 - 1, j1 - j0 - 1)
                if n
            )
            table = aligner.tracks.profile(profile)  # (T, C, L)
            rescored = sum(int(table[t, target[t, pairs[:, 1]], pairs[:, 0]].sum()) for t in range(2)) - gap_cost
            assert rescored == aln.score == aligner.score(profile, target)[0]
            assert (aln.qstart, aln.tstart) == tuple(pairs[0]) and (aln.qend, aln.tend) == tuple(pairs[-1] + 1)
            assert aln.columns == len(pairs) + sum(int(n) for n in re.findall(r"(\d+)[ID]", aln.cigar))


def test_amino_acids_are_required_and_weights_checked():
    rng = np.random.default_rng(4)
    tokens = _random_matrix(rng, Alphabet.of_size(20).symbols)
    blosum = load_matrix(None, "aa")
    no_aa = SequenceDB.from_records([("a", rng.integers(0, 20, 30).astype(np.uint8), None)], Alphabet.of_size(20), "t")
    aligner = CombinedAligner(tokens, tokens.symbols, blosum, 1.0)
    with pytest.raises(InputError, match="amino acids"):
        aligner.query(no_aa, 0)
    with pytest.raises(InputError, match="positive"):
        CombinedAligner(tokens, tokens.symbols, blosum, 0.0)


@pytest.mark.parametrize("aa_weight", [0.0, 0.5])
def test_a_target_that_aligns_no_pair_is_no_hit_even_under_an_infinite_cutoff(aa_weight):
    """Raw score 0 means no aligned pair: such targets are left out (they were reported with positions past the
    query's end) on the one-track and the multi-track paths."""
    from ismtk.search.search import Searcher, SearchOptions

    rng = np.random.default_rng(5)
    tokens, aa = _random_matrix(rng, Alphabet.of_size(20).symbols), _random_matrix(rng, AA)
    tokens.scores[0, :], tokens.scores[:, 0] = -5, -5  # symbol 0 matches nothing
    aa.scores[0, :], aa.scores[:, 0] = -5, -5
    db = _db(rng, 20, [30, 40, 25])
    query = SequenceDB.from_records([("q", np.zeros(12, np.uint8), AA[0] * 12)], Alphabet.of_size(20), "t")
    options = SearchOptions(aa_weight=aa_weight, max_evalue=float("inf"), trace=True, threads=1)
    searcher = Searcher(db, tokens, options, aa_matrix=aa)
    assert searcher.search_one(query, 0) == []
    hits = searcher.search_one(db, 0)  # the self-hit and others that align: kept, with real positions
    assert hits and all(h.raw > 0 and len(h.alignment.pairs) for h in hits)
