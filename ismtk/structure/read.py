"""Reading PDB and mmCIF files (plain or gzipped) into :class:`ProteinChain` records.

Files are parsed by gemmi (the library Foldseek reads with) and turned into chains by NumPy operations
on gemmi's flat per-atom arrays, so reading costs about a millisecond per domain-sized file. The rules
(altlocs, point mutations, duplicate records, chain order) are those of Biopython's structure builder,
which ismtk used before; ``tests/reader_equality.py`` proves the two give identical chains.
"""

from __future__ import annotations

import functools
import gzip
import itertools
import os
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, NamedTuple

import gemmi
import numpy as np

from ismtk.errors import InputError, StructureError
from ismtk.names import read_lines
from ismtk.structure.chain import ProteinChain
from ismtk.structure.residues import WATER_NAMES, one_letter_code

__all__ = [
    "FORMATS",
    "STRUCTURE_SUFFIXES",
    "ChainNames",
    "Format",
    "ReadOptions",
    "StructureFile",
    "detect_format",
    "entry_name",
    "find_structure_files",
    "named_as_structure",
    "path_list",
    "read_structure",
]

#: File name endings recognised as structures when a folder is searched (files without any suffix are
#: taken too when their content is PDB or mmCIF, e.g. ASTRAL's ``d1ogya2``).
STRUCTURE_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif", ".pdb.gz", ".ent.gz", ".cif.gz", ".mmcif.gz")
#: File name endings of path lists (one structure path per line, relative to the list's folder).
LIST_SUFFIXES = (".txt", ".list")
#: RCSB's biological assemblies: ``1abc.pdb1``, ``1abc.pdb2.gz``, ... (PDB format).
_ASSEMBLY = re.compile(r".+\.pdb\d+(\.gz)?")
_EMPTY_FOLDER = f"folder holds no structure file ({', '.join(STRUCTURE_SUFFIXES)}, or PDB/mmCIF text without a suffix)"

ChainNames = Literal["auto", "always", "never"]
Format = Literal["auto", "pdb", "mmcif"]
#: Values of :attr:`ReadOptions.format`: ``auto`` decides by file name, then by content.
FORMATS: tuple[Format, ...] = ("auto", "pdb", "mmcif")


@dataclass(frozen=True)
class ReadOptions:
    """How structure files are turned into chains; one instance is shared by every command.

    Attributes
    ----------
    model
        1-based model to read (NMR ensembles hold many; the first is the default, as in Foldseek).
    hydrogens
        Keep hydrogen and deuterium atoms.
    ligands
        Keep heavy atoms of non-water hetero groups, attached to the nearest chain as ``atom_residue == -1``.
    chain_names
        ``auto``: add ``_CHAIN`` to the entry name only when a file has several protein chains (Foldseek's
        default); ``always``; ``never``.
    format
        ``auto`` (by file name, else by content), ``pdb`` or ``mmcif`` for every file.
    """

    model: int = 1
    hydrogens: bool = False
    ligands: bool = False
    chain_names: ChainNames = "auto"
    format: Format = "auto"

    def __post_init__(self) -> None:
        if not isinstance(self.model, int) or isinstance(self.model, bool) or self.model < 1:
            raise InputError(f"model {self.model!r}: a 1-based model number is an integer of at least 1")
        if self.chain_names not in ("auto", "always", "never"):
            raise InputError(f"chain_names {self.chain_names!r}: one of auto, always, never")
        if self.format not in FORMATS:
            raise InputError(f"format {self.format!r}: one of {', '.join(FORMATS)}")


class StructureFile(NamedTuple):
    """The usable protein chains of one file, the chains that had to be skipped, and warnings about what was
    read (atoms dropped, a cut last line), one line each."""

    path: str
    chains: list[ProteinChain]
    skipped: list[StructureError]
    warnings: tuple[str, ...] = ()


