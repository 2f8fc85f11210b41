"""ESM2 backbones in and out: one loader for every form they come in, two exporters.

:func:`load_esm` accepts a fair-esm hub name (``esm2_t33_650M_UR50D``; resolved in fair-esm's own cache,
``$TORCH_HOME/hub/checkpoints``, downloading there when the network allows), a fair-esm ``.pt`` checkpoint
(with its ``-contact-regression.pt`` sibling), a bare state dict (fair-esm or Hugging Face keys; the
configuration is inferred from tensor shapes) or a Hugging Face ``EsmForMaskedLM`` / ``EsmModel`` folder
(``model.safetensors`` or ``pytorch_model.bin``). Everything becomes a fair-esm :class:`esm.model.esm2.ESM2`.

:func:`save_fair_esm` writes what ``esm.pretrained.load_model_and_alphabet_local`` reads and
:func:`save_hf` what ``transformers.EsmForMaskedLM.from_pretrained`` reads (Lin et al. 2023, ESM2).
The Hugging Face <-> fair-esm key mapping is the table :data:`_HF_KEYS`, used in both directions.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch
from esm.data import Alphabet as EsmAlphabet
from esm.model.esm2 import ESM2

from ismtk.atomic import atomic_write, ensure_folder
from ismtk.errors import InputError
from ismtk.train.checkpoint import unreadable

__all__ = [
    "EsmConfig",
    "LoadedEsm",
    "esm_alphabet",
    "export_weights",
    "fair_to_hf",
    "hf_to_fair",
    "load_esm",
    "save_fair_esm",
    "save_hf",
]

_HUB_URL = "https://dl.fbaipublicfiles.com/fair-esm"
_HUB_NAME = re.compile(r"^esm2_t\d+_\w+$")
_CONTACT_KEYS = ("contact_head.regression.weight", "contact_head.regression.bias")
#: fair-esm key pattern <-> Hugging Face key pattern (``{i}`` is the layer index); HF backbone keys are
#: relative to the ``esm.`` prefix of ``EsmForMaskedLM``, ``lm_head.*`` keys sit at the top level.
_HF_KEYS = [
    ("embed_tokens.weight", "embeddings.word_embeddings.weight"),
    ("layers.{i}.self_attn.q_proj.{p}", "encoder.layer.{i}.attention.self.query.{p}"),
    ("layers.{i}.self_attn.k_proj.{p}", "encoder.layer.{i}.attention.self.key.{p}"),
    ("layers.{i}.self_attn.v_proj.{p}", "encoder.layer.{i}.attention.self.value.{p}"),
    ("layers.{i}.self_attn.rot_emb.inv_freq", "encoder.layer.{i}.attention.self.rotary_embeddings.inv_freq"),
    ("layers.{i}.self_attn.out_proj.{p}", "encoder.layer.{i}.attention.output.dense.{p}"),
    ("layers.{i}.self_attn_layer_norm.{p}", "encoder.layer.{i}.attention.LayerNorm.{p}"),
    ("layers.{i}.fc1.{p}", "encoder.layer.{i}.intermediate.dense.{p}"),
    ("layers.{i}.fc2.{p}", "encoder.layer.{i}.output.dense.{p}"),
    ("layers.{i}.final_layer_norm.{p}", "encoder.layer.{i}.LayerNorm.{p}"),
    ("emb_layer_norm_after.{p}", "encoder.emb_layer_norm_after.{p}"),
    ("contact_head.regression.{p}", "contact_head.regression.{p}"),
    ("lm_head.dense.{p}", "lm_head.dense.{p}"),
    ("lm_head.layer_norm.{p}", "lm_head.layer_norm.{p}"),
    ("lm_head.bias", "lm_head.bias"),
]


def _pattern(template: str) -> re.Pattern:
    regex = re.escape(template).replace(r"\{i\}", r"(?P<i>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
    return re.compile(f"^{regex}$")


_FAIR_TO_HF = [(_pattern(f), h) for f, h in _HF_KEYS]
_HF_TO_FAIR = [(_pattern(h), f) for f, h in _HF_KEYS]


def _rename(key: str, table: list[tuple[re.Pattern, str]]) -> str | None:
    for pattern, template in table:
        match = pattern.match(key)
        if match:
            return template.format(**match.groupdict())
    return None


#: transformers 5 writes the weight and bias of modules named ``LayerNorm`` as ``gamma`` and ``beta``
#: (and renames them back when it loads them).
_LEGACY_NORM = re.compile(r"\.(gamma|beta)$")


def _check_tied(decoder: torch.Tensor, state: dict[str, torch.Tensor], source: str) -> None:
    """Refuse an MLM decoder that is not the token embeddings: ESM2's output layer is tied to them."""
    embeddings = next((v for k, v in state.items() if k.removeprefix("esm.") == "embeddings.word_embeddings.weight"),
                      None)
    if embeddings is not None and not torch.equal(decoder, embeddings):
        raise InputError(f"{source}: an MLM decoder (lm_head.decoder.weight) that differs from the "
                         "token embeddings (tie_word_embeddings false); ESM2's output layer is tied to them, so "
                         "ismtk cannot load it")


