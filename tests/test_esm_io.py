"""ESM2 loading from every supported form, and exports checked with the real fair-esm and transformers."""

from __future__ import annotations

import argparse
import re

import esm
import pytest
import torch
from tiny_models import TINY, tiny_esm

from ismtk.errors import InputError
from ismtk.plm.esm import EsmConfig, fair_to_hf, load_esm, save_fair_esm, save_hf

transformers = pytest.importorskip("transformers")


def _tokens(model, seqs=("MKTAYIAKQRQISFVKSHFSRQ", "GSHMLEDPVA")):
    converter = model.alphabet.get_batch_converter()
    _, _, tokens = converter([(str(i), s) for i, s in enumerate(seqs)])
    tokens[0, 5] = model.alphabet.mask_idx  # exercise token dropout too
    return tokens


@torch.no_grad()
def _outputs(model, tokens):
    out = model(tokens, repr_layers=[model.num_layers], return_contacts=True)
    return out["logits"], out["representations"][model.num_layers], out["contacts"]


def test_fair_esm_export_loads_in_fair_esm_with_its_contact_head(tmp_path):
    model = tiny_esm()
    with torch.no_grad():
        model.contact_head.regression.weight.normal_()
    path, regression = save_fair_esm(model, tmp_path / "esm2_t2_tuned.pt")
    assert regression.name == "esm2_t2_tuned-contact-regression.pt"
    with torch.serialization.safe_globals([argparse.Namespace]):
        theirs, _ = esm.pretrained.load_model_and_alphabet_local(str(path))
    tokens = _tokens(model)
    for ours, other in zip(_outputs(model, tokens), _outputs(theirs.eval(), tokens), strict=True):
        torch.testing.assert_close(ours, other)
    again = load_esm(path)
    assert again.config == TINY and not again.notes
    torch.testing.assert_close(_outputs(again.model, tokens)[2], _outputs(model, tokens)[2])


def test_hf_export_loads_in_transformers_and_back(tmp_path):
    model = tiny_esm()
    folder = save_hf(model, tmp_path / "hf")
    theirs = transformers.EsmForMaskedLM.from_pretrained(folder).eval()
    tokens = _tokens(model)
    logits = _outputs(model, tokens)[0]
    with torch.no_grad():
        out = theirs(input_ids=tokens, attention_mask=tokens.ne(model.padding_idx), output_hidden_states=True)
    keep = tokens.ne(model.padding_idx)
    torch.testing.assert_close(out.logits[keep], logits[keep], atol=1e-5, rtol=1e-4)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert tokenizer("MKT")["input_ids"] == [0, 20, 15, 11, 2]
    again = load_esm(folder)
    assert again.config == TINY and not again.notes
    torch.testing.assert_close(_outputs(again.model, tokens)[0], logits)


def test_rotary_frequencies_stored_once_for_all_layers_are_kept(tmp_path):
    """The released ESM2 weights carry fp16-rounded rotary frequencies; transformers 5 saves them once, under
    ``encoder.layer.*.attention.self.rotary_embeddings.inv_freq`` (a literal ``*``). They are kept, not recomputed
    (which moved a 1,000-residue representation by up to 23 %)."""
    from ismtk.plm.esm import hf_to_fair

    model = tiny_esm()
    rounded = model.layers[0].self_attn.rot_emb.inv_freq.half().float()
    with torch.no_grad():
        for layer in model.layers:
            layer.self_attn.rot_emb.inv_freq.copy_(rounded)
    state = {k: v for k, v in fair_to_hf(model.state_dict()).items() if not k.endswith("inv_freq")}
    for key in ("esm.encoder.layer.*.attention.self.rotary_embeddings.inv_freq", "esm.rotary_embeddings.inv_freq"):
        out, dropped = hf_to_fair({**state, key: rounded})
        assert not dropped and all(torch.equal(out[f"layers.{i}.self_attn.rot_emb.inv_freq"], rounded)
                                   for i in range(TINY.num_layers))
    resaved = tmp_path / "resaved"
    transformers.EsmForMaskedLM.from_pretrained(save_hf(model, tmp_path / "hf")).save_pretrained(resaved)
    again = load_esm(resaved)
    assert not again.notes
    tokens = _tokens(model)
    torch.testing.assert_close(_outputs(again.model, tokens)[1], _outputs(model, tokens)[1])


@pytest.mark.parametrize("safe", [True, False])
def test_a_sharded_hf_folder_loads(tmp_path, safe):
    """Large models are saved by transformers in shards listed by an index (ESM2 3B and 15B on the hub)."""
    model = tiny_esm()
    sharded = tmp_path / "sharded"
    theirs = transformers.EsmForMaskedLM.from_pretrained(save_hf(model, tmp_path / "hf"))
    theirs.save_pretrained(sharded, max_shard_size="20KB", safe_serialization=safe)
    assert list(sharded.glob("*.index.json")) and len(list(sharded.glob("*-of-*"))) > 1
    tokens = _tokens(model)
    torch.testing.assert_close(_outputs(load_esm(sharded).model, tokens)[0], _outputs(model, tokens)[0])