def path_list(inputs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """``inputs`` as a list of paths; one path (``str`` or ``Path``) is a list of one, not of its characters.

    >>> path_list("a.pdb"), path_list(["a.pdb", Path("b")])
    ([PosixPath('a.pdb')], [PosixPath('a.pdb'), PosixPath('b')])
    """
    if isinstance(inputs, (str, os.PathLike)):
        return [Path(inputs)]
    return [Path(p) for p in inputs]


def find_structure_files(inputs: str | Path | Iterable[str | Path], keep_missing: bool = False) -> list[Path]:
    """Expand files, folders and path lists. Folders are searched recursively, through linked folders, for
    :data:`STRUCTURE_SUFFIXES`, RCSB assemblies (``.pdb1``, ``.pdb2.gz``, ...) and files without a suffix whose
    content is PDB or mmCIF (ASTRAL's ``d1ogya2``).

    The order is the order of ``inputs``, each folder sorted by path, so results are reproducible.
    Raises :class:`InputError` for a path that does not exist or a folder holding no structure; with
    ``keep_missing`` such paths (a list's lines included) stay in the list in their place instead, so that a
    batch reports them with the files that cannot be read (:func:`read_structure` raises
    :class:`StructureError` for them) and goes on. A path list that names no path, or that lists itself
    (through other lists too), is an error either way.
    """
    return _expand(path_list(inputs), keep_missing, ())


def _expand(inputs: Iterable[str | Path], keep_missing: bool, lists: tuple[Path, ...]) -> list[Path]:
    """:func:`find_structure_files` inside the path ``lists`` being expanded."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            files = sorted(p for p in _files_under(path) if _is_structure_file(p))
            if not files and (path / "names.txt").is_file() and not (path / "ismtk-db.json").is_file():
                raise InputError(f"{path / 'ismtk-db.json'}: missing, so {path} is an ismtk database without its "
                                 "header (damaged?); make it again with createdb")
            if not files and not keep_missing:
                raise InputError(f"{path}: {_EMPTY_FOLDER}")
            found.extend(files or [path])
        elif path.is_file() and path.name.lower().endswith(LIST_SUFFIXES):
            if path.resolve() in lists:
                raise InputError(f"{path}: this path list lists itself (through {' -> '.join(map(str, lists))})")
            lines = read_lines(path, "path list")
            if not lines:
                raise InputError(f"{path}: this path list names no file")
            head = [line for _, line in lines[:50]]
            mmcif = head[0].startswith("data_") and any(line.startswith(("_", "loop_")) for line in head)
            if head[0].startswith(_PDB_RECORDS_TEXT) or mmcif:
                raise InputError(f"{path}: a structure file named as a path list ({', '.join(LIST_SUFFIXES)}); "
                                 "rename it .pdb or .cif")
            if head[0].startswith(">"):
                raise InputError(f"{path}: a FASTA file named as a path list ({', '.join(LIST_SUFFIXES)}); rename "
                                 "it .fasta")
            listed = (path.parent / line for _, line in lines)
            found.extend(_expand(listed, keep_missing, (*lists, path.resolve())))
        elif path.is_file() or keep_missing:
            found.append(path)
        else:
            raise InputError(f"{path}: no such file or folder")
    return found


def _files_under(folder: Path) -> Iterator[Path]:
    """Every file below ``folder``, through linked folders too (each real folder once, so a link loop ends)."""
    seen: set[tuple[int, int]] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        info = os.stat(root)
        if (info.st_dev, info.st_ino) in seen:
            dirs.clear()
            continue
        seen.add((info.st_dev, info.st_ino))
        dirs.sort()  # a folder reached twice (a link beside it) is listed under the same path on every run
        for name in files:
            path = Path(root, name)
            if path.is_file():  # (not a broken link, a socket or a pipe)
                yield path


def name_taken(path: str, name: str, chain_id: str | None, first: str | None, same_read: bool) -> StructureError:
    """The skip of the chain ``name`` of ``path`` whose entry name an earlier chain has, with the fix that works:
    ``first`` is the file that gave the name (``None``: an earlier record, e.g. of a resumed output); ``same_read``
    says the earlier chain came from this very reading of ``path`` (chains named alike)."""
    by = f"{first}, read earlier" if first is not None else "an earlier record"
    if first == path and not same_read:  # the same file named twice
        fix = "this file is given twice; leave out one"
    elif first == path:  # chains of one file named alike (--chain-names never)
        fix = "name chains apart with --chain-names auto or always"
    elif first is not None and entry_name(first) == entry_name(path):  # 1abc.pdb and 1abc.cif
        fix = "rename one of the files, or leave one out"
    else:
        fix = "rename one of the files (or use --chain-names always where chains collide)"
    return StructureError(path, f"entry name {name} is already taken by {by}; {fix}", chain_id or name)


def entry_name(path: str | Path) -> str:
    """File name without folder and structure suffixes (``/x/1abc.cif.gz`` -> ``1abc``), white space replaced by
    ``_`` (a FASTA header's name ends at the first space, so ``my file.pdb`` would come back as ``my``).

    >>> entry_name("/x/my model (2).pdb.gz")
    'my_model_(2)'
    """
    name = Path(path).name
    for suffix in (".gz", ".pdb", ".ent", ".mmcif", ".cif"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return re.sub(r"\s", "_", name)


def detect_format(path: str | Path, head: bytes) -> Literal["pdb", "mmcif"] | None:
    """``pdb`` or ``mmcif`` from the file name, else from the first bytes of its (decompressed) text.

    Returns ``None`` when neither the name nor the text looks like a structure.
    """
    name = Path(path).name.lower().removesuffix(".gz")
    if name.endswith((".cif", ".mmcif")):
        return "mmcif"
    if name.endswith((".pdb", ".ent")) or _ASSEMBLY.fullmatch(name):
        return "pdb"
    text = head.lstrip()
    if text.startswith(b"data_"):
        return "mmcif"
    lines = text.splitlines()
    return "pdb" if any(line.startswith(_PDB_RECORDS) for line in lines[:-1] or lines) else None


def read_structure(path: str | Path, options: ReadOptions = ReadOptions()) -> StructureFile:
    """Read the protein chains of one model of a PDB or mmCIF file (plain or gzipped).

    Residues are amino acids (modified ones mapped to their parent letter) that have a C-alpha;
    waters are dropped, other hetero groups too unless ``options.ligands``. Alternate locations keep
    the last record of each atom name (as Foldseek) and, for point mutations, the residue variant whose
    best atom has the highest occupancy; insertion codes are kept per residue.

    Raises
    ------
    StructureError
        If the file is empty, binary, a corrupt gzip, unparsable, lacks the requested model or holds
        no protein chain. Chains that are unusable on their own (amino acids but no C-alpha) are
        returned in :attr:`StructureFile.skipped` instead.
    """
    path = Path(path)
    raw = _read_bytes(path)
    fmt = options.format if options.format != "auto" else detect_format(path, raw[:4096]) or "pdb"
    warnings: list[str] = []
    raw = _drop_cut_line(raw, fmt, warnings)
    structure = _parse(path, raw, fmt)
    if not any(len(chain) for model in structure for chain in model):
        if fmt == "mmcif" and re.search(rb"^_atom_site\.", raw, re.MULTILINE):
            missing = [tag for tag in _ATOM_SITE_COLUMNS if not re.search(rb"^_atom_site\." + tag + rb"\s", raw, re.M)]
            if missing:
                names = ", ".join("_atom_site." + tag.decode() for tag in missing)
                raise StructureError(path, f"mmCIF atoms without the column(s) {names}, which atoms need")
        raise StructureError(path, "no atoms found (not a PDB or mmCIF file?)")
    if not 1 <= options.model <= len(structure):
        raise StructureError(path, f"has {len(structure)} model(s); model {options.model} was requested")
    atoms = _model_atoms(structure, options.model - 1, path)
    blank_chain = " " if fmt == "pdb" else ""  # a blank chain column of PDB is one space, as in the file
    if len(atoms.name) == 0:
        raise StructureError(path, "no protein chain (waters only)")

    built: list[tuple[str, dict]] = []
    skipped: list[StructureError] = []
    ligands: list[_Atoms] = []
    dropped: list[str] = []
    for chain_id, chain_atoms in _chains(atoms, blank_chain):
        arrays = _chain_arrays(chain_atoms, options, ligands, dropped, warnings)
        if arrays is None:
            continue
        if not arrays["sequence"]:
            skipped.append(StructureError(path, "amino-acid residues but none with a C-alpha atom", chain_id))
            continue
        built.append((chain_id, arrays))
    if dropped:
        warnings.append(_non_finite_warning(dropped))
    chains = _named_chains(path, built, skipped, options)
    if ligands:
        lig = _Atoms.concatenate(ligands)
        chains = _attach_ligands(
            chains, lig.pos.astype(np.float32), lig.element.astype("<U2"), _strings(lig.name, "<U4")
        )
    return StructureFile(str(path), chains, skipped, tuple(f"{path}: {w}" for w in warnings))


def _named_chains(
    path: Path, built: list[tuple[str, dict]], skipped: list[StructureError], options: ReadOptions
) -> list[ProteinChain]:
    """The chains of ``(chain id, arrays)`` pairs, named as Foldseek names them; raises when there is none."""
    if not built:
        reason = "no protein chain (no amino-acid residue with a C-alpha atom)"
        if skipped:
            reason = skipped[0].reason
        raise StructureError(path, reason)
    base = entry_name(path)
    chains = []
    for chain_id, arrays in built:
        add_chain = options.chain_names == "always" or (options.chain_names == "auto" and len(built) > 1)
        name = f"{base}_{chain_id.strip()}" if add_chain and chain_id.strip() else base
        chains.append(ProteinChain(name=name, source=str(path), chain_id=chain_id, model=options.model, **arrays))
    return chains


# --- file to gemmi structure -----------------------------------------------------------------------------------

#: Record names that start the lines of a PDB file (for recognising one without a suffix).
_PDB_RECORDS = (b"ATOM  ", b"HETATM", b"HEADER", b"MODEL ", b"REMARK", b"CRYST1", b"COMPND", b"TITLE ", b"EXPDTA")
_PDB_RECORDS_TEXT = tuple(record.decode().strip() + " " for record in _PDB_RECORDS)


#: Packers a structure file may have gone through (``1abc.pdb.xz``): such files are taken from a folder so that the
#: reader names them (it reads plain and gzipped text) instead of passing over them in silence.
_PACKED_SUFFIXES = (".xz", ".bz2", ".zst", ".zip", ".7z")


def named_as_structure(name: str) -> bool:
    """Whether a file name (any case) ends as a structure file's does (:data:`STRUCTURE_SUFFIXES`, RCSB assemblies)."""
    name = name.lower()
    return name.endswith(STRUCTURE_SUFFIXES) or bool(_ASSEMBLY.fullmatch(name))


def _is_structure_file(path: Path) -> bool:
    name = path.name.lower()
    if named_as_structure(name):
        return True
    if name.endswith(_PACKED_SUFFIXES) and name.rsplit(".", 1)[0].endswith(STRUCTURE_SUFFIXES[:4]):
        return True
    if "." in name.removesuffix(".gz"):
        return False
    try:  # no suffix at all (ASTRAL, Foldseek's examples), or only .gz: decide by content
        with path.open("rb") as handle:
            head = handle.read(4096)
        if head[:2] == b"\x1f\x8b":
            with gzip.open(path, "rb") as handle:
                head = handle.read(4096)
    except (OSError, EOFError, zlib.error):
        return False
    return detect_format(path, head) is not None


def _read_bytes(path: Path) -> bytes:
    if path.is_dir():  # a folder given as input that holds no structure (find_structure_files keep_missing)
        if any(p.is_file() and _is_structure_file(p) for p in path.rglob("*")):
            raise StructureError(path, "a folder: read_structure reads one file (find_structure_files lists a "
                                       "folder's)")
        raise StructureError(path, _EMPTY_FOLDER)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StructureError(path, "no such file or folder") from None
    except OSError as exc:
        raise StructureError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise StructureError(path, f"truncated or corrupt gzip data ({exc})") from exc
    raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark (Windows editors) hid the first record
    if b"\n" not in raw:  # old Mac line endings: lone carriage returns
        raw = raw.replace(b"\r", b"\n")
    if not raw.strip():
        raise StructureError(path, "empty file")
    if b"\x00" in raw[:65536]:
        packed = next((name for magic, name in _ARCHIVES if raw.startswith(magic)), None)
        if packed is not None:
            raise StructureError(path, f"{packed}; ismtk reads PDB or mmCIF text, plain or gzipped: unpack it first")
        raise StructureError(path, "binary file, not PDB or mmCIF text")
    return raw


#: Leading bytes of archives and compressions other than gzip, and what to call them.
_ARCHIVES = (
    (b"\xfd7zXZ\x00", "xz-compressed"), (b"BZh", "bzip2-compressed"), (b"PK\x03\x04", "a zip archive"),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed"), (b"7z\xbc\xaf\x27\x1c", "a 7z archive"),
)


#: A MODEL record (its serial, if any, is replaced when serials repeat).
_MODEL_RECORD = re.compile(rb"^MODEL[^\n]*", re.MULTILINE)
#: Columns 79-80 (formal charge, unused here) of coordinate records: re-cut files put junk there.
_CHARGE_COLUMNS = re.compile(rb"^((?:ATOM  |HETATM).{72}).+$", re.MULTILINE)


def _parse(path: Path, raw: bytes, fmt: str) -> gemmi.Structure:
    try:
        if fmt == "mmcif":
            text = raw.decode("utf-8", errors="replace")
            document = gemmi.cif.read_string(text)
            # the model's block: refinement programs add blocks of ligand restraints after it
            block = next((b for b in document if b.find_mmcif_category("_atom_site.")), None)
            return gemmi.make_structure_from_block(block if block is not None else document.sole_block())
        try:
            return gemmi.read_pdb_string(raw)
        except RuntimeError as exc:
            if "duplicate MODEL number" in str(exc):  # MODEL records without serials: numbered in file order
                count = itertools.count(1)
                return gemmi.read_pdb_string(_MODEL_RECORD.sub(lambda _: b"MODEL     %4d" % next(count), raw))
            if "charge" not in str(exc):
                raise
            return gemmi.read_pdb_string(_CHARGE_COLUMNS.sub(rb"\1", raw))
    except (RuntimeError, ValueError, IndexError) as exc:  # gemmi's parse errors name the line
        kind = "mmCIF" if fmt == "mmcif" else "PDB"
        raise StructureError(path, f"cannot parse as {kind}: {_parse_message(str(exc))}") from exc


#: ``_atom_site`` columns without which gemmi reads no atom of an mmCIF file.
_ATOM_SITE_COLUMNS = (b"type_symbol", b"Cartn_x", b"Cartn_y", b"Cartn_z")
#: Column where the z coordinate of a PDB ATOM/HETATM record ends.
_PDB_COORDINATES_END = 54
#: gemmi's position prefix of CIF syntax errors (``string:LINE:COLUMN(OFFSET): ``).
_CIF_POSITION = re.compile(r"^string:(\d+):\d+(?:\(\d+\))?: ")


def _parse_message(text: str) -> str:
    """gemmi's parse error as one line: the reason with its line number (without gemmi's quoted line)."""
    first = text.strip().splitlines()[0].rstrip(":") if text.strip() else "unreadable"
    return _CIF_POSITION.sub(r"line \1: ", first)


def _drop_cut_line(raw: bytes, fmt: str, warnings: list[str]) -> bytes:
    """``raw`` without its last line when the file ends in the middle of a coordinate record (PDB: before the
    end of the z coordinate, column 54; mmCIF: with fewer values than the row before), which would read as
    wrong coordinates or not at all. Says so in ``warnings``."""
    if raw.endswith((b"\n", b"\r")):
        return raw
    start = raw.rfind(b"\n") + 1
    last = raw[start:]
    if not last.startswith((b"ATOM", b"HETATM")):
        return raw
    if fmt == "pdb":
        cut = len(last.rstrip()) < _PDB_COORDINATES_END
    else:
        previous = raw[raw.rfind(b"\n", 0, max(start - 1, 0)) + 1 : start]
        cut = len(last.split()) < len(previous.split())
    if not cut:
        return raw
    line = raw.count(b"\n") + 1
    warnings.append(f"the file ends in the middle of line {line} (truncated?); read the lines before it")
    return raw[:start]


# --- gemmi structure to per-atom arrays ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Atoms:
    """Per-atom arrays of one model in file order (names and residue names as 8-byte codes)."""

    name: np.ndarray  # (A,) int64: atom name bytes, NUL-padded
    element: np.ndarray  # (A,) S2: element symbol as read or inferred by gemmi
    resname: np.ndarray  # (A,) int64: residue name bytes
    chain: np.ndarray  # (A,) int64: chain id bytes
    het: np.ndarray  # (A,) bool: HETATM record
    resnum: np.ndarray  # (A,) int32
    icode: np.ndarray  # (A,) int8: insertion code, 32 (blank) when none
    altloc: np.ndarray  # (A,) int8: 0 when none
    occ: np.ndarray  # (A,) float32
    pos: np.ndarray  # (A, 3) float64

    def take(self, index: np.ndarray) -> _Atoms:
        return _Atoms(*(getattr(self, f)[index] for f in self.__dataclass_fields__))

    @staticmethod
    def concatenate(parts: list[_Atoms]) -> _Atoms:
        return _Atoms(*(np.concatenate([getattr(p, f) for p in parts]) for f in _Atoms.__dataclass_fields__))


def _codes(chars: np.ndarray) -> np.ndarray:
    """``(A,) int64`` codes of gemmi's ``(A, 8) int8`` NUL-padded strings."""
    return np.ascontiguousarray(chars).view(np.int64).reshape(-1)


def _code(text: str) -> int:
    return int(np.frombuffer(text.encode().ljust(8, b"\0")[:8], np.int64)[0])


def _text(code: np.int64) -> str:
    return np.int64(code).tobytes().rstrip(b"\0").decode("latin-1")


#: Upper-case element symbols by gemmi's element index: the atomic number (0 unknown, ``X``), then deuterium
#: (gemmi keeps ``D`` apart from hydrogen, as index 119); anything beyond is unknown.
_ELEMENT_SYMBOLS = np.array([gemmi.Element(z).name.upper() for z in range(119)] + ["D"] + ["X"] * 136, "S2")
_WATER_CODES = np.array(sorted(_code(name) for name in WATER_NAMES), np.int64)
_CA = _code("CA")


def _model_atoms(structure: gemmi.Structure, index: int, path: Path) -> _Atoms:
    """The atoms of model ``index`` (0-based, in file order), waters left out."""
    for other in range(len(structure) - 1, -1, -1):
        if other != index:
            del structure[other]
    try:
        flat = gemmi.FlatStructure(structure)
    except RuntimeError:  # ids of 8+ characters, which gemmi's flat arrays cannot hold
        long_ids = sorted({chain.name for chain in structure[0] if len(chain.name) > 7})
        if long_ids:
            raise StructureError(path, f"chain ids of more than 7 characters ({', '.join(long_ids[:3])}), which "
                                       "ismtk cannot name its entries by; shorten them") from None
        for chain in structure[0]:  # label_asym_ids, unused here
            for residue in chain:
                residue.subchain = ""
        flat = gemmi.FlatStructure(structure)
    atoms = _Atoms(
        name=_codes(flat.atom_names),
        element=_ELEMENT_SYMBOLS[flat.elements],
        resname=_codes(flat.residue_names),
        chain=_codes(flat.chain_ids),
        het=flat.het_flags == ord("H"),
        resnum=flat.resnums,
        icode=flat.icodes,
        altloc=flat.altlocs,
        occ=flat.occ,
        pos=flat.pos,
    )
    return atoms.take(np.flatnonzero(~np.isin(atoms.resname, _WATER_CODES)))


def _chains(atoms: _Atoms, blank: str) -> list[tuple[str, _Atoms]]:
    """The atoms of each chain id, chains in order of first appearance (a chain's later parts join it)."""
    codes, first, inverse = np.unique(atoms.chain, return_index=True, return_inverse=True)
    out = []
    for k in np.argsort(first, kind="stable"):
        chain_id = _text(codes[k]) or blank
        out.append((chain_id, atoms.take(np.flatnonzero(inverse == k)) if len(codes) > 1 else atoms))
    return out


# --- one chain's atoms to residues -----------------------------------------------------------------------------


def _group_ids(*keys: np.ndarray) -> tuple[np.ndarray, int]:
    """``(n,) int64`` ids of equal key tuples (numbered in sorted order) and their number; integer keys only."""
    order = np.lexsort(keys[::-1])
    change = np.zeros(len(order), dtype=bool)
    for key in keys:
        sorted_key = key[order]
        change[1:] |= sorted_key[1:] != sorted_key[:-1]
    ids = np.empty(len(order), np.int64)
    ids[order] = np.cumsum(change)
    return ids, int(change.sum()) + 1 if len(order) else 0


def _residue_slots(atoms: _Atoms) -> tuple[np.ndarray, np.ndarray, int]:
    """Residue of every atom, as ``(slot, variant, restarts)``: ``(A,) int64`` each, ``-1`` for atoms dropped, and
    the number of residues read as new ones where the numbering restarted.

    A residue is a run of records with the same (record type, number, insertion code, name). Runs with
    the id of an earlier residue join it: ATOM runs of the same name add atoms; runs of another name with
    alternate locations (in either) are a point-mutation variant of it (each variant its own ``variant`` index),
    a HETATM residue with a C-alpha (MSE beside MET) too; a run of another name without any is a new residue
    (the numbering restarted, as in MD files and renumbered ions: read as gemmi and Foldseek read it); a
    repeated HETATM group is dropped. Slots are numbered in order of first appearance.
    """
    n = len(atoms.name)
    change = np.ones(n, dtype=bool)
    change[1:] = (
        (atoms.het[1:] != atoms.het[:-1])
        | (atoms.resnum[1:] != atoms.resnum[:-1])
        | (atoms.icode[1:] != atoms.icode[:-1])
        | (atoms.resname[1:] != atoms.resname[:-1])
    )
    run = np.cumsum(change) - 1
    starts = np.flatnonzero(change)
    het = atoms.het[starts]
    alt = np.maximum.reduceat(atoms.altloc != 0, starts) if n else np.zeros(0, bool)
    variant_het = het & alt  # with a C-alpha: a modified residue's altloc variant (known to the tables or not)
    if variant_het.any():
        variant_het &= np.maximum.reduceat(atoms.name == _CA, starts)
    inverse, groups = _group_ids(
        np.where(het & ~variant_het, atoms.resname[starts], 0), atoms.resnum[starts], atoms.icode[starts]
    )
    if groups == len(starts):  # every run is its own residue (nearly every file)
        return run, run, 0
    # repeated residue ids: follow the runs in order
    slot_of_run = np.empty(len(starts), np.int64)
    variant_of_run = np.empty(len(starts), np.int64)
    slot_of_key: dict[int, int] = {}
    slot_alt: list[bool] = []
    variants: dict[tuple[int, int], int] = {}
    restarts = 0
    for r, k in enumerate(inverse.tolist()):
        resname = int(atoms.resname[starts[r]])
        slot = slot_of_key.get(k)
        if slot is not None and het[r] and not alt[r]:
            slot_of_run[r] = variant_of_run[r] = -1
            continue
        if slot is not None and not alt[r] and not slot_alt[slot] and (slot, resname) not in variants:
            slot, restarts = None, restarts + 1
        if slot is None:
            slot = slot_of_key[k] = len(slot_alt)
            slot_alt.append(False)
        slot_alt[slot] |= bool(alt[r])
        slot_of_run[r] = slot
        variant_of_run[r] = variants.setdefault((slot, resname), len(variants))
    return slot_of_run[run], variant_of_run[run], restarts


def _pick_atoms(atoms: _Atoms, variant: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """One atom per (residue variant, atom name): ``(keep, source, repeats)``, index arrays and the count of atoms
    left out that repeat an earlier atom without an altloc, elsewhere.

    ``keep`` are the atoms whose place in the order is kept, ``source[i]`` the atom whose data fills it.
    Of alternate locations the last record wins, as Foldseek reads them (through gemmi; on the usual 0.50/0.50
    tie that is conformer B, and a residue whose atoms all have a B takes B's whole), in the place of the first
    one; of duplicates without altloc the first, and those that follow altloc atoms are dropped. An atom without
    altloc followed by altloc atoms of its name competes with them and the winner takes the place of the first
    altloc atom.
    """
    n = len(variant)
    order = np.lexsort((np.arange(n), atoms.name, variant))
    v, nm = variant[order], atoms.name[order]
    head = np.ones(n, dtype=bool)
    head[1:] = (v[1:] != v[:-1]) | (nm[1:] != nm[:-1])
    if head.all():
        keep = np.flatnonzero(variant >= 0)
        return keep, keep, 0
    group = np.cumsum(head) - 1
    groups = int(group[-1]) + 1
    alt = atoms.altloc[order] != 0
    has_alt = np.zeros(groups, dtype=bool)
    has_alt[group[alt]] = True
    repeat = ~head & ~has_alt[group] & (v >= 0)  # identical records (ASTRAL files hold some) are not counted
    first = order[np.flatnonzero(head)][group[repeat]]
    repeats = int(np.count_nonzero(np.abs(atoms.pos[order[repeat]] - atoms.pos[first]).max(axis=1) > 1e-3))
    late = head & ~alt & has_alt[group]  # heads without altloc of groups whose altloc atoms come later
    candidate = np.flatnonzero(alt | head)  # in file order within each group
    last = np.ones(len(candidate), dtype=bool)
    last[:-1] = group[candidate[1:]] != group[candidate[:-1]]
    winners = candidate[last]  # one per group, in group order
    place = np.flatnonzero(head)
    first_alt = np.full(groups, n)
    np.minimum.at(first_alt, group[alt], np.flatnonzero(alt))
    place = np.where(late[place], first_alt, place)
    heads, sources = order[place], order[winners]
    valid = variant[heads] >= 0
    by_place = np.argsort(heads[valid], kind="stable")
    return heads[valid][by_place], sources[valid][by_place], repeats


def _chain_arrays(
    atoms: _Atoms, options: ReadOptions, ligands: list[_Atoms], dropped: list[_Dropped], notes: list[str]
) -> dict | None:
    """Per-atom and per-residue arrays of one chain, or ``None`` if it holds no amino acid.

    Residues that are not amino acids go to ``ligands`` (heavy atoms) when ``options.ligands``. Atoms with
    non-finite coordinates are left out, and so is a residue whose backbone atom has them; each goes to
    ``dropped``. Atoms that repeat an earlier one of their residue without an altloc (a second copy of a chain
    under the same id) are left out, said in ``notes``.
    """
    slot, variant, restarts = _residue_slots(atoms)
    if restarts:
        notes.append(f"chain {_text(atoms.chain[0]) or '-'}: the residue numbering restarts ({restarts} number(s) "
                     "repeat with another residue name and no alternate location): read as further residues")
    keep, source, repeats = _pick_atoms(atoms, variant)
    if repeats:
        notes.append(f"chain {_text(atoms.chain[0]) or '-'}: {repeats} atom(s) repeat an earlier atom of their "
                     "residue (same name, no altloc) and were left out; a second copy of the chain under its id?")
    if _has_point_mutations(slot, variant):
        keep, source = _best_variants(atoms, slot, variant, keep, source)
    # residue order: first appearance of each slot; atoms of a residue in file order
    order = np.lexsort((keep, slot[keep]))
    keep, source = keep[order], source[order]
    res_of_atom = slot[keep]
    new_res = np.ones(len(keep), dtype=bool)
    new_res[1:] = res_of_atom[1:] != res_of_atom[:-1]
    res_start = np.flatnonzero(new_res)
    res_index = np.cumsum(new_res) - 1
    first_atom = source[res_start]
    resnames = atoms.resname[first_atom]
    letters = _letters(resnames)
    is_amino = letters != b""
    if not is_amino.all():
        bonded = _bonded_unknowns(atoms, source, res_index, is_amino)
        letters[bonded], is_amino = b"X", is_amino | bonded
    is_amino &= ~_free_amino_acids(atoms, source, res_index, first_atom, is_amino)
    if not is_amino.any():
        if options.ligands:
            _collect_ligands(atoms, source, is_amino[res_index], ligands)
        return None
    if options.ligands and not is_amino.all():
        _collect_ligands(atoms, source, is_amino[res_index], ligands)

    src = source[is_amino[res_index]]
    res_index = res_index[is_amino[res_index]]
    elements = _elements(atoms.name[src], atoms.element[src])
    if not options.hydrogens:
        heavy = (elements != b"H") & (elements != b"D")
        src, res_index, elements = src[heavy], res_index[heavy], elements[heavy]
    finite = np.isfinite(atoms.pos[src]).all(axis=1)
    if not finite.all():
        keep_atom = _drop_non_finite(atoms, src, res_index, finite, resnames, first_atom, dropped)
        src, res_index, elements = src[keep_atom], res_index[keep_atom], elements[keep_atom]
    is_ca = atoms.name[src] == _CA
    has_ca = np.zeros(len(resnames), dtype=bool)
    has_ca[res_index[is_ca]] = True
    kept_res = np.flatnonzero(has_ca & is_amino)
    with_ca = has_ca[res_index]
    src, res_index, elements, is_ca = src[with_ca], res_index[with_ca], elements[with_ca], is_ca[with_ca]
    new_number = np.full(len(resnames), -1, np.int64)
    new_number[kept_res] = np.arange(len(kept_res))
    owner = new_number[res_index]
    ca_index = np.zeros(len(kept_res), np.int64)
    ca_index[owner[is_ca]] = np.flatnonzero(is_ca)  # the last C-alpha of a residue, should it have two
    icodes = atoms.icode[first_atom[kept_res]]
    return {
        "sequence": letters[kept_res].tobytes().decode("ascii"),
        "coords": atoms.pos[src].astype(np.float32).reshape(-1, 3),
        "elements": elements.astype("<U2"),
        "atom_names": _strings(atoms.name[src], "<U4"),
        "atom_residue": owner.astype(np.int32),
        "residue_names": _strings(resnames[kept_res], "<U3"),
        "residue_numbers": atoms.resnum[first_atom[kept_res]].astype(np.int32),
        "insertion_codes": _strings(np.where(icodes == 32, 0, icodes).astype(np.uint8), "<U1"),
        "ca_index": ca_index.astype(np.int32),
    }


#: Longest C-N distance of a peptide bond taken as one (A; a bond is 1.33 A).
_PEPTIDE_BOND = 2.0
_N, _C = _code("N"), _code("C")


def _backbone_ends(
    atoms: _Atoms, source: np.ndarray, res_index: np.ndarray, residues: int, codes: tuple[int, ...] = (_N, _CA, _C)
) -> list[np.ndarray]:
    """``(R, 3)`` positions of each residue's atom of each of ``codes`` (N, C-alpha and C; NaN where it has none)."""
    ends = []
    for code in codes:
        at = np.full((residues, 3), np.nan)
        named = atoms.name[source] == code
        at[res_index[named]] = atoms.pos[source[named]]
        ends.append(at)
    return ends


def _bonded_unknowns(atoms: _Atoms, source: np.ndarray, res_index: np.ndarray, is_amino: np.ndarray) -> np.ndarray:
    """``(R,) bool``: residues of names no table knows that have N, C-alpha and C and sit in the chain, joined by
    peptide bonds to amino acids on both sides: modified residues newer than the tables (``9R1``), read as ``X``
    as Foldseek reads them instead of leaving a gap."""
    n, ca, c = _backbone_ends(atoms, source, res_index, len(is_amino))
    candidates = ~is_amino & np.isfinite(n).all(axis=1) & np.isfinite(ca).all(axis=1) & np.isfinite(c).all(axis=1)
    found = np.zeros(len(is_amino), bool)
    for r in np.flatnonzero(candidates).tolist():
        with np.errstate(invalid="ignore"):
            before = (np.linalg.norm(c[is_amino] - n[r], axis=1) < _PEPTIDE_BOND).any()
            after = (np.linalg.norm(n[is_amino] - c[r], axis=1) < _PEPTIDE_BOND).any()
        found[r] = before and after
    return found


def _free_amino_acids(
    atoms: _Atoms, source: np.ndarray, res_index: np.ndarray, first_atom: np.ndarray, is_amino: np.ndarray
) -> np.ndarray:
    """``(R,) bool``: the HETATM amino acids that no chain of peptide bonds joins to the chain's ATOM residues (to
    one another, in a chain of HETATM residues only): ligands such as a free proline, an Ala-Pro dipeptide or
    S-adenosyl-homocysteine (which the PDB dictionary maps to C). A modified residue of the chain (MSE, SEP, ...) is
    bonded to its neighbours, wherever the file lists it."""
    het = atoms.het[first_atom] & is_amino
    if not het.any():
        return het
    n, c = _backbone_ends(atoms, source, res_index, len(first_atom), (_N, _C))
    n[~is_amino] = c[~is_amino] = np.nan
    partners = {}
    for r in np.flatnonzero(het).tolist():
        with np.errstate(invalid="ignore"):
            bonded = np.linalg.norm(c - n[r], axis=1) < _PEPTIDE_BOND
            bonded |= np.linalg.norm(n - c[r], axis=1) < _PEPTIDE_BOND
        bonded[r] = False
        partners[r] = set(np.flatnonzero(bonded).tolist())
    joined = set(np.flatnonzero(is_amino & ~het).tolist()) or {r for r, p in partners.items() if p}
    grew = True
    while grew:  # through peptide bonds, from the ATOM residues
        grew = False
        for r, p in partners.items():
            if r not in joined and p & joined:
                joined.add(r)
                grew = True
    free = het.copy()
    free[list(joined & set(partners))] = False
    return free


class _Dropped(NamedTuple):
    """An atom left out for non-finite coordinates: ``residue`` names its residue, ``atom`` the atom's name;
    ``whole``: the residue went with it (a backbone atom)."""

    residue: str
    atom: str
    whole: bool


#: Backbone atoms: one with non-finite coordinates takes its residue out.
_BACKBONE = np.array([_code(name) for name in ("N", "CA", "C", "O")], np.int64)


def _drop_non_finite(
    atoms: _Atoms,
    src: np.ndarray,
    res_index: np.ndarray,
    finite: np.ndarray,
    resnames: np.ndarray,
    first_atom: np.ndarray,
    dropped: list[_Dropped],
) -> np.ndarray:
    """``(n,) bool`` atoms of ``src`` to keep: those with finite coordinates in residues whose backbone atoms
    (N, CA, C, O) all have them. Every atom with non-finite coordinates goes to ``dropped``."""
    bad = np.flatnonzero(~finite)
    bad_residues = np.unique(res_index[bad[np.isin(atoms.name[src[bad]], _BACKBONE)]])
    for k in bad.tolist():
        r = int(res_index[k])
        first = first_atom[r]
        residue = f"chain {_text(atoms.chain[first]) or '-'} {_text(resnames[r])} {atoms.resnum[first]}"
        residue += chr(int(atoms.icode[first]) & 0xFF).strip()
        dropped.append(_Dropped(residue, _text(atoms.name[src[k]]), r in bad_residues))
    return finite & ~np.isin(res_index, bad_residues)


def _non_finite_warning(dropped: list[_Dropped]) -> str:
    """One line about the atoms of :func:`_drop_non_finite`, the first few named."""
    shown = "; ".join(f"{d.residue} {d.atom}" for d in dropped[:3]) + ("; ..." if len(dropped) > 3 else "")
    residues = len({d.residue for d in dropped if d.whole})
    whole = f", and {residues} residue(s) whose backbone atom was among them" if residues else ""
    return f"dropped {len(dropped)} atom(s) with non-finite coordinates ({shown}){whole}"


def _has_point_mutations(slot: np.ndarray, variant: np.ndarray) -> bool:
    return bool((slot != variant).any())


def _best_variants(
    atoms: _Atoms, slot: np.ndarray, variant: np.ndarray, keep: np.ndarray, source: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Of point-mutation variants, keep the one whose best atom has the highest occupancy (on ties the
    first residue name in alphabetical order, as Biopython)."""
    best_occ: dict[int, float] = {}
    for v, occ in zip(variant[keep].tolist(), atoms.occ[source].tolist(), strict=False):
        best_occ[v] = max(best_occ.get(v, -np.inf), occ)
    slot_of: dict[int, int] = dict(zip(variant[keep].tolist(), slot[keep].tolist(), strict=False))
    name_of: dict[int, str] = {v: _text(atoms.resname[keep][variant[keep] == v][0]) for v in best_occ}
    winner: dict[int, tuple[float, int]] = {}
    for v in sorted(best_occ, key=lambda v: (slot_of[v], name_of[v])):
        s = slot_of[v]
        if s not in winner or best_occ[v] > winner[s][0]:
            winner[s] = (best_occ[v], v)
    sel = np.isin(variant[keep], [v for _, v in winner.values()])
    return keep[sel], source[sel]


@functools.lru_cache(maxsize=4096)
def _letter(resname: int) -> bytes:
    letter = one_letter_code(_text(resname))
    return letter.encode() if letter else b""


def _letters(resnames: np.ndarray) -> np.ndarray:
    """``(R,) S1`` one-letter codes of residue-name codes, empty for residues that are not amino acids."""
    codes, inverse = np.unique(resnames, return_inverse=True)
    return np.array([_letter(int(c)) for c in codes], dtype="S1")[inverse.reshape(-1)]


def _strings(codes: np.ndarray, dtype: str) -> np.ndarray:
    """Text of 8-byte codes (bytes beyond ASCII, in no valid file but in some, read as latin-1)."""
    raw = np.ascontiguousarray(codes, dtype=np.int64).view("S8")
    try:
        return raw.astype(dtype)
    except UnicodeDecodeError:
        return np.char.decode(raw, "latin-1").astype(dtype)


def _elements(names: np.ndarray, elements: np.ndarray) -> np.ndarray:
    """``(A,) S2`` element of each amino-acid atom (:func:`_element_of` of its name and element column)."""
    ids, groups = _group_ids(names, elements.view(np.uint16))
    first = np.empty(groups, np.int64)
    first[ids] = np.arange(len(ids))
    table = [_element_code(int(n), bytes(e)) for n, e in zip(names[first], elements[first], strict=False)]
    return np.array(table, dtype="S2")[ids]


@functools.lru_cache(maxsize=4096)
def _element_code(name: int, element: bytes) -> str:
    return _element_of(_text(name), element.decode())


#: Two-letter elements of (modified) amino acids. Another one is read from the name's first letter: written from
#: column 13 without an element column (as some MD programs write), a C-alpha ``CA`` is taken for calcium, ``CD``
#: for cadmium, ``NE`` for neon.
_AMINO_ACID_ELEMENTS = frozenset({"SE", "BR", "CL"})


@functools.lru_cache(maxsize=4096)
def _element_of(atom_name: str, element_column: str) -> str:
    """Element of an amino-acid atom, from its name when the element column disagrees with it.

    Old and re-cut PDB files often carry segment ids or junk in the element columns (a C-alpha written
    as element ``H``); in an amino acid the atom name always starts with the element symbol.

    >>> _element_of("CA", "CA"), _element_of("SE", "SE"), _element_of("CA", "H")
    ('C', 'SE', 'C')
    """
    name = atom_name.lstrip("0123456789")
    element = element_column.strip().upper()
    if element and name.upper().startswith(element) and (len(element) == 1 or element in _AMINO_ACID_ELEMENTS):
        return element
    return "SE" if name.upper().startswith("SE") else name[:1].upper() or "X"


def _collect_ligands(atoms: _Atoms, source: np.ndarray, amino: np.ndarray, ligands: list[_Atoms]) -> None:
    src = source[~amino]
    heavy = (atoms.element[src] != b"H") & (atoms.element[src] != b"D") & np.isfinite(atoms.pos[src]).all(axis=1)
    ligands.append(atoms.take(src[heavy]))


def _attach_ligands(
    chains: list[ProteinChain], xyz: np.ndarray, elements: np.ndarray, names: np.ndarray
) -> list[ProteinChain]:
    """Give each ligand atom (``(n, 3) float32`` coordinates, ``<U2`` elements, ``<U4`` names) to the chain with
    the nearest C-alpha (atom_residue = -1)."""
    nearest = np.stack([np.linalg.norm(xyz[:, None] - c.ca[None], axis=-1).min(axis=1) for c in chains])
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
                coords=np.concatenate([chain.coords, xyz[sel]]),
                elements=np.concatenate([chain.elements, elements[sel]]),
                atom_names=np.concatenate([chain.atom_names, names[sel]]),
                atom_residue=np.concatenate([chain.atom_residue, np.full(len(sel), -1, np.int32)]),
            )
        )
    return out
