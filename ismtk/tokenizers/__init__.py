"""Structure tokenizers, their alphabets, and token FASTA I/O.

A tokenizer is chosen by name (``3di``, ``ism`` = the shipped ISM model, ``ism-residual`` = its residual tokens)
or as an ISM tokenizer folder (``ismtk cluster`` makes one). Token FASTA records and databases name the
tokenizer that made them by its stable identity (:attr:`Tokenizer.identity`: ``3di``, or ``ism:`` and 12 hex
digits), and :func:`tokenizer_for` finds the tokenizer again from it.

>>> tokenizer = load_tokenizer("3di")
>>> tokenizer.identity, tokenizer.fasta_tag, len(tokenizer.alphabet)
('3di', 'tokenizer=3di', 20)
>>> tokenizer_for("3di", source="tokens.fasta").name
'3di'
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ismtk.errors import InputError
from ismtk.sequence.alphabet import MAX_TOKENS, SYMBOLS, Alphabet
from ismtk.sequence.fasta import FastaWriter, read_fasta
from ismtk.tokenizers.base import Tokenizer
from ismtk.tokenizers.threedi import ThreeDiTokenizer

__all__ = [
    "DEFAULT_TOKENIZER",
    "ENCODE_TOKENIZER",
    "MAX_TOKENS",
    "SYMBOLS",
    "TOKENIZERS",
    "Alphabet",
    "FastaWriter",
    "ThreeDiTokenizer",
    "Tokenizer",
    "load_tokenizer",
    "read_fasta",
    "tokenizer_for",
    "tokenizer_module",
]


def _default_ism() -> Tokenizer:
    from ismtk.tokenizers.ism import IsmTokenizer  # torch is imported only when ISM tokens are asked for

    return IsmTokenizer()


def _default_ism_residual() -> Tokenizer:
    from ismtk.tokenizers.ism import DEFAULT_ISM_RESIDUAL, IsmTokenizer

    return IsmTokenizer(DEFAULT_ISM_RESIDUAL)


#: Tokenizers selectable by name on the command line (``ism`` is the shipped default model, ``ism-residual`` the
#: second token per residue that refines it).
TOKENIZERS: dict[str, Callable[[], Tokenizer]] = {
    "ism": _default_ism,
    "ism-residual": _default_ism_residual,
    ThreeDiTokenizer.name: ThreeDiTokenizer,
}
#: What ``ismtk encode`` writes by default: ISM tokens of the shipped model.
ENCODE_TOKENIZER = "ism"
#: The tokenizer of databases, searches and matrices when nothing names one: the one that searches best on
#: scope40_dev (docs/benchmarks.md).
DEFAULT_TOKENIZER = "3di"


def load_tokenizer(spec: str | Path | Tokenizer) -> Tokenizer:
    """A tokenizer by name (see :data:`TOKENIZERS`), an ISM tokenizer folder made by ``ismtk cluster``, or an
    identity (``3di``; ``ism:...`` of the shipped model); a :class:`Tokenizer` is returned as it is, so functions
    that take a tokenizer take any of these."""
    if isinstance(spec, Tokenizer):
        return spec
    if str(spec) in TOKENIZERS:
        return TOKENIZERS[str(spec)]()
    if Path(spec).is_dir():
        from ismtk.tokenizers.ism import IsmTokenizer

        return IsmTokenizer(spec)
    if str(spec).startswith("ism:"):
        return tokenizer_for(str(spec), source=f"--tokenizer {spec}")
    raise InputError(f"unknown tokenizer {str(spec)!r}; choose one of {', '.join(TOKENIZERS)} or an ISM model folder")


def tokenizer_module(spec: str | Path) -> str:
    """The module of the tokenizer :func:`load_tokenizer` makes of ``spec``, without loading it (nor torch)."""
    return ThreeDiTokenizer.__module__ if str(spec) == ThreeDiTokenizer.name else "ismtk.tokenizers.ism"


def tokenizer_for(
    identity: str, given: Tokenizer | None = None, source: str = "the input", given_by: str = "--tokenizer"
) -> Tokenizer:
    """The tokenizer that made the tokens of ``source`` (a database or token FASTA), which names it ``identity``.

    ``given`` (the tokenizer the user chose, or the one of the other search side; ``given_by`` says which, for
    messages) is returned when it is that tokenizer, and is an error otherwise. Without it, ``3di`` and the
    shipped ISM tokenizers are found by their identity; another ISM tokenizer needs its folder (``--tokenizer
    FOLDER``). Identities written by older versions: the absolute path of an ISM folder still resolves; ``ism`` (the
    shipped model of its day, since changed) only with ``--tokenizer ism``.
    """
    if identity == "ism":  # older headers named the shipped model, which has changed since
        if given is not None and given.name == "ism" and given_by == "--tokenizer":
            return given
        raise InputError(f"{source} was made by an older ismtk, whose header names the shipped ISM model without its "
                         "identity: its tokens may be an earlier model's, which today's matrix does not score; make it "
                         "again with createdb (or give --tokenizer ism to read it as today's model's tokens)")
    legacy = _legacy_folder(identity)
    current = legacy.identity if legacy is not None else _current_identity(identity)
    if given is not None:
        if given.identity == current or (current is None and given.name == "ism"):
            return given
        if given_by != "--tokenizer":
            fix = f"make both with the same tokenizer (ismtk encode --tokenizer {_spelling(given)} for {source})"
            if given_by.startswith("the target"):  # a search: the target may have these tokens too
                own = current if current in TOKENIZERS else _shipped_identities().get(current or "", "FOLDER")
                fix += (f", or give --tokenizer {own} when the target is structures or holds these tokens as a "
                        "track (createdb --tracks)")
        elif current in TOKENIZERS or current in _shipped_identities():
            fix = "leave out --tokenizer (the tokens name their tokenizer)"
        else:
            fix = f"give the folder of the ISM tokenizer {current} with --tokenizer FOLDER"
        raise InputError(f"{source} holds {current or identity} tokens, not the {given.identity} tokens of "
                         f"{given_by}; {fix}")
    if legacy is not None:
        return legacy
    if current is None:
        raise InputError(f"{source} was made with the ISM tokenizer in {identity}, which is not there any more; "
                         "give the folder of that tokenizer with --tokenizer FOLDER")
    if current in TOKENIZERS:
        return TOKENIZERS[current]()
    if current.startswith("ism:"):
        shipped = _shipped_identities().get(current)
        if shipped is not None:
            return TOKENIZERS[shipped]()
        raise InputError(f"{source} holds tokens of the ISM tokenizer {current}, which is not the shipped model; "
                         "give the folder of that tokenizer with --tokenizer FOLDER")
    raise InputError(f"{source} names an unknown tokenizer {identity!r}")


def _shipped_identity() -> str:
    from ismtk.tokenizers.ism import default_identity

    return default_identity()


def _shipped_identities() -> dict[str, str]:
    """The names of the shipped ISM tokenizers by their identity."""
    from ismtk.tokenizers.ism import default_residual_identity

    return {_shipped_identity(): "ism", default_residual_identity(): "ism-residual"}


def _legacy_folder(stored: str) -> Tokenizer | None:
    """The ISM tokenizer of a folder that an older version stored by its absolute path, if it is still there."""
    if stored in TOKENIZERS or stored.startswith("ism:") or not Path(stored).is_absolute():
        return None
    return load_tokenizer(stored) if Path(stored).is_dir() else None


def _current_identity(stored: str) -> str | None:
    """The identity of what was stored: an absolute path (an ISM folder of older versions) that is gone has none."""
    return None if Path(stored).is_absolute() and not stored.startswith("ism:") else stored


def _spelling(tokenizer: Tokenizer) -> str:
    """How ``--tokenizer`` selects ``tokenizer``: its name, or its folder."""
    if tokenizer.name in TOKENIZERS and tokenizer.uses_torch and tokenizer.identity not in _shipped_identities():
        return str(getattr(tokenizer, "folder", "FOLDER"))
    return tokenizer.name
