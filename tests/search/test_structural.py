"""Superposition, RMSD, TM-score and LDDT against independent computations: an SVD Kabsch written here,
TM-align (tmtools) scoring the same fixed alignment, and a loop-by-loop LDDT of its definition."""

from __future__ import annotations

import numpy as np
import pytest
import tmtools
from helpers import FAMILY_D58, HOMOLOGS, OTHER, random_rotation, slow_lddt, svd_kabsch, tmalign_pairs

from ismtk.search.align import gapped_pair
from ismtk.search.ca import CA_STEP, CaCoords
from ismtk.search.pairs import read_chains
from ismtk.search.structural import kabsch, lddt, rmsd, tm_d0, tm_score, tm_superpose

PAIRS = [HOMOLOGS, FAMILY_D58, (HOMOLOGS[0], OTHER), (FAMILY_D58[1], HOMOLOGS[1])]


@pytest.fixture(scope="module")
def chains(domains_dir):
    return {
        n: (ca.astype(np.float64), seq) for n, (ca, seq) in read_chains(sorted(domains_dir.glob("*.pdb.gz"))).items()
    }


def test_kabsch_equals_an_svd_solution_and_recovers_a_known_motion():
    rng = np.random.default_rng(7)
    for n in (3, 4, 10, 200):
        x = rng.normal(scale=12.0, size=(n, 3))
        rotation, shift = random_rotation(rng), rng.normal(scale=30.0, size=3)
        u, t = kabsch(x, x @ rotation.T + shift)
        np.testing.assert_allclose(u, rotation, atol=1e-9)
        np.testing.assert_allclose(t, shift, atol=1e-7)
        y = x @ rotation.T + shift + rng.normal(scale=1.5, size=(n, 3))
        u, t = kabsch(x, y)
        reference_u, reference_t = svd_kabsch(x, y)
        np.testing.assert_allclose(u, reference_u, atol=1e-8)
        np.testing.assert_allclose(t, reference_t, atol=1e-6)
        assert np.linalg.det(u) == pytest.approx(1.0)
        reference = np.sqrt(np.mean(np.sum((x @ reference_u.T + reference_t - y) ** 2, axis=1)))
        assert rmsd(x, y) == pytest.approx(reference, rel=1e-9)


def test_mirror_images_get_a_rotation_not_a_reflection():
    x = np.random.default_rng(3).normal(scale=5.0, size=(30, 3))
    u, _ = kabsch(x, x * np.array([1.0, 1.0, -1.0]))
    assert np.linalg.det(u) == pytest.approx(1.0)
    assert rmsd(x, x * np.array([1.0, 1.0, -1.0])) > 0.5


def test_tm_score_of_a_moved_copy_is_one_with_the_motion_recovered(chains):
    x = chains[HOMOLOGS[0]][0]
    rng = np.random.default_rng(11)
    rotation, shift = random_rotation(rng), rng.normal(scale=40.0, size=3)
    fit = tm_superpose(x, x @ rotation.T + shift, len(x))
    assert fit.tm_score == pytest.approx(1.0)
    np.testing.assert_allclose(fit.u, rotation, atol=1e-6)
    np.testing.assert_allclose(fit.t, shift, atol=1e-4)
    assert tm_d0(10) == 0.5 and tm_d0(100) == pytest.approx(1.24 * 85 ** (1 / 3) - 1.8)


@pytest.mark.parametrize("pair", PAIRS)
def test_tm_scores_match_tmalign_scoring_the_same_alignment(chains, pair):
    (x, sx), (y, sy) = chains[pair[0]], chains[pair[1]]
    pairs = tmalign_pairs(tmtools.tm_align(x, y, sx, sy))
    fixed = tmtools.tm_align(x, y, sx, sy, list(gapped_pair(pairs, sx, sy)))  # TM-align keeps a given alignment
    assert tmalign_pairs(fixed).tolist() == pairs.tolist()
    xa, ya = x[pairs[:, 0]], y[pairs[:, 1]]
    assert tm_score(xa, ya, len(x)) == pytest.approx(fixed.tm_norm_chain1, abs=0.01)
    assert tm_score(xa, ya, len(y)) == pytest.approx(fixed.tm_norm_chain2, abs=0.01)
    # normalised by the number of aligned pairs: TM-align on the aligned residues alone, aligned one to one
    alone = tmtools.tm_align(xa, ya, "A" * len(xa), "A" * len(ya), ["A" * len(xa), "A" * len(ya)])
    assert tm_score(xa, ya, len(xa)) == pytest.approx(alone.tm_norm_chain1, abs=0.01)


