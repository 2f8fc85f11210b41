"""Structure reading, checked against an independent line-by-line reading of the PDB text."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from Bio.Data.PDBData import protein_letters_3to1_extended
from helpers import MMCIF, STRUCTURES, pdb_text

from ismtk.errors import InputError, StructureError
from ismtk.structure import ReadOptions, entry_name, find_structure_files, read_structure


def oracle_chains(name: str, model: int = 1) -> dict[str, str]:
    """Sequences per chain from the CA lines of one model: resname letter per (resseq, icode), first altloc seen."""
    seqs: dict[str, dict[tuple[str, str], str]] = {}
    current = 0
    for line in pdb_text(name).splitlines():
        if line.startswith("MODEL"):
            current = int(line.split()[1])
        if line.startswith("ENDMDL") and current == model:
            break
        if current not in (0, model) or not line.startswith(("ATOM", "HETATM")) or line[12:16] != " CA ":
            continue
        resname = line[17:20].strip()
        letter = protein_letters_3to1_extended.get(resname)
        if letter is None:
            continue
        residues = seqs.setdefault(line[21], {})
        residues.setdefault((line[22:26], line[26]), letter if letter in "ACDEFGHIKLMNPQRSTVWY" else "X")
    return {chain: "".join(res.values()) for chain, res in seqs.items()}


@pytest.mark.parametrize("name", ["1FQJ_l_u", "2G77_r_u", "3SGQ_r_u", "1HZ6", "1APS", "2HPR", "1ONC", "d1a32a_"])
def test_sequences_match_oracle(name):
    structure = read_structure(STRUCTURES / f"{name}.pdb.gz")
    expected = oracle_chains(name)
    assert {c.chain_id: c.sequence for c in structure.chains} == expected
    for chain in structure.chains:
        assert chain.ca_index.shape == (len(chain),)
        assert (chain.atom_names[chain.ca_index] == "CA").all()
        assert (chain.atom_residue[chain.ca_index] == np.arange(len(chain))).all()


def test_modified_residues_map_to_parent():
    mse = read_structure(STRUCTURES / "1FQJ_l_u.pdb.gz").chains[0]
    positions = np.flatnonzero(mse.residue_names == "MSE")
    assert len(positions) > 0
    assert {mse.sequence[i] for i in positions} == {"M"}
    hpr = read_structure(STRUCTURES / "2HPR.pdb.gz").chains[0]
    assert hpr.sequence[int(np.flatnonzero(hpr.residue_names == "CSO")[0])] == "C"
    assert read_structure(STRUCTURES / "1ONC.pdb.gz").chains[0].sequence[0] == "Q"  # PCA


@pytest.mark.parametrize(("resname", "letter"), [("DVA", "V"), ("HIE", "H"), ("CYX", "C"), ("SEC", "X"), ("ASX", "X")])
def test_names_outside_biopython_s_table_are_kept(tmp_path, resname, letter):
    """D-amino acids, force-field protonation names, selenocysteine and ambiguity codes are residues of the chain
    (they were dropped, leaving a gap in the chain and its tokens)."""
    text = pdb_text("1APS")
    first = next(line for line in text.splitlines() if line.startswith("ATOM") and line[12:16] == " CA ")
    number = int(first[22:26]) + 4  # a residue inside the chain
    lines = [line[:17] + resname + line[20:] if line.startswith("ATOM") and int(line[22:26]) == number else line
             for line in text.splitlines()]
    (tmp_path / "x.pdb").write_text("\n".join(lines) + "\n")
    original, renamed = (read_structure(p).chains[0] for p in (STRUCTURES / "1APS.pdb.gz", tmp_path / "x.pdb"))
    at = int(np.flatnonzero(renamed.residue_names == resname)[0])
    assert len(renamed) == len(original) and renamed.sequence[at] == letter
    assert renamed.sequence[:at] + renamed.sequence[at + 1 :] == original.sequence[:at] + original.sequence[at + 1 :]


def test_a_free_amino_acid_ligand_is_not_a_residue_of_the_chain(tmp_path):
    """A HETATM amino acid that no peptide bond joins to the chain (1PIN's Ala-Pro, 3ECA's free Asp) was appended
    to it: one more letter and token, and its atoms in its neighbours' microenvironments. Modified residues of the
    chain (1FQJ_l_u's MSE, listed after the chain) stay."""
    lines = pdb_text("1APS").splitlines()
    atoms = [line for line in lines if line.startswith("ATOM")]
    first = [line for line in atoms if line[22:26] == atoms[0][22:26]]
    ligand = ["HETATM" + line[6:17] + "PRO" + line[20:22] + " 901" + line[26:30] + f"{float(line[30:38]) + 40:8.3f}"
              + line[38:] for line in first]
    (tmp_path / "x.pdb").write_text("\n".join([*atoms, "TER", *ligand, "END"]) + "\n")
    plain = read_structure(STRUCTURES / "1APS.pdb.gz").chains[0]
    with_ligand = read_structure(tmp_path / "x.pdb", ReadOptions(ligands=True)).chains[0]
    assert with_ligand.sequence == plain.sequence
    mse = read_structure(STRUCTURES / "1FQJ_l_u.pdb.gz").chains[0]
    assert mse.sequence.endswith("MMMMM")


@pytest.mark.parametrize("name", ["2G77_r_u", "2TRX"])
def test_altlocs_keep_the_last_record_of_each_atom_as_foldseek(name):
    """Foldseek (through gemmi) keeps the last record of each atom name: conformer B on a 0.50/0.50 tie (2TRX's
    HIS 6, whose 3Di token differed from Foldseek's when the first of equal occupancies was kept)."""
    path = next(p for p in (STRUCTURES / f"{name}.pdb.gz", STRUCTURES.parent / "altloc" / f"{name}.pdb.gz")
                if p.is_file())
    chain = read_structure(path).chains[0]
    keys = list(zip(chain.atom_residue.tolist(), chain.atom_names.tolist(), strict=True))
    assert len(keys) == len(set(keys)), "an atom appears twice after altloc selection"
    # the oracle: for each (residue, atom) with altlocs, the kept coordinate is the last record's
    best: dict[tuple[str, str, str], tuple[float, tuple[float, float, float]]] = {}
    for line in gzip.decompress(path.read_bytes()).decode().splitlines():
        if line.startswith(("ATOM", "HETATM")) and line[16] != " " and line[21] == chain.chain_id:
            key = (line[22:27], line[12:16].strip(), line[21])
            best[key] = (float(line[54:60]), (float(line[30:38]), float(line[38:46]), float(line[46:54])))
    assert best
    labels = [f"{n:4d}{c or ' '}" for n, c in zip(chain.residue_numbers, chain.insertion_codes, strict=True)]
    for (res, atom, _), (_, xyz) in best.items():
        i = labels.index(res)
        hit = (chain.atom_residue == i) & (chain.atom_names == atom)
        np.testing.assert_allclose(chain.coords[hit][0], xyz, atol=1e-3)


def test_3di_of_a_chain_with_tied_altlocs_equals_foldseek_s():
    """2TRX's 3Di as Foldseek's createdb writes it (the binary built from source, 2026-12-02): the first of tied
    altlocs gave another token at HIS 6's partners (position 57 of chain A: D against Foldseek's G)."""
    from ismtk.tokenizers import ThreeDiTokenizer

    foldseek = {
        "A": "DVQAAEDAPVCCCVPPQPDDAKEKEWEDAPVDPLSVVCPVLLVVCCVVCPPHYGYYYYHCVRHVPPCVVVPNDDPGKIFIDDNRDTPDIDHTHDD"
        "SVVVVVVVVVPSD",
        "B": "DVQEAEDALVCLVPVAQQNAAKEKEWEDEPVDPLSVVCPVLVVVVCVVQPPHYGYYYYYCVRHVPPPVVVVDDAPGKIFIDHNRHTDDIDHTHDD"
        "SVVVVVVDVVGDD",
    }
    tokenizer = ThreeDiTokenizer()
    chains = read_structure(STRUCTURES.parent / "altloc" / "2TRX.pdb.gz").chains
    assert {c.chain_id: tokenizer.to_string(c) for c in chains} == foldseek


def test_an_mmcif_file_with_a_block_of_restraints_after_the_model_is_read(tmp_path):
    """Refmac and Phenix write ligand restraints as a second data block: the model's block is read."""
    model = gzip.decompress((MMCIF / "1HZ6.cif.gz").read_bytes()).decode()
    path = tmp_path / "two_blocks.cif"
    path.write_text(model + "\ndata_comp_LIG\n_chem_comp.id LIG\n_chem_comp.name ligand\n")
    first = read_structure(MMCIF / "1HZ6.cif.gz")
    assert [c.sequence for c in read_structure(path).chains] == [c.sequence for c in first.chains]


def test_model_records_without_serials_are_numbered_in_file_order(tmp_path):
    """Some writers leave MODEL's serial out; gemmi called the second model a duplicate of model 0."""
    atoms = [line for line in pdb_text("1APS").splitlines() if line.startswith("ATOM")]
    moved = [line[:30] + f"{float(line[30:38]) + 5:8.3f}" + line[38:] for line in atoms]
    path = tmp_path / "models.pdb"
    path.write_text("\n".join(["MODEL", *atoms, "ENDMDL", "MODEL", *moved, "ENDMDL", "END"]) + "\n")
    one, two = (read_structure(path, ReadOptions(model=m)).chains[0] for m in (1, 2))
    assert one.sequence == two.sequence != "" and np.allclose(two.coords[:, 0] - one.coords[:, 0], 5, atol=1e-3)


def test_insertion_codes_are_kept():
    chain = read_structure(STRUCTURES / "3SGQ_r_u.pdb.gz").chains[0]
    labels = [f"{n}{c}" for n, c in zip(chain.residue_numbers, chain.insertion_codes, strict=True)]
    assert len(labels) == len(set(labels))
    assert sum(c != "" for c in chain.insertion_codes) == 8


def test_multichain_names_follow_foldseek():
    auto = read_structure(STRUCTURES / "1HZ6.pdb.gz")
    assert [c.name for c in auto.chains] == ["1HZ6_A", "1HZ6_B", "1HZ6_C"]
    assert [c.name for c in read_structure(STRUCTURES / "1FQJ_l_u.pdb.gz").chains] == ["1FQJ_l_u"]
    always = read_structure(STRUCTURES / "1FQJ_l_u.pdb.gz", ReadOptions(chain_names="always"))
    assert [c.name for c in always.chains] == ["1FQJ_l_u_A"]
    never = read_structure(STRUCTURES / "1HZ6.pdb.gz", ReadOptions(chain_names="never"))
    assert {c.name for c in never.chains} == {"1HZ6"}


def test_mmcif_equals_pdb():
    pdb = read_structure(STRUCTURES / "1HZ6.pdb.gz").chains
    cif = read_structure(MMCIF / "1HZ6.cif.gz").chains
    assert [c.name for c in cif] == [c.name for c in pdb]
    for a, b in zip(pdb, cif, strict=True):
        assert a.sequence == b.sequence
        np.testing.assert_allclose(a.coords, b.coords, atol=1e-3)
        assert (a.atom_names == b.atom_names).all()


def test_nmr_models_and_hydrogens():
    first = read_structure(STRUCTURES / "1APS.pdb.gz").chains[0]
    third = read_structure(STRUCTURES / "1APS.pdb.gz", ReadOptions(model=3)).chains[0]
    assert first.sequence == third.sequence and third.model == 3
    assert not np.allclose(first.ca, third.ca)
    assert "H" not in set(first.elements)
    with_h = read_structure(STRUCTURES / "1APS.pdb.gz", ReadOptions(hydrogens=True)).chains[0]
    assert "H" in set(with_h.elements) and len(with_h.coords) > len(first.coords)
    with pytest.raises(StructureError, match="model 9"):
        read_structure(STRUCTURES / "1APS.pdb.gz", ReadOptions(model=9))


def test_waters_dropped_ligands_optional():
    plain = read_structure(STRUCTURES / "2HPR.pdb.gz").chains[0]
    assert (plain.atom_residue >= 0).all()
    with_ligands = read_structure(STRUCTURES / "2HPR.pdb.gz", ReadOptions(ligands=True)).chains[0]
    ligand = with_ligands.atom_residue == -1
    assert ligand.sum() == 5  # one sulfate (S + 4 O); the 99 waters stay out
    assert sorted(with_ligands.elements[ligand]) == ["O", "O", "O", "O", "S"]
    assert with_ligands.sequence == plain.sequence


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("empty", "empty file"),
        ("truncated_gzip", "truncated or corrupt gzip"),
        ("binary", "binary file"),
        ("water_only", "no protein chain"),
        ("not_structure", "no atoms found"),
        ("no_ca", "none with a C-alpha"),
    ],
)
def test_bad_files_raise_naming_the_file(bad_files, kind, message):
    with pytest.raises(StructureError, match=message) as info:
        read_structure(bad_files[kind])
    assert str(bad_files[kind]) in str(info.value)


