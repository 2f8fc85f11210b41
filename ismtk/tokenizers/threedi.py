"""Foldseek's 3Di tokens (van Kempen et al. 2024), computed by ``mini3di``, the exact NumPy port."""

from __future__ import annotations

import numpy as np
from mini3di import Encoder

from ismtk.sequence.alphabet import Alphabet
from ismtk.structure.chain import ProteinChain
from ismtk.tokenizers.base import Tokenizer, require_backbone

__all__ = ["ThreeDiTokenizer"]


class ThreeDiTokenizer(Tokenizer):
    """3Di states of Foldseek: 20 letters; residues with missing atoms get the invalid state ``D``.

    Missing C-beta atoms (glycine) are placed virtually from N, CA and C, as in Foldseek.
    """

    name = "3di"
    alphabet = Alphabet("ACDEFGHIKLMNPQRSTVWY")
    matrix = "3di"

    def __init__(self) -> None:
        self._encoder = Encoder()

    def encode(self, chain: ProteinChain) -> np.ndarray:
        require_backbone(chain, "3Di needs backbone N, CA and C atoms")
        states = self._encoder.encode_atoms(
            ca=chain.ca, cb=chain.atom_coords("CB"), n=chain.atom_coords("N"), c=chain.atom_coords("C")
        )
        return np.asarray(states.filled(), dtype=np.uint8)
