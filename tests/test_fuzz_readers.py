"""Property-based fuzzing of the readers of user files (PDB, mmCIF, FASTA, databases) with Hypothesis.

Real files are cut short, have bytes flipped and lines shuffled, dropped or repeated; whatever comes out, a
reader either reads it or raises the project's own input error (:class:`StructureError`, :class:`InputError`)
whose message names the file and no Python exception class; and a batch holding one such file writes the other
files' records exactly as single-file runs do. Runs are derandomized (the same examples on every run) and small.
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import numpy as np
from helpers import MMCIF, STRUCTURES, pdb_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ismtk.errors import InputError, StructureError
from ismtk.search.db import SequenceDB
from ismtk.sequence.fasta import read_fasta_records
from ismtk.structure import read_structure
from ismtk.tokenizers import ThreeDiTokenizer
from ismtk.workflows.encode import encode_file, encode_to_fasta

FUZZ = settings(
    max_examples=40, derandomize=True, database=None, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
#: A Python exception class name in a message (``IndexError: ...``) means an error leaked unwrapped.
CLASS_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b")
TOKENIZER = ThreeDiTokenizer()

PDB = pdb_text("d1a32a_").encode()
MMCIF_TEXT = gzip.decompress((MMCIF / "1HZ6.cif.gz").read_bytes())
FASTA = b"".join(f">{c.name} tokenizer=3di\n{TOKENIZER.to_string(c)}\n".encode()
                 for name in ("1FQJ_l_u", "d1a32a_") for c in read_structure(STRUCTURES / f"{name}.pdb.gz").chains)


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """``data`` after one to three damages: cut short, bytes flipped, lines shuffled, dropped or repeated."""
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["cut", "flip", "shuffle", "drop", "repeat"]))
        if kind == "cut":
            data = data[: draw(st.integers(0, len(data)))]
        elif kind == "flip" and data:
            raw = bytearray(data)
            for _ in range(draw(st.integers(1, 8))):
                raw[draw(st.integers(0, len(raw) - 1))] = draw(st.integers(0, 255))
            data = bytes(raw)
        else:
            lines = data.split(b"\n")
            start = draw(st.integers(0, len(lines)))
            stop = draw(st.integers(start, min(len(lines), start + 40)))
            window = lines[start:stop]
            if kind == "shuffle":
                window = draw(st.permutations(window))
            elif kind == "drop":
                window = []
            else:
                window = window * 2
            data = b"\n".join(lines[:start] + list(window) + lines[stop:])
    return data


def _check_message(exc: Exception, path: Path) -> None:
    assert str(path) in str(exc), exc
    assert not CLASS_NAME.search(str(exc)), f"exception class in the message: {exc}"


def _read_and_encode(path: Path) -> None:
    """Read ``path`` and tokenize its chains: only the project's errors may come out, and what is read is sane."""
    try:
        structure = read_structure(path)
    except StructureError as exc:
        _check_message(exc, path)
        return
    for chain in structure.chains:
        assert np.isfinite(chain.coords).all()
        assert len(chain.sequence) == len(chain.ca_index) > 0
        try:
            assert len(TOKENIZER.encode(chain)) == len(chain)
        except StructureError as exc:
            _check_message(exc, path)
    for problem in structure.skipped:
        _check_message(problem, path)


@FUZZ
@given(data=damaged(PDB), gzipped=st.booleans())
def test_damaged_pdb_reads_or_raises_structure_error(tmp_path_factory, data, gzipped):
    path = tmp_path_factory.mktemp("pdb") / ("x.pdb.gz" if gzipped else "x.pdb")
    path.write_bytes(gzip.compress(data, mtime=0) if gzipped else data)
    _read_and_encode(path)


@FUZZ
@given(data=damaged(MMCIF_TEXT))
def test_damaged_mmcif_reads_or_raises_structure_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("cif") / "x.cif"
    path.write_bytes(data)
    _read_and_encode(path)


@FUZZ
@given(data=damaged(gzip.compress(PDB, mtime=0)))
def test_damaged_gzip_reads_or_raises_structure_error(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("gz") / "x.pdb.gz"
    path.write_bytes(data)
    _read_and_encode(path)


@FUZZ
@given(data=st.one_of(damaged(FASTA).map(lambda d: (d, False)), damaged(FASTA).map(lambda d: (d, True)),
                      damaged(gzip.compress(FASTA, mtime=0)).map(lambda d: (d, None))))
def test_damaged_token_fasta_reads_or_raises_input_error(tmp_path_factory, data):
    """Damaged text, plain or gzipped (``True``), or damaged gzip data (``None``)."""
    data, gzipped = data
    path = tmp_path_factory.mktemp("fasta") / ("t.fasta" if gzipped is False else "t.fasta.gz")
    path.write_bytes(gzip.compress(data, mtime=0) if gzipped else data)
    try:
        records = list(read_fasta_records(path))
        SequenceDB.from_fasta(path, TOKENIZER.alphabet, TOKENIZER.identity)
    except InputError as exc:
        _check_message(exc, path)
        return
    assert all(r.name and not r.name.startswith(">") for r in records)


@FUZZ
@given(
    part=st.sampled_from(["ismtk-db.json", "names.txt", "offsets.npy", "tokens.npy", "aa.npy"]),
    data=st.data(),
)
def test_damaged_database_loads_or_raises_input_error(tmp_path_factory, part, data):
    folder = tmp_path_factory.mktemp("db") / "db"
    chains = [c for name in ("1FQJ_l_u", "d1a32a_") for c in read_structure(STRUCTURES / f"{name}.pdb.gz").chains]
    records = [(c.name, TOKENIZER.encode(c), c.sequence) for c in chains]
    SequenceDB.from_records(records, TOKENIZER.alphabet, TOKENIZER.identity).save(folder)
    target = folder / part
    target.write_bytes(data.draw(damaged(target.read_bytes()), label=part))
    try:
        db = SequenceDB.load(folder)
    except InputError as exc:
        assert str(folder) in str(exc) and not CLASS_NAME.search(str(exc)), exc
        return
    lengths = db.lengths()
    assert (lengths > 0).all() and db.residues == len(db.tokens) and len(db.names) == len(db)
    assert int(np.max(db.tokens)) < len(db.alphabet)
    for i in range(len(db)):  # every entry can be read as tokens and amino acids
        assert len(db.alphabet.decode(db.token_seq(i))) == lengths[i]


def _records(path: Path) -> dict[str, str]:
    text = path.read_text()
    return dict(zip(text.split("\n")[0::2], text.split("\n")[1::2], strict=False))


@settings(FUZZ, max_examples=15)
@given(data=damaged(PDB))
def test_a_batch_with_one_bad_file_writes_the_others_as_single_runs(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("batch")
    folder = root / "in"
    folder.mkdir()
    good = ["1FQJ_l_u", "d1a32a_"]
    for name in good:
        shutil.copy(STRUCTURES / f"{name}.pdb.gz", folder / f"{name}.pdb.gz")
    (folder / "b_bad.pdb").write_bytes(data)  # between the good ones in the folder's order
    summary = encode_to_fasta(sorted(folder.iterdir()), TOKENIZER, root / "batch.fasta", threads=1)
    assert summary.files == 3
    batch = _records(root / "batch.fasta")
    for name in good:
        single = root / f"{name}.fasta"
        encode_to_fasta([folder / f"{name}.pdb.gz"], TOKENIZER, single)
        for header, tokens in _records(single).items():
            assert batch[header] == tokens
    result = encode_file(folder / "b_bad.pdb", TOKENIZER)
    assert not any("internal error" in str(problem) for problem in result.skipped)
