"""Torch models and their file formats: ESM2 backbones (load/save, fused forward) and structure-token heads."""

from ismtk.models.esm import EsmConfig, LoadedEsm, esm_alphabet, load_esm, save_fair_esm, save_hf
from ismtk.models.heads import StreamInfo, TokenHeads, load_heads, save_heads

__all__ = [
    "EsmConfig",
    "LoadedEsm",
    "StreamInfo",
    "TokenHeads",
    "esm_alphabet",
    "load_esm",
    "load_heads",
    "save_fair_esm",
    "save_heads",
    "save_hf",
]
