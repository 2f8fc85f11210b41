"""Residue and element vocabularies shared by the structure readers and the models."""

from __future__ import annotations

from Bio.Data.PDBData import protein_letters_3to1_extended

from ismtk.sequence.alphabet import AMINO_ACIDS, UNKNOWN_AA

__all__ = [
    "AMINO_ACIDS",
    "UNKNOWN_AA",
    "ELEMENTS",
    "WATER_NAMES",
    "one_letter_code",
    "element_index",
]

#: Atom element vocabulary of the microenvironments (ISM paper); ``X`` collects every other element.
ELEMENTS = ("C", "H", "N", "O", "P", "S", "X")
#: Residue names of water molecules, never part of a chain.
WATER_NAMES = frozenset({"HOH", "WAT", "DOD", "H2O", "SOL", "TIP", "TIP3"})

_ELEMENT_INDEX = {e: i for i, e in enumerate(ELEMENTS)}
#: Elements counted as another one. Selenium is the crystallographer's stand-in for sulphur (selenomethionine,
#: MSE, replaces methionine for phasing; selenocysteine is cysteine's twin): read as sulphur, such a residue and
#: its neighbours get the tokens of the protein it stands for (as the unknown element X, a quarter of MSE tokens
#: and a seventh of the tokens around them differed, benchmarks/mse_tokens.py).
_ELEMENT_ALIASES = {"SE": "S"}


#: Amino acids that Biopython's table lacks: selenocysteine, pyrrolysine and the ambiguity codes, the D-amino acids
#: (as their L twins: a structure token reads geometry, and the sequence track has no D letters), a dioxidised
#: selenocysteine, and the protonation-state names of AMBER and CHARMM files (HSE and GLH, other compounds in the
#: PDB dictionary, keep its meaning there).
_MORE_AMINO_ACIDS = {
    "SEC": "U", "PYL": "O", "ASX": "B", "GLX": "Z", "SOC": "C",
    "DAL": "A", "DAR": "R", "DSG": "N", "DAS": "D", "DCY": "C", "DGN": "Q", "DGL": "E", "DHI": "H", "DIL": "I",
    "DLE": "L", "DLY": "K", "MED": "M", "DPN": "F", "DPR": "P", "DSN": "S", "DTH": "T", "DTR": "W", "DTY": "Y",
    "DVA": "V",
    "HID": "H", "HIE": "H", "HSD": "H", "HSP": "H", "CYX": "C", "ASH": "D",
}  # fmt: skip


def one_letter_code(resname: str) -> str | None:
    """Amino-acid letter of a PDB residue name, or ``None`` for anything that is not an amino acid.

    Modified residues map to their parent (``MSE`` -> ``M``, ``SEP`` -> ``S``, ``PCA`` -> ``Q``, ...)
    through Biopython's table of the PDB chemical component dictionary and :data:`_MORE_AMINO_ACIDS` (D-amino
    acids, force-field names); ``UNK`` maps to ``X``. Letters outside the 20 standard ones (``U``
    selenocysteine, ``O`` pyrrolysine, ``B``/``Z`` ambiguity codes) are returned as ``X``.

    >>> [one_letter_code(name) for name in ("ALA", "MSE", "DVA", "HIE", "SEC", "HOH")]
    ['A', 'M', 'V', 'H', 'X', None]
    """
    name = resname.strip().upper()
    if name == "UNK":
        return UNKNOWN_AA
    letter = _MORE_AMINO_ACIDS.get(name) or protein_letters_3to1_extended.get(name)
    if letter is None:
        return None
    return letter if letter in AMINO_ACIDS else UNKNOWN_AA


def element_index(element: str) -> int:
    """Index of an element symbol in :data:`ELEMENTS` (selenium counts as sulphur, ``X`` is anything else).

    >>> [ELEMENTS[element_index(e)] for e in ("C", "se", "Fe")]
    ['C', 'S', 'X']
    """
    symbol = element.strip().upper()
    return _ELEMENT_INDEX.get(_ELEMENT_ALIASES.get(symbol, symbol), _ELEMENT_INDEX["X"])
