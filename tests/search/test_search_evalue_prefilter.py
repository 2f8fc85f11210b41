"""Extreme-value fitting and the ungapped-diagonal prefilter."""

from __future__ import annotations

import numpy as np
import pytest

from ismtk.search.db import SequenceDB
from ismtk.search.evalue import bit_score, evalue, fit_gumbel
from ismtk.search.matrix import EvdParams, SubstitutionMatrix
from ismtk.search.prefilter import UngappedPrefilter
from ismtk.tokenizers import Alphabet


def test_censored_gumbel_fit_recovers_lambda_and_k():
    rng = np.random.default_rng(11)
    lam, k = 0.25, 0.02
    m = rng.integers(50, 400, 20_000)
    n = rng.integers(50, 400, 20_000)
    # inverse CDF of P(S < x) = exp(-K m n exp(-lam x)), plus a lower tail the censoring must ignore
    u = rng.random(20_000)
    x = (np.log(k * m * n) - np.log(-np.log(u))) / lam
    low = x < np.quantile(x, 0.4)
    x[low] -= rng.exponential(30, low.sum())  # a distorted lower tail, which censoring must ignore
    fit_lam, fit_k = fit_gumbel(x, m, n, censor_quantile=0.5)
    assert fit_lam == pytest.approx(lam, rel=0.05)
    assert fit_k == pytest.approx(k, rel=0.3)


def test_evalue_and_bits_are_monotone_and_consistent():
    p = EvdParams(10, 1, 0.2, 0.05)
    e = evalue(np.array([10.0, 20.0, 30.0]), 100, 10_000, p)
    assert np.all(np.diff(e) < 0)
    # E = m N 2^-bits
    assert np.allclose(e, 100 * 10_000 * 2.0 ** -bit_score(np.array([10.0, 20.0, 30.0]), p))


def _best_ungapped(q: np.ndarray, t: np.ndarray, scores: np.ndarray) -> int:
    """Best gap-free segment score over every diagonal, by brute force."""
    best = 0
    for d in range(-len(q) + 1, len(t)):
        run = 0
        for i in range(len(q)):
            j = i + d
            if 0 <= j < len(t):
                run = max(0, run + int(scores[q[i], t[j]]))
                best = max(best, run)
    return best


def test_ungapped_prefilter_scores_match_brute_force_and_keep_the_best():
    rng = np.random.default_rng(5)
    alphabet = Alphabet.of_size(6)
    s = rng.integers(-4, 2, size=(6, 6))
    s = np.triu(s) + np.triu(s, 1).T
    np.fill_diagonal(s, 5)
    matrix = SubstitutionMatrix(alphabet.symbols, s.astype(np.int32))
    seqs = [rng.integers(0, 6, rng.integers(1, 60)).astype(np.uint8) for _ in range(30)]
    db = SequenceDB.from_records(((f"s{i}", x, None) for i, x in enumerate(seqs)), alphabet, "t")
    prefilter = UngappedPrefilter(db, matrix)
    query = rng.integers(0, 6, 40).astype(np.uint8)
    got = prefilter.scores(query)
    assert got.tolist() == [_best_ungapped(query, t, s) for t in seqs]
    kept = prefilter.candidates(query, 5)
    assert len(kept) == 5 and np.all(np.diff(kept) > 0)
    assert got[kept].min() >= np.sort(got)[-5]
