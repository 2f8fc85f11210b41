"""``predict-tokens``: structure tokens from sequence alone, with the heads of a structure-tuned model."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ismtk.errors import InputError
from ismtk.plm.embed import EmbedOptions, embed_sequences
from ismtk.plm.esm import LoadedEsm, export_weights, load_esm
from ismtk.plm.heads import TokenHeads, backbone_digest, load_heads
from ismtk.search.db import SequenceDB
from ismtk.sequence.fasta import TOKENIZER_TAG, FastaWriter
from ismtk.sequence.protein import read_protein_fasta
from ismtk.tokenizers.base import Tokenizer
from ismtk.train.launch import DEFAULT_DEVICE, resolve_device

__all__ = [
    "PREDICT_DEFAULTS", "PredictSummary", "load_predictor", "predict_records", "predict_tokens", "predicted_db",
    "resolve_model",
]

#: Long sequences are windowed so that every residue gets a token.
PREDICT_DEFAULTS = EmbedOptions(include=("per_tok",), long="windows")


@dataclass(frozen=True)
class PredictSummary:
    sequences: int
    residues: int
    stream: str
    notes: list[str]


def resolve_model(model: str | Path, heads: str | Path | None) -> tuple[str, Path]:
    """Backbone spec and heads file. An ``ismtk structure-tune`` export folder holds both
    (``esm2_t*_ismtk.pt`` and ``heads.pt``); otherwise ``heads`` must be given."""
    folder = Path(model)
    if heads is None:
        if not folder.exists():
            raise InputError(f"{model}: no such folder; give a structure-tune export folder (backbone + heads.pt), "
                             "or a backbone with --heads")
        if not (folder.is_dir() and (folder / "heads.pt").is_file()):
            raise InputError(f"{model}: no heads.pt beside the model; pass --heads (structure-tune writes "
                             "export/heads.pt)")
        heads = folder / "heads.pt"
    weights = export_weights(folder) if folder.is_dir() else None
    return str(weights if weights is not None else model), Path(heads)


def load_predictor(model: str | Path, heads_path: str | Path | None = None) -> tuple[LoadedEsm, TokenHeads]:
    """The backbone and heads of a predictor (:func:`resolve_model`); heads that record the backbone they were
    trained on (:func:`backbone_digest`) refuse any other, which would predict plausible-looking noise."""
    spec, heads_file = resolve_model(model, heads_path)
    loaded, heads = load_esm(spec), load_heads(heads_file)
    if heads.backbone is not None and heads.backbone != backbone_digest(loaded.model):
        raise InputError(f"{heads_file}: these heads were trained on another backbone than {spec} (its weights "
                         "differ); use the backbone of the same structure-tune export")
    return loaded, heads


def _pick_stream(heads: TokenHeads, stream: str | None) -> str:
    names = [s.name for s in heads.streams]
    if stream is None:
        return names[0]
    if stream not in names:
        raise InputError(f"--stream {stream!r}: the heads predict {', '.join(names)}")
    return stream


def predict_records(
    loaded,
    heads: TokenHeads,
    records,
    stream: str,
    options: EmbedOptions = PREDICT_DEFAULTS,
    device: str = DEFAULT_DEVICE,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, str]:
    """``{name: token string}`` of ``stream`` for ``(name, sequence)`` records (argmax of the head)."""
    if heads.embed_dim != loaded.model.embed_dim:
        raise InputError(f"heads expect width {heads.embed_dim}, the backbone has {loaded.model.embed_dim}")
    if not 0 <= heads.layer <= loaded.model.num_layers:
        raise InputError(f"the heads read layer {heads.layer}, the backbone has layers 0..{loaded.model.num_layers}; "
                         "use the backbone of the same structure-tune export")
    heads.stream(stream)
    repeated = sorted(name for name, n in Counter(name for name, _ in records).items() if n > 1)
    if repeated:
        raise InputError(f"records named more than once: {', '.join(repeated[:10])}")
    # every residue gets a token: long sequences are windowed whatever ``options`` says
    options = replace(options, include=("per_tok",), repr_layers=(heads.layer,), long="windows")
    device = resolve_device(device)
    heads = heads.to(device)
    out = {}
    for result, _ in embed_sequences(loaded.model, loaded.alphabet, records, options, device, on_batch):
        hidden = result["representations"][heads.layer].to(device)
        out[result["label"]] = heads.decode(stream, heads.predict(hidden)[stream])
    return out


def predict_tokens(
    model: str | Path,
    fasta: str | Path,
    out: str | Path,
    stream: str | None = None,
    heads_path: str | Path | None = None,
    options: EmbedOptions = PREDICT_DEFAULTS,
    device: str = DEFAULT_DEVICE,
    on_batch: Callable[[int], None] | None = None,
) -> PredictSummary:
    """Predict one stream's tokens for every sequence of ``fasta``; write token FASTA in input order."""
    records, notes = read_protein_fasta(fasta)
    device = resolve_device(device)  # before the model loads: a device that is not there is said at once
    loaded, heads = load_predictor(model, heads_path)
    stream = _pick_stream(heads, stream)
    tokens = predict_records(loaded, heads, records, stream, options, device, on_batch)
    made_by = next(s.tokenizer for s in heads.streams if s.name == stream)
    tag = f"{TOKENIZER_TAG}={made_by}" if made_by is not None else ""
    with FastaWriter(out) as writer:
        for name, _ in records:
            writer.write(name, tokens[name], tag)
    return PredictSummary(len(records), sum(len(s) for _, s in records), stream, notes + list(loaded.notes))


def _stream_for(heads: TokenHeads, tokenizer: Tokenizer) -> str:
    """The head predicting ``tokenizer``'s tokens: trained on its tokens, else (a head that does not record its
    tokenizer) of the same name, else of the same alphabet. A head trained on another tokenizer of the same name or
    alphabet (another ISM codebook) is refused: its tokens mean other things."""
    for info in heads.streams:
        if info.tokenizer == tokenizer.identity:
            return info.name
    alike = [info for info in heads.streams if info.name == tokenizer.name] + [
        info for info in heads.streams if info.alphabet == tokenizer.alphabet.symbols
    ]
    for info in alike:
        if info.tokenizer is None:
            return info.name
    if alike:
        raise InputError(
            f"the predictor's head {alike[0].name} predicts {alike[0].tokenizer} tokens, the database holds "
            f"{tokenizer.identity} tokens (another codebook of the same alphabet); use a predictor trained on "
            "this tokenizer's tokens, or a database made with its tokenizer"
        )
    raise InputError(
        f"the predictor's heads ({', '.join(s.name for s in heads.streams)}) predict no {tokenizer.identity} tokens "
        f"(alphabet {tokenizer.alphabet.symbols!r})"
    )


def predicted_db(
    fasta: str | Path, predictor: str | Path, tokenizer: Tokenizer, device: str = DEFAULT_DEVICE
) -> SequenceDB:
    """A search database of protein sequences with tokens predicted by a structure-tuned model.

    The head of ``tokenizer`` (the target's tokenizer) is used, so the queries speak the target's
    alphabet; amino acids are kept for ``--mode aa`` and the amino-acid term.
    """
    records, _ = read_protein_fasta(fasta)
    device = resolve_device(device)
    loaded, heads = load_predictor(predictor)
    tokens = predict_records(loaded, heads, records, _stream_for(heads, tokenizer), device=device)
    alphabet = tokenizer.alphabet
    return SequenceDB.from_records(
        ((name, alphabet.encode(tokens[name], name), seq) for name, seq in records), alphabet, tokenizer.identity
    )