@pytest.mark.parametrize("packer", ["xz", "bzip2", "zip"])
def test_other_compressions_are_named_with_what_to_do(tmp_path, packer):
    import bz2
    import lzma
    import zipfile

    text = gzip.decompress((STRUCTURES / "1APS.pdb.gz").read_bytes())
    path = tmp_path / f"1APS.pdb.{'bz2' if packer == 'bzip2' else packer}"
    if packer == "zip":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("1APS.pdb", text)
    else:
        path.write_bytes(lzma.compress(text) if packer == "xz" else bz2.compress(text))
    with pytest.raises(StructureError, match=f"{packer}.*unpack it first"):
        read_structure(path)
    assert find_structure_files([tmp_path]) == [path]  # taken from a folder too, to be named in the batch's report


def test_find_structure_files(tmp_path):
    (tmp_path / "sub").mkdir()
    for name in ("b.pdb", "sub/a.cif.gz", "notes.md"):
        (tmp_path / name).write_text("x")
    (tmp_path / "list.txt").write_text("b.pdb\n# comment\nsub/a.cif.gz\n")
    assert [p.name for p in find_structure_files([tmp_path])] == ["b.pdb", "a.cif.gz"]
    assert [p.name for p in find_structure_files([tmp_path / "list.txt"])] == ["b.pdb", "a.cif.gz"]
    with pytest.raises(InputError, match="no such file"):
        find_structure_files([tmp_path / "missing.pdb"])
    assert entry_name("/x/1abc.cif.gz") == "1abc" and entry_name("d1a32a_.pdb.gz") == "d1a32a_"


