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
from ismtk.train.launch import gpu_pairs

__all__ = [
    "MODEL_CONFIG",
    "MODEL_WEIGHTS",
    "embed_budget",
    "embed_chains",
    "embed_microenvironments",
    "load_autoencoder",
    "save_autoencoder",
]

MODEL_CONFIG = "model.json"
MODEL_WEIGHTS = "model.pt"
#: Most microenvironments per forward pass of :func:`embed_chains` on a CPU.
EMBED_BATCH = 256
#: Most (environments x (atoms + 1)^2) per forward pass on a CPU: the attention biases grow with the square of the
#: atoms, up to ~400 bytes per pair at width 64 (measured), so a batch holds at most ~100 MB of activations.
EMBED_PAIRS = 250_000
#: On a GPU: most environments and pairs per forward pass, and the share of its memory the pairs may fill (a
#: CPU-sized batch of ~50 environments would leave a GPU waiting on kernel launches).
GPU_EMBED_BATCH, GPU_EMBED_PAIRS, _GPU_EMBED_SHARE = 8192, 16_000_000, 0.2


def embed_budget(device: torch.device) -> tuple[int, int]:
    """``(batch_size, max_pairs)`` of :func:`embed_microenvironments` on ``device``: :data:`EMBED_BATCH` and
    :data:`EMBED_PAIRS` on a CPU; on a GPU :data:`GPU_EMBED_BATCH` and up to :data:`GPU_EMBED_PAIRS`, at most
    what fills a fifth of its memory at training's bytes per pair (an H200: 16M pairs, about 2,800 environments of 75
    atoms; 16 GB: 2M)."""
    if device.type != "cuda":
        return EMBED_BATCH, EMBED_PAIRS
    return GPU_EMBED_BATCH, gpu_pairs(device, _GPU_EMBED_SHARE, GPU_EMBED_PAIRS)


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
    model: AtomicAutoencoder, envs: Microenvironments, batch_size: int | None = None, max_pairs: int | None = None
) -> np.ndarray:
    """``(B, width) float32`` residue embeddings ``z`` of a batch of microenvironments.

    Sorted by size (less padding) and encoded on the model's device in batches of at most ``batch_size``
    environments and ``max_pairs`` environments x (atoms + 1)^2 (defaults: :func:`embed_budget` of the device), so
    memory is bounded whatever the sizes; the result does not depend on the random state.
    """
    device = next(model.parameters()).device
    default_batch, default_pairs = embed_budget(device)
    batch_size, max_pairs = batch_size or default_batch, max_pairs or default_pairs
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
    model: AtomicAutoencoder, chains: Sequence[ProteinChain], batch_size: int | None = None
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
