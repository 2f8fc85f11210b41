"""Structure tokenizers, their alphabets, and token FASTA I/O."""

from __future__ import annotations

from ismtk.errors import InputError
from ismtk.tokenizers.alphabet import MAX_TOKENS, SYMBOLS, Alphabet
from ismtk.tokenizers.base import Tokenizer
from ismtk.tokenizers.fasta import FastaWriter, read_fasta
from ismtk.tokenizers.threedi import ThreeDiTokenizer

__all__ = [
    "MAX_TOKENS",
    "SYMBOLS",
    "TOKENIZERS",
    "Alphabet",
    "FastaWriter",
    "ThreeDiTokenizer",
    "Tokenizer",
    "load_tokenizer",
    "read_fasta",
]

#: Tokenizers selectable by name on the command line.
TOKENIZERS: dict[str, type[Tokenizer]] = {ThreeDiTokenizer.name: ThreeDiTokenizer}


def load_tokenizer(name: str) -> Tokenizer:
    """A tokenizer by its name (see :data:`TOKENIZERS`)."""
    try:
        return TOKENIZERS[name]()
    except KeyError:
        raise InputError(f"unknown tokenizer {name!r}; choose one of {', '.join(TOKENIZERS)}") from None
