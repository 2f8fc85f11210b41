"""``ismtk encode`` end to end: real files, bad files, exit codes, worker-count independence."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from ismtk import __version__
from ismtk.cli import app
from ismtk.cli.console import EXIT_ERROR, EXIT_SKIPPED
from ismtk.structure import read_structure
from ismtk.tokenizers import ThreeDiTokenizer, read_fasta

runner = CliRunner()
GOOD = ["1FQJ_l_u", "1HZ6", "3SGQ_r_u", "d1a32a_"]


@pytest.fixture()
def mixed_dir(tmp_path, structures_dir, bad_files):
    folder = tmp_path / "structs"
    folder.mkdir()
    for name in GOOD:
        shutil.copy(structures_dir / f"{name}.pdb.gz", folder)
    for kind in ("empty", "truncated_gzip", "binary", "ca_only"):
        shutil.copy(bad_files[kind], folder)
    return folder


def test_encode_skips_bad_files_and_writes_the_rest(mixed_dir, tmp_path, structures_dir):
    out, aa = tmp_path / "tokens.fasta", tmp_path / "aa.fasta"
    args = ["encode", str(mixed_dir), "-o", str(out), "--aa-output", str(aa), "-t", "1", "--tokenizer", "3di"]
    result = runner.invoke(app, args)
    assert result.exit_code == EXIT_SKIPPED, result.output
    for bad in ("empty.pdb", "truncated.pdb.gz", "binary.pdb", "ca_only.pdb"):
        assert bad in result.output
    tokenizer = ThreeDiTokenizer()
    expected = {
        c.name: (tokenizer.to_string(c), c.sequence)
        for name in GOOD
        for c in read_structure(structures_dir / f"{name}.pdb.gz").chains
    }
    tokens, seqs = dict(read_fasta(out)), dict(read_fasta(aa))
    assert tokens == {k: v[0] for k, v in expected.items()}
    assert seqs == {k: v[1] for k, v in expected.items()}
    assert "encoded 6 chains" in result.output


def test_output_does_not_depend_on_worker_count(mixed_dir, tmp_path):
    """The default tokenizer (the shipped ISM model) gives the same tokens with 1 worker or 2."""
    outputs = []
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}.fasta"
        runner.invoke(app, ["encode", str(mixed_dir), "-o", str(out), "--threads", threads])
        outputs.append(out.read_bytes())
    assert outputs[0] == outputs[1] and outputs[0].count(b">") == 6


def test_nothing_encodable_is_an_error_and_writes_nothing(tmp_path, bad_files):
    out = tmp_path / "tokens.fasta"
    result = runner.invoke(app, ["encode", str(bad_files["empty"]), str(bad_files["binary"]), "-o", str(out)])
    assert result.exit_code == EXIT_ERROR
    assert "no chain could be encoded" in result.output
    assert not out.exists()


def test_missing_input_and_unknown_tokenizer(tmp_path, structures_dir):
    result = runner.invoke(app, ["encode", str(tmp_path / "nope.pdb"), "-o", str(tmp_path / "x.fa")])
    assert result.exit_code == EXIT_ERROR and "no such file" in result.output
    result = runner.invoke(
        app, ["encode", str(structures_dir / "1HZ6.pdb.gz"), "-o", str(tmp_path / "x.fa"), "--tokenizer", "nope"]
    )
    assert result.exit_code == EXIT_ERROR and "unknown tokenizer" in result.output


def test_version_and_help():
    assert __version__ in runner.invoke(app, ["--version"]).output
    help_text = runner.invoke(app, ["encode", "--help"]).output
    assert "Example" in help_text and "--threads" in help_text
