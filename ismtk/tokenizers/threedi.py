"""Foldseek's 3Di tokens (van Kempen et al. 2024), computed by ``mini3di``, the exact NumPy port."""

from __future__ import annotations

import numpy as np
from mini3di import Encoder

from ismtk.errors import StructureError
from ismtk.structure.chain import ProteinChain
from ismtk.tokenizers.alphabet import Alphabet
from ismtk.tokenizers.base import Tokenizer

__all__ = ["ThreeDiTokenizer", "MAX_MISSING_BACKBONE"]

#: Largest share of residues that may lack N or C before a chain is refused (CA-only models and
#: backbone-less traces give meaningless 3Di states; a few gaps are encoded as Foldseek does).
MAX_MISSING_BACKBONE = 0.5


class ThreeDiTokenizer(Tokenizer):
    """3Di states of Foldseek: 20 letters; residues with missing atoms get the invalid state ``D``.

    Missing C-beta atoms (glycine) are placed virtually from N, CA and C, as in Foldseek.
    """

    name = "3di"
    alphabet = Alphabet("ACDEFGHIKLMNPQRSTVWY")

    def __init__(self) -> None:
        self._encoder = Encoder()

    def encode(self, chain: ProteinChain) -> np.ndarray:
        backbone = chain.has_atoms(("N", "C"))
        missing = 1.0 - backbone.mean()
        if missing > MAX_MISSING_BACKBONE:
            what = "CA-only chain" if not backbone.any() else f"{missing:.0%} of residues lack N or C"
            raise StructureError(chain.source, f"{what}: 3Di needs backbone N, CA and C atoms", chain.chain_id)
        states = self._encoder.encode_atoms(
            ca=chain.ca, cb=chain.atom_coords("CB"), n=chain.atom_coords("N"), c=chain.atom_coords("C")
        )
        return np.asarray(states.filled(), dtype=np.uint8)
