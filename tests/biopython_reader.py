"""The Biopython reader that ismtk used before its gemmi reader, kept frozen as the reference it was proven
equal to (``tests/reader_equality.py``, ``tests/test_reader_equality.py``); not part of the package.

``read_structure`` here is the package's reader as of commit 6aa9576, unchanged but for its imports and the rule
for alternate locations (the last record since 2026-12-02, as Foldseek reads them, where Biopython takes the
highest occupancy): the
byte-level checks of a file, the element rule of amino-acid atoms, the naming of chains and the attachment
of ligand atoms, unchanged, come from the package.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from Bio.PDB import MMCIFParser, PDBParser
from Bio.PDB.PDBExceptions import PDBConstructionWarning

from ismtk.errors import StructureError
from ismtk.structure.read import (
    ReadOptions,
    StructureFile,
    _attach_ligands,
    _element_of,
    _named_chains,
    _read_bytes,
    entry_name,
)
from ismtk.structure.residues import WATER_NAMES, one_letter_code

__all__ = ["read_structure"]


def read_structure(path: str | Path, options: ReadOptions = ReadOptions()) -> StructureFile:
    """The former ``ismtk.structure.read_structure`` (same contract), built on Biopython's parsers."""
    path = Path(path)
    text = _read_text(path)
    is_cif = _looks_like_mmcif(path, text)
    model_index = options.model - 1
    if not is_cif:
        text, n_models = _pdb_lines_of_model(path, text, options.model)
        if not 1 <= options.model <= n_models:
            raise StructureError(path, f"has {n_models} model(s); model {options.model} was requested")
        model_index = 0
    models = list(_parse(path, text, is_cif))
    if not 0 <= model_index < len(models):
        raise StructureError(path, f"has {len(models)} model(s); model {options.model} was requested")
    model = models[model_index]

    built: list[tuple[str, dict]] = []
    skipped: list[StructureError] = []
    ligand_atoms: list[tuple[np.ndarray, str, str]] = []
    for bio_chain in model:
        arrays = _chain_arrays(bio_chain, options, ligand_atoms)
        if arrays is None:
            continue
        if not arrays["sequence"]:
            skipped.append(StructureError(path, "amino-acid residues but none with a C-alpha atom", bio_chain.id))
            continue
        built.append((bio_chain.id, arrays))
    chains = _named_chains(path, built, skipped, options)
    if ligand_atoms:
        chains = _attach_ligands(
            chains,
            np.asarray([a[0] for a in ligand_atoms], dtype=np.float32),
            np.asarray([a[1] for a in ligand_atoms], dtype="<U2"),
            np.asarray([a[2] for a in ligand_atoms], dtype="<U4"),
        )
    return StructureFile(str(path), chains, skipped)


def _read_text(path: Path) -> str:
    raw = _read_bytes(path)  # the same byte-level checks (empty, binary, corrupt gzip) as the package
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _looks_like_mmcif(path: Path, text: str) -> bool:
    name = path.name.lower().removesuffix(".gz")
    if name.endswith((".cif", ".mmcif")):
        return True
    if name.endswith((".pdb", ".ent")):
        return False
    return text.lstrip().startswith("data_")


def _pdb_lines_of_model(path: Path, text: str, model: int) -> tuple[str, int]:
    """PDB text reduced to the coordinate records of the ``model``-th model, without waters.

    Returns the text and the number of models in the file. Biopython's builder spends ~80% of the
    reading time per atom record, so NMR ensembles and water-rich crystal structures parse many times
    faster when it never sees the records ismtk would drop.
    """
    if "\nMODEL" not in text and not text.startswith("MODEL") and "HOH" not in text:
        return text, 1
    kept, current, n_models, n_records = [], 1, 0, 0
    for line in text.splitlines(keepends=True):
        if line.startswith("MODEL "):
            n_models += 1
            current = n_models
        elif line.startswith(("ATOM", "HETATM", "TER")):
            n_records += 1
            if current == model and line[17:20].strip() not in WATER_NAMES:
                kept.append(line)
    if n_records and not kept and model <= max(n_models, 1):
        raise StructureError(path, "no protein chain (waters only)")
    return "".join(kept), max(n_models, 1)


def _parse(path: Path, text: str, is_cif: bool):
    parser = MMCIFParser(QUIET=True) if is_cif else PDBParser(QUIET=True, PERMISSIVE=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PDBConstructionWarning)
            structure = parser.get_structure(entry_name(path), io.StringIO(text))
    except Exception as exc:  # Biopython raises many types (ValueError, KeyError, PDBConstructionException)
        kind = "mmCIF" if is_cif else "PDB"
        raise StructureError(path, f"cannot parse as {kind}: {type(exc).__name__}: {exc}") from exc
    if len(structure) == 0:
        raise StructureError(path, "no atoms found (not a PDB or mmCIF file?)")
    return structure


