"""``ismtk cluster`` and the ISM tokenizer on a tiny random autoencoder and real structures."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from helpers import ISM_FILES, STRUCTURES
from typer.testing import CliRunner

from ismtk.autoencoder.codebook import CODEBOOK_FILE, Codebook, assign
from ismtk.autoencoder.io import embed_chains, save_autoencoder
from ismtk.autoencoder.model import AtomicAutoencoder, AutoencoderConfig
from ismtk.cli import app
from ismtk.cli.console import EXIT_ERROR
from ismtk.errors import InputError, StructureError
from ismtk.search.matrix import TOKENIZER_MATRIX, SubstitutionMatrix, write_matrix
from ismtk.search.pairs import align_structure_files
from ismtk.structure import read_structure
from ismtk.tokenizers import load_tokenizer, read_fasta
from ismtk.tokenizers.ism import IsmTokenizer, codebook_identity


def test_cluster_writes_a_complete_tokenizer_folder(ism_folder):
    folder = ism_folder / "tok"
    assert {p.name for p in folder.iterdir()} >= {"model.json", "model.pt", CODEBOOK_FILE, "elbow.tsv", "elbow.png"}
    book = json.loads((folder / CODEBOOK_FILE).read_text())
    assert book["k"] == 6 and len(book["alphabet"]) == 6 and 0 <= book["disorder_token"] < 6
    inertias = [float(line.split()[1]) for line in (folder / "elbow.tsv").read_text().splitlines()[1:]]
    assert inertias == sorted(inertias, reverse=True)


def test_tokens_are_the_nearest_centroids_of_the_embeddings(ism_folder):
    tokenizer = load_tokenizer(ism_folder / "tok")
    assert isinstance(tokenizer, IsmTokenizer) and len(tokenizer.alphabet) == 6
    chains = [c for name in ISM_FILES for c in read_structure(STRUCTURES / f"{name}.pdb.gz").chains]
    tokens = tokenizer.encode_many(chains)
    for chain, z, t in zip(chains, embed_chains(tokenizer.model, chains), tokens, strict=True):
        assert t.shape == (len(chain),) and t.dtype == np.uint8
        np.testing.assert_array_equal(t, assign(z, tokenizer.codebook.centroids))
    np.testing.assert_array_equal(tokenizer.encode(chains[0]), tokens[0])  # batching does not change tokens
    assert len(set(np.concatenate(tokens).tolist())) > 1


def test_codebook_in_the_aligned_pair_metric_has_its_own_identity_and_tokens(ism_folder, tmp_path):
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("d1a32a_\td1a1xa_\nd1a1xa_\td1a32a_\n")
    align_structure_files([ism_folder / "structs"], pairs, tmp_path / "aln.tsv")
    (tmp_path / "broken.pdb").write_text("ATOM  truncated\n")  # an unreadable file is reported, the rest used
    args = ["cluster", str(ism_folder / "ae"), str(ism_folder / "structs"), "-o", str(tmp_path / "m"), "-k", "6",
            "--alignments", str(tmp_path / "aln.tsv"), "--aligned-structures", str(ism_folder / "structs"),
            "--aligned-structures", str(tmp_path / "broken.pdb"), "--min-tm", "0", "--metric-dims", "4"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "skipped" in result.output and "broken.pdb" in result.output
    assert "from 2 alignments -> 4-direction metric" in result.output
    plain, tuned = load_tokenizer(ism_folder / "tok"), load_tokenizer(tmp_path / "m")
    assert tuned.codebook.metric.shape == (16, 4) and plain.codebook.metric is None
    assert tuned.identity != plain.identity
    chains = [c for name in ISM_FILES for c in read_structure(STRUCTURES / f"{name}.pdb.gz").chains]
    z = np.concatenate(embed_chains(tuned.model, chains))
    metric = tuned.codebook.metric
    expected = assign(z @ metric, tuned.codebook.centroids.astype(np.float64) @ metric)
    np.testing.assert_array_equal(np.concatenate(tuned.encode_many(chains)), expected)
    result = CliRunner().invoke(app, args[:7] + ["--alignments", str(tmp_path / "aln.tsv")])
    assert result.exit_code != 0 and "go together" in result.output


def test_residual_tokenizer_refines_the_tokens_of_its_folder_and_shares_its_encoder(ism_folder, tmp_path):
    folder = tmp_path / "tok"
    shutil.copytree(ism_folder / "tok", folder)
    args = ["cluster", str(folder), str(ism_folder / "structs"), "-o", str(folder / "residual"), "-k", "4",
            "--residual"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "residual tokens" in result.output
    assert not (folder / "residual" / "model.pt").exists()  # the encoder of the folder above is used
    base, residual = load_tokenizer(folder), load_tokenizer(folder / "residual")
    assert residual.name == "ism-residual" and len(residual.alphabet) == 4
    assert residual.identity.startswith("ism:") and residual.identity != base.identity
    assert residual.codebook.disorder_token is None
    chains = [c for name in ISM_FILES for c in read_structure(STRUCTURES / f"{name}.pdb.gz").chains]
    z = np.concatenate(embed_chains(base.model, chains))
    first = assign(z, base.codebook.centroids)
    second = assign(z - base.codebook.centroids[first], residual.codebook.centroids)
    np.testing.assert_array_equal(np.concatenate(residual.encode_many(chains)), second)
    # the two tokens together tell the embeddings apart better than the first alone (k-means on these residues)
    one = ((z - base.codebook.quantised(z)) ** 2).sum()
    two = ((z - residual.codebook.quantised(z)) ** 2).sum()
    assert two < 0.9 * one
    # a residual codebook of another base is another tokenizer
    moved = replace(residual.codebook.base, centroids=residual.codebook.base.centroids + 1e-3)
    assert codebook_identity(replace(residual.codebook, base=moved)) != residual.identity
    # refused: a folder without a codebook, a base with a metric, a residual folder without the encoder above it
    result = CliRunner().invoke(app, ["cluster", str(ism_folder / "ae"), str(ism_folder / "structs"), "-o",
                                      str(tmp_path / "r2"), "-k", "4", "--residual"])
    assert result.exit_code != 0 and "refines the tokens of an ISM tokenizer folder" in result.output
    result = CliRunner().invoke(app, [*args, "--alignments", str(tmp_path / "x.aln"), "--aligned-structures",
                                      str(ism_folder / "structs")])
    assert result.exit_code != 0 and "leave out --alignments" in result.output
    shutil.copytree(folder / "residual", tmp_path / "alone")
    with pytest.raises(InputError, match="no encoder"):
        IsmTokenizer(tmp_path / "alone")
    replace(base.codebook, centroids=base.codebook.centroids[::-1].copy()).save(folder / CODEBOOK_FILE)
    with pytest.raises(InputError, match="residual codebook of another codebook"):
        IsmTokenizer(folder / "residual")


def test_a_tokenizer_folder_is_replaced_only_on_request_and_its_old_matrix_is_then_refused(ism_folder, tmp_path):
    from ismtk.workflows.search import resolve_matrix

    folder = tmp_path / "tok"
    shutil.copytree(ism_folder / "tok", folder)
    old = load_tokenizer(folder)
    symbols = old.alphabet.symbols
    learned = SubstitutionMatrix(symbols, np.eye(len(symbols), dtype=np.int32), f"{old.identity} log-odds, learned")
    write_matrix(folder / TOKENIZER_MATRIX, learned)
    assert resolve_matrix(None, old).title == learned.title
    args = ["cluster", str(ism_folder / "ae"), str(ism_folder / "structs"), "-o", str(folder), "-k", "5"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == EXIT_ERROR and "holds a tokenizer already" in result.output
    assert load_tokenizer(folder).identity == old.identity  # untouched
    result = CliRunner().invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    new = load_tokenizer(folder)
    assert new.identity != old.identity and len(new.alphabet) == 5
    with pytest.raises(InputError, match=f"learned for {old.identity}"):
        resolve_matrix(None, new)
    assert resolve_matrix(str(folder / TOKENIZER_MATRIX), new).title == learned.title  # given by name: as asked


def test_database_tracks_of_one_encoder_embed_each_chain_once(ism_folder, tmp_path, monkeypatch):
    import ismtk.autoencoder.io as io
    from ismtk.workflows.search import open_input

    folder = tmp_path / "tok"
    shutil.copytree(ism_folder / "tok", folder)
    result = CliRunner().invoke(app, ["cluster", str(folder), str(ism_folder / "structs"), "-o",
                                      str(folder / "residual"), "-k", "4", "--residual"])
    assert result.exit_code == 0, result.output
    base, residual = load_tokenizer(folder), load_tokenizer(folder / "residual")
    calls = []
    embed = io.embed_chains
    monkeypatch.setattr(io, "embed_chains", lambda model, chains: calls.append(len(chains)) or embed(model, chains))
    db, _ = open_input([ism_folder / "structs"], base, tracks=[residual])
    assert db.track_names == [base.identity, residual.identity, "aa"]
    assert len(calls) == len(db.names)  # one embedding per chain serves both tracks
    alone, _ = open_input([ism_folder / "structs"], residual)
    assert alone.names == db.names
    np.testing.assert_array_equal(db.track(residual.identity).tokens, alone.tokens)
    db.save(tmp_path / "db")  # searched with --score FOLDER:1,FOLDER/residual:1: the score names the tokenizer
    with pytest.raises(InputError, match="not the shipped model"):
        open_input([tmp_path / "db"])
    assert open_input([tmp_path / "db"], tracks=[base, residual])[1].identity == base.identity


def test_encode_output_is_the_same_for_any_worker_and_thread_count(ism_folder, tmp_path, monkeypatch):
    from ismtk.workflows import encode

    monkeypatch.setattr(encode, "_other_tasks", lambda: 0.0)  # an idle machine: -t 2 runs two torch threads here
    outputs = []
    for threads in ("1", "2"):
        out = tmp_path / f"ism{threads}.fasta"
        torch.set_num_threads(int(threads))
        args = ["encode", str(ism_folder / "structs"), "-o", str(out), "--tokenizer", str(ism_folder / "tok")]
        result = CliRunner().invoke(app, [*args, "-t", threads])
        assert result.exit_code == 0, result.output
        outputs.append(out.read_bytes())
    torch.set_num_threads(1)
    assert outputs[0] == outputs[1]
    assert len(dict(read_fasta(tmp_path / "ism1.fasta"))) == 4


def test_codebook_of_another_encoder_is_refused(ism_folder, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("model.json", CODEBOOK_FILE):
        (folder / name).write_bytes((ism_folder / "tok" / name).read_bytes())
    torch.manual_seed(1)
    other = AtomicAutoencoder(AutoencoderConfig(width=16, heads=2, layers=1, decoder_layers=1))
    save_autoencoder(other, tmp_path / "other")
    (folder / "model.pt").write_bytes((tmp_path / "other" / "model.pt").read_bytes())
    with pytest.raises(InputError, match="another encoder"):
        IsmTokenizer(folder)
    with pytest.raises(InputError, match="no codebook.json"):
        IsmTokenizer(tmp_path / "other")
    assert Codebook.load(ism_folder / "tok" / CODEBOOK_FILE).k == 6


def test_a_database_names_its_ism_tokenizer_by_identity_and_finds_its_matrix_in_its_folder(ism_folder, tmp_path):
    """Query structures are encoded with the model that made the database: the database names it by an identity
    that does not depend on where the folder lies, and the folder (given with --tokenizer, as it is not shipped)
    must have that identity; the folder's matrix.out is its default."""
    folder = tmp_path / "tok"
    shutil.copytree(ism_folder / "tok", folder)
    identity = load_tokenizer(folder).identity
    assert identity == load_tokenizer(ism_folder / "tok").identity and identity.startswith("ism:")
    db, hits = tmp_path / "db", tmp_path / "hits.m8"
    runner = CliRunner()
    createdb = ["createdb", str(ism_folder / "structs"), str(db), "--tokenizer", str(folder)]
    assert runner.invoke(app, createdb).exit_code == 0
    header = json.loads((db / "ismtk-db.json").read_text())
    assert header["tokenizer"] == identity and "evd" not in header  # no matrix yet: nothing to fit
    query = ism_folder / "structs" / "d1a32a_.pdb.gz"
    search = ["search", str(query), str(db), "-o", str(hits), "--exhaustive", "-e", "1e9", "-t", "1"]
    result = runner.invoke(app, search)
    assert result.exit_code == EXIT_ERROR
    assert "not the shipped model" in result.output and "--tokenizer FOLDER" in result.output
    search += ["--tokenizer", str(folder)]
    result = runner.invoke(app, search)
    assert result.exit_code == EXIT_ERROR and "no matrix for tokenizer" in result.output
    symbols = load_tokenizer(folder).alphabet.symbols
    identity_scores = np.where(np.eye(len(symbols)), 3, -1).astype(np.int32)
    write_matrix(folder / TOKENIZER_MATRIX, SubstitutionMatrix(symbols, identity_scores))
    result = runner.invoke(app, search)
    assert result.exit_code == 0, result.output
    first = hits.read_text().splitlines()[0].split("\t")
    assert first[:2] == ["d1a32a_", "d1a32a_"] and float(first[2]) == 1.0  # the query's tokens equal its DB entry's


