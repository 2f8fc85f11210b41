"""Bad input a new user gives, made here from the real fixtures: no crash, no silent garbage, no lost output.

Each test names the failure it keeps fixed: empty FASTA records, non-finite coordinates, one path for every
input of a batch, truncated and extension-less files, errors as one line, repeated entry names, leftovers of
killed runs, output folders, progress in logs and the weights-only refusal.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import MMCIF, STRUCTURES, pdb_text
from typer.testing import CliRunner

from ismtk.atomic import atomic_folder, atomic_write, temporary_of
from ismtk.cli import app, console
from ismtk.cli.console import EXIT_ERROR, EXIT_SKIPPED
from ismtk.errors import InputError, StructureError
from ismtk.search.db import SequenceDB
from ismtk.structure import read_structure
from ismtk.tokenizers import ThreeDiTokenizer, read_fasta
from ismtk.train.checkpoint import load_checkpoint
from ismtk.workflows import resumable
from ismtk.workflows.encode import encode_to_fasta

runner = CliRunner()
TOKENIZER = ThreeDiTokenizer()
ROOT = Path(__file__).resolve().parents[1]


def _cli(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def _atoms(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def _one_error_line(output: str, *words: str) -> None:
    """The output holds exactly one ``error:`` line, with ``words`` in it, and no traceback."""
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in output, output
    for word in words:
        assert word in errors[0], (word, errors[0])


def _tokens_of(path: Path) -> dict[str, str]:
    return dict(read_fasta(path))


# --- 1. empty FASTA records -------------------------------------------------------------------------------
def test_empty_fasta_records_are_skipped_by_createdb_search_and_easy_search(tmp_path):
    query, target = tmp_path / "q.fasta", tmp_path / "t.fasta"
    query.write_text(">q1 tokenizer=3di\nDPVVLVVDPV\n>q_empty tokenizer=3di\n\n")
    target.write_text(">t1 tokenizer=3di\nDPVVLVVDPVVLVV\n>t_empty tokenizer=3di\n>t2 tokenizer=3di\nACDEFGHIKL\n")
    result = _cli("createdb", target, tmp_path / "db")
    assert result.exit_code == EXIT_SKIPPED and "record t_empty has no sequence" in result.output, result.output
    assert SequenceDB.load(tmp_path / "db").names == ["t1", "t2"]
    for args in (["search", query, tmp_path / "db", "-o", tmp_path / "a.m8"],
                 ["easy-search", query, target, tmp_path / "b.m8"]):
        result = _cli(*args)
        assert result.exit_code == EXIT_SKIPPED and "record q_empty has no sequence" in result.output, result.output
        assert "Traceback" not in result.output
    assert (tmp_path / "a.m8").read_text().split()[:2] == ["q1", "t1"]
    assert (tmp_path / "a.m8").read_text() == (tmp_path / "b.m8").read_text()



def test_a_query_fasta_of_empty_records_only_is_named_as_the_query(tmp_path):
    query, target = tmp_path / "q.fasta", tmp_path / "t.fasta"
    query.write_text(">q_empty tokenizer=3di\n\n")
    target.write_text(">t1 tokenizer=3di\nDPVVLVVDPVVLVV\n")
    result = _cli("easy-search", query, target, tmp_path / "a.m8")
    assert result.exit_code != 0 and "record q_empty has no sequence" in result.output, result.output
    _one_error_line(result.output, "q.fasta", "no record with a sequence")

def test_a_database_with_an_empty_entry_is_refused_naming_it(tmp_path):
    """Databases of older versions could hold empty entries, which crashed the aligner."""
    records = [("a", np.array([1, 2, 3], np.uint8), None), ("hollow", np.array([4], np.uint8), None)]
    SequenceDB.from_records(records, TOKENIZER.alphabet, "3di").save(tmp_path / "old")
    np.save(tmp_path / "old" / "offsets.npy", np.array([0, 4, 4]))  # as an old createdb wrote it: "hollow" empty
    with pytest.raises(InputError, match="entry hollow has no tokens"):
        SequenceDB.load(tmp_path / "old")
    result = _cli("search", STRUCTURES / "d1a32a_.pdb.gz", tmp_path / "old", "-o", tmp_path / "hits.m8")
    assert result.exit_code == EXIT_ERROR
    _one_error_line(result.output, "hollow", "createdb")


# --- 4. non-finite coordinates ---------------------------------------------------------------------------
def _with_coordinate(text: str, atom: str, value: str) -> tuple[str, str, str]:
    """``text`` with the x of the first ``atom`` record set to ``value``; also the text without that atom's line,
    and the text without its whole residue."""
    lines = _atoms(text)
    k = next(i for i, ln in enumerate(lines) if ln.startswith("ATOM") and ln[12:16] == atom)
    residue = lines[k][17:27]
    changed = lines[:k] + [f"{lines[k][:30]}{value:>8}{lines[k][38:]}"] + lines[k + 1 :]
    without_atom = lines[:k] + lines[k + 1 :]
    without_residue = [ln for ln in lines if not (ln.startswith(("ATOM", "HETATM")) and ln[17:27] == residue)]
    return "".join(changed), "".join(without_atom), "".join(without_residue)


def _same_chains(a, b) -> None:
    assert [c.chain_id for c in a.chains] == [c.chain_id for c in b.chains]
    for x, y in zip(a.chains, b.chains, strict=True):
        assert x.sequence == y.sequence
        np.testing.assert_array_equal(x.coords, y.coords)
        np.testing.assert_array_equal(x.atom_names, y.atom_names)
        np.testing.assert_array_equal(x.atom_residue, y.atom_residue)


@pytest.mark.parametrize(("atom", "value", "drops"), [(" CB ", "nan", "atom"), (" CA ", "inf", "residue"),
                                                      (" O  ", "-inf", "residue")])
def test_non_finite_coordinates_drop_the_atom_or_its_residue_with_a_warning(tmp_path, atom, value, drops):
    changed, without_atom, without_residue = _with_coordinate(pdb_text("1FQJ_l_u"), atom, value)
    paths = {}
    for name, text in (("bad", changed), ("atom", without_atom), ("residue", without_residue)):
        paths[name] = tmp_path / f"{name}.pdb"
        paths[name].write_text(text)
    bad = read_structure(paths["bad"])
    _same_chains(bad, read_structure(paths["atom" if drops == "atom" else "residue"]))
    [warning] = bad.warnings
    assert str(paths["bad"]) in warning and "non-finite coordinates" in warning and atom.strip() in warning
    assert ("residue(s) whose backbone" in warning) == (drops != "atom")
    result = _cli("encode", paths["bad"], "-o", tmp_path / "bad.fasta", "-t", "1")  # ISM tokens
    assert result.exit_code == 0 and "warning:" in result.output and "non-finite" in result.output, result.output
    expected = paths["atom" if drops == "atom" else "residue"]
    assert _cli("encode", expected, "-o", tmp_path / "expected.fasta", "-t", "1").exit_code == 0
    assert list(_tokens_of(tmp_path / "bad.fasta").values()) == list(_tokens_of(tmp_path / "expected.fasta").values())


def test_tokenizers_refuse_chains_with_non_finite_coordinates():
    """Chains built by hand (not read) with NaN coordinates: an error, never garbage tokens or a crash."""
    from dataclasses import replace

    from ismtk.tokenizers import load_tokenizer

    chain = read_structure(STRUCTURES / "d1a32a_.pdb.gz").chains[0]
    coords = chain.coords.copy()
    coords[7] = np.nan
    for tokenizer in (TOKENIZER, load_tokenizer("ism")):
        with pytest.raises(StructureError, match="non-finite"):
            tokenizer.encode(replace(chain, coords=coords))


# --- 5. one path for every input -----------------------------------------------------------------------
@pytest.fixture()
def batch(tmp_path, bad_files) -> list[Path]:
    """Inputs of every kind, some good: a file, a missing path, a list with a good and a missing line, a folder
    with an unreadable file, an empty folder, a CA-only file."""
    good = tmp_path / "good"
    good.mkdir()
    for name in ("1FQJ_l_u", "d1a32a_", "2HPR"):
        shutil.copy(STRUCTURES / f"{name}.pdb.gz", good)
    (tmp_path / "list.txt").write_text("good/d1a32a_.pdb.gz\n# a comment\ngood/gone.pdb\n")
    (tmp_path / "folder").mkdir()
    shutil.copy(good / "2HPR.pdb.gz", tmp_path / "folder")
    shutil.copy(bad_files["binary"], tmp_path / "folder" / "unreadable.pdb")
    (tmp_path / "empty").mkdir()
    return [good / "1FQJ_l_u.pdb.gz", tmp_path / "missing.pdb", tmp_path / "list.txt", tmp_path / "folder",
            tmp_path / "empty", bad_files["ca_only"]]


def test_encode_takes_every_input_through_one_path(batch, tmp_path):
    out = tmp_path / "tokens.fasta"
    result = _cli("encode", *batch, "-o", out, "--tokenizer", "3di", "-t", "1")
    assert result.exit_code == EXIT_SKIPPED, result.output
    for named in ("missing.pdb: no such file", "gone.pdb: no such file", "unreadable.pdb: binary",
                  "empty: folder holds no structure file", "ca_only.pdb chain"):
        assert named in result.output, named
    assert "skipped 4 file(s) and 1 chain(s)" in result.output
    singles = {}
    for path in (batch[0], batch[0].parent / "d1a32a_.pdb.gz", batch[0].parent / "2HPR.pdb.gz"):
        encode_to_fasta([path], TOKENIZER, tmp_path / "one.fasta")
        singles.update(_tokens_of(tmp_path / "one.fasta"))
    assert _tokens_of(out) == singles


def test_createdb_takes_every_input_through_one_path_and_sums_up(batch, tmp_path):
    result = _cli("createdb", *batch, tmp_path / "db", "--tokenizer", "3di", "-t", "1")
    assert result.exit_code == EXIT_SKIPPED, result.output
    for named in ("missing.pdb", "gone.pdb", "unreadable.pdb", "empty", "ca_only.pdb"):
        assert named in result.output, named
    assert "skipped 5 input(s)" in result.output and "wrote 3 entries" in result.output
    assert sorted(SequenceDB.load(tmp_path / "db").names) == ["1FQJ_l_u", "2HPR", "d1a32a_"]


# --- 6. truncated and odd files --------------------------------------------------------------------------
@pytest.mark.parametrize("cut", [5, 20, 33, 53])
def test_a_pdb_cut_in_a_coordinate_line_reads_the_lines_before_it(tmp_path, cut):
    text = pdb_text("d1a32a_").encode()
    start = text.index(b"\nATOM", len(text) // 2) + 1
    (tmp_path / "cut.pdb").write_bytes(text[: start + cut])
    (tmp_path / "whole_lines.pdb").write_bytes(text[:start])
    cut_file = read_structure(tmp_path / "cut.pdb")
    _same_chains(cut_file, read_structure(tmp_path / "whole_lines.pdb"))
    line = text[:start].count(b"\n") + 1
    assert cut_file.warnings == (f"{tmp_path / 'cut.pdb'}: the file ends in the middle of line {line} (truncated?); "
                                 "read the lines before it",)
    # cut after the coordinates, the line is whole enough: read as it is, without a warning
    (tmp_path / "late.pdb").write_bytes(text[: start + 60])
    assert read_structure(tmp_path / "late.pdb").warnings == ()


def test_an_mmcif_cut_in_a_row_reads_the_rows_before_it(tmp_path):
    text = gzip.decompress((MMCIF / "1HZ6.cif.gz").read_bytes())
    start = text.index(b"\nATOM", len(text) // 2) + 1
    (tmp_path / "cut.cif").write_bytes(text[: start + 25])
    (tmp_path / "rows.cif").write_bytes(text[:start])
    cut_file = read_structure(tmp_path / "cut.cif")
    _same_chains(cut_file, read_structure(tmp_path / "rows.cif"))
    assert "ends in the middle of line" in cut_file.warnings[0]


def test_unreadable_lines_are_named_without_exception_classes(tmp_path):
    pdb = _atoms(pdb_text("d1a32a_"))
    k = next(i for i, ln in enumerate(pdb) if ln.startswith("ATOM"))
    (tmp_path / "short.pdb").write_text("".join(pdb[:k] + ["ATOM      1  N\n"] + pdb[k:]))
    cif = gzip.decompress((MMCIF / "1HZ6.cif.gz").read_bytes()).decode().splitlines(keepends=True)
    j = next(i for i, ln in enumerate(cif) if ln.startswith("ATOM"))
    (tmp_path / "quote.cif").write_text("".join(cif[:j] + ['ATOM 1 "unterminated\n'] + cif[j:]))
    for name, line in (("short.pdb", k + 1), ("quote.cif", j + 1)):
        with pytest.raises(StructureError) as info:
            read_structure(tmp_path / name)
        message = str(info.value)
        assert f"line {line}:" in message and "Error" not in message and "string:" not in message, message
        assert "\n" not in message and not message.endswith(":")


def test_files_without_a_suffix_are_read_by_content_and_format_forces_one(tmp_path):
    folder = tmp_path / "astral"
    folder.mkdir()
    (folder / "d1a32a_").write_text(pdb_text("d1a32a_"))
    (folder / "d1hz6__").write_bytes(gzip.decompress((MMCIF / "1HZ6.cif.gz").read_bytes()))
    (folder / "README").write_text("not a structure\n")
    (folder / "d1a1xa_.gz").write_bytes(gzip.compress(pdb_text("d1a1xa_").encode()))  # only .gz: was passed over
    out = tmp_path / "t.fasta"
    result = _cli("encode", folder, "-o", out, "--tokenizer", "3di", "-t", "1")
    assert result.exit_code == 0, result.output
    assert sorted(_tokens_of(out)) == ["d1a1xa_", "d1a32a_", "d1hz6___A", "d1hz6___B", "d1hz6___C"]
    misnamed = tmp_path / "really_mmcif.pdb"
    misnamed.write_bytes((folder / "d1hz6__").read_bytes())
    result = _cli("encode", misnamed, "-o", out, "--tokenizer", "3di", "-t", "1")
    assert result.exit_code == EXIT_ERROR and "cannot parse as PDB" in result.output
    result = _cli("encode", misnamed, "-o", out, "--tokenizer", "3di", "-t", "1", "--format", "mmcif")
    assert result.exit_code == 0 and len(_tokens_of(out)) == 3, result.output


# --- 7. errors as one line --------------------------------------------------------------------------------
def test_an_output_naming_a_folder_is_refused_before_any_work(tmp_path):
    folder = tmp_path / "already_a_folder"
    folder.mkdir()
    inputs = [STRUCTURES / "d1a32a_.pdb.gz", tmp_path / "missing.pdb"]  # work would report the missing file
    for args in (["encode", *inputs, "-o", folder], ["encode", *inputs, "-o", tmp_path / "t.fa", "--aa-output", folder],
                 ["search", *inputs[:1], *inputs[:1], "-o", folder], ["easy-search", *inputs[:1], *inputs[:1], folder]):
        result = _cli(*args)
        assert result.exit_code == EXIT_ERROR and "missing.pdb" not in result.output, result.output
        _one_error_line(result.output, str(folder), "is a folder")
    (tmp_path / "a_file").write_text("mine\n")
    result = _cli("createdb", *inputs, tmp_path / "a_file")
    assert result.exit_code == EXIT_ERROR and "missing.pdb" not in result.output
    _one_error_line(result.output, "a_file", "holds more than an ismtk database")
    assert (tmp_path / "a_file").read_text() == "mine\n"
    assert _cli("createdb", inputs[0], tmp_path / "db").exit_code == 0
    (tmp_path / "db" / "notes.txt").write_text("mine\n")  # a file of the user's in a database folder: kept
    result = _cli("createdb", inputs[0], tmp_path / "db")
    _one_error_line(result.output, "db", "holds more than an ismtk database")
    assert (tmp_path / "db" / "notes.txt").read_text() == "mine\n"


def test_an_output_naming_an_input_or_the_other_output_is_refused_and_the_input_kept(tmp_path):
    structure, fasta = tmp_path / "one.pdb.gz", tmp_path / "t.fa"
    shutil.copy(STRUCTURES / "d1a32a_.pdb.gz", structure)
    before = structure.read_bytes()
    assert _cli("encode", structure, "-o", fasta, "--tokenizer", "3di").exit_code == 0
    (tmp_path / "link.fa").symlink_to(fasta)
    for args, named in (
        (["encode", tmp_path, "-o", structure, "--tokenizer", "3di"], "one.pdb.gz"),  # an input found in a folder
        (["search", structure, fasta, "-o", structure], "one.pdb.gz"),
        (["easy-search", structure, structure, structure], "one.pdb.gz"),
        (["search", fasta, fasta, "-o", fasta], "t.fa"),
        (["encode", structure, "-o", tmp_path / "x.fa", "--aa-output", tmp_path / "x.fa"], "name the same file"),
        # a file one output writes beside it: the tokens were replaced by the amino acids, or these deleted
        *((["encode", structure, "-o", tmp_path / "x.fa", "--aa-output", tmp_path / f"x.fa{suffix}"],
           f"x.fa{suffix}: --aa-output") for suffix in (".part", ".resume")),
        (["search", tmp_path / "link.fa", fasta, "-o", tmp_path / "link.fa"], "link.fa"),  # a link to an input
    ):
        result = _cli(*args)
        assert result.exit_code == EXIT_ERROR, result.output
        _one_error_line(result.output, named)
    assert structure.read_bytes() == before


def test_an_output_under_a_file_is_one_error_line(tmp_path):
    (tmp_path / "a_file").write_text("mine\n")
    for target in (tmp_path / "a_file" / "t.fa", tmp_path / "a_file" / "deeper" / "t.fa"):
        result = _cli("encode", STRUCTURES / "d1a32a_.pdb.gz", "-o", target, "--tokenizer", "3di")
        assert result.exit_code == EXIT_ERROR
        _one_error_line(result.output, "a_file")
    with pytest.raises(InputError, match="a_file"), atomic_write(tmp_path / "a_file" / "x.txt") as handle:
        handle.write("never\n")
    assert (tmp_path / "a_file").read_text() == "mine\n"


def test_a_file_name_with_spaces_names_its_entry_alike_in_fasta_and_database(tmp_path):
    spaced = tmp_path / "my model (1).pdb.gz"
    shutil.copy(STRUCTURES / "d1a32a_.pdb.gz", spaced)
    assert _cli("encode", spaced, "-o", tmp_path / "t.fa", "--tokenizer", "3di").exit_code == 0
    assert _cli("createdb", spaced, tmp_path / "db", "--tokenizer", "3di").exit_code == 0
    assert list(_tokens_of(tmp_path / "t.fa")) == SequenceDB.load(tmp_path / "db").names == ["my_model_(1)"]


def test_path_lists_that_name_nothing_or_list_themselves_are_one_error_line(tmp_path):
    empty, loop, other = tmp_path / "empty.txt", tmp_path / "loop.txt", tmp_path / "other.list"
    empty.write_text("# nothing yet\n\n")
    loop.write_text(f"{STRUCTURES / 'd1a32a_.pdb.gz'}\nother.list\n")
    other.write_text("loop.txt\n")
    for listed, words in ((empty, ("empty.txt", "names no file")), (loop, ("loop.txt", "lists itself"))):
        result = _cli("encode", listed, "-o", tmp_path / "t.fa", "--tokenizer", "3di")
        assert result.exit_code == EXIT_ERROR and not (tmp_path / "t.fa").exists()
        _one_error_line(result.output, *words)


def test_cluster_refuses_fewer_than_two_tokens_or_more_than_64():
    for k in ("0", "100"):
        result = _cli("cluster", ROOT / "ismtk" / "data" / "ism", STRUCTURES, "-k", k, "-o", "unused")
        assert result.exit_code != 0 and "2 to 64" in result.output


def test_a_structure_file_named_as_a_path_list_is_said_to_be_one(tmp_path):
    listed = tmp_path / "model.txt"
    listed.write_text(pdb_text("d1a32a_"))
    result = _cli("encode", listed, "-o", tmp_path / "t.fa", "--tokenizer", "3di")
    _one_error_line(result.output, "model.txt", "a structure file named as a path list")
    fasta = tmp_path / "tokens.txt"  # was one 'no such file' warning per FASTA line
    fasta.write_text(">d1a32a_ tokenizer=3di\nACDEFG\n")
    result = _cli("search", fasta, fasta, "-o", tmp_path / "hits.m8")
    _one_error_line(result.output, "tokens.txt", "a FASTA file named as a path list")


def _damage(folder: Path, how: str) -> str:
    """Damage a database folder; returns the file the error must name."""
    if how == "truncated tokens":
        data = (folder / "tokens.npy").read_bytes()
        (folder / "tokens.npy").write_bytes(data[: len(data) - 50])
        return "tokens.npy"
    if how == "missing names":
        (folder / "names.txt").unlink()
        return "names.txt"
    if how == "repeated name":
        names = (folder / "names.txt").read_text().splitlines()
        (folder / "names.txt").write_text("\n".join([names[0]] * len(names)) + "\n")
        return "names.txt"
    if how == "no header":
        (folder / "ismtk-db.json").unlink()
        return "ismtk-db.json"
    if how == "header without tokenizer":
        header = json.loads((folder / "ismtk-db.json").read_text())
        del header["tokenizer"]
        (folder / "ismtk-db.json").write_text(json.dumps(header))
        return "ismtk-db.json"
    if how in ("header alphabet refused", "header ca not a boolean"):
        header = json.loads((folder / "ismtk-db.json").read_text())
        header.update({"alphabet": "AAB"} if how == "header alphabet refused" else {"ca": "no"})
        (folder / "ismtk-db.json").write_text(json.dumps(header))
        return "ismtk-db.json"
    if how == "name with a space":
        names = (folder / "names.txt").read_text().splitlines()
        (folder / "names.txt").write_text("\n".join(["a b", *names[1:]]) + "\n")
        return "names.txt"
    if how == "amino acids not letters":
        aa = np.load(folder / "aa.npy")
        aa[3] = ord("1")
        np.save(folder / "aa.npy", aa)
        return "aa.npy"
    if how == "non-finite frames":
        frames = np.load(folder / "ca_frames.npy")
        frames[0, 3] = np.nan
        np.save(folder / "ca_frames.npy", frames)
        return "ca_frames.npy"
    if how == "pickled offsets":
        offsets = np.load(folder / "offsets.npy")
        np.save(folder / "offsets.npy", np.array(offsets.tolist(), dtype=object), allow_pickle=True)
        return "offsets.npy"
    (folder / "offsets.npy").write_bytes((folder / "offsets.npy").read_bytes()[:-3])
    return "offsets.npy"


@pytest.mark.parametrize(
    "how", ["truncated tokens", "missing names", "pickled offsets", "truncated offsets", "non-finite frames",
            "repeated name", "no header", "header without tokenizer", "header alphabet refused",
            "header ca not a boolean", "name with a space", "amino acids not letters"]
)
def test_a_damaged_database_is_one_error_line_naming_the_file(tmp_path, how):
    assert _cli("createdb", STRUCTURES / "d1a32a_.pdb.gz", STRUCTURES / "2HPR.pdb.gz", tmp_path / "db").exit_code == 0
    name = _damage(tmp_path / "db", how)
    result = _cli("search", STRUCTURES / "d1a32a_.pdb.gz", tmp_path / "db", "-o", tmp_path / "hits.m8")
    assert result.exit_code == EXIT_ERROR
    _one_error_line(result.output, str(tmp_path / "db" / name), "createdb")


def test_a_database_array_that_is_no_npy_file_is_not_said_to_hold_python_objects(tmp_path):
    """numpy reads a file without its magic as a pickle, so a Git LFS pointer or a zero-filled tokens.npy was
    refused as one holding Python objects."""
    assert _cli("createdb", STRUCTURES / "d1a32a_.pdb.gz", tmp_path / "db").exit_code == 0
    pickled = np.array([0, 1], dtype=object)
    for content, reason in [
        (b"version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 9\n", "not a NumPy array file"),
        (bytes(4096), "not a NumPy array file"),
        (None, "holds Python objects"),
    ]:
        if content is None:
            np.save(tmp_path / "db" / "tokens.npy", pickled, allow_pickle=True)
        else:
            (tmp_path / "db" / "tokens.npy").write_bytes(content)
        result = _cli("search", STRUCTURES / "d1a32a_.pdb.gz", tmp_path / "db", "-o", tmp_path / "hits.m8")
        assert result.exit_code == EXIT_ERROR
        _one_error_line(result.output, f"{tmp_path / 'db' / 'tokens.npy'}: {reason}", "createdb")


@pytest.mark.parametrize("call", [print, os.system], ids=["print", "os.system"])
def test_the_weights_only_refusal_does_not_advise_turning_safety_off(tmp_path, call):
    """os.system's module is blocked outright, in other words than print's refusal: it was called damaged."""

    class Payload:
        def __reduce__(self):
            return (call, ("true",))

    torch.save({"model": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(InputError) as info:
        load_checkpoint(tmp_path / "evil.pt")
    message = str(info.value)
    assert message.startswith(f"{tmp_path / 'evil.pt'}: ") and "\n" not in message
    reason = message.removeprefix(f"{tmp_path / 'evil.pt'}: ")
    named = {print: ("builtins.print", "print"), os.system: ("posix.system", "os.system")}[call]
    assert any(f"Python objects ({name})" in reason for name in named), reason
    assert "weights_only" not in reason and "trust" not in reason and "UnpicklingError" not in reason


@pytest.mark.parametrize("content", ["a structure", "a cut checkpoint"])
def test_a_file_that_is_no_torch_file_is_said_to_be_one(tmp_path, content):
    weights = (ROOT / "ismtk" / "data" / "ism" / "model.pt").read_bytes()
    data = (STRUCTURES / "d1a32a_.pdb.gz").read_bytes() if content == "a structure" else weights[: len(weights) // 2]
    (tmp_path / "model.pt").write_bytes(data)
    with pytest.raises(InputError, match="truncated, damaged or not a torch file") as info:
        load_checkpoint(tmp_path / "model.pt")
    assert "Python objects" not in str(info.value) and "\n" not in str(info.value)


# --- 8. repeated entry names -------------------------------------------------------------------------------
@pytest.fixture()
def twice(tmp_path) -> Path:
    """The same entry as PDB and (later in the folder's order) as mmCIF: 1HZ6_A/B/C twice."""
    folder = tmp_path / "twice"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(STRUCTURES / "1HZ6.pdb.gz", folder)
    shutil.copy(MMCIF / "1HZ6.cif.gz", folder / "sub")
    shutil.copy(STRUCTURES / "d1a32a_.pdb.gz", folder)
    return folder


def test_repeated_entry_names_are_skipped_and_said(twice, tmp_path):
    out = tmp_path / "t.fasta"
    result = _cli("encode", twice, "-o", out, "--tokenizer", "3di", "-t", "1")
    assert result.exit_code == EXIT_SKIPPED, result.output
    assert result.output.count("is already taken by") == 3 and "1HZ6.pdb.gz" in result.output
    # one entry as .pdb and .cif: renaming helps, --chain-names always would not (its chains collide alike)
    assert "rename one of the files, or leave one out" in result.output and "--chain-names" not in result.output
    names = [line[1:].split()[0] for line in out.read_text().splitlines() if line.startswith(">")]
    assert sorted(names) == ["1HZ6_A", "1HZ6_B", "1HZ6_C", "d1a32a_"]
    result = _cli("createdb", twice, tmp_path / "db", "--tokenizer", "3di", "-t", "1")
    assert result.exit_code == EXIT_SKIPPED and result.output.count("is already taken by") == 3
    assert sorted(SequenceDB.load(tmp_path / "db").names) == sorted(names)
    fasta = tmp_path / "dup.fasta"
    fasta.write_text(">x tokenizer=3di\nDPVVL\n>x tokenizer=3di\nACDEF\n")
    result = _cli("createdb", fasta, tmp_path / "db2")
    assert result.exit_code == EXIT_SKIPPED and "record name x is already taken" in result.output


def test_a_file_given_twice_is_said_to_be(twice, tmp_path):
    one = twice / "1HZ6.pdb.gz"
    result = _cli("encode", one, one, "-o", tmp_path / "t.fasta", "--tokenizer", "3di", "-t", "1")
    assert result.exit_code == EXIT_SKIPPED and result.output.count("this file is given twice; leave out one") == 3
    assert "--chain-names" not in result.output


def test_repeated_names_are_caught_across_a_resume(twice, tmp_path, monkeypatch):
    monkeypatch.setattr(resumable, "COMMIT_SECONDS", 0.0)
    files = [twice / "1HZ6.pdb.gz", twice / "d1a32a_.pdb.gz", twice / "sub" / "1HZ6.cif.gz"]

    def stop_after_first(result):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        encode_to_fasta(files, TOKENIZER, tmp_path / "t.fasta", on_result=stop_after_first)
    summary = encode_to_fasta(files, TOKENIZER, tmp_path / "t.fasta", resume=True)
    assert summary.resumed_files == 1 and len(summary.skipped) == 3
    assert all("already taken by an earlier record" in str(s) for s in summary.skipped)
    assert len(_tokens_of(tmp_path / "t.fasta")) == 4


# --- 3, 9. leftovers of killed runs, folders, progress ---------------------------------------------------
def test_leftovers_of_killed_writers_are_taken_over_and_live_ones_left_alone(tmp_path):
    out = tmp_path / "hits.m8"
    temporary_of(out).write_text("half of a killed run's output")
    with atomic_write(out) as handle:
        handle.write("new\n")
    assert out.read_text() == "new\n" and not temporary_of(out).exists()
    live = os.open(temporary_of(out), os.O_RDWR | os.O_CREAT)  # a writer still at work
    fcntl.flock(live, fcntl.LOCK_EX)
    try:
        with atomic_write(out) as handle:
            handle.write("second\n")
        assert out.read_text() == "second\n" and temporary_of(out).exists()
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == [".hits.m8.part"]
    finally:
        os.close(live)
    leftover = temporary_of(tmp_path / "db")
    leftover.mkdir()
    (leftover / "names.txt").write_text("stale\n")
    with atomic_folder(tmp_path / "db") as folder:
        (folder / "names.txt").write_text("fresh\n")
    assert (tmp_path / "db" / "names.txt").read_text() == "fresh\n" and not leftover.exists()




def test_a_path_the_system_refuses_is_one_error_line(tmp_path, monkeypatch):
    """No permission (root ignores modes, so the refusal is simulated), a full disk: one line naming the path."""

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "locked" / "t.fasta.resume"))

    monkeypatch.setattr(resumable.ResumableFasta, "__enter__", refused)
    result = _cli("encode", STRUCTURES / "d1a32a_.pdb.gz", "-o", tmp_path / "locked" / "t.fasta", "--tokenizer", "3di")
    assert result.exit_code == EXIT_ERROR
    _one_error_line(result.output, "t.fasta.resume: Permission denied")