def _select_best_residue(residue):
    """For a point-mutation altloc (Biopython ``DisorderedResidue``), the variant of highest occupancy."""
    if residue.is_disordered() != 2:
        return residue
    variants = [residue.disordered_get(name) for name in residue.disordered_get_id_list()]
    return max(variants, key=lambda r: max((a.get_occupancy() or 0.0) for a in r))


def _free_hetero_amino_acids(residues: list) -> set[int]:
    """``id()`` of the HETATM amino acids joined by no chain of peptide bonds (C-N under 2 A) to an ATOM amino acid
    (to another one, where the chain has no ATOM amino acid): the package's rule, added with it on 2026-12-02."""
    amino = [r for r in residues if one_letter_code(r.get_resname()) is not None]

    def bonded(a, b) -> bool:
        pairs = (("N", "C"), ("C", "N"))
        return any(x in a and y in b and np.linalg.norm(a[x].coord - b[y].coord) < 2.0 for x, y in pairs)

    het = [r for r in amino if r.id[0].startswith("H_")]
    joined = {id(r) for r in amino if not r.id[0].startswith("H_")}
    if not joined:
        joined = {id(r) for r in het if any(bonded(r, o) for o in het if o is not r)}
    grew = True
    while grew:
        grew = False
        for r in het:
            if id(r) not in joined and any(id(o) in joined and bonded(r, o) for o in amino if o is not r):
                joined.add(id(r))
                grew = True
    return {id(r) for r in het if id(r) not in joined}


def _chain_arrays(bio_chain, options: ReadOptions, ligand_atoms: list) -> dict | None:
    """Per-atom and per-residue arrays of one Biopython chain, or ``None`` if it holds no amino acid."""
    coords, elements, names, owner = [], [], [], []
    letters, resnames, resnums, icodes, ca_index = [], [], [], [], []
    n_amino = 0
    free = _free_hetero_amino_acids([_select_best_residue(r) for r in bio_chain])
    for residue in bio_chain:
        residue = _select_best_residue(residue)
        resname = residue.get_resname().strip()
        if resname in WATER_NAMES:
            continue
        letter = None if id(residue) in free else one_letter_code(resname)
        if letter is None:
            if options.ligands:
                for atom in residue:
                    if atom.element not in ("H", "D"):
                        ligand_atoms.append((atom.coord, atom.element.upper(), atom.get_name()))
            continue
        n_amino += 1
        start, ca = len(coords), -1
        for atom in residue:
            if atom.is_disordered():  # the package's rule: the last altloc record (Biopython: highest occupancy)
                atom = atom.disordered_get_list()[-1]
            element = _element(atom)
            if element in ("H", "D") and not options.hydrogens:
                continue
            name = atom.get_name()
            if name == "CA":
                ca = len(coords)
            coords.append(atom.coord)
            elements.append(element)
            names.append(name)
        if ca < 0:  # no C-alpha: not a residue of the chain
            del coords[start:], elements[start:], names[start:]
            continue
        owner.extend([len(letters)] * (len(coords) - start))
        ca_index.append(ca)
        _, number, icode = residue.id
        letters.append(letter)
        resnames.append(resname)
        resnums.append(number)
        icodes.append(icode.strip())
    if n_amino == 0:
        return None
    return {
        "sequence": "".join(letters),
        "coords": np.asarray(coords, dtype=np.float32).reshape(-1, 3),
        "elements": np.asarray(elements, dtype="<U2"),
        "atom_names": np.asarray(names, dtype="<U4"),
        "atom_residue": np.asarray(owner, dtype=np.int32),
        "residue_names": np.asarray(resnames, dtype="<U3"),
        "residue_numbers": np.asarray(resnums, dtype=np.int32),
        "insertion_codes": np.asarray(icodes, dtype="<U1"),
        "ca_index": np.asarray(ca_index, dtype=np.int32),
    }


def _element(atom) -> str:
    """Element of an amino-acid atom, from its name when the file's element column disagrees with it.

    Old and re-cut PDB files often carry segment ids or junk in the element columns (a C-alpha written
    as element ``H``); in an amino acid the atom name always starts with the element symbol.
    """
    return _element_of(atom.get_name(), atom.element or "")