def test_hf_model_without_mlm_head_gets_a_new_one_and_says_so(tmp_path):
    model = tiny_esm()
    backbone = transformers.EsmModel.from_pretrained(save_hf(model, tmp_path / "hf"), add_pooling_layer=False)
    backbone.save_pretrained(tmp_path / "bare")
    loaded = load_esm(tmp_path / "bare")
    assert any("MLM head" in note for note in loaded.notes)
    tokens = _tokens(model)
    torch.testing.assert_close(_outputs(loaded.model, tokens)[1], _outputs(model, tokens)[1])


@pytest.mark.parametrize("keys", ["fair", "hf"])
def test_bare_state_dict_config_is_inferred_from_shapes(tmp_path, keys):
    model = tiny_esm()
    state = model.state_dict() if keys == "fair" else fair_to_hf(model.state_dict())
    state = {k: v for k, v in state.items() if "contact_head" not in k}  # heads from the rotary buffer
    torch.save(state, tmp_path / "weights.pt")
    loaded = load_esm(tmp_path / "weights.pt")
    assert loaded.config == TINY
    assert any("inferred" in n for n in loaded.notes) and any("contact" in n for n in loaded.notes)
    tokens = _tokens(model)
    torch.testing.assert_close(_outputs(loaded.model, tokens)[0], _outputs(model, tokens)[0])


def test_a_backbone_without_contact_weights_is_exported_with_an_empty_head_that_says_so(tmp_path):
    """No contact-regression weights: the head is empty (contacts 0.5 everywhere), not random, and stays so through
    both exports, whose loading says so; fair-esm reads the same empty head."""
    model = tiny_esm()
    state = {k: v for k, v in model.state_dict().items() if "contact_head" not in k}
    torch.save(state, tmp_path / "weights.pt")
    loaded = load_esm(tmp_path / "weights.pt")
    assert any("contact head is empty" in n for n in loaded.notes)
    contacts = _outputs(loaded.model, _tokens(model))[2]
    assert torch.all(contacts == 0.5)
    fair, _ = save_fair_esm(loaded.model, tmp_path / "esm2_t2_x.pt")
    for again in (load_esm(fair), load_esm(save_hf(loaded.model, tmp_path / "hf"))):
        assert any("contact head is empty" in n for n in again.notes)
    with torch.serialization.safe_globals([argparse.Namespace]):
        theirs, _ = esm.pretrained.load_model_and_alphabet_local(str(fair))
    assert torch.all(_outputs(theirs.eval(), _tokens(model))[2] == 0.5)


def test_hub_name_resolves_in_fair_esm_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    save_fair_esm(tiny_esm(), tmp_path / "hub" / "checkpoints" / "esm2_t2_1M_TEST.pt")
    loaded = load_esm("esm2_t2_1M_TEST")
    assert loaded.config == TINY and loaded.source == "esm2_t2_1M_TEST"

    def offline(url, target, progress):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    (tmp_path / "hub" / "checkpoints" / "esm2_t2_1M_TEST-contact-regression.pt").unlink()
    offline_load = load_esm("esm2_t2_1M_TEST")  # the model is cached: its missing regression file only empties
    assert any("contact head is empty" in note for note in offline_load.notes)  # the contact head
    with pytest.raises(InputError, match=r"esm2_t6_8M_UR50D: esm2_t6_8M_UR50D.pt is not in .* could not be downl"):
        load_esm("esm2_t6_8M_UR50D")


def test_a_folder_of_several_fair_esm_files_asks_which_one(tmp_path):
    """A folder of one fair-esm file (an export) loads it; of two, the first by name was taken in silence."""
    save_fair_esm(tiny_esm(), tmp_path / "esm2_t2_a.pt")
    assert load_esm(tmp_path).config == TINY
    save_fair_esm(tiny_esm(), tmp_path / "esm2_t2_b.pt")
    with pytest.raises(InputError, match=r"holds 2 fair-esm files \(esm2_t2_a.pt, esm2_t2_b.pt\); give the one"):
        load_esm(tmp_path)


