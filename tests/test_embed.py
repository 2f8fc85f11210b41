"""``embed``: equal to fair-esm's own forward, esm-extract's batching and files, windows, HDF5."""

from __future__ import annotations

import random

import esm
import h5py
import numpy as np
import pytest
import torch
from esm.data import FastaBatchedDataset
from esm.model.esm2 import ESM2

from ismtk.errors import InputError
from ismtk.plm.embed import (
    EmbedOptions,
    H5Writer,
    PtDirWriter,
    embed_sequences,
    length_batches,
    normalise_layers,
    windows,
)
from ismtk.plm.forward import esm2_representations
from ismtk.sequence.protein import read_protein_fasta

AMINO = "ACDEFGHIKLMNPQRSTVWY"


@pytest.fixture(scope="module")
def tiny_esm():
    torch.manual_seed(0)
    alphabet = esm.Alphabet.from_architecture("ESM-1b")
    return ESM2(num_layers=3, embed_dim=32, attention_heads=4, alphabet=alphabet, token_dropout=True).eval(), alphabet


def random_records(n: int, lo: int, hi: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(f"seq{i}", "".join(rng.choice(AMINO) for _ in range(rng.randint(lo, hi)))) for i in range(n)]


def test_fused_forward_equals_fair_esm(tiny_esm):
    model, alphabet = tiny_esm
    _, _, tokens = alphabet.get_batch_converter()(random_records(5, 10, 60, seed=1))
    with torch.inference_mode():
        ref = model(tokens, repr_layers=[0, 1, 2, 3])["representations"]
        ours = esm2_representations(model, tokens, [0, 1, 2, 3])
    real = tokens.ne(alphabet.padding_idx)
    for layer in ref:
        torch.testing.assert_close(ours[layer][real], ref[layer][real], atol=1e-5, rtol=1e-5)


def test_auto_device_is_a_visible_gpu_and_the_default(tiny_esm, monkeypatch):
    model, alphabet = tiny_esm

    class Moved(Exception):
        pass

    def record(self, device):
        raise Moved(device)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(ESM2, "to", record)
    for device, expected in ((None, "cuda:0"), ("auto", "cuda:0"), ("cuda", "cuda:0"), ("cpu", "cpu")):
        given = {} if device is None else {"device": device}
        with pytest.raises(Moved) as moved:
            next(embed_sequences(model, alphabet, [("a", "ACDE")], **given))
        assert moved.value.args[0] == torch.device(expected)


def test_batches_follow_esm_extract():
    rng = random.Random(2)
    lengths = [rng.randint(5, 400) for _ in range(200)]
    dataset = FastaBatchedDataset([str(i) for i in range(200)], ["A" * n for n in lengths])
    assert length_batches(lengths, 1024) == dataset.get_batch_indices(1024, extra_toks_per_seq=1)


