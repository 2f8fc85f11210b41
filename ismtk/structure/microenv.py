"""Masked atomic microenvironments: the atoms around each residue's C-alpha, its own atoms left out.

The microenvironment of residue ``l`` (ISM paper, Ouyang-Zhang et al. 2024) holds every atom within
``radius`` Å of its C-alpha, at most ``max_atoms`` of them (nearest first), with the residue's own atoms
removed so that its identity has to be inferred from the surroundings. Coordinates are given relative
to the C-alpha. A cell list (cells of ``radius`` Å, vectorised over residues with NumPy) finds the neighbours in
``O(L * k)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ismtk.structure.chain import ProteinChain
from ismtk.structure.residues import AMINO_ACIDS, element_index

__all__ = [
    "RADIUS",
    "MAX_ATOMS",
    "IGNORE_AA",
    "Microenvironments",
    "microenvironments",
    "neighbour_lists",
    "collate",
]

#: Radius of a microenvironment around the C-alpha, in Å.
RADIUS = 8.0
#: Largest number of atoms kept per microenvironment (the nearest ones).
MAX_ATOMS = 512
#: Amino-acid target of residues that are not one of the 20 standard amino acids.
IGNORE_AA = -100

_AA_INDEX = {a: i for i, a in enumerate(AMINO_ACIDS)}


@dataclass(frozen=True)
class Microenvironments:
    """A padded batch of ``B`` masked microenvironments with at most ``N`` atoms each.

    Attributes
    ----------
    coords
        ``(B, N, 3) float32`` atom coordinates relative to the residue's C-alpha, in Å; 0 at padding.
    elements
        ``(B, N) int64`` index into :data:`ismtk.structure.residues.ELEMENTS`; 0 at padding.
    mask
        ``(B, N) bool``, True for real atoms; atoms are sorted nearest first, padding last.
    aa
        ``(B,) int64`` index of the residue's amino acid in ``AMINO_ACIDS``, :data:`IGNORE_AA` if not standard.
    """

    coords: np.ndarray
    elements: np.ndarray
    mask: np.ndarray
    aa: np.ndarray

    def __len__(self) -> int:
        return len(self.aa)

    @property
    def n_atoms(self) -> np.ndarray:
        """``(B,) int64`` number of atoms of each microenvironment."""
        return self.mask.sum(axis=1)

    def take(self, index: np.ndarray) -> Microenvironments:
        """The microenvironments at ``index``, re-padded to their own largest size (at least one slot: a part of
        atom-less environments, an isolated residue's, goes through the model's pair heads as any other)."""
        mask = self.mask[index]
        n = max(1, int(mask.sum(axis=1).max(initial=0)))
        return Microenvironments(self.coords[index, :n], self.elements[index, :n], mask[:, :n], self.aa[index])


#: Residues whose candidate pairs are gathered at once by :func:`neighbour_lists` (bounds its memory).
_CHUNK = 1024
#: The 27 cell offsets of a cell's neighbourhood.
_OFFSETS = np.stack(np.meshgrid(*[np.arange(-1, 2)] * 3, indexing="ij"), -1).reshape(-1, 3)


def _neighbours(
    coords: np.ndarray,
    atom_residue: np.ndarray,
    centres: np.ndarray,
    residues: np.ndarray,
    radius: float,
    max_atoms: int,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`neighbour_lists` for ``(A, 3) float64`` atoms and ``(R, 3) float64`` centres of ``residues``.

    Atoms are sorted into cubic cells a little wider than ``radius``, so every neighbour of a centre lies in
    the 27 cells around its own; each candidate pair's squared distance is ``(dx^2 + dy^2) + dz^2`` in
    float64 whatever the cell layout, and candidates are ranked by it, ties by atom index.
    """
    out = np.full((len(residues), max_atoms), -1, np.int32)
    counts = np.zeros(len(residues), np.int32)
    if len(residues) == 0 or len(coords) == 0:
        return out, counts
    lo, size = coords.min(axis=0), radius * (1 + 1e-6) + 1e-6
    dims = ((coords.max(axis=0) - lo) // size).astype(np.int64) + 1

    def cell_ids(cells: np.ndarray) -> np.ndarray:
        return (cells[..., 0] * dims[1] + cells[..., 1]) * dims[2] + cells[..., 2]

    atom_cell = cell_ids(((coords - lo) // size).astype(np.int64))
    order = np.argsort(atom_cell, kind="stable")
    sorted_cells = atom_cell[order]
    for first in range(0, len(residues), _CHUNK):
        stop = min(first + _CHUNK, len(residues))
        centre = centres[first:stop]
        near = ((centre - lo) // size).astype(np.int64)[:, None, :] + _OFFSETS[None]  # (r, 27, 3)
        inside = ((near >= 0) & (near < dims)).all(axis=-1)
        ids = cell_ids(near)
        begin = np.searchsorted(sorted_cells, ids, "left")
        sizes = np.where(inside, np.searchsorted(sorted_cells, ids, "right") - begin, 0).ravel()
        # one row per candidate pair: its residue row and its atom
        row = np.repeat(np.repeat(np.arange(stop - first), len(_OFFSETS)), sizes)
        within = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        atom = order[np.repeat(begin.ravel(), sizes) + within]
        diff = coords[atom] - centre[row]
        d2 = (diff[:, 0] * diff[:, 0] + diff[:, 1] * diff[:, 1]) + diff[:, 2] * diff[:, 2]
        keep = (d2 < radius * radius) & (atom_residue[atom] != residues[first:stop][row])
        row, atom, d2 = row[keep], atom[keep], d2[keep]
        ranked = np.lexsort((atom, d2, row))
        row, atom = row[ranked], atom[ranked]
        n = np.bincount(row, minlength=stop - first)
        rank = np.arange(len(row)) - np.repeat(np.cumsum(n) - n, n)
        kept = rank < max_atoms
        out[first + row[kept], rank[kept]] = atom[kept]
        counts[first:stop] = np.minimum(n, max_atoms)
    return out, counts


#: Element symbols of hydrogen atoms (``ReadOptions(hydrogens=True)`` keeps them; the autoencoder never sees them).
_HYDROGENS = ("H", "D")


def neighbour_lists(
    chain: ProteinChain, residues: np.ndarray | None = None, radius: float = RADIUS, max_atoms: int = MAX_ATOMS
) -> tuple[np.ndarray, np.ndarray]:
    """Atom indices of the masked microenvironment of each residue in ``residues`` (default: all).

    Returns ``(index, counts)``: ``(R, max_atoms) int32`` atom indices nearest first, ``-1`` past
    ``counts[r]``, and ``(R,) int32`` counts. An atom belongs to residue ``l``'s environment when its
    distance to ``l``'s C-alpha is below ``radius`` and it is not one of ``l``'s own atoms. Hydrogens never do
    (chains read with them keep the environments, and so the tokens, of chains read without).
    """
    if residues is None:
        residues = np.arange(len(chain), dtype=np.int64)
    residues = np.asarray(residues, dtype=np.int64)
    coords = np.asarray(chain.coords, dtype=np.float32).astype(np.float64)
    atom_residue = np.asarray(chain.atom_residue, dtype=np.int64)
    centres = coords[chain.ca_index[residues]]
    heavy = ~np.isin(chain.elements, _HYDROGENS)
    if heavy.all():
        return _neighbours(coords, atom_residue, centres, residues, float(radius), int(max_atoms))
    kept = np.flatnonzero(heavy).astype(np.int32)
    index, counts = _neighbours(coords[kept], atom_residue[kept], centres, residues, float(radius), int(max_atoms))
    return np.where(index >= 0, kept[np.maximum(index, 0)], -1).astype(np.int32), counts


def microenvironments(
    chain: ProteinChain, residues: np.ndarray | None = None, radius: float = RADIUS, max_atoms: int = MAX_ATOMS
) -> Microenvironments:
    """The masked microenvironments of ``residues`` (default: every residue) of one chain, padded."""
    if residues is None:
        residues = np.arange(len(chain), dtype=np.int64)
    residues = np.asarray(residues, dtype=np.int64)
    index, counts = neighbour_lists(chain, residues, radius, max_atoms)
    n = int(counts.max(initial=0))
    index = index[:, :n]
    mask = index >= 0
    safe = np.where(mask, index, 0)
    coords = chain.coords[safe] - chain.coords[chain.ca_index[residues]][:, None, :]
    coords = np.where(mask[..., None], coords, 0.0).astype(np.float32)
    element_ids = _element_ids(chain)
    elements = np.where(mask, element_ids[safe], 0).astype(np.int64)
    aa = np.array([_AA_INDEX.get(chain.sequence[r], IGNORE_AA) for r in residues], dtype=np.int64)
    return Microenvironments(coords, elements, mask, aa)


def collate(parts: list[Microenvironments]) -> Microenvironments:
    """Concatenate batches, padding every one to the largest atom count among them."""
    n = max((p.mask.shape[1] for p in parts), default=0)

    def pad(x: np.ndarray) -> np.ndarray:
        widths = [(0, 0), (0, n - x.shape[1])] + [(0, 0)] * (x.ndim - 2)
        return np.pad(x, widths)

    return Microenvironments(
        np.concatenate([pad(p.coords) for p in parts]) if parts else np.zeros((0, 0, 3), np.float32),
        np.concatenate([pad(p.elements) for p in parts]) if parts else np.zeros((0, 0), np.int64),
        np.concatenate([pad(p.mask) for p in parts]) if parts else np.zeros((0, 0), bool),
        np.concatenate([p.aa for p in parts]) if parts else np.zeros(0, np.int64),
    )


def _element_ids(chain: ProteinChain) -> np.ndarray:
    """``(A,) int64`` element vocabulary index of every atom of ``chain``."""
    symbols, inverse = np.unique(chain.elements, return_inverse=True)
    return np.array([element_index(e) for e in symbols], dtype=np.int64)[inverse.reshape(-1)]
