"""Shared fixtures: the real structures in tests/data and makers of broken files (helpers: tests/helpers.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import ISM_FILES, STRUCTURES, pdb_text
from typer.testing import CliRunner


@pytest.fixture(scope="session")
def structures_dir() -> Path:
    return STRUCTURES


@pytest.fixture()
def bad_files(tmp_path: Path) -> dict[str, Path]:
    """One file per kind of bad input, made from real fixtures."""
    text = pdb_text("1FQJ_l_u")
    atoms = [ln for ln in text.splitlines() if ln.startswith(("ATOM", "HETATM"))]
    files = {
        "empty": ("empty.pdb", b""),
        "truncated_gzip": ("truncated.pdb.gz", (STRUCTURES / "1FQJ_l_u.pdb.gz").read_bytes()[:3000]),
        "binary": ("binary.pdb", bytes(range(256)) * 40),
        "ca_only": ("ca_only.pdb", "\n".join(ln for ln in atoms if ln[12:16] == " CA ").encode()),
        "no_ca": ("no_ca.pdb", "\n".join(ln for ln in atoms if ln[12:16] != " CA ").encode()),
        "water_only": (
            "water.pdb",
            b"HETATM    1  O   HOH A   1      11.000  12.000  13.000  1.00 20.00           O\nEND\n",
        ),
        "not_structure": ("notes.pdb", b"hello, this is not a structure\n"),
    }
    out = {}
    for key, (name, payload) in files.items():
        path = tmp_path / name
        path.write_bytes(payload)
        out[key] = path
    return out


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    """Tiny test tensors gain nothing from intra-op threads, and OpenMP spin-waits make them crawl
    when the cores are shared; tests about thread counts set them explicitly."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def ism_folder(tmp_path_factory):
    """A random autoencoder (width 16) clustered into K=6 tokens on four real structures: ``ae/`` the
    autoencoder, ``structs/`` the structures, ``tok/`` the ISM tokenizer folder."""
    import torch

    from ismtk.autoencoder.io import save_autoencoder
    from ismtk.autoencoder.model import AtomicAutoencoder, AutoencoderConfig
    from ismtk.cli import app

    root = tmp_path_factory.mktemp("ism")
    torch.manual_seed(0)
    save_autoencoder(AtomicAutoencoder(AutoencoderConfig(width=16, heads=2, layers=1, decoder_layers=1)), root / "ae")
    structs = root / "structs"
    structs.mkdir()
    for name in ISM_FILES:
        (structs / f"{name}.pdb.gz").write_bytes((STRUCTURES / f"{name}.pdb.gz").read_bytes())
    args = ["cluster", str(root / "ae"), str(structs), "-o", str(root / "tok"), "-k", "6", "--elbow"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "K=6" in result.output and "s* = token" in result.output
    return root