def test_left_justified_atom_names_without_elements_are_not_metals(tmp_path):
    """Atom names written from column 13 and no element column (some MD writers): a C-alpha is carbon, not
    calcium (CD not cadmium, NE not neon), so ISM microenvironments are those of the well-formed file."""
    lines = [line[:12] + line[12:16].strip().ljust(4) + line[16:76] if line.startswith("ATOM") else line
             for line in pdb_text("1APS").splitlines()]
    (tmp_path / "left.pdb").write_text("\n".join(lines) + "\n")
    left, proper = (read_structure(p).chains[0] for p in (tmp_path / "left.pdb", STRUCTURES / "1APS.pdb.gz"))
    assert np.array_equal(left.elements, proper.elements) and set(proper.elements) <= {"C", "N", "O", "S"}


def test_a_second_copy_of_a_chain_under_its_id_is_warned_of(tmp_path):
    """Records that repeat a residue's atom without an altloc are left out (the first is kept): a homodimer written
    with one chain id lost its second copy in silence. Identical repeated records (ASTRAL files hold some) are not
    worth a warning."""
    atoms = [line for line in pdb_text("1ONC").splitlines() if line.startswith("ATOM")]
    moved = [line[:30] + f"{float(line[30:38]) + 30:8.3f}" + line[38:] for line in atoms]
    (tmp_path / "one.pdb").write_text("\n".join([*atoms, "END"]) + "\n")
    one = read_structure(tmp_path / "one.pdb")
    for copy, warned in ((moved, True), (atoms, False)):
        (tmp_path / "x.pdb").write_text("\n".join([*atoms, "TER", *copy, "END"]) + "\n")
        structure = read_structure(tmp_path / "x.pdb")
        assert [c.sequence for c in structure.chains] == [c.sequence for c in one.chains] and not one.warnings
        assert any("repeat an earlier atom" in w for w in structure.warnings) == warned


