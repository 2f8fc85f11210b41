"""Masked atomic microenvironments: the atoms around each residue's C-alpha, its own atoms left out.

The microenvironment of residue ``l`` (ISM paper, Ouyang-Zhang et al. 2024) holds every atom within
``radius`` Å of its C-alpha, at most ``max_atoms`` of them (nearest first), with the residue's own atoms
removed so that its identity has to be inferred from the surroundings. Coordinates are given relative
to the C-alpha. A cell list (cells of ``radius`` Å, numba) finds the neighbours in ``O(L * k)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
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
        """The microenvironments at ``index``, re-padded to their own largest size."""
        mask = self.mask[index]
        n = int(mask.sum(axis=1).max(initial=0))
        return Microenvironments(self.coords[index, :n], self.elements[index, :n], mask[:, :n], self.aa[index])


@numba.njit(cache=True, nogil=True)
def _neighbours(coords, lo, atom_residue, ca_index, residues, radius, max_atoms):  # pragma: no cover - numba
    n_atoms = coords.shape[0]
    cell = np.empty((n_atoms, 3), np.int64)
    dims = np.ones(3, np.int64)
    for a in range(n_atoms):
        for k in range(3):
            cell[a, k] = int((coords[a, k] - lo[k]) / radius)
            dims[k] = max(dims[k], cell[a, k] + 1)
    flat = (cell[:, 0] * dims[1] + cell[:, 1]) * dims[2] + cell[:, 2]
    order = np.argsort(flat, kind="mergesort")  # atoms grouped by cell, index order inside a cell
    n_cells = dims[0] * dims[1] * dims[2]
    start = np.zeros(n_cells + 1, np.int64)
    for a in range(n_atoms):
        start[flat[a] + 1] += 1
    for c in range(n_cells):
        start[c + 1] += start[c]

    r2 = radius * radius
    out = np.full((residues.shape[0], max_atoms), -1, np.int32)
    counts = np.zeros(residues.shape[0], np.int32)
    cand = np.empty(n_atoms, np.int64)
    cand_d2 = np.empty(n_atoms, np.float64)
    for i in range(residues.shape[0]):
        res = residues[i]
        centre = coords[ca_index[res]]
        c = np.empty(3, np.int64)
        for k in range(3):
            c[k] = int((centre[k] - lo[k]) / radius)
        n = 0
        for x in range(max(c[0] - 1, 0), min(c[0] + 2, dims[0])):
            for y in range(max(c[1] - 1, 0), min(c[1] + 2, dims[1])):
                for z in range(max(c[2] - 1, 0), min(c[2] + 2, dims[2])):
                    f = (x * dims[1] + y) * dims[2] + z
                    for j in range(start[f], start[f + 1]):
                        a = order[j]
                        if atom_residue[a] == res:
                            continue
                        d2 = 0.0
                        for k in range(3):
                            diff = float(coords[a, k]) - float(centre[k])
                            d2 += diff * diff
                        if d2 < r2:
                            cand[n] = a
                            cand_d2[n] = d2
                            n += 1
        # nearest first; ties by atom index, so the order does not depend on the cell layout
        by_index = np.argsort(cand[:n], kind="mergesort")
        ranked = by_index[np.argsort(cand_d2[:n][by_index], kind="mergesort")]
        m = min(n, max_atoms)
        for j in range(m):
            out[i, j] = cand[ranked[j]]
        counts[i] = m
    return out, counts


def neighbour_lists(
    chain: ProteinChain, residues: np.ndarray | None = None, radius: float = RADIUS, max_atoms: int = MAX_ATOMS
) -> tuple[np.ndarray, np.ndarray]:
    """Atom indices of the masked microenvironment of each residue in ``residues`` (default: all).

    Returns ``(index, counts)``: ``(R, max_atoms) int32`` atom indices nearest first, ``-1`` past
    ``counts[r]``, and ``(R,) int32`` counts. An atom belongs to residue ``l``'s environment when its
    distance to ``l``'s C-alpha is below ``radius`` and it is not one of ``l``'s own atoms.
    """
    if residues is None:
        residues = np.arange(len(chain), dtype=np.int64)
    coords = np.ascontiguousarray(chain.coords, dtype=np.float32)
    return _neighbours(
        coords,
        coords.min(axis=0) if len(coords) else np.zeros(3, np.float32),
        np.ascontiguousarray(chain.atom_residue, dtype=np.int32),
        np.ascontiguousarray(chain.ca_index, dtype=np.int64),
        np.ascontiguousarray(residues, dtype=np.int64),
        float(radius),
        int(max_atoms),
    )


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
