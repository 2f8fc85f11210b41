"""Extreme-value fitting and the k-mer prefilter."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ismtk.errors import InputError, TooFewToFit
from ismtk.search import prefilter
from ismtk.search.db import SequenceDB
from ismtk.search.evalue import EVD_FILE, bit_score, evalue, fit_gumbel, read_evd_fits, write_evd_fits
from ismtk.search.matrix import EvdParams, load_matrix
from ismtk.search.prefilter import KmerIndex, KmerPrefilter, PrefilterSettings, similar_kmers
from ismtk.search.search import parse_split, shard
from ismtk.search.tracks import ScoreTracks
from ismtk.sequence import AA_ALPHABET
from ismtk.tokenizers import Alphabet


@pytest.mark.parametrize("lam", [0.25, 0.0005])  # BLOSUM62-like and far wider than any shipped score
def test_censored_gumbel_fit_recovers_lambda_and_k(lam):
    rng = np.random.default_rng(11)
    k = 0.02
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
    with pytest.raises(TooFewToFit, match="edge of lambda's range"):
        fit_gumbel(x * lam / 1e-8, m, n)  # lambda 1e-8: outside the range searched, said so


def test_evalue_and_bits_are_monotone_and_consistent():
    p = EvdParams(10, 1, 0.2, 0.05)
    e = evalue(np.array([10.0, 20.0, 30.0]), 100, 10_000, p)
    assert np.all(np.diff(e) < 0)
    # E = m N 2^-bits
    assert np.allclose(e, 100 * 10_000 * 2.0 ** -bit_score(np.array([10.0, 20.0, 30.0]), p))


def _brute_similar(query: np.ndarray, scores: np.ndarray, k: int, threshold: int) -> set[tuple[int, int]]:
    """(query position, k-mer key) of every k-mer scoring at least ``threshold`` against a query k-mer."""
    size = scores.shape[0]
    out = set()
    for i in range(len(query) - k + 1):
        for kmer in itertools.product(range(size), repeat=k):
            if sum(int(scores[query[i + m], kmer[m]]) for m in range(k)) >= threshold:
                out.add((i, int(np.ravel_multi_index(kmer, (size,) * k))))
    return out


def _random_matrix(rng, k: int) -> np.ndarray:
    s = rng.integers(-4, 2, size=(k, k))
    s = np.triu(s) + np.triu(s, 1).T
    np.fill_diagonal(s, rng.integers(4, 7, size=k))
    return s


def test_evd_fit_files_round_trip_and_bad_ones_are_named(tmp_path):
    shipped = read_evd_fits(EVD_FILE)
    assert shipped and all({"gap_open", "gap_extend", "lambda", "k"} <= set(fit) for fit in shipped.values())
    write_evd_fits(tmp_path / "evd.json", shipped)
    assert read_evd_fits(tmp_path / "evd.json") == shipped
    for name, text in [("empty.json", ""), ("list.json", "[]"), ("other.json", '{"format": "x", "fits": []}'),
                       ("nokey.json", '{"format": "ismtk-evd/1", "fits": [{"lambda": 1}]}')]:
        (tmp_path / name).write_text(text)
        with pytest.raises(InputError, match=name):
            read_evd_fits(tmp_path / name)
    with pytest.raises(InputError, match="missing.json"):
        read_evd_fits(tmp_path / "missing.json")


def test_similar_kmers_are_exactly_those_above_the_threshold():
    rng = np.random.default_rng(5)
    scores = _random_matrix(rng, 5)
    query = rng.integers(0, 5, 12).astype(np.uint8)
    for k, threshold in ((2, 4), (3, 6), (3, 11)):
        keys, where = similar_kmers(query, scores.astype(np.int64), k, threshold)
        assert set(zip(where.tolist(), keys.tolist(), strict=True)) == _brute_similar(query, scores, k, threshold)
        assert len(keys) == len(set(zip(where.tolist(), keys.tolist(), strict=True)))  # each once


def test_kmer_index_lists_every_kmer_of_the_indexed_entries():
    rng = np.random.default_rng(6)
    seqs = [rng.integers(0, 4, n).astype(np.uint8) for n in (0, 2, 3, 9, 20)]
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in seqs])])
    tokens = np.concatenate(seqs)
    index = KmerIndex.build(tokens, offsets, np.array([1, 2, 3, 4]), 3, 4)
    listed = {(int(e), int(p), key) for key in range(4**3)
              for e, p in zip(index.entries[index.starts[key]:index.starts[key + 1]],
                              index.positions[index.starts[key]:index.starts[key + 1]], strict=True)}
    expected = {(e, p, int(np.ravel_multi_index(tuple(seqs[e][p:p + 3]), (4, 4, 4))))
                for e in (1, 2, 3, 4) for p in range(len(seqs[e]) - 2)}
    assert listed == expected


def test_kmer_index_positions_are_16_bit_unless_an_entry_is_too_long(monkeypatch):
    rng = np.random.default_rng(7)
    offsets = np.array([0, 40, 45, 130])
    tokens = rng.integers(0, 5, offsets[-1]).astype(np.uint8)
    compact = KmerIndex.build(tokens, offsets, np.arange(3), 3, 5)
    monkeypatch.setattr(prefilter, "POSITION_LIMIT", 84)  # entry 2 (85 residues) is now too long for 16 bits
    wide = KmerIndex.build(tokens, offsets, np.arange(3), 3, 5)
    assert compact.positions.dtype == np.uint16 and wide.positions.dtype == np.int32
    assert compact.nbytes < wide.nbytes
    assert np.array_equal(compact.starts, wide.starts) and np.array_equal(compact.entries, wide.entries)
    assert np.array_equal(compact.positions, wide.positions)
    short = KmerIndex.build(tokens, offsets, np.arange(2), 3, 5)  # only the indexed entries count
    assert short.positions.dtype == np.uint16


def test_prefilter_ranks_a_gapped_homolog_first_and_ignores_unrelated_targets():
    rng = np.random.default_rng(8)
    alphabet = Alphabet.of_size(20)
    scores = _random_matrix(rng, 20)
    query = rng.integers(0, 20, 120).astype(np.uint8)
    # the homolog: two query blocks with a 3-residue insertion between them, inside unrelated sequence
    homolog = np.concatenate([rng.integers(0, 20, 30), query[10:50], rng.integers(0, 20, 3), query[50:100],
                              rng.integers(0, 20, 30)]).astype(np.uint8)
    seqs = [rng.integers(0, 20, int(n)).astype(np.uint8) for n in rng.integers(60, 200, 40)]
    seqs.insert(17, homolog)
    db = SequenceDB.from_records(((f"s{i}", x, None) for i, x in enumerate(seqs)), alphabet, "t")
    codes = np.asarray(db.tokens)[None, :]
    matrix = scores.astype(np.int32)
    settings = PrefilterSettings(kmer=3, kmer_threshold=14)
    prefilter = KmerPrefilter(matrix, codes, db.offsets, np.arange(len(db)), settings)
    profile = ScoreTracks((matrix,)).profile(query[None, :])
    seeded, scores = prefilter.seeded(query[None, :], profile)
    got = np.zeros(len(db), np.int64)
    got[seeded] = scores
    assert int(np.argmax(got)) == 17
    # both blocks are chained across the insertion: more than either block's own gap-free score
    block = int(profile[0, query[10:50], np.arange(10, 50)].sum())
    assert got[17] > block
    kept = prefilter.candidates(query[None, :], profile, 5)
    assert 17 in kept and len(kept) <= 5 and np.all(np.diff(kept) > 0)
    # a shard's index sees only its entries
    half = KmerPrefilter(matrix, codes, db.offsets, np.arange(20, len(db)), settings)
    assert half.seeded(query[None, :], profile)[0].min() >= 20
    # the scratch is left clean: the same query gives the same answer again
    assert [x.tolist() for x in prefilter.seeded(query[None, :], profile)] == [seeded.tolist(), scores.tolist()]


def test_chained_segments_pay_an_affine_gap_for_their_change_of_diagonal():
    """Two gap-free segments (query begin, end, diagonal, score) three diagonals apart: one gap of 3,
    open + 2 x extend; segments that overlap in the query do not chain."""
    from ismtk.search.prefilter import _chain

    segments = np.array([[0, 10, 5, 40], [12, 20, 8, 30], [5, 15, 9, 35]], np.int64)
    work = np.empty(8, np.int64), np.empty(8, np.int64)
    assert _chain(segments[:2], 2, 10, 1, *work) == 40 + 30 - (10 + 2 * 1)
    assert _chain(segments[:2], 2, 7, 3, *work) == 40 + 30 - (7 + 2 * 3)
    assert _chain(segments[[0, 2]], 2, 10, 1, *work) == 40  # the second starts inside the first: the best alone


def test_prefilter_ranking_discounts_the_length_of_targets():
    rng = np.random.default_rng(9)
    alphabet = Alphabet.of_size(20)
    matrix = _random_matrix(rng, 20).astype(np.int32)
    query = rng.integers(0, 20, 80).astype(np.uint8)
    # a 60-residue block of the query in a short target (entry 1), and the same target inside a long one (entry 0)
    short_one = np.concatenate([rng.integers(0, 20, 20), query[10:70], rng.integers(0, 20, 20)])
    long_one = np.concatenate([rng.integers(0, 20, 1500), short_one, rng.integers(0, 20, 1500)])
    db = SequenceDB.from_records(
        ((f"s{i}", x.astype(np.uint8), None) for i, x in enumerate([long_one, short_one])), alphabet, "t"
    )
    codes = np.asarray(db.tokens)[None, :]
    profile = ScoreTracks((matrix,)).profile(query[None, :])

    def best(penalty: float) -> int:
        settings = PrefilterSettings(kmer=3, kmer_threshold=14, length_penalty=penalty)
        prefilter = KmerPrefilter(matrix, codes, db.offsets, np.arange(len(db)), settings)
        seeded, scores = prefilter.seeded(query[None, :], profile)
        assert seeded.tolist() == [0, 1] and scores[0] >= scores[1]  # noise only adds to the long one's chain
        return int(prefilter.candidates(query[None, :], profile, 1)[0])

    assert best(0.0) == 0  # by chain score alone the long target comes first (ties: lower index)
    assert best(PrefilterSettings().length_penalty) == 1


def test_a_long_targets_match_scores_the_same_wherever_it_lies():
    """More gap-free segments than the prefilter keeps per target (a long chain's noise, here 300 copies of a
    query fragment on 300 diagonals) came first and pushed out a real match on a later diagonal."""
    rng = np.random.default_rng(12)
    alphabet = Alphabet.of_size(20)
    matrix = _random_matrix(rng, 20).astype(np.int32)
    query = rng.integers(0, 20, 100).astype(np.uint8)
    noise = np.concatenate([np.concatenate([query[40:52], rng.integers(0, 20, 10)]) for _ in range(300)])

    def score(target: np.ndarray) -> int:
        db = SequenceDB.from_records([("t", target.astype(np.uint8), None)], alphabet, "t")
        settings = PrefilterSettings(kmer=3, kmer_threshold=14)
        prefilter = KmerPrefilter(matrix, np.asarray(db.tokens)[None, :], db.offsets, np.arange(1), settings)
        profile = ScoreTracks((matrix,)).profile(query[None, :])
        return int(prefilter.seeded(query[None, :], profile)[1][0])

    assert score(np.concatenate([noise, query])) == score(np.concatenate([query, noise]))
    assert score(np.concatenate([noise, query])) > score(noise)


def test_amino_acid_seeds_find_a_homolog_whose_tokens_share_no_similar_kmer():
    rng = np.random.default_rng(10)
    tokens = np.where(np.eye(20, dtype=bool), 6, -1).astype(np.int32)  # similar k-mers: identical ones only
    blosum = load_matrix(None, "aa").restricted(AA_ALPHABET.symbols).astype(np.int32)
    query = np.stack([np.zeros(120), rng.integers(0, 20, 120)]).astype(np.uint8)  # tokens all 0
    # entry 3 shares 60 amino acids of the query but no token (all 1); the others are random, tokens never 0
    shared = np.concatenate([rng.integers(0, 20, 10), query[1, 30:90], rng.integers(0, 20, 10)])
    entries = [np.stack([rng.integers(1, 20, n), rng.integers(0, 20, n)]) for n in (90, 150, 70, 110, 60)]
    entries.insert(3, np.stack([np.ones(80), shared]))
    codes = np.concatenate(entries, axis=1).astype(np.uint8)
    offsets = np.concatenate([[0], np.cumsum([x.shape[1] for x in entries])])
    profile = ScoreTracks((tokens, blosum // 2)).profile(query)

    def prefilter(aa_threshold: int) -> KmerPrefilter:
        settings = PrefilterSettings(kmer=3, kmer_threshold=18, aa_kmer=3, aa_threshold=aa_threshold)
        return KmerPrefilter(tokens, codes, offsets, np.arange(len(entries)), settings, aa=(1, blosum))

    assert prefilter(0).seeded(query, profile)[0].tolist() == []  # the token k-mer (0, 0, 0) is in no entry
    with_aa = prefilter(14)
    targets, scores = with_aa.seeded(query, profile)
    assert 3 in targets.tolist() and scores[targets.tolist().index(3)] == scores.max() > 0
    assert with_aa.candidates(query, profile, 1).tolist() == [3]
    # one key space: token k-mers first (here only (0, 0, 0) = key 0), then amino-acid k-mers; by query position
    keys, where = with_aa.similar(query)
    assert np.all(np.diff(where) >= 0) and set(keys[keys < 20**3].tolist()) == {0}
    assert (keys >= 20**3).sum() == len(similar_kmers(query[1].copy(), blosum.astype(np.int64), 3, 14)[0])


def test_shards_are_consecutive_cover_every_entry_and_balance_residues():
    rng = np.random.default_rng(12)
    offsets = np.concatenate([[0], np.cumsum(rng.integers(50, 400, 1000))])
    for count in (1, 2, 3, 7, 1000, 1500):
        bounds = [shard(offsets, i, count) for i in range(1, count + 1)]
        assert bounds[0][0] == 0 and bounds[-1][1] == 1000
        assert all(a[1] == b[0] for a, b in itertools.pairwise(bounds))
        if count <= 7:
            sizes = [offsets[b] - offsets[a] for a, b in bounds]
            assert max(sizes) - min(sizes) <= 2 * 400
    assert parse_split("2/3") == (2, 3)
    for bad in ("0/3", "4/3", "3", "a/b"):
        with pytest.raises(InputError, match="I/N"):
            parse_split(bad)
