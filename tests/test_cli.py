"""The command line: commands listed without importing them, hidden spellings of older versions, a light start."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import typer
from click import Context
from helpers import STRUCTURES
from typer.testing import CliRunner

from ismtk.cli import COMMANDS, app, console
from ismtk.cli.options import rename_aliases

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


def _run(*args) -> str:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_the_command_list_shows_each_command_s_own_summary():
    group = typer.main.get_command(app)
    for name, entry in COMMANDS.items():
        command = group.get_command(Context(group), name)
        assert entry.summary() and command.help.startswith(entry.summary()), name
    listing = " ".join(_run("--help").split())
    assert all(name in listing for name in COMMANDS)


def test_hidden_spellings_of_older_versions_still_work(tmp_path):
    group = typer.main.get_command(app)
    tune = group.get_command(Context(group), "structure-tune")
    args = ["m", "--tokens", "--out", "--out", "run", "--nmr-model", "2", "--", "--out"]
    assert rename_aliases(tune.params, args) == ["m", "--tokens", "--out", "--output", "run", "--nmr-model", "2",
                                                 "--", "--out"]
    assert rename_aliases(tune.params, ["--out=run"]) == ["--output=run"]
    out = tmp_path / "t.fasta"
    _run("encode", STRUCTURES / "1FQJ_l_u.pdb.gz", "--out", out, "--model", "1", "--tokenizer", "3di", "-t", "1")
    assert out.is_file()
    assert "--out " not in _run("structure-tune", "--help") and "--model " not in _run("encode", "--help")


def test_help_and_3di_encoding_start_without_torch_and_no_command_but_training_loads_fsdp(tmp_path):
    script = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from ismtk.cli import app\n"
        "assert CliRunner().invoke(app, ['--help']).exit_code == 0\n"
        f"args = ['encode', {str(STRUCTURES / '1FQJ_l_u.pdb.gz')!r}, '--tokenizer', '3di', '-o', "
        f"{str(tmp_path / 'x.fasta')!r}, '-t', '1']\n"
        "assert CliRunner().invoke(app, args).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
        "args[3] = 'ism'\n"
        "assert CliRunner().invoke(app, args).exit_code == 0\n"
        "for command in ['structure-tune', 'embed', 'predict-tokens', 'train-ae']:\n"
        "    assert CliRunner().invoke(app, [command, '--help']).exit_code == 0\n"
        "print(sorted(m for m in sys.modules if m.startswith('torch.distributed.fsdp')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[:2] == ["[]", "[]"]
    assert (tmp_path / "x.fasta").read_text().count(">") == 1


def test_bin_ismtk_runs_from_any_folder_with_worker_processes(tmp_path):
    """Spawned workers import the launching script again: bin/ismtk must not run the command in them."""
    files = [STRUCTURES / "1FQJ_l_u.pdb.gz", STRUCTURES / "d1a32a_.pdb.gz"]
    out = tmp_path / "t.fasta"
    argv = [sys.executable, str(ROOT / "bin" / "ismtk"), "encode", *map(str, files), "--tokenizer", "3di", "-o",
            str(out), "-t", "2"]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert out.read_text().count(">") == 2


def test_progress_bars_are_drawn_by_rank_zero_only(monkeypatch):
    from rich.console import Console

    shown = {}
    for rank in ("0", "1"):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setattr(console, "stderr", Console(file=io.StringIO(), force_terminal=True, width=80))
        with console.progress("training", total=4, unit="steps") as advance:
            advance(2)
        shown[rank] = console.stderr.file.getvalue()
    assert "training" in shown["0"] and shown["1"] == ""


def test_messages_print_names_as_they_are_not_as_emoji(tmp_path):
    """rich turns :smile: into an emoji: a file a:smile:b.pdb was named a😄b.pdb, cuda:-1 as cuda👎."""
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a:smile:b.pdb").write_text("")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "ismtk", "encode", str(folder), "-o", str(tmp_path / "t.fasta"),
                           "--tokenizer", "3di"], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert "a:smile:b.pdb" in done.stderr and "\U0001f604" not in done.stderr, done.stderr
