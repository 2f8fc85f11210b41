"""Masked microenvironments against a brute-force reference."""

from pathlib import Path

import numpy as np
import pytest

from ismtk.structure import microenv, read_structure
from ismtk.structure.microenv import IGNORE_AA, collate, microenvironments, neighbour_lists
from ismtk.structure.residues import AMINO_ACIDS, element_index

DATA = Path(__file__).parent / "data" / "ae" / "pdb"


@pytest.fixture(scope="module")
def chain():
    return read_structure(DATA / "1BVN_l_u.pdb.gz").chains[0]


def brute_force(chain, residue, radius, max_atoms):
    ca = chain.coords[chain.ca_index[residue]].astype(np.float64)
    d2 = ((chain.coords.astype(np.float64) - ca) ** 2).sum(1)
    keep = np.flatnonzero((d2 < radius**2) & (chain.atom_residue != residue))
    keep = keep[np.lexsort((keep, d2[keep]))]
    return keep[:max_atoms]


@pytest.mark.parametrize("radius,max_atoms", [(8.0, 512), (8.0, 20), (5.0, 512), (12.0, 64)])
def test_neighbours_match_brute_force(chain, radius, max_atoms):
    index, counts = neighbour_lists(chain, radius=radius, max_atoms=max_atoms)
    for r in range(len(chain)):
        expected = brute_force(chain, r, radius, max_atoms)
        assert counts[r] == len(expected)
        np.testing.assert_array_equal(index[r, : counts[r]], expected)
        assert (index[r, counts[r] :] == -1).all()


def test_neighbours_do_not_depend_on_the_chunk_size(chain, monkeypatch):
    whole = neighbour_lists(chain)
    monkeypatch.setattr(microenv, "_CHUNK", 7)
    chunked = neighbour_lists(chain)
    np.testing.assert_array_equal(whole[0], chunked[0])
    np.testing.assert_array_equal(whole[1], chunked[1])


def test_microenvironment_radius_cap_and_own_atoms(chain):
    envs = microenvironments(chain)
    assert envs.mask.shape[1] <= 512
    dist = np.linalg.norm(envs.coords, axis=-1)
    assert (dist[envs.mask] < 8.0).all()
    assert (envs.coords[~envs.mask] == 0).all()
    # nearest first, padding last
    d = np.where(envs.mask, dist, 100.0)
    assert (np.diff(d, axis=1) >= -1e-5).all()
    index, counts = neighbour_lists(chain)
    for r in range(len(chain)):
        own = np.flatnonzero(chain.atom_residue == r)
        assert not np.isin(index[r, : counts[r]], own).any()
        atoms = index[r, : counts[r]]
        expected = chain.coords[atoms] - chain.coords[chain.ca_index[r]]
        np.testing.assert_allclose(envs.coords[r, : counts[r]], expected, atol=1e-5)
        assert [element_index(e) for e in chain.elements[atoms]] == envs.elements[r, : counts[r]].tolist()
    assert [AMINO_ACIDS[a] if a != IGNORE_AA else "X" for a in envs.aa] == list(chain.sequence)


def test_cap_keeps_nearest(chain):
    full = microenvironments(chain, max_atoms=512)
    capped = microenvironments(chain, max_atoms=16)
    assert capped.mask.sum(1).max() == 16
    np.testing.assert_array_equal(capped.coords, full.coords[:, :16])


def test_collate_and_take_repad(chain):
    a = microenvironments(chain, np.arange(5))
    b = microenvironments(chain, np.arange(5, 30))
    both = collate([a, b])
    assert len(both) == 30 and both.mask.shape[1] == max(a.mask.shape[1], b.mask.shape[1])
    np.testing.assert_array_equal(both.take(np.arange(5)).coords, a.coords)
