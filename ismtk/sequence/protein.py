"""Protein sequences for language models: FASTA reading with the checks a long run needs up front."""

from __future__ import annotations

import re
from pathlib import Path

from ismtk.errors import InputError
from ismtk.sequence.fasta import read_fasta, tokenizer_tag

__all__ = ["ESM_RESIDUES", "read_protein_fasta", "refuse_token_fasta"]

#: Residue letters ESM2's alphabet knows (the 20 standard ones, X and the ambiguity/rare codes).
ESM_RESIDUES = frozenset("ACDEFGHIKLMNPQRSTVWYXBUZO")
_GAPS = re.compile(r"[-.]")


def refuse_token_fasta(path: str | Path) -> None:
    """Raise :class:`InputError` when the FASTA ``path`` is a token FASTA (its records name a ``tokenizer=``), given
    where protein sequences are read: 3Di's letters are amino-acid letters too."""
    tag = tokenizer_tag(path)
    if tag is not None:
        raise InputError(f"{path}: its records name tokenizer={tag}: structure tokens, not protein sequences; give "
                         "the amino-acid FASTA (ismtk encode --aa-output writes one)")


def read_protein_fasta(path: str | Path) -> tuple[list[tuple[str, str]], list[str]]:
    """All ``(name, sequence)`` records of a protein FASTA, cleaned, with notes on what was changed.

    Rules: lower case is upper-cased; ``J`` (Leu/Ile) becomes ``X``; a final ``*`` (stop) is dropped;
    alignment gaps ``-`` and ``.`` are removed. Raises :class:`InputError` naming the records for
    duplicate names, empty sequences, a ``*`` inside a sequence and any other character, and for a token FASTA
    (its records name a ``tokenizer=``: 3Di's letters are amino-acid letters too).
    """
    refuse_token_fasta(path)
    records: list[tuple[str, str]] = []
    notes: list[str] = []
    seen: set[str] = set()
    duplicates, empty, invalid = [], [], []
    n_gapped = n_lower = n_stop = n_j = 0
    for name, raw in read_fasta(path):
        if name in seen:
            duplicates.append(name)
        seen.add(name)
        seq = raw.upper()
        n_lower += seq != raw
        if seq.endswith("*"):
            seq = seq[:-1]
            n_stop += 1
        gapless = _GAPS.sub("", seq)
        n_gapped += gapless != seq
        n_j += "J" in gapless
        seq = gapless.replace("J", "X")
        bad = sorted(set(seq) - ESM_RESIDUES)
        if not seq:
            empty.append(name)
        elif bad:
            invalid.append(f"{name} ({''.join(bad)!r})")
        records.append((name, seq))
    problems = []
    if duplicates:
        problems.append(f"duplicate names: {', '.join(sorted(set(duplicates))[:10])}")
    if empty:
        problems.append(f"empty sequences: {', '.join(empty[:10])}")
    if invalid:
        problems.append(f"characters that are not amino acids: {', '.join(invalid[:10])}")
    if problems:
        raise InputError(f"{path}: " + "; ".join(problems))
    if not records:
        raise InputError(f"{path}: no sequence records")
    if n_lower:
        notes.append(f"{n_lower} sequence(s) in lower case were upper-cased")
    if n_gapped:
        notes.append(f"alignment gaps were removed from {n_gapped} sequence(s)")
    if n_stop:
        notes.append(f"a final '*' (stop) was dropped from {n_stop} sequence(s)")
    if n_j:
        notes.append(f"J (Leu or Ile) was read as X in {n_j} sequence(s)")
    return records, notes
