"""Token alphabets: K tokens <-> K printable one-byte symbols, usable as a parasail alphabet."""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

from ismtk.errors import InputError

__all__ = ["AA_ALPHABET", "AMINO_ACIDS", "Alphabet", "MAX_TOKENS", "SYMBOLS", "UNKNOWN_AA", "aa_indices"]

#: The 20 standard amino acids in the order used by every amino-acid head of ismtk.
AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWY"
#: One-letter code of residues that are amino acids of unknown or non-standard identity.
UNKNOWN_AA = "X"

#: Symbols handed out to K-token alphabets, in order. parasail folds case, so no letter appears in two
#: cases; FASTA and alignment syntax (``>``, ``;``, ``*``, ``-``) and whitespace are left out.
SYMBOLS = string.ascii_uppercase + string.digits + "!#$%&()+,./:<=?@[]^_{|}~" + "\"'\\`"
#: The largest K an alphabet can hold.
MAX_TOKENS = len(SYMBOLS)
_FORBIDDEN = set(">;*-") | set(string.whitespace)
_UNKNOWN = 255


@dataclass(frozen=True)
class Alphabet:
    """An ordered set of one-character token symbols; token ``i`` is written as ``symbols[i]``."""

    symbols: str
    _table: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.symbols) <= MAX_TOKENS:
            raise InputError(f"an alphabet needs 1 to {MAX_TOKENS} symbols, got {len(self.symbols)}")
        bad = [c for c in self.symbols if c in _FORBIDDEN or not c.isprintable() or ord(c) > 126]
        if bad:
            raise InputError(f"alphabet symbols {''.join(bad)!r} are not allowed (FASTA syntax, gap or non-ASCII)")
        folded = self.symbols.upper()
        if len(set(folded)) != len(folded):
            raise InputError(f"alphabet {self.symbols!r} repeats a symbol (parasail ignores case)")
        table = np.full(256, _UNKNOWN, dtype=np.uint8)
        for i, c in enumerate(self.symbols):
            table[ord(c)] = i
            table[ord(c.lower())] = i
        object.__setattr__(self, "_table", table)

    @classmethod
    def of_size(cls, k: int) -> Alphabet:
        """The default alphabet of ``k`` tokens: the first ``k`` of :data:`SYMBOLS`."""
        if not 1 <= k <= MAX_TOKENS:
            raise InputError(f"K={k} tokens cannot be written one byte each; at most {MAX_TOKENS} are supported")
        return cls(SYMBOLS[:k])

    def __len__(self) -> int:
        return len(self.symbols)

    def encode(self, text: str, name: str = "sequence") -> np.ndarray:
        """``(L,) uint8`` token indices of a symbol string (case-insensitive).

        Raises :class:`InputError` naming ``name`` and the offending symbols if any is unknown.
        """
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError:  # one byte per character, and none that is a symbol ("?" is one of 64 tokens)
            data = "".join(c if ord(c) < 256 else "\0" for c in text).encode("latin-1")
        raw = np.frombuffer(data, dtype=np.uint8)
        tokens = self._table[raw]
        if (tokens == _UNKNOWN).any():
            unknown = sorted({text[i] for i in np.flatnonzero(tokens == _UNKNOWN)})
            raise InputError(f"{name}: symbols {''.join(unknown)!r} are not in the alphabet {self.symbols!r}")
        return tokens

    def decode(self, tokens: np.ndarray) -> str:
        """Symbol string of ``(L,)`` integer token indices."""
        tokens = np.asarray(tokens)
        if tokens.size and (tokens.min() < 0 or tokens.max() >= len(self)):
            raise InputError(f"token index out of range for an alphabet of {len(self)} symbols")
        return np.frombuffer(self.symbols.encode("ascii"), dtype=np.uint8)[tokens].tobytes().decode("ascii")


#: Alphabet of amino-acid searches: the 20 amino acids and ``X`` for anything else.
AA_ALPHABET = Alphabet(AMINO_ACIDS + UNKNOWN_AA)


def _aa_table() -> np.ndarray:
    table = np.full(256, AA_ALPHABET.symbols.index(UNKNOWN_AA), dtype=np.uint8)
    for i, c in enumerate(AA_ALPHABET.symbols):
        table[ord(c)] = table[ord(c.lower())] = i
    return table


#: :data:`AA_ALPHABET` index of every ASCII byte (built once: it is used for every entry of a +AA search).
_AA_INDEX = _aa_table()


def aa_indices(letters: np.ndarray) -> np.ndarray:
    """``(R,) uint8`` indices into :data:`AA_ALPHABET` of ASCII amino-acid letters (any case; others: ``X``)."""
    return _AA_INDEX[np.asarray(letters, dtype=np.uint8)]
