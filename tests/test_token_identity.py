"""Tokens know their tokenizer: token FASTA tags, database headers, errors that name the fix, older databases."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from helpers import HOMOLOGS, SEARCH_DOMAINS
from typer.testing import CliRunner

from ismtk.cli import app
from ismtk.cli.console import EXIT_ERROR
from ismtk.plm.tune_data import StreamSpec, load_tune_data
from ismtk.search.matrix import TOKENIZER_MATRIX, SubstitutionMatrix, write_matrix
from ismtk.sequence import read_fasta_records
from ismtk.tokenizers import load_tokenizer

runner = CliRunner()


def _run(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def _fail(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == EXIT_ERROR, result.output
    return result.output


@pytest.fixture(scope="module")
def ism_fasta(tmp_path_factory):
    """Two domains encoded with the default tokenizer (the shipped ISM model)."""
    out = tmp_path_factory.mktemp("ism") / "tokens.fasta"
    _run("encode", *(SEARCH_DOMAINS / f"{name}.pdb.gz" for name in HOMOLOGS), "-o", out, "-t", "1")
    return out


def test_encode_tags_every_record_and_search_reads_ism_tokens_by_their_tag(ism_fasta, tmp_path):
    identity = load_tokenizer("ism").identity
    records = list(read_fasta_records(ism_fasta))
    assert [r.name for r in records] == list(HOMOLOGS)
    assert all(r.description == f"tokenizer={identity}" for r in records)
    hits = tmp_path / "hits.m8"
    _run("search", ism_fasta, ism_fasta, "-o", hits, "-e", "1e9", "-t", "1")  # was an alphabet error: read as 3Di
    rows = [line.split("\t") for line in hits.read_text().splitlines()]
    assert {(r[0], r[1]) for r in rows if r[0] == r[1]} == {(n, n) for n in HOMOLOGS}
    db = tmp_path / "db"
    _run("createdb", ism_fasta, db)
    assert json.loads((db / "ismtk-db.json").read_text())["tokenizer"] == identity


def test_structure_tuning_keeps_the_tag_for_predict_tokens(ism_fasta, tmp_path):
    """Heads trained on tagged tokens record their tokenizer, so predict-tokens tags its output the same way."""
    aa = tmp_path / "aa.fasta"
    _run("encode", *(SEARCH_DOMAINS / f"{name}.pdb.gz" for name in HOMOLOGS), "-o", tmp_path / "t.fasta",
         "--tokenizer", "3di", "--aa-output", aa, "-t", "1")
    data = load_tune_data(aa, [StreamSpec(ism_fasta, "ism")])
    assert [s.tokenizer for s in data.streams] == [load_tokenizer("ism").identity]


def test_mismatched_tokens_are_errors_that_name_the_fix(ism_fasta, tmp_path):
    threedi = tmp_path / "3di.fasta"
    _run("encode", SEARCH_DOMAINS / f"{HOMOLOGS[0]}.pdb.gz", "-o", threedi, "--tokenizer", "3di", "-t", "1")
    out = tmp_path / "x.m8"
    message = _fail("search", threedi, ism_fasta, "-o", out)
    assert "make both with the same tokenizer (ismtk encode --tokenizer ism" in message
    assert "or give --tokenizer 3di when the target is structures or holds these tokens as a track" in message
    assert "leave out --tokenizer" in _fail("search", ism_fasta, ism_fasta, "-o", out, "--tokenizer", "3di")
    mixed = tmp_path / "mixed.fasta"
    mixed.write_text(ism_fasta.read_text() + threedi.read_text().replace(f">{HOMOLOGS[0]}", ">other"))
    assert "keep the tokens of one tokenizer per file" in _fail("search", mixed, mixed, "-o", out)
    assert not out.exists()


def test_untagged_token_fasta_is_read_as_before(tmp_path):
    plain = tmp_path / "plain.fasta"
    encoded = tmp_path / "tagged.fasta"
    _run("encode", SEARCH_DOMAINS / f"{HOMOLOGS[0]}.pdb.gz", "-o", encoded, "--tokenizer", "3di", "-t", "1")
    plain.write_text("".join(f">{r.name}\n{r.sequence}\n" for r in read_fasta_records(encoded)))
    _run("search", plain, plain, "-o", tmp_path / "hits.m8", "-t", "1")  # untagged: 3Di, the default
    _run("search", encoded, encoded, "-o", tmp_path / "tagged.m8", "-t", "1")
    # read as 3Di: the very hits (scores, E-values) of the tagged 3Di tokens
    assert (tmp_path / "hits.m8").read_text() == (tmp_path / "tagged.m8").read_text() != ""
    assert (tmp_path / "hits.m8").read_text().split()[:2] == [HOMOLOGS[0], HOMOLOGS[0]]


def test_databases_of_older_versions_keep_loading(ism_folder, tmp_path):
    """Headers of older versions name the shipped model ``ism`` or an ISM folder by its absolute path. The shipped
    model has changed since ``ism`` was written, so such a database is read only when --tokenizer ism says so."""
    query = ism_folder / "structs" / "d1a32a_.pdb.gz"
    shipped = tmp_path / "shipped_db"
    _run("createdb", query, shipped, "--tokenizer", "ism", "-t", "1")
    _set_header_tokenizer(shipped, "ism")
    refused = _fail("search", query, shipped, "-o", tmp_path / "a.m8", "-e", "1e9", "-t", "1")
    assert "made by an older ismtk" in refused and "createdb" in refused
    _run("search", query, shipped, "-o", tmp_path / "a.m8", "-e", "1e9", "-t", "1", "--tokenizer", "ism")
    first = (tmp_path / "a.m8").read_text().split("\t")
    assert first[:2] == ["d1a32a_", "d1a32a_"] and float(first[2]) == 1.0

    folder = tmp_path / "tok"
    shutil.copytree(ism_folder / "tok", folder)
    symbols = load_tokenizer(folder).alphabet.symbols
    identity_scores = np.where(np.eye(len(symbols)), 3, -1).astype(np.int32)
    write_matrix(folder / TOKENIZER_MATRIX, SubstitutionMatrix(symbols, identity_scores))
    custom = tmp_path / "custom_db"
    _run("createdb", ism_folder / "structs", custom, "--tokenizer", folder, "-t", "1")
    _set_header_tokenizer(custom, str(folder.resolve()))
    search = ["search", query, custom, "-o", tmp_path / "b.m8", "-e", "1e9", "-t", "1"]
    _run(*search)
    moved = tmp_path / "moved"
    folder.rename(moved)
    assert "not there any more" in _fail(*search) and "--tokenizer FOLDER" in _fail(*search)
    _run(*search, "--tokenizer", moved)


def _set_header_tokenizer(db, value: str) -> None:
    header = json.loads((db / "ismtk-db.json").read_text())
    (db / "ismtk-db.json").write_text(json.dumps({**header, "tokenizer": value}))


def test_the_untagged_warning_names_the_tokens_of_an_ism_database(ism_folder, tmp_path):
    """The warning said '3di unless it names its tokenizer' of a database whose main tokens were ISM."""
    tokenizer = load_tokenizer(ism_folder / "tok")
    db, plain = tmp_path / "db", tmp_path / "plain.fasta"
    _run("createdb", ism_folder / "structs", db, "--tokenizer", ism_folder / "tok", "-t", "1")
    plain.write_text(">q\nABCDEFAB\n")
    # (a tokenizer that is not shipped needs its folder: the search then stops, after the warning)
    warned = runner.invoke(app, ["search", str(plain), str(db), "-o", str(tmp_path / "hits.m8"), "-t", "1"]).output
    assert f"read as the target's ({db}: {tokenizer.identity}) tokens" in " ".join(warned.split())