def test_biological_assembly_files_are_found_and_read_as_pdb(tmp_path):
    """RCSB's assemblies (1abc.pdb1, 1abc.pdb2.gz) were passed over in a folder, without a word."""
    (tmp_path / "x.pdb1").write_text(pdb_text("1APS"))
    (tmp_path / "x.pdb2.gz").write_bytes(gzip.compress(pdb_text("1APS").encode()))
    found = find_structure_files([tmp_path])
    assert sorted(p.name for p in found) == ["x.pdb1", "x.pdb2.gz"]
    assert all(read_structure(p).chains[0].sequence == read_structure(STRUCTURES / "1APS.pdb.gz").chains[0].sequence
               for p in found)


def test_structure_error_survives_pickling():
    import pickle

    err = pickle.loads(pickle.dumps(StructureError("a.pdb", "empty file", "B")))
    assert (err.path, err.reason, err.chain, str(err)) == ("a.pdb", "empty file", "B", "a.pdb chain 'B': empty file")


def test_junk_element_columns_do_not_desynchronise_residues(tmp_path):
    """Re-cut PDB files (DB5.5's 1VFB_l_u) carry segment ids in the element columns: a C-alpha marked
    as hydrogen must stay a carbon, and every residue keeps its C-alpha."""
    lines = []
    for line in pdb_text("1FQJ_l_u").splitlines():
        if line.startswith(("ATOM", "HETATM")):
            line = line[:72].ljust(72) + "8LYZH "  # segid in 73-76, "H" in the element column 77-78
        lines.append(line)
    path = tmp_path / "junk_elements.pdb"
    path.write_text("\n".join(lines) + "\n")
    junk = read_structure(path).chains[0]
    clean = read_structure(STRUCTURES / "1FQJ_l_u.pdb.gz").chains[0]
    assert junk.sequence == clean.sequence
    assert (junk.elements == clean.elements).all()
    assert len(junk.ca_index) == len(junk) and (junk.atom_names[junk.ca_index] == "CA").all()


