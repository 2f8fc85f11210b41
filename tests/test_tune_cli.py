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


def test_resume_needs_only_the_run_folder(tmp_path):
    backbone, _ = save_fair_esm(tiny_esm(), tmp_path / "esm2_t2_tiny.pt")
    aa, tok = write_pairs(tmp_path, n=12)
    run = str(tmp_path / "run")
    first = runner.invoke(app, ["structure-tune", str(backbone), "--aa", str(aa), "--tokens", f"{tok}:name=3di",
                                "--batch-size", "4", "--micro-batch", "2", "--crop", "24", "--epochs", "2",
                                "--lr", "3e-4", "--threads", "1", "--stop-after", "2", "-o", run])
    assert first.exit_code == 0, first.output
    assert not (tmp_path / "run" / "export").exists()
    # backbone, inputs, the recipe and how it ran (micro-batch) all come from the run folder
    done = runner.invoke(app, ["structure-tune", "--resume", "--threads", "1", "-o", run])
    assert done.exit_code == 0, done.output
    assert "resuming with the run's options" in done.output and "micro_batch=2" in done.output
    assert "lr=0.0003" in done.output and "resumed from" in done.output
    assert (tmp_path / "run" / "export" / "hf" / "model.safetensors").is_file()
    # an option given anew that changes the run's mathematics is still refused
    again = runner.invoke(app, ["structure-tune", "--resume", "--lr", "1e-3", "--threads", "1", "-o", run])
    assert again.exit_code == EXIT_ERROR and "another configuration" in again.output
    # without --resume the inputs are required
    bare = runner.invoke(app, ["structure-tune", "-o", str(tmp_path / "new")])
    assert bare.exit_code == EXIT_ERROR and "needs a BACKBONE, --aa" in bare.output
