"""The per-chain record every part of ismtk works on: flat atom arrays plus per-residue arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ismtk.errors import InputError, StructureError

__all__ = ["MAX_MISSING_BACKBONE", "ProteinChain", "require_backbone"]


@dataclass(frozen=True, eq=False)
class ProteinChain:
    """One protein chain of one model of a structure file.

    Atoms of residue ``i`` are those with ``atom_residue == i``; ligand atoms, when read, have
    ``atom_residue == -1``. Every residue has a C-alpha (residues without one are not kept).

    Attributes
    ----------
    name
        Entry name, e.g. ``1abc_A`` (Foldseek's naming; see :func:`ismtk.structure.read_structure`).
    source
        Path of the file it was read from.
    chain_id
        Author chain identifier.
    sequence
        Amino-acid sequence, one letter per residue (length L); modified residues as their parent.
    coords
        ``(A, 3) float32`` atom coordinates in Å.
    elements
        ``(A,) <U2`` element symbols (upper case).
    atom_names
        ``(A,) <U4`` PDB atom names.
    atom_residue
        ``(A,) int32`` residue index of each atom, ``-1`` for ligand atoms.
    residue_names
        ``(L,) <U3`` residue names as written in the file (``MSE`` stays ``MSE``).
    residue_numbers
        ``(L,) int32`` author residue numbers.
    insertion_codes
        ``(L,) <U1`` insertion codes (empty string when none).
    ca_index
        ``(L,) int32`` index of each residue's C-alpha in the atom arrays.
    model
        1-based index of the model the chain was read from.
    """

    name: str
    source: str
    chain_id: str
    sequence: str
    coords: np.ndarray
    elements: np.ndarray
    atom_names: np.ndarray
    atom_residue: np.ndarray
    residue_names: np.ndarray
    residue_numbers: np.ndarray
    insertion_codes: np.ndarray
    ca_index: np.ndarray
    model: int = 1
    notes: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.sequence)

    @property
    def ca(self) -> np.ndarray:
        """``(L, 3) float32`` C-alpha coordinates."""
        return self.coords[self.ca_index]

    def atom_coords(self, atom_name: str) -> np.ndarray:
        """``(L, 3) float32`` coordinates of one named atom per residue, NaN where it is missing."""
        out = np.full((len(self), 3), np.nan, dtype=np.float32)
        hit = (self.atom_names == atom_name) & (self.atom_residue >= 0)
        out[self.atom_residue[hit]] = self.coords[hit]
        return out

    def has_atoms(self, atom_names: tuple[str, ...]) -> np.ndarray:
        """``(L,) bool``: whether each residue has every atom in ``atom_names``."""
        present = np.ones(len(self), dtype=bool)
        for atom_name in atom_names:
            hit = np.zeros(len(self), dtype=bool)
            sel = (self.atom_names == atom_name) & (self.atom_residue >= 0)
            hit[self.atom_residue[sel]] = True
            present &= hit
        return present


#: Largest share of residues that may lack N or C before a chain is refused (CA-only models and
#: backbone-less traces give meaningless tokens; a few gaps are encoded, as Foldseek does).
MAX_MISSING_BACKBONE = 0.5


def require_backbone(chain: ProteinChain, need: str) -> None:
    """Raise :class:`StructureError` for CA-only traces, chains where most residues lack N or C, and chains
    with non-finite coordinates (which tokenizers would turn into garbage; :func:`~ismtk.structure.read_structure`
    drops such atoms).

    ``need`` says what the tokenizer needs, for the message (e.g. "3Di needs backbone N, CA and C atoms"). Anything
    but a chain is an :class:`~ismtk.errors.InputError`.
    """
    if not isinstance(chain, ProteinChain):
        raise InputError(f"expected a ProteinChain (read_structure(path).chains), not {type(chain).__name__}")
    if not np.isfinite(chain.coords).all():
        raise StructureError(chain.source, "atoms with non-finite (NaN or infinite) coordinates", chain.chain_id)
    backbone = chain.has_atoms(("N", "C"))
    missing = 1.0 - backbone.mean()
    if missing > MAX_MISSING_BACKBONE:
        what = "no residue has both N and C (a CA-only chain?)" if not backbone.any() else (
            f"{missing:.0%} of residues lack N or C")
        raise StructureError(chain.source, f"{what}: {need}", chain.chain_id)