def test_outputs_through_links_and_into_pipes(tmp_path):
    """A symbolic link is written where it points and stays a link; a pipe (``-o /dev/stdout``, ``>(cmd)``) is
    written into, not replaced by a file; encode's resumable output refuses a pipe."""
    import threading

    (tmp_path / "real.m8").write_text("old\n")
    (tmp_path / "link.m8").symlink_to(tmp_path / "real.m8")
    with atomic_write(tmp_path / "link.m8") as handle:
        handle.write("new\n")
    assert (tmp_path / "link.m8").is_symlink() and (tmp_path / "real.m8").read_text() == "new\n"
    pipe = tmp_path / "pipe.m8"
    os.mkfifo(pipe)
    received = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_text()))
    reader.start()
    with atomic_write(pipe) as handle:
        handle.write("through the pipe\n")
    reader.join(10)
    assert received == ["through the pipe\n"] and pipe.is_fifo()
    result = _cli("encode", STRUCTURES / "d1a32a_.pdb.gz", "-o", pipe, "--tokenizer", "3di")
    _one_error_line(result.output, str(pipe), "no regular file")
    assert pipe.is_fifo()

def test_a_folder_replaced_is_never_half_deleted(tmp_path, monkeypatch):
    """The old database is moved aside before the new one comes in; a kill while deleting it loses neither."""
    with atomic_folder(tmp_path / "db") as folder:
        (folder / "names.txt").write_text("old\n")
    real_rmtree = shutil.rmtree

    def killed(path, *args, **kwargs):
        raise KeyboardInterrupt  # as if killed while the old folder is deleted

    monkeypatch.setattr(shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt), atomic_folder(tmp_path / "db") as folder:
        (folder / "names.txt").write_text("new\n")
    assert (tmp_path / "db" / "names.txt").read_text() == "new\n"
    assert (tmp_path / ".db.old" / "names.txt").read_text() == "old\n"
    monkeypatch.setattr(shutil, "rmtree", real_rmtree)
    with atomic_folder(tmp_path / "db") as folder:  # the next replacement clears the leftover
        (folder / "names.txt").write_text("newer\n")
    assert (tmp_path / "db" / "names.txt").read_text() == "newer\n" and not (tmp_path / ".db.old").exists()


