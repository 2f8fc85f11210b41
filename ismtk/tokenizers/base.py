"""The interface every structure tokenizer implements (3Di, ISM autoencoder tokens, ...)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from ismtk.errors import InputError
from ismtk.sequence.alphabet import Alphabet
from ismtk.sequence.fasta import TOKENIZER_TAG
from ismtk.structure.chain import MAX_MISSING_BACKBONE, ProteinChain, require_backbone

__all__ = ["MAX_MISSING_BACKBONE", "Tokenizer", "require_backbone"]

def check_chains(chains: Sequence[ProteinChain]) -> Sequence[ProteinChain]:
    """``chains``, refused (:class:`~ismtk.errors.InputError`) when it is one chain instead of several."""
    if isinstance(chains, ProteinChain):
        raise InputError("encode_many takes a sequence of chains; encode takes one")
    return chains


class Tokenizer(ABC):
    """Turns protein chains into one structure token per residue.

    Subclasses set :attr:`name`, :attr:`alphabet` and :attr:`matrix` and implement :meth:`encode`; batched
    tokenizers (neural ones) override :meth:`encode_many`, tokenizers with trained weights
    :attr:`identity`. A chain the tokenizer cannot use raises :class:`ismtk.errors.StructureError` naming
    the file and chain.
    """

    #: The kind of tokens (``3di``, ``ism``).
    name: str
    alphabet: Alphabet
    #: Default substitution matrix, as :func:`ismtk.search.matrix.load_matrix` takes it: a shipped matrix
    #: name, or the tokenizer's folder (which may hold its own ``matrix.out``).
    matrix: str
    #: Whether it runs a torch model (and so can run on a GPU, see :meth:`to`).
    uses_torch: bool = False

    @property
    def identity(self) -> str:
        """A stable name of exactly these tokens (same identity, same tokens on every machine): databases and
        token FASTA name their tokenizer by it. A tokenizer without trained weights is its :attr:`name`."""
        return self.name

    @property
    def fasta_tag(self) -> str:
        """The header tag of the token FASTA records it makes (``tokenizer=<identity>``)."""
        return f"{TOKENIZER_TAG}={self.identity}"

    @abstractmethod
    def encode(self, chain: ProteinChain) -> np.ndarray:
        """``(L,) uint8`` token indices into :attr:`alphabet`, one per residue of ``chain``."""

    def encode_many(self, chains: Sequence[ProteinChain]) -> list[np.ndarray]:
        """Tokens of several chains; override to batch work across chains (calling :func:`check_chains`)."""
        return [self.encode(chain) for chain in check_chains(chains)]

    def to(self, device: str) -> Tokenizer:
        """Run on ``device`` (``cpu``, ``cuda``, ``cuda:N``); tokenizers without a model ignore it."""
        return self

    def to_string(self, chain: ProteinChain) -> str:
        """The token string of one chain, as written to token FASTA.

        >>> from ismtk.structure import read_structure
        >>> from ismtk.tokenizers import ThreeDiTokenizer
        >>> chain = read_structure("tests/data/structures/1FQJ_l_u.pdb.gz").chains[0]
        >>> ThreeDiTokenizer().to_string(chain)[:12]
        'DDDDADALLLVV'
        """
        return self.alphabet.decode(self.encode(chain))
