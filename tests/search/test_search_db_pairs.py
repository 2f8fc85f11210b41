"""Databases on disk, input errors, structural alignment pairs and learning from them."""

from __future__ import annotations

import gzip
import shutil

import numpy as np
import pytest
from helpers import FAMILY_D58, HOMOLOGS, OTHER

from ismtk.errors import InputError, StructureError
from ismtk.search.db import SequenceDB, is_db
from ismtk.search.learn import learn_matrix
from ismtk.search.matrix import SubstitutionMatrix
from ismtk.search.pairs import (
    StructuralAlignment,
    align_structure_files,
    read_alignments,
    read_chains,
)
from ismtk.search.search import Searcher
from ismtk.tokenizers import Alphabet, ThreeDiTokenizer
from ismtk.workflows.search import load_input


@pytest.fixture(scope="module")
def db(domains_dir) -> SequenceDB:
    return load_input([domains_dir], ThreeDiTokenizer())


def test_database_round_trips_and_memory_maps(db, tmp_path):
    db.save(tmp_path / "db")
    assert is_db(tmp_path / "db")
    again = SequenceDB.load(tmp_path / "db")
    assert again.names == db.names and again.tokenizer == "3di" and again.alphabet == db.alphabet
    assert np.array_equal(again.tokens, db.tokens) and np.array_equal(again.offsets, db.offsets)
    assert [again.aa_seq(i) for i in range(len(db))] == [db.aa_seq(i) for i in range(len(db))]
    assert isinstance(again.tokens, np.memmap)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="holds more than an ismtk database"):
        db.save(tmp_path / "file")
    (tmp_path / "empty").mkdir()  # made by mkdir -p beforehand: nothing to lose
    db.save(tmp_path / "empty")
    assert SequenceDB.load(tmp_path / "empty").names == db.names
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "mine.txt").write_text("x")
    with pytest.raises(InputError, match="holds more than an ismtk database"):
        db.save(tmp_path / "full")


def test_encoding_progress_hears_the_total_then_every_file(domains_dir, db):
    from ismtk.workflows.search import open_input

    heard = []
    again, _ = open_input([domains_dir], ThreeDiTokenizer(), progress=lambda n=1, total=None: heard.append((n, total)))
    files = sorted(domains_dir.glob("*.pdb.gz"))
    assert heard == [(0, len(files))] + [(1, None)] * len(files)
    assert again.names == db.names
    one = str(files[0])  # one path, not a list of its characters ("." is a folder, "/" the file system)
    assert open_input(one, ThreeDiTokenizer())[0].names == [files[0].name.split(".")[0]]