def hf_to_fair(
    state: dict[str, torch.Tensor], source: str = "the weights"
) -> tuple[dict[str, torch.Tensor], list[str]]:
    """fair-esm keys of a Hugging Face ESM state dict, and the HF keys that have no fair-esm counterpart.

    Accepts ``EsmForMaskedLM`` (``esm.`` prefix), ``EsmModel`` (no prefix) and task models (their extra
    heads are returned as dropped). A single table of rotary frequencies (a model-level
    ``rotary_embeddings.inv_freq``, or transformers 5's ``encoder.layer.*.attention.self.rotary_embeddings.inv_freq``
    with a literal ``*``) is copied to every layer: the released ESM2 weights carry fp16-rounded frequencies, which
    recomputed ones would not equal. Layer-norm ``gamma``/``beta`` (as transformers 5 writes them) are read as
    weight/bias; an MLM decoder that is not the token embeddings is refused (:class:`InputError` naming ``source``).
    """
    out, dropped = {}, []
    shared_inv_freq = None
    for key, value in state.items():
        bare = _LEGACY_NORM.sub(lambda m: {"gamma": ".weight", "beta": ".bias"}[m[1]], key.removeprefix("esm."))
        if bare.endswith("rotary_embeddings.inv_freq") and not re.match(r"encoder\.layer\.\d+\.", bare):
            shared_inv_freq = value
            continue
        name = _rename(bare, _HF_TO_FAIR)
        if name is None:
            if bare == "lm_head.decoder.weight":
                _check_tied(value, state, source)
            else:
                dropped.append(key)
            continue
        out[name] = value
    if shared_inv_freq is not None:
        for i in range(_num_layers(out)):
            out.setdefault(f"layers.{i}.self_attn.rot_emb.inv_freq", shared_inv_freq.clone())
    return out, dropped


def fair_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``EsmForMaskedLM`` keys of a fair-esm ESM2 state dict (the tied decoder weight is left out)."""
    out = {}
    for key, value in state.items():
        name = _rename(key, _FAIR_TO_HF)
        if name is not None:
            out[name if name.startswith("lm_head.") else f"esm.{name}"] = value
    return out


@dataclass(frozen=True)
class EsmConfig:
    """The four numbers fair-esm's ``ESM2`` is built from."""

    num_layers: int
    embed_dim: int
    attention_heads: int
    token_dropout: bool = True

    def build(self) -> ESM2:
        """A freshly initialised ESM2 of this shape with the ESM-1b alphabet (33 tokens)."""
        return ESM2(self.num_layers, self.embed_dim, self.attention_heads, esm_alphabet(), self.token_dropout)

    @classmethod
    def of(cls, model: ESM2) -> EsmConfig:
        return cls(model.num_layers, model.embed_dim, model.attention_heads, bool(model.token_dropout))


@dataclass
class LoadedEsm:
    """A backbone ready to use: the model, its alphabet, where it came from and what had to be done."""

    model: ESM2
    alphabet: EsmAlphabet
    source: str
    notes: list[str] = field(default_factory=list)

    @property
    def config(self) -> EsmConfig:
        return EsmConfig.of(self.model)