def test_database_folders_get_the_umask_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        assert _cli("createdb", STRUCTURES / "d1a32a_.pdb.gz", tmp_path / "db").exit_code == 0
        assert (tmp_path / "db").stat().st_mode & 0o777 == 0o755
        assert (tmp_path / "db" / "names.txt").stat().st_mode & 0o777 == 0o644
    finally:
        os.umask(old)


def test_missing_output_folders_are_created_and_said(tmp_path):
    out = tmp_path / "new" / "deeper" / "t.fasta"
    result = _cli("encode", STRUCTURES / "d1a32a_.pdb.gz", "-o", out, "--tokenizer", "3di")
    assert result.exit_code == 0 and f"created folder {out.parent} for t.fasta" in result.output
    assert out.is_file()


def test_progress_is_logged_as_lines_when_not_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(console, "LOG_SECONDS", 0.0)
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("1FQJ_l_u", "d1a32a_", "2HPR"):
        shutil.copy(STRUCTURES / f"{name}.pdb.gz", folder)
    result = _cli("encode", folder, "-o", tmp_path / "t.fasta", "--tokenizer", "3di", "-t", "1")
    lines = [line for line in result.output.splitlines() if line.startswith("encoding: ")]
    assert [line.split(" (")[0] for line in lines] == [f"encoding: {n} of 3 files" for n in (1, 2, 3)]
    assert "elapsed" in lines[-1] and "left" in lines[-1]


def test_the_readme_command_writes_where_git_ignores(tmp_path):
    readme = (ROOT / "README.md").read_text()
    command = next(line for line in readme.splitlines() if "ismtk encode tests/data/structures" in line)
    output = command.split(" -o ")[1].split()[0]
    assert output.split("/")[0] + "/" == "out/" and "/out/" in (ROOT / ".gitignore").read_text().split()


def test_align_pairs_with_no_pair_to_align_keeps_the_old_output(tmp_path):
    """It wrote an empty .aln over the old one (exit 3) when no pair named two readable chains."""
    old = tmp_path / "keep.aln"
    old.write_text("an older alignment file\n")
    (tmp_path / "pairs.tsv").write_text("d1a32a_\tnot_there\n")
    result = _cli("align-pairs", STRUCTURES, "--pairs", tmp_path / "pairs.tsv", "-o", old)
    assert result.exit_code == EXIT_ERROR
    _one_error_line(result.output, "pairs.tsv: none of its pairs names two usable chains", "nothing written")
    assert old.read_text() == "an older alignment file\n"
