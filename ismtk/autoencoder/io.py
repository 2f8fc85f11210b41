"""Saving, loading and running a trained autoencoder: residue embeddings of whole chains.

A model is stored as two files side by side: ``model.json`` (the :class:`AutoencoderConfig`) and
``model.pt`` (a plain state dict, loaded with ``weights_only=True``). A training run folder holds both,
refreshed at every epoch end, so a run can be used while it is still going.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ismtk.atomic import atomic_write
from ismtk.autoencoder.model import AtomicAutoencoder, AutoencoderConfig
from ismtk.errors import InputError
from ismtk.structure.chain import ProteinChain
from ismtk.structure.microenv import Microenvironments, collate, microenvironments
from ismtk.train.checkpoint import load_checkpoint, save_checkpoint

__all__ = [
    "MODEL_CONFIG",
    "MODEL_WEIGHTS",
    "embed_chains",
    "embed_microenvironments",
    "load_autoencoder",
    "save_autoencoder",
]

MODEL_CONFIG = "model.json"
MODEL_WEIGHTS = "model.pt"
#: Most microenvironments per forward pass of :func:`embed_chains`.
EMBED_BATCH = 256
#: Most (environments x (atoms + 1)^2) per forward pass: the attention biases grow with the square of the
#: atoms, up to ~400 bytes per pair at width 64 (measured), so a batch holds at most ~100 MB of activations.
EMBED_PAIRS = 250_000


def save_autoencoder(model: AtomicAutoencoder, folder: str | Path) -> None:
    """Write ``model.json`` and ``model.pt`` (plain CPU tensors) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    save_checkpoint(folder / MODEL_WEIGHTS, state)
    with atomic_write(folder / MODEL_CONFIG, "w") as handle:
        handle.write(model.cfg.to_json() + "\n")


def load_autoencoder(path: str | Path, device: str | torch.device = "cpu") -> AtomicAutoencoder:
    """An autoencoder in eval mode from a model folder (``model.json`` + ``model.pt``, e.g. a training run)
    or a ``model.pt`` file with its ``model.json`` beside it."""
    path = Path(path)
    folder, weights = (path, path / MODEL_WEIGHTS) if path.is_dir() else (path.parent, path)
    config = folder / MODEL_CONFIG
    if not config.is_file():
        raise InputError(f"{path}: no {MODEL_CONFIG} found; point to a training run folder or a saved model")
    try:
        cfg = AutoencoderConfig.from_dict(json.loads(config.read_text()))
    except (ValueError, TypeError, InputError) as exc:  # InputError: a setting the config refuses
        raise InputError(f"{config}: not a valid autoencoder configuration ({exc})") from exc
    model = AtomicAutoencoder(cfg)
    state = load_checkpoint(weights, map_location="cpu")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise InputError(f"{weights}: weights do not match {config} ({str(exc).splitlines()[0]})") from exc
    return model.to(device).eval()


@torch.inference_mode()
def embed_microenvironments(
    model: AtomicAutoencoder, envs: Microenvironments, batch_size: int = EMBED_BATCH, max_pairs: int = EMBED_PAIRS
) -> np.ndarray:
    """``(B, width) float32`` residue embeddings ``z`` of a batch of microenvironments.

    Sorted by size (less padding) and encoded on the model's device in batches of at most ``batch_size``
    environments and ``max_pairs`` environments x (atoms + 1)^2, so memory is bounded whatever the sizes;
    the result does not depend on the random state.
    """
    device = next(model.parameters()).device
    order = np.argsort(envs.n_atoms, kind="stable")
    out = np.empty((len(envs), model.cfg.width), np.float32)
    for start, stop in _batches(envs.n_atoms[order], batch_size, max_pairs):
        idx = order[start:stop]
        batch = envs.take(idx)
        z = model.encode(
            torch.from_numpy(batch.coords).to(device),
            torch.from_numpy(batch.elements).to(device),
            torch.from_numpy(batch.mask).to(device),
        )
        out[idx] = z.float().cpu().numpy()
    return out


def _batches(sizes: np.ndarray, batch_size: int, max_pairs: int) -> list[tuple[int, int]]:
    """``(start, stop)`` of consecutive batches of ascending ``sizes``: at most ``batch_size`` items and
    ``max_pairs`` items x (largest size + 1)^2 each (one item at least)."""
    bounds, start = [], 0
    while start < len(sizes):
        stop = min(start + batch_size, len(sizes))
        fits = np.arange(start + 1, stop + 1) - start <= max_pairs // (sizes[start:stop].astype(np.int64) + 1) ** 2
        stop = start + max(1, int(np.argmin(fits)) if not fits.all() else len(fits))
        bounds.append((start, stop))
        start = stop
    return bounds


def embed_chains(
    model: AtomicAutoencoder, chains: Sequence[ProteinChain], batch_size: int = EMBED_BATCH
) -> list[np.ndarray]:
    """Residue embeddings ``z`` of every residue of every chain: a list of ``(L, width) float32`` arrays.

    Microenvironments of all chains are pooled and encoded together (:func:`embed_microenvironments`).
    """
    if not chains:
        return []
    envs = collate([microenvironments(c, radius=model.cfg.radius) for c in chains])
    out = embed_microenvironments(model, envs, batch_size)
    bounds = np.cumsum([0] + [len(c) for c in chains])
    return [out[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