def esm_alphabet() -> EsmAlphabet:
    """fair-esm's ESM-1b/ESM2 alphabet (``<cls>`` 0, ``<pad>`` 1, ``<eos>`` 2, ..., ``<mask>`` 32)."""
    return EsmAlphabet.from_architecture("ESM-1b")


def load_esm(spec: str | Path) -> LoadedEsm:
    """Load an ESM2 backbone from a hub name, a fair-esm/bare ``.pt`` file, a Hugging Face folder or the
    ``export/`` folder of ``ismtk structure-tune`` (its fair-esm file).

    Missing pieces are created and reported in :attr:`LoadedEsm.notes` (an MLM head absent from
    ``EsmModel`` folders, a contact head absent without a regression file); keys that belong to no
    ESM2 part (classifier heads, unused absolute position embeddings) are dropped and reported.
    Raises :class:`InputError` naming ``spec`` when it is none of these.
    """
    path = Path(spec)
    if path.is_dir():
        weights = export_weights(path)
        return _load_file(weights) if weights is not None else _load_hf_folder(path)
    if path.is_file():
        return _load_file(path)
    if _HUB_NAME.match(str(spec)):
        return _load_file(_hub_file(str(spec)), source=str(spec))
    raise InputError(
        f"{spec}: no such file or folder, and not a fair-esm hub name like esm2_t33_650M_UR50D; "
        "give a fair-esm .pt, a state dict or a Hugging Face ESM folder"
    )


def export_weights(folder: Path) -> Path | None:
    """The fair-esm backbone file of an ``ismtk structure-tune`` export folder (``esm2_t*_ismtk.pt``, written
    beside ``heads.pt`` and ``hf/``), or None when ``folder`` holds no such file."""
    files = sorted(p for p in folder.glob("esm2_*.pt") if not p.name.endswith("-contact-regression.pt"))
    if not files or (folder / "config.json").is_file():
        return None
    if len(files) > 1:
        raise InputError(f"{folder}: holds {len(files)} fair-esm files ({', '.join(p.name for p in files[:4])}); "
                         "give the one to load")
    return files[0]


def _hub_file(name: str) -> Path:
    """The cached fair-esm checkpoint of a hub name, downloaded if absent, and its contact-regression file where
    it is cached or can be downloaded (without it the contact head is empty, as :func:`load_esm` notes)."""
    folder = Path(torch.hub.get_dir()) / "checkpoints"
    model = folder / f"{name}.pt"
    _download(f"{_HUB_URL}/models/{name}.pt", model, name)
    try:
        _download(f"{_HUB_URL}/regression/{name}-contact-regression.pt", model.with_name(model.stem +
                  "-contact-regression.pt"), name)
    except InputError:  # offline with the model cached: the embeddings need no contact head
        pass
    return model


def _download(url: str, target: Path, name: str) -> None:
    """Fetch ``url`` into ``target`` unless it is there."""
    if target.is_file():
        return
    ensure_folder(target.parent)
    try:
        torch.hub.download_url_to_file(url, str(target), progress=False)
    except Exception as exc:
        raise InputError(
            f"{name}: {target.name} is not in {target.parent} and could not be downloaded from {url} ({exc}); "
            "copy the file there or give a local path"
        ) from exc


def _torch_load(path: Path) -> object:
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise unreadable(path, "weights file", exc) from exc