def test_read_options_refuse_values_they_would_misread():
    for options, message in [
        ({"chain_names": "Always"}, "one of auto, always, never"),  # every chain would be named alike
        ({"format": "cif"}, "one of auto, pdb, mmcif"),  # would run the PDB parser
        ({"model": "1"}, "integer of at least 1"),
        ({"model": 0}, "integer of at least 1"),
    ]:
        with pytest.raises(InputError, match=message):
            ReadOptions(**options)


def test_a_folder_given_to_read_structure_is_named_as_one():
    with pytest.raises(StructureError, match="a folder: read_structure reads one file"):
        read_structure(STRUCTURES)


@pytest.mark.parametrize("how", ["byte-order mark", "carriage returns only"])
def test_a_byte_order_mark_or_old_mac_line_ends_read_as_the_plain_file(tmp_path, how):
    """A BOM lost the first atom (PDB) or the file (mmCIF); lone CRs read as one line without a C-alpha."""
    plain = read_structure(STRUCTURES / "1APS.pdb.gz").chains[0]
    text = pdb_text("1APS").encode()
    path = tmp_path / "edited.pdb"
    path.write_bytes(b"\xef\xbb\xbf" + text if how == "byte-order mark" else text.replace(b"\n", b"\r"))
    chain = read_structure(path).chains[0]
    assert chain.sequence == plain.sequence and np.array_equal(chain.coords, plain.coords)
    cif = tmp_path / "bom.cif"
    cif.write_bytes(b"\xef\xbb\xbf" + gzip.decompress((MMCIF / "1HZ6.cif.gz").read_bytes()))
    assert read_structure(cif).chains[0].sequence == read_structure(MMCIF / "1HZ6.cif.gz").chains[0].sequence


