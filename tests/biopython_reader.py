"""The Biopython reader that ismtk used before its gemmi reader, kept frozen as the reference it was proven
equal to (``tests/reader_equality.py``, ``tests/test_reader_equality.py``); not part of the package.

``read_structure`` here is the package's reader as of commit 6aa9576, unchanged but for its imports.
"""

from __future__ import annotations

import functools
import gzip
import io
import warnings
import zlib
from dataclasses import replace
from pathlib import Path

import numpy as np
from Bio.PDB import MMCIFParser, PDBParser
from Bio.PDB.PDBExceptions import PDBConstructionWarning

from ismtk.errors import StructureError
from ismtk.structure.chain import ProteinChain
from ismtk.structure.read import ReadOptions, StructureFile, entry_name
from ismtk.structure.residues import WATER_NAMES, one_letter_code

__all__ = ["read_structure"]


def read_structure(path: str | Path, options: ReadOptions = ReadOptions()) -> StructureFile:
    """Read the protein chains of one model of a PDB or mmCIF file (plain or gzipped).

    Residues are amino acids (modified ones mapped to their parent letter) that have a C-alpha;
    waters are dropped, other hetero groups too unless ``options.ligands``. Alternate locations keep
    the highest-occupancy atom (Biopython's default); insertion codes are kept per residue.

    Raises
    ------
    StructureError
        If the file is empty, binary, a corrupt gzip, unparsable, lacks the requested model or holds
        no protein chain. Chains that are unusable on their own (amino acids but no C-alpha) are
        returned in :attr:`StructureFile.skipped` instead.
    """
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

    base = entry_name(path)
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
    if not built:
        reason = "no protein chain (no amino-acid residue with a C-alpha atom)"
        if skipped:
            reason = skipped[0].reason
        raise StructureError(path, reason)

    chains = []
    for chain_id, arrays in built:
        add_chain = options.chain_names == "always" or (options.chain_names == "auto" and len(built) > 1)
        name = f"{base}_{chain_id.strip()}" if add_chain and chain_id.strip() else base
        chains.append(ProteinChain(name=name, source=str(path), chain_id=chain_id, model=options.model, **arrays))
    if ligand_atoms:
        chains = _attach_ligands(chains, ligand_atoms)
    return StructureFile(str(path), chains, skipped)


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StructureError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise StructureError(path, f"truncated or corrupt gzip data ({exc})") from exc
    if not raw.strip():
        raise StructureError(path, "empty file")
    if b"\x00" in raw[:65536]:
        raise StructureError(path, "binary file, not PDB or mmCIF text")
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


def _chain_arrays(bio_chain, options: ReadOptions, ligand_atoms: list) -> dict | None:
    """Per-atom and per-residue arrays of one Biopython chain, or ``None`` if it holds no amino acid."""
    coords, elements, names, owner = [], [], [], []
    letters, resnames, resnums, icodes, ca_index = [], [], [], [], []
    n_amino = 0
    for residue in bio_chain:
        residue = _select_best_residue(residue)
        resname = residue.get_resname().strip()
        if resname in WATER_NAMES:
            continue
        letter = one_letter_code(resname)
        if letter is None:
            if options.ligands:
                for atom in residue:
                    if atom.element not in ("H", "D"):
                        ligand_atoms.append((atom.coord, atom.element.upper(), atom.get_name()))
            continue
        n_amino += 1
        start, ca = len(coords), -1
        for atom in residue:
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


@functools.lru_cache(maxsize=4096)
def _element_of(atom_name: str, element_column: str) -> str:
    """:func:`_element` of a name and element column (few distinct pairs, so cached: one call per atom)."""
    name = atom_name.lstrip("0123456789")
    element = element_column.strip().upper()
    if element and name.upper().startswith(element):
        return element
    return "SE" if name.upper().startswith("SE") else name[:1].upper() or "X"


def _attach_ligands(chains: list[ProteinChain], ligand_atoms: list) -> list[ProteinChain]:
    """Give each ligand atom to the chain with the nearest C-alpha (atom_residue = -1)."""
    lig_xyz = np.asarray([a[0] for a in ligand_atoms], dtype=np.float32)
    nearest = np.stack([np.linalg.norm(lig_xyz[:, None] - c.ca[None], axis=-1).min(axis=1) for c in chains])
    owner = nearest.argmin(axis=0)
    out = []
    for k, chain in enumerate(chains):
        sel = np.flatnonzero(owner == k)
        if len(sel) == 0:
            out.append(chain)
            continue
        out.append(
            replace(
                chain,
                coords=np.concatenate([chain.coords, lig_xyz[sel]]),
                elements=np.concatenate([chain.elements, [ligand_atoms[i][1] for i in sel]]).astype("<U2"),
                atom_names=np.concatenate([chain.atom_names, [ligand_atoms[i][2] for i in sel]]).astype("<U4"),
                atom_residue=np.concatenate([chain.atom_residue, np.full(len(sel), -1, np.int32)]),
            )
        )
    return out
