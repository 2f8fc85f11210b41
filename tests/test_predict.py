"""``predict-tokens``: heads trained on a tiny ESM2 give back the tokens they were trained on."""

from __future__ import annotations

import random

import pytest
from tiny_models import memorising_export
from typer.testing import CliRunner

from ismtk.cli import app
from ismtk.errors import InputError
from ismtk.plm.esm import EsmConfig
from ismtk.plm.predict import resolve_model
from ismtk.sequence.fasta import TOKENIZER_TAG, header_tag, read_fasta_records

THREEDI = "ACDEFGHIKLMNPQRSTVWY"


@pytest.fixture(scope="module")
def export_folder(tmp_path_factory):
    """A tiny backbone plus heads fitted to memorise random 3Di strings of three sequences."""
    rng = random.Random(0)
    records = [(f"p{i}", "".join(rng.choice(THREEDI) for _ in range(rng.randint(15, 25)))) for i in range(3)]
    targets = {name: "".join(rng.choice(THREEDI) for _ in seq) for name, seq in records}
    folder = memorising_export(tmp_path_factory.mktemp("export"), records, targets, THREEDI, "3di", tokenizer="3di")
    return folder, records, targets


def test_predict_tokens_returns_the_trained_tokens_in_input_order(export_folder, tmp_path):
    folder, records, targets = export_folder
    fasta = tmp_path / "seqs.fa"
    fasta.write_text("".join(f">{n}\n{s}\n" for n, s in reversed(records)))
    out = tmp_path / "pred.fasta"
    result = CliRunner().invoke(app, ["predict-tokens", str(folder), str(fasta), "-o", str(out)])
    assert result.exit_code == 0, result.output
    written = [(r.name, header_tag(r.description, TOKENIZER_TAG), r.sequence) for r in read_fasta_records(out)]
    assert written == [(n, "3di", targets[n]) for n, _ in reversed(records)]  # tagged as the training tokens were


def test_missing_heads_and_unknown_stream(export_folder, tmp_path):
    folder, records, _ = export_folder
    weights = next(folder.glob("esm2_*.pt"))
    with pytest.raises(InputError, match="pass --heads"):
        resolve_model(weights, None)
    fasta = tmp_path / "s.fa"
    fasta.write_text(">a\nACDE\n")
    args = ["predict-tokens", str(folder), str(fasta), "-o", str(tmp_path / "o.fa"), "--stream", "ism"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1 and "the heads predict 3di" in result.output



def test_heads_refuse_another_backbone_of_the_same_shape(export_folder, tmp_path):
    """Heads read features of the backbone they were trained on; another one's give plausible-looking noise."""
    import torch

    from ismtk.plm.esm import save_fair_esm
    from ismtk.plm.heads import load_heads, save_heads
    from ismtk.plm.predict import load_predictor

    folder, _, _ = export_folder
    torch.manual_seed(1)
    other = EsmConfig(num_layers=2, embed_dim=48, attention_heads=4).build()
    other = save_fair_esm(other, tmp_path / "esm2_t2_b.pt")[0]
    with pytest.raises(InputError, match="heads.pt: these heads were trained on another backbone"):
        load_predictor(other, folder / "heads.pt")
    assert load_predictor(folder)[1].backbone is not None
    old = load_heads(folder / "heads.pt")  # a heads file from before backbones were recorded: not checked
    old.backbone = None
    save_heads(old, tmp_path / "old_heads.pt")
    assert load_predictor(other, tmp_path / "old_heads.pt")[1].backbone is None

def test_embed_takes_the_export_folder_as_its_backbone(export_folder, tmp_path):
    import torch

    folder, records, _ = export_folder
    fasta = tmp_path / "s.fa"
    fasta.write_text("".join(f">{n}\n{s}\n" for n, s in records))
    runner = CliRunner()
    for model, out in [(folder, "by_folder"), (next(folder.glob("esm2_*.pt")), "by_file")]:
        result = runner.invoke(app, ["embed", str(model), str(fasta), str(tmp_path / out), "--include", "mean"])
        assert result.exit_code == 0, result.output
    for name, _ in records:
        a, b = (torch.load(tmp_path / out / f"{name}.pt", weights_only=True) for out in ("by_folder", "by_file"))
        assert a["mean_representations"].keys() == b["mean_representations"].keys()
        for layer, value in a["mean_representations"].items():
            torch.testing.assert_close(value, b["mean_representations"][layer], rtol=0, atol=0)


def test_library_calls_name_an_unknown_stream_and_refuse_repeated_records(export_folder):
    from ismtk.plm.esm import load_esm
    from ismtk.plm.heads import load_heads
    from ismtk.plm.predict import predict_records

    folder, records, _ = export_folder
    loaded, heads = load_esm(folder), load_heads(folder / "heads.pt")
    with pytest.raises(InputError, match="stream 'ism': the heads predict 3di"):
        predict_records(loaded, heads, records, "ism", device="cpu")
    heads.layer = loaded.model.num_layers + 4  # a hand-made heads file: not an option the user gave
    with pytest.raises(InputError, match=f"the heads read layer {heads.layer}, the backbone has layers 0..2"):
        predict_records(loaded, heads, records, "3di", device="cpu")
    heads.layer = loaded.model.num_layers
    with pytest.raises(InputError, match="named more than once: p0"):
        predict_records(loaded, heads, [records[0], records[0]], "3di", device="cpu")


def test_a_head_of_another_codebook_of_the_same_alphabet_is_refused():
    """All 64-token ISM codebooks share one alphabet: tokens of codebook A searched as codebook B's mean nothing."""
    from ismtk.plm.heads import StreamInfo, TokenHeads
    from ismtk.plm.predict import _stream_for
    from ismtk.tokenizers import load_tokenizer

    ism = load_tokenizer("ism")
    symbols = ism.alphabet.symbols
    other = TokenHeads(8, [StreamInfo("ism", symbols, tokenizer="ism:0123456789ab")], 1)
    with pytest.raises(InputError, match=f"predicts ism:0123456789ab tokens, the database holds {ism.identity}"):
        _stream_for(other, ism)
    untagged = TokenHeads(8, [StreamInfo("ism", symbols), StreamInfo("x", symbols, tokenizer="ism:0123456789ab")], 1)
    assert _stream_for(untagged, ism) == "ism"  # a head that does not record its tokenizer: by name
    both = TokenHeads(8, [StreamInfo("old", symbols, tokenizer="ism:0123456789ab"),
                             StreamInfo("new", symbols, tokenizer=ism.identity)], 1)
    assert _stream_for(both, ism) == "new"


def test_predicted_tokens_cover_every_residue_whatever_the_long_option(export_folder):
    """Library callers may pass options made for ``embed``: a truncated sequence would get fewer tokens."""
    from ismtk.plm.embed import EmbedOptions
    from ismtk.plm.esm import load_esm
    from ismtk.plm.heads import load_heads
    from ismtk.plm.predict import predict_records

    folder, records, _ = export_folder
    loaded, heads = load_esm(folder), load_heads(folder / "heads.pt")
    options = EmbedOptions(long="truncate", truncation_seq_length=10, window_overlap=4)
    tokens = predict_records(loaded, heads, records, "3di", options, device="cpu")
    assert [len(tokens[n]) for n, _ in records] == [len(s) for _, s in records]
