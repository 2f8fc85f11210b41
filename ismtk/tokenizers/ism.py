"""ISM structure tokens: autoencoder embeddings z of each residue's masked microenvironment, assigned to
the nearest centroid of a k-means codebook (ISM paper; DESIGN.md section 2)."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

from ismtk.autoencoder.codebook import CODEBOOK_FILE, Codebook, file_sha256
from ismtk.errors import InputError
from ismtk.structure.chain import ProteinChain
from ismtk.tokenizers.base import Tokenizer, require_backbone

__all__ = ["DEFAULT_ISM_MODEL", "IsmTokenizer"]

#: The shipped default: encoder (``model.json`` + ``model.pt``) and ``codebook.json`` in one folder.
DEFAULT_ISM_MODEL = Path(str(files("ismtk") / "data" / "ism"))


class IsmTokenizer(Tokenizer):
    """Tokens of a trained autoencoder + codebook folder (``model.json``, ``model.pt``, ``codebook.json``).

    The codebook records the SHA-256 of the encoder weights it was fitted on; a mismatch is an error.
    Embeddings are assigned to centroids in float64, so tokens do not change with the thread count.
    :attr:`name` is ``ism`` for the shipped default and the folder's absolute path otherwise, so that a
    database remembers which model made its tokens and queries are encoded with the same one.
    """

    def __init__(self, folder: str | Path = DEFAULT_ISM_MODEL, device: str = "cpu") -> None:
        from ismtk.autoencoder.io import MODEL_WEIGHTS, load_autoencoder

        folder = Path(folder)
        codebook_path = folder / CODEBOOK_FILE
        if not codebook_path.is_file():
            raise InputError(f"{folder}: no {CODEBOOK_FILE}; make one with 'ismtk cluster {folder} STRUCTS -o ...'")
        self.codebook = Codebook.load(codebook_path)
        if self.codebook.encoder_sha256 != file_sha256(folder / MODEL_WEIGHTS):
            raise InputError(f"{codebook_path}: codebook was fitted on another encoder than {folder / MODEL_WEIGHTS}")
        self.model = load_autoencoder(folder, device)
        self.alphabet = self.codebook.alphabet
        self.folder = folder
        self.name = "ism" if folder.resolve() == DEFAULT_ISM_MODEL.resolve() else str(folder.resolve())

    def to(self, device: str) -> IsmTokenizer:
        self.model = self.model.to(device)
        return self

    @torch.inference_mode()
    def encode_many(self, chains: Sequence[ProteinChain]) -> list[np.ndarray]:
        from ismtk.autoencoder.io import embed_chains

        for chain in chains:
            require_backbone(chain, "ISM tokens are made from all-atom microenvironments")
        return [self.codebook.assign(z) for z in embed_chains(self.model, chains)]

    def encode(self, chain: ProteinChain) -> np.ndarray:
        return self.encode_many([chain])[0]