def test_unusable_inputs_raise_input_errors_naming_them(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_esm(tmp_path / "missing.pt")
    state = tiny_esm().state_dict()
    state["layers.0.fc1.weight"] = torch.zeros(3, 3)
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(InputError, match="broken.pt.*shapes"):
        load_esm(tmp_path / "broken.pt")
    with pytest.raises(InputError, match="esm2"):
        save_fair_esm(tiny_esm(), tmp_path / "model.pt")
    assert EsmConfig.of(tiny_esm()) == TINY


def _edited_hf(tmp_path, **changes):
    import json

    folder = save_hf(tiny_esm(), tmp_path / "hf")
    config = json.loads((folder / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key)
        else:
            config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_hf_config_read_with_transformers_defaults(tmp_path):
    """A config without token_dropout means False, as in transformers; both read the same logits."""
    folder = _edited_hf(tmp_path, token_dropout=None)
    loaded = load_esm(folder)
    assert not loaded.config.token_dropout
    theirs = transformers.EsmForMaskedLM.from_pretrained(folder).eval()
    assert not theirs.config.token_dropout
    tokens = _tokens(loaded.model)
    keep = tokens.ne(loaded.model.padding_idx)
    with torch.no_grad():
        out = theirs(input_ids=tokens, attention_mask=keep)
    torch.testing.assert_close(out.logits[keep], _outputs(loaded.model, tokens)[0][keep], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    "change", [{"hidden_act": "gelu_new"}, {"rope_theta": 500000.0}, {"layer_norm_eps": None}]
)
def test_hf_config_settings_esm2_cannot_compute_are_refused(tmp_path, change):
    folder = _edited_hf(tmp_path, **change)
    with pytest.raises(InputError, match=f"config.json: {next(iter(change))}"):
        load_esm(folder)


@pytest.mark.parametrize(
    "text, said",
    [("{cut short", "not a readable JSON configuration"), ("[]", "not a model configuration"),
     ({"num_hidden_layers": "2"}, "num_hidden_layers is '2', not a positive whole number"),
     ({"hidden_size": None}, "hidden_size is None"), ({"rope_theta": "10000"}, "rope_theta is '10000', not a number")],
)
def test_a_malformed_hf_config_is_one_error_naming_it(tmp_path, text, said):
    folder = _edited_hf(tmp_path, **text) if isinstance(text, dict) else save_hf(tiny_esm(), tmp_path / "hf")
    if isinstance(text, str):
        (folder / "config.json").write_text(text)
    with pytest.raises(InputError, match=f"config.json: {re.escape(said)}"):
        load_esm(folder)


@pytest.mark.parametrize("damage", ["lfs pointer", "cut"])
def test_a_damaged_safetensors_file_is_one_error_naming_it(tmp_path, damage):
    folder = save_hf(tiny_esm(), tmp_path / "hf")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(b"version https://git-lfs.github.com/spec/v1\n" if damage == "lfs pointer" else data[:-100])
    with pytest.raises(InputError, match="model.safetensors: not a readable safetensors file"):
        load_esm(folder)


def test_a_folder_saved_by_transformers_with_gamma_beta_layer_norms_loads(tmp_path):
    """transformers 5 writes the weight and bias of modules named LayerNorm as gamma and beta."""
    import safetensors.torch

    model = tiny_esm()
    folder = save_hf(model, tmp_path / "hf")
    weights = next(folder.glob("*.safetensors"))
    state = safetensors.torch.load_file(weights)
    legacy = {k.removesuffix(".weight") + ".gamma" if ".LayerNorm." in k and k.endswith(".weight") else
              k.removesuffix(".bias") + ".beta" if ".LayerNorm." in k and k.endswith(".bias") else k: v
              for k, v in state.items()}
    assert sum(k.endswith(".gamma") for k in legacy) == 2 * TINY.num_layers
    safetensors.torch.save_file(legacy, weights)
    loaded = load_esm(folder)
    assert not loaded.notes
    tokens = _tokens(model)
    torch.testing.assert_close(_outputs(loaded.model, tokens)[0], _outputs(model, tokens)[0])


def test_hf_config_without_position_embedding_type_is_absolute_and_refused(tmp_path):
    """transformers reads a config without position_embedding_type as absolute (learned) positions."""
    folder = _edited_hf(tmp_path, position_embedding_type=None)
    with pytest.raises(InputError, match="rotary position embeddings"):
        load_esm(folder)


def test_an_untied_mlm_decoder_is_refused(tmp_path):
    model = tiny_esm()
    folder = save_hf(model, tmp_path / "hf")
    theirs = transformers.EsmForMaskedLM.from_pretrained(folder)
    theirs.config.tie_word_embeddings = False
    with torch.no_grad():
        theirs.lm_head.decoder.weight = torch.nn.Parameter(theirs.lm_head.decoder.weight.detach().clone() + 1)
    theirs.save_pretrained(tmp_path / "untied")
    with pytest.raises(InputError, match="lm_head.decoder.weight"):
        load_esm(tmp_path / "untied")