def test_bytes_beyond_ascii_in_names_are_read_not_a_crash(tmp_path):
    lines = pdb_text("1APS").splitlines()
    atom = next(i for i, line in enumerate(lines) if line.startswith("ATOM") and line[12:16] == " OG1")
    lines[atom] = lines[atom][:15] + "\xb0" + lines[atom][16:]  # an atom name's last byte (latin-1)
    first = next(i for i, line in enumerate(lines) if line.startswith("ATOM"))
    number = lines[first][22:26]
    for i, line in enumerate(lines):
        if line.startswith("ATOM") and line[22:26] == number:
            lines[i] = line[:26] + "\xe9" + line[27:]  # the first residue's insertion code
    path = tmp_path / "latin1.pdb"
    path.write_bytes("\n".join(lines).encode("latin-1"))
    chain = read_structure(path).chains[0]
    assert "OG\xb0" in chain.atom_names.tolist() and chain.insertion_codes[0] == "\xe9"


def test_long_chain_ids_are_refused_by_name_and_long_label_ids_are_read(tmp_path):
    """gemmi's flat arrays hold ids of up to 7 characters: both used to end in an internal error."""
    import gemmi

    structure = gemmi.read_structure(str(MMCIF / "1HZ6.cif.gz"))
    for chain in structure[0]:
        for residue in chain:
            residue.subchain = "entity_" + residue.subchain
    structure.setup_entities()
    labels = tmp_path / "labels.cif"
    structure.make_mmcif_document().write_file(str(labels))
    assert read_structure(labels).chains[0].sequence == read_structure(MMCIF / "1HZ6.cif.gz").chains[0].sequence
    structure[0][0].name = "receptor_A"
    names = tmp_path / "names.cif"
    structure.make_mmcif_document().write_file(str(names))
    with pytest.raises(StructureError, match="names.cif: chain ids of more than 7 characters \\(receptor_A\\)"):
        read_structure(names)


def test_an_mmcif_file_without_type_symbol_names_the_column(tmp_path):
    text = gzip.decompress((MMCIF / "1HZ6.cif.gz").read_bytes()).decode()
    path = tmp_path / "no_type.cif"
    path.write_text(text.replace("_atom_site.type_symbol", "_atom_site.type_symbol_x"))
    with pytest.raises(StructureError, match="without the column\\(s\\) _atom_site.type_symbol"):
        read_structure(path)


def _record(serial: int, name: str, altloc: str, resname: str, number: int, x: float, occupancy: float = 1.0,
            het: bool = False, element: str = "") -> str:
    element = element or name[0]
    return (f"{'HETATM' if het else 'ATOM  '}{serial:5d}  {name:<3s}{altloc:1s}{resname:>3s} A{number:4d}    "
            f"{x:8.3f}{0.5 * (serial % 3):8.3f}{0.0:8.3f}{occupancy:6.2f}{20.0:6.2f}          {element:>2s}")


def _residue(serial: int, resname: str, number: int, x: float, altloc: str = "", occupancy: float = 1.0,
             het: bool = False) -> list[str]:
    return [_record(serial + i, name, altloc, resname, number, x + 1.2 * i, occupancy, het)
            for i, name in enumerate(("N", "CA", "C", "O"))]