def test_outputs_equal_a_direct_forward_and_load_like_esm_extract(tiny_esm, tmp_path):
    model, alphabet = tiny_esm
    records = random_records(6, 8, 40, seed=3)
    options = EmbedOptions(repr_layers=(-1, 1), include=("mean", "per_tok", "bos", "contacts"), toks_per_batch=4096)
    with PtDirWriter(tmp_path, [r[0] for r in records]) as writer:
        for result, length in embed_sequences(model, alphabet, records, options):
            writer.write(result, length)
    _, _, tokens = alphabet.get_batch_converter()(records)
    with torch.inference_mode():
        ref = model(tokens, repr_layers=[1, 3], return_contacts=True)
    for i, (name, seq) in enumerate(records):
        saved = torch.load(tmp_path / f"{name}.pt", weights_only=True)
        assert saved["label"] == name
        assert set(saved) == {"label", "representations", "mean_representations", "bos_representations", "contacts"}
        n = len(seq)
        for layer in (1, 3):
            expected = ref["representations"][layer][i, 1 : n + 1]
            torch.testing.assert_close(saved["representations"][layer], expected, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(saved["mean_representations"][layer], expected.mean(0), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(
                saved["bos_representations"][layer], ref["representations"][layer][i, 0], atol=1e-5, rtol=1e-5
            )
        torch.testing.assert_close(saved["contacts"], ref["contacts"][i, :n, :n], atol=1e-5, rtol=1e-5)


def test_truncation_and_windows(tiny_esm):
    model, alphabet = tiny_esm
    ((name, seq),) = random_records(1, 50, 50, seed=4)
    truncated = EmbedOptions(include=("per_tok",), truncation_seq_length=20)
    ((result, length),) = list(embed_sequences(model, alphabet, [(name, seq)], truncated))
    assert length == 20 and result["representations"][3].shape == (20, 32)
    options = EmbedOptions(include=("per_tok", "contacts"), truncation_seq_length=20, long="windows", window_overlap=5)
    assert windows(50, 20, 5) == [(0, 20), (15, 35), (30, 50)]
    ((result, length),) = list(embed_sequences(model, alphabet, [(name, seq)], options))
    assert length == 50 and result["representations"][3].shape == (50, 32) and result["contacts"].shape == (50, 50)
    _, _, tokens = alphabet.get_batch_converter()([("w", seq[15:35])])
    with torch.inference_mode():
        middle = model(tokens, repr_layers=[3])["representations"][3][0, 1:21]
    # residues 20..29 are covered by the second window only
    torch.testing.assert_close(result["representations"][3][20:30], middle[5:15], atol=1e-5, rtol=1e-5)
    assert result["contacts"][0, 49] == 0  # never in one window together


def test_h5_store_holds_the_same_numbers(tiny_esm, tmp_path):
    model, alphabet = tiny_esm
    records = random_records(7, 5, 30, seed=5)
    options = EmbedOptions(repr_layers=(-1,), include=("mean", "per_tok"))
    results = list(embed_sequences(model, alphabet, records, options))
    with H5Writer(tmp_path / "emb.h5") as writer:
        for result, length in results:
            writer.write(result, length)
    with h5py.File(tmp_path / "emb.h5") as h5:
        labels = [x.decode() for x in h5["labels"][:]]
        assert sorted(labels) == sorted(r[0] for r in records)
        for (result, _), off, n in zip(results, h5["offsets"][:], h5["lengths"][:], strict=True):
            np.testing.assert_array_equal(h5["per_tok/3"][off : off + n], result["representations"][3].numpy())
        means = np.stack([r["mean_representations"][3].numpy() for r, _ in results])
        np.testing.assert_array_equal(h5["mean/3"][:], means)


def test_h5_output_is_atomic_and_two_writers_of_one_path_do_not_clash(tiny_esm, tmp_path):
    """HDF5 locks the files it opens by path, so a second writer of the same output failed on the first's
    temporary; an output that is a folder failed at the very end; a failed run left nothing."""
    model, alphabet = tiny_esm
    records = random_records(3, 5, 30, seed=6)
    results = list(embed_sequences(model, alphabet, records, EmbedOptions(include=("mean",))))
    out = tmp_path / "emb.h5"
    with H5Writer(out) as first, H5Writer(out) as second:
        for result, length in results:
            first.write(result, length)
        second.write(*results[0])
    with h5py.File(out) as h5:  # the last one closed
        assert [x.decode() for x in h5["labels"][:]] == [result["label"] for result, _ in results]
    with pytest.raises(RuntimeError, match="stop"), H5Writer(tmp_path / "failed.h5") as writer:
        writer.write(*results[0])
        raise RuntimeError("stop")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.h5"]  # neither the output nor a temporary
    (tmp_path / "folder.h5").mkdir()
    with pytest.raises(InputError, match="folder.h5 is a folder; give a file name ending in .h5"):
        H5Writer(tmp_path / "folder.h5")


def test_layers_and_bad_options(tiny_esm):
    assert normalise_layers([-1, 0, 2, -4], 3) == [0, 2, 3]
    with pytest.raises(InputError, match="layers 0..3"):
        normalise_layers([7], 3)
    model, alphabet = tiny_esm
    with pytest.raises(InputError, match="--include"):
        list(embed_sequences(model, alphabet, [("a", "ACD")], EmbedOptions(include=("logits",))))
    with pytest.raises(InputError, match="file names"):
        PtDirWriter("/tmp/x", ["ok", "sp/1abc"])
    with pytest.raises(InputError, match=r"file names .*: x{37}\.\.\.; write one HDF5"):  # refused before the run
        PtDirWriter("/tmp/x", ["ok", "x" * 253])
    PtDirWriter("/tmp/x", ["x" * 252])
    with pytest.raises(InputError, match="not upper-case amino acids: low, none"):
        list(embed_sequences(model, alphabet, [("ok", "ACD"), ("low", "acd"), ("none", "")]))
    for bad in ({"long": "window"}, {"repr_layers": 2}, {"truncation_seq_length": 0}):
        with pytest.raises(InputError):
            EmbedOptions(**bad)


def test_protein_fasta_rules(tmp_path):
    good = tmp_path / "good.fa"
    good.write_text(">a desc\nacdef*\n>b\nAC-D.E\n>c\nMJK\n")
    records, notes = read_protein_fasta(good)
    assert records == [("a", "ACDEF"), ("b", "ACDE"), ("c", "MXK")]
    assert notes == [
        "1 sequence(s) in lower case were upper-cased", "alignment gaps were removed from 1 sequence(s)",
        "a final '*' (stop) was dropped from 1 sequence(s)", "J (Leu or Ile) was read as X in 1 sequence(s)",
    ]
    cases = {
        ">a\nAC\n>a\nDE\n": "duplicate names: a",
        ">a\n\n>b\nAC\n": "empty sequences: a",
        ">a\nAC*DE\n": r"a \('\*'\)",
        ">a\nAC1E\n": r"a \('1'\)",
        ">a tokenizer=3di\nACDE\n": "structure tokens, not protein sequences",
    }
    for text, message in cases.items():
        bad = tmp_path / "bad.fa"
        bad.write_text(text)
        with pytest.raises(InputError, match=message):
            read_protein_fasta(bad)
    binary = tmp_path / "bin.fa"
    binary.write_bytes(b">a\n\x00\x01\x02\n")
    with pytest.raises(InputError, match="binary"):
        read_protein_fasta(binary)


def test_embed_command_writes_esm_extract_files_and_h5(tiny_esm, tmp_path):
    from typer.testing import CliRunner

    from ismtk.cli import app
    from ismtk.plm.esm import save_fair_esm

    model, alphabet = tiny_esm
    weights, _ = save_fair_esm(model, tmp_path / "esm2_t3_tiny.pt")
    records = random_records(4, 10, 30, seed=6)
    fasta = tmp_path / "seqs.fa"
    fasta.write_text("".join(f">{name} some text\n{seq.lower()}\n" for name, seq in records))
    runner = CliRunner()
    result = runner.invoke(app, ["embed", str(weights), str(fasta), str(tmp_path / "out"), "--include", "mean"])
    assert result.exit_code == 0, result.output
    assert "upper-cased" in result.output
    _, _, tokens = alphabet.get_batch_converter()(records)
    with torch.inference_mode():
        ref = model(tokens, repr_layers=[3])["representations"][3]
    for i, (name, seq) in enumerate(records):
        saved = torch.load(tmp_path / "out" / f"{name}.pt", weights_only=True)
        expected = ref[i, 1 : len(seq) + 1].mean(0)
        torch.testing.assert_close(saved["mean_representations"][3], expected, atol=1e-5, rtol=1e-5)
    result = runner.invoke(app, ["embed", str(weights), str(fasta), str(tmp_path / "all.h5"), "--include", "per_tok"])
    assert result.exit_code == 0, result.output
    with h5py.File(tmp_path / "all.h5") as h5:
        assert h5["per_tok/3"].shape == (sum(len(s) for _, s in records), 32)
    dup = tmp_path / "dup.fa"
    dup.write_text(">a\nACD\n>a\nEFG\n")
    result = runner.invoke(app, ["embed", str(weights), str(dup), str(tmp_path / "o2")])
    assert result.exit_code == 1 and "duplicate names: a" in result.output and not (tmp_path / "o2").exists()
    result = runner.invoke(app, ["embed", str(weights), str(fasta), str(tmp_path / "o3"), "--include", "logits"])
    assert result.exit_code == 1 and "--include" in result.output and not (tmp_path / "o3").exists()  # no empty folder
    fewer = tmp_path / "fewer.fa"  # a second run into the first one's folder: its other files are said to stay
    fewer.write_text(f">{records[0][0]}\n{records[0][1]}\n")
    result = runner.invoke(app, ["embed", str(weights), str(fewer), str(tmp_path / "out"), "--include", "mean"])
    assert result.exit_code == 0 and "already holds 3 .pt file(s) of sequences not in" in result.output


def test_a_training_model_is_embedded_in_eval_mode_and_left_training(tiny_esm):
    model, alphabet = tiny_esm
    records = random_records(3, 8, 20, seed=5)
    expected = [r for r, _ in embed_sequences(model, alphabet, records, EmbedOptions(include=("mean",)))]
    model.train()
    try:
        again = [r for r, _ in embed_sequences(model, alphabet, records, EmbedOptions(include=("mean",)))]
        assert model.training  # token dropout and any dropout are off while embedding, back on after
    finally:
        model.eval()
    for a, b in zip(expected, again, strict=True):
        torch.testing.assert_close(a["mean_representations"], b["mean_representations"])
