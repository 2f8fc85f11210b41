"""Structure-token heads: one ``Linear(D, K+1)`` per token stream on the last ESM2 layer (ISM).

Class 0 is padding (never a target); token ``i`` of a stream's alphabet is class ``i + 1``. The heads
file written by :func:`save_heads` holds only tensors and plain values::

    {"format": "ismtk-token-heads", "version": 1, "embed_dim": D, "layer": L,
     "streams": [{"name", "alphabet", "ignore", "weight", "tokenizer"}, ...],
     "state": {"<name>.weight": (K+1, D), "<name>.bias": (K+1,)},
     "backbone": "<32 hex>"}

``alphabet`` is the symbol string of the stream (token FASTA letters), ``ignore`` the symbol of the
disorder token s* excluded from training (or None), ``layer`` the ESM2 layer whose (final-layer-normed)
representation the heads read, ``backbone`` the :func:`backbone_digest` of the ESM2 they were trained on (absent in
files written before 2026-12-02). :func:`load_heads` rebuilds the module for ``predict-tokens``.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from ismtk.atomic import atomic_write
from ismtk.errors import InputError
from ismtk.sequence.alphabet import Alphabet
from ismtk.train.checkpoint import unreadable

__all__ = ["HEADS_FORMAT", "StreamInfo", "TokenHeads", "backbone_digest", "load_heads", "save_heads"]

HEADS_FORMAT = "ismtk-token-heads"


@dataclass(frozen=True)
class StreamInfo:
    """What a head predicts: stream name, token alphabet, the excluded s* symbol, its loss weight, and the identity
    of the tokenizer that made its training tokens when their FASTA named it (``3di``, ``ism:<12 hex>``)."""

    name: str
    alphabet: str
    ignore: str | None = None
    weight: float = 1.0
    tokenizer: str | None = None

    @property
    def num_classes(self) -> int:
        """K + 1 (class 0 is padding)."""
        return len(self.alphabet) + 1


class TokenHeads(nn.Module):
    """``forward(h)`` maps ``(B, T, D)`` representations to ``{stream: (B, T, K+1) logits}``."""

    def __init__(self, embed_dim: int, streams: list[StreamInfo], layer: int, backbone: str | None = None) -> None:
        super().__init__()
        names = [s.name for s in streams]
        if len(set(names)) != len(names) or not names:
            raise InputError(f"token streams need distinct names, got {names}")
        self.embed_dim = embed_dim
        self.layer = layer
        self.backbone = backbone  # backbone_digest of the ESM2 the heads were trained on, when known
        self.streams = list(streams)
        self.heads = nn.ModuleDict({s.name: nn.Linear(embed_dim, s.num_classes) for s in streams})

    def forward(self, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(hidden) for name, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{stream: (B, T) int64}`` most likely token index per position (padding class excluded)."""
        return {name: logits[..., 1:].argmax(-1) for name, logits in self(hidden).items()}

    def stream(self, name: str) -> StreamInfo:
        """The stream called ``name`` (:class:`InputError` naming those there are otherwise)."""
        for info in self.streams:
            if info.name == name:
                return info
        raise InputError(f"stream {name!r}: the heads predict {', '.join(s.name for s in self.streams)}")

    def decode(self, stream: str, tokens: torch.Tensor) -> str:
        """Token string of ``(L,)`` indices of ``stream``, as written to token FASTA."""
        return Alphabet(self.stream(stream).alphabet).decode(tokens.cpu().numpy())


def backbone_digest(esm: nn.Module) -> str:
    """A fingerprint of an ESM2 backbone: BLAKE2b (128 bits) of its last layer's output projection and final layer
    norm, the weights every head reads through (float32 bytes; a few MB for ESM2 650M). Structure tuning changes
    them, so heads trained on one backbone are told apart from another of the same shape."""
    digest = hashlib.blake2b(digest_size=16)
    for tensor in (esm.layers[-1].fc2.weight, esm.emb_layer_norm_after.weight, esm.emb_layer_norm_after.bias):
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def save_heads(heads: TokenHeads, path: str | Path) -> Path:
    """Write the heads file described in the module docstring, atomically."""
    state = {k: v.detach().cpu().clone() for k, v in heads.heads.state_dict().items()}
    data = {
        "format": HEADS_FORMAT,
        "version": 1,
        "embed_dim": heads.embed_dim,
        "layer": heads.layer,
        "streams": [asdict(s) for s in heads.streams],
        "state": state,
        **({"backbone": heads.backbone} if heads.backbone is not None else {}),
    }
    with atomic_write(path, "wb") as handle:
        torch.save(data, handle)
    return Path(path)


def load_heads(path: str | Path) -> TokenHeads:
    """The :class:`TokenHeads` of a heads file (read with ``weights_only=True``)."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise InputError(f"{path}: heads file not found") from None
    except Exception as exc:
        raise unreadable(path, "heads file", exc) from exc
    if not isinstance(data, dict) or data.get("format") != HEADS_FORMAT:
        raise InputError(f"{path}: not an ismtk token-heads file (written by structure-tune as heads.pt)")
    heads = TokenHeads(data["embed_dim"], [StreamInfo(**s) for s in data["streams"]], data["layer"],
                       data.get("backbone"))
    heads.heads.load_state_dict(data["state"])
    return heads.eval()
