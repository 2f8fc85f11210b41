"""Torch models and their file formats: the atomic autoencoder (geometry, losses, inference), ESM2
backbones (load/save, fused forward) and structure-token heads."""

from ismtk.models.autoencoder import AtomicAutoencoder, AutoencoderConfig
from ismtk.models.esm import EsmConfig, LoadedEsm, esm_alphabet, load_esm, save_fair_esm, save_hf
from ismtk.models.heads import StreamInfo, TokenHeads, load_heads, save_heads
from ismtk.models.losses import autoencoder_losses

__all__ = [
    "AtomicAutoencoder",
    "AutoencoderConfig",
    "EsmConfig",
    "LoadedEsm",
    "StreamInfo",
    "TokenHeads",
    "autoencoder_losses",
    "esm_alphabet",
    "load_esm",
    "load_heads",
    "save_fair_esm",
    "save_heads",
    "save_hf",
]