def test_ca_only_chain_is_refused_naming_the_file(ism_folder, bad_files):
    chain = read_structure(bad_files["ca_only"]).chains[0]
    with pytest.raises(StructureError, match=r"CA-only chain\?\): ISM tokens") as info:
        load_tokenizer(ism_folder / "tok").encode(chain)
    assert "ca_only.pdb" in str(info.value)


def _tokens(results) -> list[tuple[str, list[int]]]:
    return [(c.name, c.tokens.tolist()) for r in results for c in r.chains]


def test_one_worker_per_device_gives_the_same_tokens(ism_folder):
    """``--gpus N`` runs one worker per device with the model moved there; two 'cpu' devices stand in."""
    from ismtk.workflows.encode import encode_files, resolve_device

    paths = sorted((ism_folder / "structs").glob("*.pdb.gz")) * 4
    tokenizer = load_tokenizer(ism_folder / "tok")
    assert resolve_device("cpu", tokenizer) == "cpu" and resolve_device("auto", tokenizer) in ("cpu", "cuda")
    with pytest.raises(InputError, match="--device"):
        resolve_device("tpu", tokenizer)
    assert _tokens(encode_files(paths, tokenizer)) == _tokens(encode_files(paths, tokenizer, devices=["cpu", "cpu"]))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_tokens_agree_with_cpu_tokens(ism_folder):
    from ismtk.workflows.encode import encode_files

    paths = sorted((ism_folder / "structs").glob("*.pdb.gz"))
    tokenizer = load_tokenizer(ism_folder / "tok")
    cpu = _tokens(encode_files(paths, tokenizer))
    gpu = _tokens(encode_files(paths, tokenizer, devices=["cuda:0"]))
    same = sum(a == b for (_, x), (_, y) in zip(cpu, gpu, strict=False) for a, b in zip(x, y, strict=False))
    assert [n for n, _ in cpu] == [n for n, _ in gpu] and same >= 0.99 * sum(len(x) for _, x in cpu)


