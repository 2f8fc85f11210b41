"""``ismtk structure-tune`` on the command line: a run, and user errors as one line with exit status 1."""

from __future__ import annotations

from tiny_models import tiny_esm, write_pairs
from typer.testing import CliRunner

from ismtk.cli import app
from ismtk.cli.console import EXIT_ERROR
from ismtk.plm.esm import save_fair_esm

runner = CliRunner()


def test_cli_trains_exports_and_reports_user_errors(tmp_path):
    backbone, _ = save_fair_esm(tiny_esm(), tmp_path / "esm2_t2_tiny.pt")
    aa, tok = write_pairs(tmp_path, n=12)
    common = ["structure-tune", str(backbone), "--aa", str(aa), "--batch-size", "4", "--micro-batch", "2",
              "--crop", "24", "--epochs", "1", "--threads", "1"]
    result = runner.invoke(app, [*common, "--tokens", f"{tok}:name=3di", "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "steps per epoch" in result.output and "exported" in result.output
    assert (tmp_path / "run" / "export" / "hf" / "model.safetensors").is_file()

    result = runner.invoke(app, [*common, "--tokens", f"{tok}:wieght=2", "-o", str(tmp_path / "bad")])
    assert result.exit_code == EXIT_ERROR and "bad option 'wieght=2'" in result.output
    result = runner.invoke(app, [*common, "--tokens", str(tok), "--micro-batch", "3", "-o", str(tmp_path / "bad")])
    assert result.exit_code == EXIT_ERROR and "not a multiple" in result.output
    tok.write_text(tok.read_text().replace(">p3\n", ">other\n"))
    result = runner.invoke(app, [*common, "--tokens", f"{tok}:name=3di", "-o", str(tmp_path / "bad")])
    assert result.exit_code == EXIT_ERROR and "p3 missing from" in result.output