def test_a_database_goes_into_a_folder_empty_but_for_a_hidden_file_and_never_over_a_hidden_folder(db, tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # what a file browser leaves: it was refused
    db.save(junk)
    assert SequenceDB.load(junk).names == db.names
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    with pytest.raises(InputError, match="holds more than an ismtk database"):
        db.save(repo)
    assert (repo / ".git").is_dir()


def test_entries_by_name_keep_everything_they_carry(db):
    names = [db.names[2], db.names[0]]
    picked = db.named(names)
    assert picked.names == names
    assert [picked.token_seq(k).tolist() for k in range(2)] == [db.token_seq(i).tolist() for i in (2, 0)]
    assert [picked.aa_seq(k) for k in range(2)] == [db.aa_seq(i) for i in (2, 0)]
    assert np.array_equal(picked.ca_coords(0), db.ca_coords(2))
    with pytest.raises(InputError, match="1 names are not in the database, e.g. nothere"):
        db.named(["nothere"])
    assert db.named(db.names[1]).names == [db.names[1]]  # one name, not its letters
    with pytest.raises(InputError, match=f"1 names are asked for more than once, e.g. {db.names[0]}"):
        db.named([db.names[0], db.names[1], db.names[0]])  # a database of repeated names, which load refuses
    last = len(db) - 1  # indices as a list takes them
    assert db.token_seq(-1).tolist() == db.token_seq(last).tolist() and db.aa_seq(-1) == db.aa_seq(last)
    assert db.select([-1]).names == [db.names[-1]] and db.select([-1]).aa_seq(0) == db.aa_seq(last)
    for bad in (lambda: db.token_seq(len(db)), lambda: db.select([0, -len(db) - 1])):
        with pytest.raises(IndexError, match=f"of a database of {len(db)} entries"):
            bad()


def test_records_that_a_saved_database_could_not_hold_are_refused():
    alphabet = Alphabet("ACD")
    for records, message in [
        ([("a", np.array([0, 1]), "MK"), ("a", np.array([2]), "V")], "'a' is repeated"),
        ([("a b", np.array([0]), "M")], "holds white space"),
        ([("a", np.array([], np.uint8), "")], "no tokens"),
        ([("a", np.array([0, 3]), "MK")], "integers from 0 to 2"),
        ([("a", np.array([300, 1]), "MK")], "integers from 0 to 2"),
        ([("a", np.array([0, 1]), "MÅ")], "ASCII letters"),
    ]:
        with pytest.raises(InputError, match=message):
            SequenceDB.from_records(records, alphabet, "3di")


def test_bad_inputs_give_clear_errors(tmp_path, db):
    fasta = tmp_path / "t.fasta"
    fasta.write_text(">a\nACDZZ\n")
    with pytest.raises(InputError, match="not in the alphabet"):
        load_input([fasta], ThreeDiTokenizer())
    empty = tmp_path / "empty.fasta"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        load_input([empty], ThreeDiTokenizer())
    (tmp_path / "notdb").mkdir()
    with pytest.raises(InputError, match="not an ismtk database"):
        SequenceDB.load(tmp_path / "notdb")
    other = SequenceDB.from_records([("x", np.array([0, 1, 2], np.uint8), None)], Alphabet.of_size(64), "ism")
    matrix = SubstitutionMatrix(db.alphabet.symbols, np.eye(20, dtype=np.int32) * 5 - 1)
    with pytest.raises(InputError, match="do not match the target"):
        Searcher(db, matrix).check_query(other)
    with pytest.raises(InputError, match="another tokenizer"):
        Searcher(other, matrix)


def test_self_alignment_is_all_close_pairs_and_files_round_trip(domains_dir, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(f"{FAMILY_D58[0]}\t{FAMILY_D58[0]}\n{FAMILY_D58[0]}\t{FAMILY_D58[1]}\n{HOMOLOGS[0]}\t{OTHER}\n")
    out = tmp_path / "aln.tsv"
    calls = []
    count = align_structure_files([domains_dir], pairs, out, progress=lambda n=1, total=None: calls.append((n, total)))
    assert count == 3
    assert calls == [(0, 3), (1, None), (1, None), (1, None)]  # the total once the chains are read, then each pair
    self_aln, family, unrelated = list(read_alignments(out))
    assert self_aln.tm == pytest.approx(1.0) and self_aln.cigar == f"{self_aln.len1}P"
    a, b = self_aln.close_pairs()
    assert np.array_equal(a, b) and len(a) == self_aln.len1
    assert family.tm > unrelated.tm
    assert [x.name2 for x in read_alignments(out, min_tm=0.99)] == [FAMILY_D58[0]]


def test_pairs_that_cannot_be_aligned_are_skipped_with_the_reason_and_the_rest_aligned(domains_dir, tmp_path):
    """A pair member without a structure, one of two residues (TM-align needs three) and an unreadable file
    are told to on_skip; without on_skip the first is an error. A binary alignment file is an InputError."""
    folder = tmp_path / "in"
    shutil.copytree(domains_dir, folder)
    text = gzip.open(folder / f"{OTHER}.pdb.gz", "rt").read().splitlines(keepends=True)
    atoms = [line for line in text if line.startswith("ATOM")]
    first_two = sorted({line[22:27] for line in atoms})[:2]
    (folder / "tiny.pdb").write_text("".join(line for line in atoms if line[22:27] in first_two) + "END\n")
    (folder / "junk.pdb").write_bytes(bytes(range(256)) * 8)
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text(f"{FAMILY_D58[0]} {FAMILY_D58[1]}\n{FAMILY_D58[0]} nothere\ntiny {FAMILY_D58[1]}\n")
    skipped: list[str] = []
    count = align_structure_files([folder], pairs, tmp_path / "a.aln", on_skip=skipped.append)
    assert count == 1 and [a.name2 for a in read_alignments(tmp_path / "a.aln")] == [FAMILY_D58[1]]
    assert len(skipped) == 3 and "junk.pdb" in skipped[0]
    assert "nothere" in skipped[1] and "tiny has fewer than 3 residues" in skipped[2]
    with pytest.raises(InputError, match="nothere"):
        align_structure_files([domains_dir], pairs, tmp_path / "b.aln")
    with pytest.raises(InputError, match="not a text file of alignments"):
        list(read_alignments(folder / "junk.pdb"))


def test_close_pairs_follow_the_cigar():
    aln = StructuralAlignment("a", "b", 0.7, 0.7, 1.0, 7, 5, "1D2P1I1M2D1P")
    a, b = aln.close_pairs()
    assert a.tolist() == [1, 2, 6] and b.tolist() == [0, 1, 4]
    with pytest.raises(InputError, match="CIGAR covers"):
        StructuralAlignment("a", "b", 0.7, 0.7, 1.0, 9, 5, "1D2P1I1M2D1P").close_pairs()


def test_learned_matrix_rewards_structurally_aligned_tokens(domains_dir, tmp_path, db):
    names = db.names
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{a}\t{b}\n" for i, a in enumerate(names) for b in names[i:]))
    align_structure_files([domains_dir], pairs, tmp_path / "aln.tsv")
    matrix, report = learn_matrix(db, [tmp_path / "aln.tsv"], min_tm=0.5, pseudocount=1.0, null_pairs=300)
    assert report.alignments >= len(names) and report.pairs > 0
    assert np.array_equal(matrix.scores, matrix.scores.T)
    assert np.mean(np.diag(matrix.scores)) > np.mean(matrix.scores)
    assert matrix.evd_for(10, 1) is not None and matrix.evd_for(10, 1).lam > 0
    total = len(pairs.read_text().splitlines())
    assert report.alignments + report.below_tm + report.skipped_alignments == total
    with pytest.raises(InputError, match=f"no usable alignment: {total} have a TM-score below 1.01"):
        learn_matrix(db, [tmp_path / "aln.tsv"], min_tm=1.01)
    (tmp_path / "empty.aln").write_text("")
    with pytest.raises(InputError, match="empty.aln: no alignment in the file"):
        learn_matrix(db, iter([tmp_path / "empty.aln"]))


def test_read_chains_uses_entry_names(domains_dir):
    chains = read_chains(sorted(domains_dir.glob("*.pdb.gz")))
    assert set(chains) >= {*HOMOLOGS, *FAMILY_D58, OTHER}
    ca, seq = chains[OTHER]
    assert ca.shape == (len(seq), 3)


def test_a_name_two_files_give_keeps_the_first_as_createdb_does(domains_dir, tmp_path):
    """a/x.pdb.gz and b/x.pdb.gz: the alignments must be of the structure the database holds under that name."""
    first, second = (domains_dir / f"{name}.pdb.gz" for name in (HOMOLOGS[0], OTHER))
    for folder, source in (("a", first), ("b", second)):
        (tmp_path / folder).mkdir()
        shutil.copy(source, tmp_path / folder / "x.pdb.gz")
    paths = [tmp_path / "a" / "x.pdb.gz", tmp_path / "b" / "x.pdb.gz"]
    skipped: list[str] = []
    chains = read_chains(paths, on_skip=skipped.append)
    assert np.array_equal(chains["x"][0], read_chains([first])[HOMOLOGS[0]][0])
    assert len(skipped) == 1 and "entry name x is already taken by" in skipped[0] and str(paths[1]) in skipped[0]
    with pytest.raises(StructureError, match="already taken"):
        read_chains(paths)
