"""Token alphabets (round trips, parasail compatibility) and FASTA reading/writing."""

from __future__ import annotations

import gzip

import numpy as np
import parasail
import pytest

from ismtk.errors import InputError
from ismtk.tokenizers import MAX_TOKENS, Alphabet, FastaWriter, read_fasta


@pytest.mark.parametrize("k", [2, 20, 64])
def test_alphabet_round_trip(k):
    alphabet = Alphabet.of_size(k)
    tokens = np.random.default_rng(k).integers(0, k, size=500).astype(np.uint8)
    text = alphabet.decode(tokens)
    assert len(text) == 500 and text.isprintable()
    np.testing.assert_array_equal(alphabet.encode(text), tokens)
    np.testing.assert_array_equal(alphabet.encode(text.lower()), tokens)


def test_k64_alphabet_is_a_parasail_alphabet():
    alphabet = Alphabet.of_size(64)
    matrix = parasail.matrix_create(alphabet.symbols, 0, -1)
    for i in range(64):  # +3 on the diagonal of token i only: each symbol must map to its own row
        matrix[i, i] = 3
    for i, symbol in enumerate(alphabet.symbols):
        others = alphabet.symbols[:i] + alphabet.symbols[i + 1 :]
        assert parasail.sw_striped_16(symbol * 4, symbol * 4, 10, 1, matrix).score == 12
        assert parasail.sw_striped_16(symbol * 4, others[:4], 10, 1, matrix).score == 0


def test_alphabet_rejects_bad_symbols():
    with pytest.raises(InputError, match="repeats"):
        Alphabet("ABa")
    with pytest.raises(InputError, match="not allowed"):
        Alphabet("AB>")
    with pytest.raises(InputError, match=f"at most {MAX_TOKENS}"):
        Alphabet.of_size(MAX_TOKENS + 1)
    with pytest.raises(InputError, match=r"rec1: symbols 'Z'"):
        Alphabet("ACD").encode("ACZD", name="rec1")
    with pytest.raises(InputError, match="symbols '€'"):  # not read as '?', which is a symbol of 64 tokens
        Alphabet.of_size(MAX_TOKENS).encode("AB€C")


def test_fasta_round_trip_plain_and_gz(tmp_path):
    records = [("a", "ACDE"), ("b_x", "WWW"), ("c", ""), ("voilà", "AC"), ("Åland_naïve", "D")]  # written as UTF-8
    for name in ("out.fasta", "out.fasta.gz"):
        path = tmp_path / name
        with FastaWriter(path) as writer:
            for rec in records:
                writer.write(*rec)
        assert list(read_fasta(path)) == records
    assert gzip.open(tmp_path / "out.fasta.gz", "rt").read().startswith(">a\nACDE\n")
    (tmp_path / "latin1.fasta").write_bytes(b">caf\xe9 x\nAC\n")  # not UTF-8: read, not refused
    assert list(read_fasta(tmp_path / "latin1.fasta")) == [("caf\ufffd", "AC")]


def test_fasta_reader_joins_lines_and_takes_first_word(tmp_path):
    path = tmp_path / "x.fa"
    path.write_text(">seq1 some description\nACD\nEF G\n\n>seq2\nKL\n")
    assert list(read_fasta(path)) == [("seq1", "ACDEFG"), ("seq2", "KL")]


@pytest.mark.parametrize(
    ("payload", "message"),
    [(b"ACDE\n>x\nAC\n", "before the first"), (b">x\nAC\x00\x01\n", "binary"), (b">\nAC\n", "without a name")],
)
def test_fasta_reader_errors_name_the_file(tmp_path, payload, message):
    path = tmp_path / "bad.fa"
    path.write_bytes(payload)
    with pytest.raises(InputError, match=message) as info:
        list(read_fasta(path))
    assert "bad.fa" in str(info.value)


def test_failed_write_leaves_no_file_and_keeps_old_one(tmp_path):
    path = tmp_path / "out.fasta"
    path.write_text(">old\nA\n")
    with pytest.raises(RuntimeError):
        with FastaWriter(path) as writer:
            writer.write("new", "C")
            raise RuntimeError("interrupted")
    assert path.read_text() == ">old\nA\n"
    assert [p.name for p in tmp_path.iterdir()] == ["out.fasta"]


def test_written_files_get_the_usual_permissions(tmp_path):
    import os

    with FastaWriter(tmp_path / "out.fasta") as writer:
        writer.write("a", "AC")
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "out.fasta").stat().st_mode & 0o777 == 0o666 & ~mask
