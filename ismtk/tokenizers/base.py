"""The interface every structure tokenizer implements (3Di, ISM autoencoder tokens, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from ismtk.errors import StructureError
from ismtk.sequence.alphabet import Alphabet
from ismtk.structure.chain import ProteinChain

__all__ = ["MAX_MISSING_BACKBONE", "Tokenizer", "require_backbone"]

#: Largest share of residues that may lack N or C before a chain is refused (CA-only models and
#: backbone-less traces give meaningless tokens; a few gaps are encoded, as Foldseek does).
MAX_MISSING_BACKBONE = 0.5


def require_backbone(chain: ProteinChain, need: str) -> None:
    """Raise :class:`StructureError` for CA-only traces and chains where most residues lack N or C.

    ``need`` says what the tokenizer needs, for the message (e.g. "3Di needs backbone N, CA and C atoms").
    """
    backbone = chain.has_atoms(("N", "C"))
    missing = 1.0 - backbone.mean()
    if missing > MAX_MISSING_BACKBONE:
        what = "CA-only chain" if not backbone.any() else f"{missing:.0%} of residues lack N or C"
        raise StructureError(chain.source, f"{what}: {need}", chain.chain_id)


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

    def to(self, device: str) -> Tokenizer:
        """Run on ``device`` (``cpu``, ``cuda``, ``cuda:N``); tokenizers without a model ignore it."""
        return self

    def to_string(self, chain: ProteinChain) -> str:
        """The token string of one chain, as written to token FASTA."""
        return self.alphabet.decode(self.encode(chain))