def test_a_numbering_that_restarts_without_altlocs_reads_further_residues(tmp_path):
    """MD writers number ions and further segments from 1 again: such a run of another residue name took the place
    of the protein residue of that number (ions won alphabetically on a tie, then were dropped as no amino acid)."""
    protein = [line for k, name in enumerate(("THR", "VAL", "SER", "LEU", "GLU"))
               for line in _residue(4 * k + 1, name, k + 1, 4.0 * k)]
    ions = [_record(30, "NA", "", "NA", 1, 40.0, het=False, element="NA"),
            _record(31, "CL", "", "CL", 2, 44.0, het=False, element="CL")]
    second = [line for k, name in enumerate(("GLY", "LYS", "ASP")) for line in _residue(40 + 4 * k, name, k + 1,
                                                                                        60.0 + 4.0 * k)]
    path = tmp_path / "md.pdb"
    path.write_text("\n".join([*protein, *ions, *second, "END"]) + "\n")
    structure = read_structure(path)
    assert [c.sequence for c in structure.chains] == ["TVSLEGKD"]
    assert any("numbering restarts (5 number(s)" in w for w in structure.warnings)


def test_altloc_variants_of_a_residue_and_its_modified_form_are_one_residue(tmp_path):
    """MET (ATOM, altloc A) and MSE (HETATM, altloc B) at one number were read as two residues: GMMG."""
    lines = [*_residue(1, "GLY", 1, 0.0), *_residue(5, "MET", 2, 4.0, "A", 0.6),
             *_residue(9, "MSE", 2, 4.1, "B", 0.4, het=True), *_residue(13, "GLY", 3, 8.0)]
    path = tmp_path / "micro.pdb"
    path.write_text("\n".join([*lines, "END"]) + "\n")
    chain = read_structure(path).chains[0]
    assert chain.sequence == "GMG" and chain.residue_names.tolist() == ["GLY", "MET", "GLY"]
    assert not read_structure(path).warnings


def test_a_residue_no_table_knows_bonded_into_the_chain_is_read_as_x(tmp_path):
    """5VWZ's 9R1 (HETATM, peptide-bonded on both sides) was dropped, leaving a gap in the chain; an unknown group
    with N, CA and C that is not bonded into the chain stays a ligand, and altloc variants of unknown names (4KO2's
    SEC / SE7 / UOX at one number) stay one residue."""
    lines = [*_residue(1, "GLY", 1, 0.0), *_residue(5, "9R1", 2, 4.0, het=True), *_residue(9, "GLY", 3, 8.0),
             *_residue(13, "LIG", 4, 40.0, het=True)]
    path = tmp_path / "modified.pdb"
    path.write_text("\n".join([*lines, "END"]) + "\n")
    chain = read_structure(path).chains[0]
    assert chain.sequence == "GXG" and chain.residue_names.tolist() == ["GLY", "9R1", "GLY"]
    variants = [*_residue(1, "GLY", 1, 0.0), *_residue(5, "SEC", 2, 4.0, "N", 0.55),
                *_residue(9, "SE7", 2, 4.0, "O", 0.3, het=True), *_residue(13, "UOX", 2, 4.0, "D", 0.15, het=True),
                *_residue(17, "GLY", 3, 8.0)]
    path.write_text("\n".join([*variants, "END"]) + "\n")
    chain = read_structure(path).chains[0]
    assert chain.sequence == "GXG" and chain.residue_names.tolist() == ["GLY", "SEC", "GLY"]


def test_folders_linked_into_a_folder_are_searched_once(tmp_path):
    (tmp_path / "real").mkdir()
    (tmp_path / "elsewhere" / "deep").mkdir(parents=True)
    for name in ("real/a.pdb", "elsewhere/b.pdb", "elsewhere/deep/c.cif"):
        (tmp_path / name).write_text("x")
    (tmp_path / "real" / "linked").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere" / "deep" / "loop").symlink_to(tmp_path / "elsewhere")  # a link cycle ends
    found = find_structure_files([tmp_path / "real"])
    assert [p.relative_to(tmp_path / "real").as_posix() for p in found] == [
        "a.pdb", "linked/b.pdb", "linked/deep/c.cif"]