def test_tokens_follow_the_atoms_in_place_edits_too_and_hydrogens_never_count():
    from ismtk.structure.read import ReadOptions

    ism = load_tokenizer("ism")
    plain = read_structure(STRUCTURES / "1APS.pdb.gz").chains[0]
    with_h = read_structure(STRUCTURES / "1APS.pdb.gz", ReadOptions(hydrogens=True)).chains[0]
    assert len(with_h.coords) > len(plain.coords)
    before = ism.encode(plain)
    np.testing.assert_array_equal(ism.encode(with_h), before)
    with_h.elements[with_h.elements == "H"] = "D"  # deuterium (neutron structures) never counts either
    np.testing.assert_array_equal(ism.encode(with_h), before)
    plain.coords[:] += np.random.default_rng(0).normal(0, 1.5, plain.coords.shape).astype(np.float32)
    assert (ism.encode(plain) != before).sum() > len(plain) // 4  # not the embeddings of the atoms as they were


def test_anything_but_chains_is_refused_by_name():
    structure = read_structure(STRUCTURES / "1HZ6.pdb.gz")
    for tokenizer in (load_tokenizer("3di"), load_tokenizer("ism")):
        for wrong in (str(STRUCTURES / "1HZ6.pdb.gz"), structure):
            with pytest.raises(InputError, match=f"expected a ProteinChain .*not {type(wrong).__name__}"):
                tokenizer.encode(wrong)
        with pytest.raises(InputError, match="encode_many takes a sequence of chains"):
            tokenizer.encode_many(structure.chains[0])
