"""The gemmi reader equals the former Biopython reader (``biopython_reader.py``) on real files, their mmCIF
copies, and constructed corner cases of the reading rules (``reader_equality.py`` runs the same check on
every file of ``shared/data``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import STRUCTURES
from reader_equality import OPTION_SETS, as_mmcif, differences

from ismtk.structure import ReadOptions, read_structure
from ismtk.tokenizers import ThreeDiTokenizer

DATA = Path(__file__).parent / "data"
REAL = (
    sorted(STRUCTURES.glob("*.gz"))
    + sorted((DATA / "mmcif").glob("*.gz"))
    + sorted((DATA / "search").glob("*.gz"))
    + sorted((DATA / "ae" / "pdb").glob("*.gz"))
)


def _atom(
    record: str,
    name: str,
    altloc: str,
    resname: str,
    chain: str,
    number: int,
    x: float,
    occ: float = 1.0,
    element: str = "C",
    icode: str = " ",
) -> str:
    return (
        f"{record:<6}    1 {name:<4}{altloc}{resname:>3} {chain}{number:>4}{icode}   {x:8.3f}{x / 2:8.3f}{-x:8.3f}"
        f"{occ:6.2f}{20:6.2f}          {element:>2}"
    )


def _residue(
    chain: str,
    number: int,
    resname: str,
    x0: float,
    altloc: str = " ",
    occ: float = 1.0,
    record: str = "ATOM",
    icode: str = " ",
) -> list[str]:
    return [
        _atom(record, f" {n:<3}", altloc, resname, chain, number, x0 + 0.7 * i, occ, n[0], icode)
        for i, n in enumerate(("N", "CA", "C", "O", "CB"))
    ]


def _ser_ca(*atoms: tuple[str, float, float]) -> list[str]:
    """Residue SER A2 with N, C and the given (altloc, x, occupancy) C-alpha records after N."""
    return (
        [_atom("ATOM", " N  ", " ", "SER", "A", 2, 2.5, element="N")]
        + [_atom("ATOM", " CA ", alt, "SER", "A", 2, x, occ) for alt, x, occ in atoms]
        + [_atom("ATOM", " C  ", " ", "SER", "A", 2, 4.5)]
    )


ALA = _residue("A", 1, "ALA", 0.0)
CORNER_CASES = {
    "chain_in_two_parts": ALA + _residue("B", 1, "GLY", 10) + _residue("A", 2, "SER", 3),
    "residue_in_two_parts": ALA + _residue("A", 2, "SER", 3) + _residue("A", 1, "ALA", 6),
    "point_mutation": ALA + _residue("A", 2, "SER", 3, "A", 0.4) + _residue("A", 2, "CYS", 5, "B", 0.6),
    "point_mutation_tie": ALA + _residue("A", 2, "SER", 3, "A", 0.5) + _residue("A", 2, "CYS", 5, "B", 0.5),
    "repeated_hetatm_group": ALA
    + _residue("A", 2, "MSE", 3, record="HETATM")
    + _residue("A", 3, "GLY", 6)
    + _residue("A", 2, "MSE", 9, record="HETATM"),
    "altloc_by_occupancy": ALA + _ser_ca(("A", 3.0, 0.3), ("B", 3.5, 0.7)),
    "altloc_tie": ALA + _ser_ca(("A", 3.0, 0.5), ("B", 3.5, 0.5)),
    "blank_then_altloc": ALA + _ser_ca((" ", 3.0, 0.5), ("B", 3.5, 0.5)),
    "altloc_then_blank": ALA + _ser_ca(("A", 3.0, 0.5), (" ", 3.5, 0.9)),
    "duplicate_atom": ALA + _ser_ca((" ", 3.0, 1.0), (" ", 3.5, 1.0)),
    "insertion_codes": ALA + _residue("A", 1, "SER", 3, icode="A") + _residue("A", 2, "GLY", 6),
    "water_between_parts": ALA
    + [_atom("HETATM", " O  ", " ", "HOH", "A", 100, 9.0, element="O")]
    + _residue("A", 1, "ALA", 6),
    "two_models": ["MODEL        1", *ALA, "ENDMDL", "MODEL        2", *_residue("A", 1, "ALA", 1), "ENDMDL"],
    "junk_element_column": [line[:76] + " H" for line in ALA],
    "no_element_column": [line[:76] for line in ALA],
    "deuterium": ALA
    + [
        _atom("ATOM", " D  ", " ", "ALA", "A", 1, 0.2, element="D"),
        _atom("HETATM", " D1 ", " ", "DOD", "A", 80, 9.0, element="D"),
    ],
    "ligand_with_hydrogen": ALA
    + [
        _atom("HETATM", " S  ", " ", "SO4", "A", 50, 8.0, element="S"),
        _atom("HETATM", " O1 ", " ", "SO4", "A", 50, 8.5, element="O"),
        _atom("HETATM", " H1 ", " ", "SO4", "A", 50, 9.0, element="H"),
    ],
}


@pytest.fixture(scope="module")
def tokenizer():
    return ThreeDiTokenizer()


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name)
def test_real_files_equal(path, tokenizer, tmp_path):
    cif = as_mmcif(path, tmp_path)  # None for the deliberately corrupt file, which both readers refuse
    for variant in (path, cif) if cif is not None else (path,):
        for options in (*OPTION_SETS, ReadOptions(model=2)):
            assert not list(differences(variant, options, tokenizer)), (variant, options)


@pytest.mark.parametrize("case", sorted(CORNER_CASES))
def test_corner_cases_equal(case, tokenizer, tmp_path):
    path = tmp_path / f"{case}.pdb"
    path.write_text("\n".join(CORNER_CASES[case]) + "\n")
    for options in (*OPTION_SETS, ReadOptions(model=2)):
        assert not list(differences(path, options, tokenizer)), options


def test_end_record_ends_the_file(tmp_path):
    """The one rule that differs: records after END are not read (Biopython read on when END was not padded
    to six columns); no file of shared/data has any."""
    path = tmp_path / "after_end.pdb"
    path.write_text("\n".join(ALA + ["END"] + _residue("A", 2, "SER", 3)) + "\n")
    assert read_structure(path).chains[0].sequence == "A"
