"""Structures in: PDB/mmCIF reading, residue vocabularies, per-chain arrays, microenvironments.

:func:`read_structure` reads the protein chains of one model of a file, named as Foldseek names them:

>>> structure = read_structure("tests/data/structures/1HZ6.pdb.gz")
>>> [(chain.name, len(chain.sequence)) for chain in structure.chains]
[('1HZ6_A', 67), ('1HZ6_B', 63), ('1HZ6_C', 63)]
>>> chain = structure.chains[0]
>>> chain.sequence[:10], chain.ca.shape
('HHAMEEVTIK', (67, 3))

Microenvironments (numba kernels) are imported on first use, so reading structures stays light.
"""

from ismtk.structure.chain import ProteinChain
from ismtk.structure.read import (
    STRUCTURE_SUFFIXES,
    ReadOptions,
    StructureFile,
    entry_name,
    find_structure_files,
    read_structure,
)
from ismtk.structure.residues import AMINO_ACIDS, ELEMENTS, element_index, one_letter_code

__all__ = [
    "AMINO_ACIDS",
    "ELEMENTS",
    "STRUCTURE_SUFFIXES",
    "Microenvironments",
    "ProteinChain",
    "ReadOptions",
    "StructureFile",
    "element_index",
    "entry_name",
    "find_structure_files",
    "microenvironments",
    "one_letter_code",
    "read_structure",
]

_LAZY = {"Microenvironments", "microenvironments"}


def __getattr__(name: str):
    if name in _LAZY:
        from ismtk.structure import microenv

        return getattr(microenv, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
