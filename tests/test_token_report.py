"""``ismtk benchmark tokens``: the window probe on learnable and unlearnable tokens, and the report card end to end
on a tiny copy of the shared data layout."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from helpers import STRUCTURES
from typer.testing import CliRunner

from ismtk.autoencoder.io import save_autoencoder
from ismtk.autoencoder.model import AtomicAutoencoder, AutoencoderConfig
from ismtk.bench.tokens import fit_window_probe
from ismtk.cli import app
from ismtk.search.matrix import TOKENIZER_MATRIX, SubstitutionMatrix, write_matrix
from ismtk.tokenizers import load_tokenizer

AMINO = "ACDEFGHIKLMNPQRSTVWY"
AE_DATA = STRUCTURES.parent / "ae"


def records(n: int, seed: int, learnable: bool) -> list[tuple[np.ndarray, str]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        seq = "".join(rng.choice(list(AMINO), size=40))
        tokens = [AMINO.index(c) % 5 for c in seq] if learnable else rng.integers(0, 5, size=40)
        out.append((np.asarray(tokens), seq))
    return out


def test_window_probe_sees_learnable_tokens_and_not_random_ones():
    good = fit_window_probe(records(60, 0, True), records(20, 1, True), 5)
    assert good.accuracy > 0.95 and good.bits_over_baseline > 2.0 and good.test_residues == 800
    noise = fit_window_probe(records(60, 0, False), records(20, 1, False), 5)
    assert noise.accuracy < 0.35 and noise.bits_over_baseline < 0.1


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """scope40_dev (2 bench + 2 matrix_train domains, two families), cath2738 (1 decoy) and structures."""
    root = tmp_path_factory.mktemp("data")
    domains = {  # sid: (sccs, role, source structure)
        "d1a32a_": ("a.1.1.1", "bench", "d1a32a_"),
        "d1a32b_": ("a.1.1.1", "bench", "d1a32a_"),
        "d1a1xa_": ("b.1.1.1", "matrix_train", "d1a1xa_"),
        "d1a1xb_": ("b.1.1.1", "matrix_train", "d1a1xa_"),
    }
    (root / "scope40_dev" / "pdb").mkdir(parents=True)
    rows = ["sid\tsccs\trole\tfile"]
    for sid, (sccs, role, source) in domains.items():
        shutil.copy(STRUCTURES / f"{source}.pdb.gz", root / "scope40_dev" / "pdb" / f"{sid}.pdb.gz")
        rows.append(f"{sid}\t{sccs}\t{role}\tpdb/{sid}.pdb.gz")
    (root / "scope40_dev" / "classification.tsv").write_text("\n".join(rows) + "\n")
    (root / "scope40_dev" / "lookup.tsv").write_text("".join(f"{s}\t{v[0]}\n" for s, v in domains.items()))
    (root / "cath2738" / "pdb").mkdir(parents=True)
    shutil.copy(STRUCTURES / "2HPR.pdb.gz", root / "cath2738" / "pdb" / "2hprA00.pdb.gz")
    (root / "cath2738" / "classification.tsv").write_text(
        "domain_id\tfile\tscope40_dev_homolog\n2hprA00\tpdb/2hprA00.pdb.gz\t\n"
    )
    shutil.copytree(AE_DATA, root / "structures")  # its index.csv holds one val chain
    return root


@pytest.fixture(scope="module")
def ism_folder(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("ism")
    torch.manual_seed(0)
    save_autoencoder(AtomicAutoencoder(AutoencoderConfig(width=16, heads=2, layers=1, decoder_layers=1)), root / "ae")
    scop = data / "scope40_dev"  # its matrix_train domains: the table leaves the bench out
    args = ["cluster", str(root / "ae"), str(scop / "pdb"), "--index", str(scop / "classification.tsv"), "-o",
            str(root / "tok"), "-k", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    symbols = load_tokenizer(root / "tok").alphabet.symbols
    scores = np.where(np.eye(len(symbols)), 3, -1).astype(np.int32)
    write_matrix(root / "tok" / TOKENIZER_MATRIX, SubstitutionMatrix(symbols, scores))
    return root / "tok"


def test_report_card_end_to_end(tmp_path, data, ism_folder):
    out = tmp_path / "card"
    args = ["benchmark", "tokens", str(data), "-o", str(out), "--tokenizer", "3di", "--tokenizer", str(ism_folder)]
    result = CliRunner().invoke(app, [*args, "-t", "1"])
    assert result.exit_code == 0, result.output
    lines = (out / "report.tsv").read_text().splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=True)) for line in lines[1:]]
    assert [r["name"] for r in rows] == ["3di", "tok"] and [r["k"] for r in rows] == ["20", "4"]
    assert {"family", "superfamily", "fold", "rmsd_z", "rmsd_centroid", "probe_accuracy", "probe_bits"} <= set(header)
    # identical twins in one family: each bench query finds its twin first
    assert float(rows[0]["family"]) == 1.0 and rows[0]["n_family"] == "2"
    assert rows[0]["rmsd_z"] == "" and float(rows[1]["rmsd_z"]) > 0 and float(rows[1]["rmsd_centroid"]) > 0
    assert (out / "report.png").stat().st_size > 0
    assert "3di | 20 |" in result.output


def test_a_data_folder_without_structures_is_refused_before_any_work_for_ism_tokens(tmp_path, ism_folder):
    partial = tmp_path / "data"
    for needed in ("scope40_dev", "cath2738"):
        (partial / needed).mkdir(parents=True)
    result = CliRunner().invoke(app, ["benchmark", "tokens", str(partial), "-o", str(tmp_path / "card"),
                                      "--tokenizer", str(ism_folder)])
    assert result.exit_code == 1 and "no structures/ folder" in result.output, result.output
    assert not (tmp_path / "card").exists()


def test_an_encoded_database_is_reused_only_for_the_same_files(tmp_path, data):
    """A second card into the same folder on other data must not score the first data's database."""
    from ismtk.bench.tokens import token_report
    from ismtk.search.db import SequenceDB

    other = tmp_path / "other"
    shutil.copytree(data / "scope40_dev", other / "scope40_dev")
    shutil.copytree(data / "cath2738", other / "cath2738")
    decoy = other / "cath2738" / "pdb" / "2hprA00.pdb.gz"
    decoy.rename(decoy.with_name("1acbA00.pdb.gz"))  # another decoy's name, the same structure
    out, said = tmp_path / "card", []
    token_report(["3di"], data, out, log=said.append)
    token_report(["3di"], data, out, log=said.append)
    assert sum("reusing" in line for line in said) == 1
    token_report(["3di"], other, out, log=said.append)
    assert "1acbA00" in SequenceDB.load(out / "0_3di" / "db").names  # encoded again from the other data


def test_a_classification_table_without_its_columns_is_named(tmp_path):
    """It was a KeyError 'role' traceback."""
    from ismtk.bench.tokens import _split
    from ismtk.errors import InputError

    (tmp_path / "scope40_dev").mkdir()
    (tmp_path / "scope40_dev" / "classification.tsv").write_text("sid\tsccs\nd1a\ta.1.1.1\n")
    with pytest.raises(InputError, match=r"scope40_dev/classification.tsv: no column role; expected the shared"):
        _split(tmp_path)
