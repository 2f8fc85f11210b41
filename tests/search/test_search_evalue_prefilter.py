"""Extreme-value fitting and the k-mer prefilter."""

from __future__ import annotations

import numpy as np
import pytest

from ismtk.search.db import SequenceDB
from ismtk.search.evalue import bit_score, evalue, fit_gumbel
from ismtk.search.matrix import EvdParams
from ismtk.search.prefilter import KmerIndex, kmer_codes
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


def test_prefilter_votes_match_brute_force():
    rng = np.random.default_rng(5)
    alphabet = Alphabet.of_size(6)
    seqs = [rng.integers(0, 6, rng.integers(10, 60)).astype(np.uint8) for _ in range(30)]
    db = SequenceDB.from_records(((f"s{i}", s, None) for i, s in enumerate(seqs)), alphabet, "t")
    index = KmerIndex(db, k=3, band=4)
    query = rng.integers(0, 6, 40).astype(np.uint8)
    got = index.scores(query)
    q = kmer_codes(query, 3, 6)
    all_codes = [c for s in seqs for c in kmer_codes(s, 3, 6)]
    for t, s in enumerate(seqs):
        c = kmer_codes(s, 3, 6)
        votes: dict[int, float] = {}
        for i, a in enumerate(q):
            for j, b in enumerate(c):
                if a == b:
                    band = (j - i + len(q)) // 4
                    votes[band] = votes.get(band, 0) + np.log(len(all_codes) / all_codes.count(a))
        assert got[t] == pytest.approx(max(votes.values(), default=0))
    kept = index.candidates(query, 5)
    assert len(kept) == 5 and set(got[kept]) >= {got.max()}
