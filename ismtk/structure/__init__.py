"""Structures in: PDB/mmCIF reading, residue vocabularies, per-chain arrays, microenvironments."""

from ismtk.structure.chain import ProteinChain
from ismtk.structure.microenv import Microenvironments, microenvironments
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
    "Microenvironments",
    "STRUCTURE_SUFFIXES",
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
