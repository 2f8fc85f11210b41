"""``predict-tokens``: heads trained on a tiny ESM2 give back the tokens they were trained on."""

from __future__ import annotations

import random

import esm
import pytest
import torch
from esm.model.esm2 import ESM2
from typer.testing import CliRunner

from ismtk.cli import app
from ismtk.errors import InputError
from ismtk.models import StreamInfo, TokenHeads, save_fair_esm, save_heads
from ismtk.models.esm_forward import esm2_representations
from ismtk.predict import resolve_model

THREEDI = "ACDEFGHIKLMNPQRSTVWY"


@pytest.fixture(scope="module")
def export_folder(tmp_path_factory):
    """A tiny backbone plus heads fitted to memorise random 3Di strings of three sequences."""
    torch.manual_seed(0)
    rng = random.Random(0)
    alphabet = esm.Alphabet.from_architecture("ESM-1b")
    model = ESM2(num_layers=2, embed_dim=48, attention_heads=4, alphabet=alphabet).eval()
    records = [(f"p{i}", "".join(rng.choice(THREEDI) for _ in range(rng.randint(15, 25)))) for i in range(3)]
    targets = {name: "".join(rng.choice(THREEDI) for _ in seq) for name, seq in records}
    _, _, tokens = alphabet.get_batch_converter()(records)
    with torch.inference_mode():
        hidden = esm2_representations(model, tokens, [2])[2]
    x = torch.cat([hidden[i, 1 : len(s) + 1] for i, (_, s) in enumerate(records)]).clone()
    y = torch.cat([torch.tensor([THREEDI.index(c) + 1 for c in targets[n]]) for n, _ in records])
    heads = TokenHeads(48, [StreamInfo("3di", THREEDI)], layer=2)
    opt = torch.optim.Adam(heads.parameters(), lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(heads(x)["3di"], y).backward()
        opt.step()
    assert (heads(x)["3di"][:, 1:].argmax(-1) + 1 == y).all(), "the heads did not memorise the targets"
    folder = tmp_path_factory.mktemp("export")
    save_fair_esm(model, folder / "esm2_t2_tiny.pt")
    save_heads(heads, folder / "heads.pt")
    return folder, records, targets


def test_predict_tokens_returns_the_trained_tokens_in_input_order(export_folder, tmp_path):
    folder, records, targets = export_folder
    fasta = tmp_path / "seqs.fa"
    fasta.write_text("".join(f">{n}\n{s}\n" for n, s in reversed(records)))
    out = tmp_path / "pred.fasta"
    result = CliRunner().invoke(app, ["predict-tokens", str(folder), str(fasta), "-o", str(out)])
    assert result.exit_code == 0, result.output
    lines = out.read_text().split()
    assert lines == [x for n, _ in reversed(records) for x in (f">{n}", targets[n])]


def test_missing_heads_and_unknown_stream(export_folder, tmp_path):
    folder, records, _ = export_folder
    weights = next(folder.glob("esm2_*.pt"))
    with pytest.raises(InputError, match="pass --heads"):
        resolve_model(weights, None)
    fasta = tmp_path / "s.fa"
    fasta.write_text(">a\nACDE\n")
    result = CliRunner().invoke(app, ["predict-tokens", str(folder), str(fasta), "-o", str(tmp_path / "o.fa"), "--stream", "ism"])
    assert result.exit_code == 1 and "the heads predict 3di" in result.output