def _load_file(path: Path, source: str | None = None) -> LoadedEsm:
    data = _torch_load(path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a fair-esm checkpoint or a state dict, found {type(data).__name__}")
    notes: list[str] = []
    if "model" in data and "cfg" in data:  # fair-esm checkpoint
        cfg = data["cfg"]["model"]
        get = cfg.get if isinstance(cfg, dict) else lambda k, d=None: getattr(cfg, k, d)
        state = _strip_fair_prefixes(data["model"])
        config = EsmConfig(get("encoder_layers"), get("encoder_embed_dim"), get("encoder_attention_heads"),
                           bool(get("token_dropout", True)))
        regression = path.with_name(path.stem + "-contact-regression.pt")
        if regression.is_file() and _CONTACT_KEYS[0] not in state:
            state.update(_strip_fair_prefixes(_torch_load(regression)["model"]))
        dropped: list[str] = []
    else:
        tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
        if not tensors:
            raise InputError(f"{path}: holds no tensors; expected a fair-esm checkpoint or an ESM2 state dict")
        if any(".attention.self.query." in k for k in tensors):
            state, dropped = hf_to_fair(tensors, str(path))
        else:
            state, dropped = _strip_fair_prefixes(tensors), []
        config = _infer_config(state, path)
        notes.append(f"configuration inferred from tensor shapes: {config}")
    return _assemble(config, state, dropped, source or str(path), notes)


def _load_hf_folder(folder: Path) -> LoadedEsm:
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise InputError(f"{folder}: no config.json; expected a Hugging Face EsmForMaskedLM or EsmModel folder")
    hf = _hf_config(config_file)
    # transformers' EsmConfig default is "absolute" (ESM-1b's learned positions), which ESM2 does not compute
    if hf.get("model_type") != "esm" or hf.get("position_embedding_type", "absolute") != "rotary":
        raise InputError(f"{config_file}: not an ESM2 model (model_type esm with rotary position embeddings)")
    if hf.get("emb_layer_norm_before") or hf.get("is_folding_model"):
        raise InputError(f"{config_file}: ESM-1b/ESMFold variants are not ESM2 backbones")
    vocab = folder / "vocab.txt"
    if vocab.is_file() and vocab.read_text().split() != esm_alphabet().all_toks:
        raise InputError(f"{vocab}: token order differs from the ESM2 alphabet; cannot convert")
    _hf_numbers(hf, config_file)
    _hf_fixed_settings(hf, config_file)
    weights = _hf_weights(folder)
    # transformers' EsmConfig defaults: token_dropout False (every released ESM2 config sets it true)
    config = EsmConfig(hf["num_hidden_layers"], hf["hidden_size"], hf["num_attention_heads"],
                       bool(hf.get("token_dropout", False)))
    if hf.get("intermediate_size", 4 * config.embed_dim) != 4 * config.embed_dim:
        raise InputError(f"{config_file}: intermediate_size must be 4 x hidden_size in ESM2")
    state, dropped = hf_to_fair(weights, str(folder))
    return _assemble(config, state, dropped, str(folder), [])


def _hf_config(config_file: Path) -> dict:
    """A Hugging Face ``config.json`` as a dict; :class:`InputError` naming the file when it is none."""
    try:
        hf = json.loads(config_file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{config_file}: not a readable JSON configuration ({exc})") from exc
    if not isinstance(hf, dict):
        raise InputError(f"{config_file}: not a model configuration (a JSON object)")
    return hf


def _hf_numbers(hf: dict, config_file: Path) -> None:
    """Refuse an ESM config whose sizes are not positive whole numbers or whose settings are not numbers."""
    for key in ("num_hidden_layers", "hidden_size", "num_attention_heads"):
        if type(hf.get(key)) is not int or hf[key] < 1:
            raise InputError(f"{config_file}: {key} is {hf.get(key)!r}, not a positive whole number")
    numbers = {key: hf[key] for key in ("rope_theta", "layer_norm_eps", "intermediate_size") if key in hf}
    wrong = next((key for key, value in numbers.items() if type(value) not in (int, float)), None)
    if wrong is not None:
        raise InputError(f"{config_file}: {wrong} is {hf[wrong]!r}, not a number")


def _hf_fixed_settings(hf: dict, config_file: Path) -> None:
    """Refuse a config with settings the fair-esm ESM2 does not compute: its exact GELU, rotary base 10,000 and
    layer-norm epsilon 1e-5 are fixed (transformers reads a config without ``layer_norm_eps`` as 1e-12)."""
    act = hf.get("hidden_act", "gelu")
    if act != "gelu":
        raise InputError(f"{config_file}: hidden_act {act!r}; ESM2 uses the exact GELU ('gelu')")
    theta = float(hf.get("rope_theta", 10000.0))
    if theta != 10000.0:
        raise InputError(f"{config_file}: rope_theta {theta:g}; ESM2's rotary embeddings use base 10000")
    eps = float(hf.get("layer_norm_eps", 1e-12))
    if eps != 1e-5:
        raise InputError(f"{config_file}: layer_norm_eps {eps:g} (1e-12 when absent, as in transformers); ESM2's "
                         "layer norms use 1e-5, as every released ESM2 config says")


def _hf_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The weights of a Hugging Face folder: ``model.safetensors`` or ``pytorch_model.bin``, whole or in the shards
    that their ``.index.json`` lists (as transformers saves large models)."""
    for name, read in (("model.safetensors", _safetensors_load), ("pytorch_model.bin", _torch_load)):
        if (folder / name).is_file():
            return read(folder / name)
        index = folder / f"{name}.index.json"
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError, AttributeError) as exc:
                raise unreadable(index, "shard index", exc) from exc
            weights: dict[str, torch.Tensor] = {}
            for shard in shards:
                if not (folder / shard).is_file():
                    raise InputError(f"{index}: lists {shard}, which is not in {folder}")
                weights |= read(folder / shard)
            return weights
    raise InputError(f"{folder}: neither model.safetensors nor pytorch_model.bin (whole or sharded) found")


def _safetensors_load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise InputError(f"{path}: not a readable safetensors file ({exc}): truncated, damaged, or a Git LFS pointer "
                         "never fetched? (git lfs pull)") from exc


def _assemble(config: EsmConfig, state: dict, dropped: list[str], source: str, notes: list[str]) -> LoadedEsm:
    model = config.build()
    expected = model.state_dict()
    # the tied decoder weight and the rotary frequencies (fixed by the shape; newer transformers do
    # not save them) may be absent
    missing = [k for k in expected if k not in state and k != "lm_head.weight" and not k.endswith("inv_freq")]
    if any(k.endswith("inv_freq") and k not in state for k in expected):
        notes.append("no rotary frequencies in the weights: computed in float32 (weights that were trained with "
                     "stored, rounded ones may give slightly other outputs)")
    unexpected = [k for k in state if k not in expected]
    lm_missing = [k for k in missing if k.startswith("lm_head.")]
    contact_missing = [k for k in missing if k.startswith("contact_head.")]
    other = sorted(set(missing) - set(lm_missing) - set(contact_missing))
    if other or unexpected:
        raise InputError(
            f"{source}: does not match an ESM2 of shape {config}: "
            f"missing {_few(other)}; unexpected {_few(unexpected)}"
            + (f"; tensors of no ESM2 counterpart: {_few(dropped)}" if dropped else "")
        )
    bad_shape = [k for k, v in state.items() if tuple(v.shape) != tuple(expected[k].shape)]
    if bad_shape:
        raise InputError(f"{source}: tensor shapes differ from an ESM2 of shape {config}: {_few(bad_shape)}")
    model.load_state_dict(state, strict=False)
    regression = model.contact_head.regression
    if contact_missing:  # an empty head rather than a random one, which would predict plausible-looking contacts
        with torch.no_grad():
            regression.weight.zero_()
            regression.bias.zero_()
    if not regression.weight.any() and not regression.bias.any():
        notes.append("the contact head is empty (no trained contact-regression weights): every contact is 0.5")
    if lm_missing:
        notes.append("no MLM head in the weights: created a new one (dense + layer norm + bias; decoder tied "
                     "to the token embeddings)")
    if dropped:
        notes.append(f"dropped {len(dropped)} tensors that are not part of ESM2: {_few(dropped)}")
    return LoadedEsm(model.eval(), model.alphabet, source, notes)


def _strip_fair_prefixes(state: dict) -> dict:
    """Remove fairseq's ``encoder.sentence_encoder.``/``encoder.`` prefixes, as fair-esm does."""
    return {re.sub(r"^(encoder\.sentence_encoder\.|encoder\.)", "", k): v for k, v in state.items()}


def _num_layers(state: dict) -> int:
    indices = [int(m.group(1)) for k in state if (m := re.match(r"^layers\.(\d+)\.", k))]
    return max(indices) + 1 if indices else 0


def _infer_config(state: dict, path: Path) -> EsmConfig:
    """Shape of an ESM2 from its tensors; heads from the contact regression or the rotary frequencies."""
    if "embed_tokens.weight" not in state:
        raise InputError(f"{path}: no embed_tokens.weight; not an ESM2 state dict")
    layers = _num_layers(state)
    dim = state["embed_tokens.weight"].shape[1]
    if _CONTACT_KEYS[0] in state and layers:
        heads = state[_CONTACT_KEYS[0]].shape[1] // layers
    elif "layers.0.self_attn.rot_emb.inv_freq" in state:
        heads = dim // (2 * state["layers.0.self_attn.rot_emb.inv_freq"].numel())
    else:
        raise InputError(f"{path}: cannot infer the number of attention heads (no contact head, no rotary buffer)")
    if not layers or dim % heads:
        raise InputError(f"{path}: inconsistent ESM2 shapes ({layers} layers, width {dim}, {heads} heads)")
    return EsmConfig(layers, dim, heads)


def _few(keys: list[str], n: int = 5) -> str:
    if not keys:
        return "none"
    return ", ".join(keys[:n]) + (f" and {len(keys) - n} more" if len(keys) > n else "")


def save_fair_esm(model: ESM2, path: str | Path) -> tuple[Path, Path]:
    """Write ``path`` (stem must start with ``esm2``) and ``<stem>-contact-regression.pt`` for fair-esm.

    The checkpoint is ``{"model": state, "cfg": {"model": Namespace(...)}}`` as fair-esm's ESM2 files;
    loading it with ``weights_only`` needs ``argparse.Namespace`` allow-listed (torch >= 2.6).
    Returns both paths.
    """
    path = Path(path)
    if not path.name.startswith("esm2") or path.suffix != ".pt":
        raise InputError(f"{path}: fair-esm recognises ESM2 checkpoints by a file name esm2*.pt")
    config = EsmConfig.of(model)
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    regression = {k: state.pop(k) for k in _CONTACT_KEYS}
    cfg = argparse.Namespace(
        encoder_layers=config.num_layers,
        encoder_embed_dim=config.embed_dim,
        encoder_ffn_embed_dim=4 * config.embed_dim,
        encoder_attention_heads=config.attention_heads,
        token_dropout=config.token_dropout,
    )
    regression_path = path.with_name(path.stem + "-contact-regression.pt")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, "wb") as handle:
        torch.save({"model": state, "cfg": {"model": cfg}}, handle)
    with atomic_write(regression_path, "wb") as handle:
        torch.save({"model": regression}, handle)
    return path, regression_path


def save_hf(model: ESM2, folder: str | Path) -> Path:
    """Write a Hugging Face ``EsmForMaskedLM`` folder (config, safetensors weights, tokenizer files)."""
    from safetensors.torch import save as safetensors_bytes

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = EsmConfig.of(model)
    alphabet = esm_alphabet()
    hf_config = {
        "architectures": ["EsmForMaskedLM"],
        "model_type": "esm",
        "vocab_size": len(alphabet),
        "hidden_size": config.embed_dim,
        "num_hidden_layers": config.num_layers,
        "num_attention_heads": config.attention_heads,
        "intermediate_size": 4 * config.embed_dim,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "max_position_embeddings": 1026,
        "position_embedding_type": "rotary",
        "layer_norm_eps": 1e-5,
        "emb_layer_norm_before": False,
        "token_dropout": config.token_dropout,
        "mask_token_id": alphabet.mask_idx,
        "pad_token_id": alphabet.padding_idx,
        "is_folding_model": False,
        "tie_word_embeddings": True,
        "torch_dtype": "float32",
    }
    state = {k: v.detach().cpu().contiguous().clone() for k, v in fair_to_hf(model.state_dict()).items()}
    with atomic_write(folder / "config.json", "w") as handle:
        json.dump(hf_config, handle, indent=2)
    with atomic_write(folder / "model.safetensors", "wb") as handle:
        handle.write(safetensors_bytes(state, metadata={"format": "pt"}))
    with atomic_write(folder / "vocab.txt", "w") as handle:
        handle.write("\n".join(alphabet.all_toks) + "\n")
    special = {"cls_token": "<cls>", "pad_token": "<pad>", "eos_token": "<eos>", "unk_token": "<unk>",
               "mask_token": "<mask>"}
    with atomic_write(folder / "special_tokens_map.json", "w") as handle:
        json.dump(special, handle, indent=2)
    with atomic_write(folder / "tokenizer_config.json", "w") as handle:
        json.dump({"tokenizer_class": "EsmTokenizer", "model_max_length": 1026, **special}, handle, indent=2)
    return folder

