"""Structure tokenizers, their alphabets, and token FASTA I/O."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ismtk.errors import InputError
from ismtk.sequence.alphabet import MAX_TOKENS, SYMBOLS, Alphabet
from ismtk.sequence.fasta import FastaWriter, read_fasta
from ismtk.tokenizers.base import Tokenizer
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



def _default_ism() -> Tokenizer:
    from ismtk.tokenizers.ism import IsmTokenizer  # torch is imported only when ISM tokens are asked for

    return IsmTokenizer()


#: Tokenizers selectable by name on the command line (``ism`` is the shipped default model).
TOKENIZERS: dict[str, Callable[[], Tokenizer]] = {"ism": _default_ism, ThreeDiTokenizer.name: ThreeDiTokenizer}


def load_tokenizer(spec: str | Path) -> Tokenizer:
    """A tokenizer by name (see :data:`TOKENIZERS`), or an ISM tokenizer folder made by ``ismtk cluster``."""
    if str(spec) in TOKENIZERS:
        return TOKENIZERS[str(spec)]()
    if Path(spec).is_dir():
        from ismtk.tokenizers.ism import IsmTokenizer

        return IsmTokenizer(spec)
    raise InputError(f"unknown tokenizer {str(spec)!r}; choose one of {', '.join(TOKENIZERS)} or an ISM model folder")