def test_tm_superposition_reaches_its_score_under_an_independent_sum(chains):
    (x, sx), (y, sy) = chains[FAMILY_D58[0]], chains[FAMILY_D58[1]]
    pairs = tmalign_pairs(tmtools.tm_align(x, y, sx, sy))
    xa, ya = x[pairs[:, 0]], y[pairs[:, 1]]
    fit = tm_superpose(xa, ya, len(y))
    d0 = 1.24 * (len(y) - 15) ** (1 / 3) - 1.8
    distances = np.linalg.norm(xa @ fit.u.T + fit.t - ya, axis=1)
    assert np.sum(1 / (1 + (distances / d0) ** 2)) / len(y) == pytest.approx(fit.tm_score, rel=1e-9)
    # no least-squares superposition does better on this score
    u, t = svd_kabsch(xa, ya)
    worse = np.sum(1 / (1 + (np.linalg.norm(xa @ u.T + t - ya, axis=1) / d0) ** 2)) / len(y)
    assert worse <= fit.tm_score + 1e-9


@pytest.mark.parametrize("pair", PAIRS)
def test_lddt_equals_a_direct_implementation_of_its_definition(chains, pair):
    (x, sx), (y, sy) = chains[pair[0]], chains[pair[1]]
    pairs = tmalign_pairs(tmtools.tm_align(x, y, sx, sy))
    np.testing.assert_allclose(lddt(x, y, pairs), slow_lddt(x, y, pairs), atol=1e-12)
    rotation = random_rotation(np.random.default_rng(5))
    np.testing.assert_allclose(lddt(x, y @ rotation.T - 7.0, pairs), lddt(x, y, pairs), atol=1e-12)


def test_lddt_of_a_self_alignment_is_one_and_a_partial_one_loses_the_unaligned(chains):
    x = chains[HOMOLOGS[0]][0]
    everything = np.stack([np.arange(len(x))] * 2, axis=1)
    assert lddt(x, x, everything).tolist() == [1.0] * len(x)
    half = everything[: len(x) // 2]
    assert lddt(x, x, half).mean() < 1.0
    np.testing.assert_allclose(lddt(x, x, half), slow_lddt(x, x, half))


def test_stored_coordinates_are_within_half_a_grid_step(chains):
    coords = [chains[n][0] for n in sorted(chains)] + [np.array([[0.0, 0.0, 0.0], [900.0, -300.0, 5.0]])]
    store = CaCoords.encode(coords)
    start = 0
    for i, ca in enumerate(coords):
        decoded = store.entry(i, start, start + len(ca))
        step = float(store.frames[i, 3])
        assert np.abs(decoded - ca).max() <= step / 2 + 1e-6
        assert step == pytest.approx(CA_STEP) if np.ptp(ca, axis=0).max() < 600 else step > CA_STEP
        start += len(ca)
    assert store.values.dtype == np.int16


def test_scores_move_by_far_less_than_0_01_on_stored_coordinates(chains):
    (x, sx), (y, sy) = chains[HOMOLOGS[0]], chains[HOMOLOGS[1]]
    store = CaCoords.encode([x, y])
    xs, ys = store.entry(0, 0, len(x)), store.entry(1, len(x), len(x) + len(y))
    pairs = tmalign_pairs(tmtools.tm_align(x, y, sx, sy))
    xa, ya, xsa, ysa = x[pairs[:, 0]], y[pairs[:, 1]], xs[pairs[:, 0]], ys[pairs[:, 1]]
    assert abs(tm_score(xa, ya, len(x)) - tm_score(xsa, ysa, len(x))) < 1e-3
    assert abs(rmsd(xa, ya) - rmsd(xsa, ysa)) < 1e-3
    # LDDT counts distances under thresholds: a residue flips by one count (1 / (4 neighbours)) at most here
    exact, stored = lddt(x, y, pairs), lddt(xs, ys, pairs)
    assert abs(exact.mean() - stored.mean()) < 0.01 and np.abs(exact - stored).max() < 0.02


def test_a_short_alignment_scores_its_best_few_pairs():
    """Six pairs, three of which superpose exactly and three far off: at L = 6 (d0 = 0.5 A) the TM-score is at least
    that of the three (3 / 6), which superposing on all six pairs, all within the 4.5 A cut-off, missed."""
    rng = np.random.default_rng(1)
    x = rng.normal(0, 4, (6, 3))
    y = x.copy()
    y[3:] += rng.normal(0, 3, (3, 3))  # three pairs moved by several A
    assert tm_score(x, y, 6) >= 0.5 - 1e-9
    # the same with the good three pairs spread among the others
    order = np.array([3, 0, 4, 1, 5, 2])
    assert tm_score(x[order], y[order], 6) >= 0.5 - 1e-9
