"""The interface every structure tokenizer implements (3Di, ISM autoencoder tokens, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from ismtk.structure.chain import ProteinChain
from ismtk.tokenizers.alphabet import Alphabet

__all__ = ["Tokenizer"]


class Tokenizer(ABC):
    """Turns protein chains into one structure token per residue.

    Subclasses set :attr:`name` and :attr:`alphabet` and implement :meth:`encode`; batched
    tokenizers (neural ones) override :meth:`encode_many`. A chain the tokenizer cannot use raises
    :class:`ismtk.errors.StructureError` naming the file and chain.
    """

    name: str
    alphabet: Alphabet

    @abstractmethod
    def encode(self, chain: ProteinChain) -> np.ndarray:
        """``(L,) uint8`` token indices into :attr:`alphabet`, one per residue of ``chain``."""

    def encode_many(self, chains: Sequence[ProteinChain]) -> list[np.ndarray]:
        """Tokens of several chains; override to batch work across chains."""
        return [self.encode(chain) for chain in chains]

    def to_string(self, chain: ProteinChain) -> str:
        """The token string of one chain, as written to token FASTA."""
        return self.alphabet.decode(self.encode(chain))
