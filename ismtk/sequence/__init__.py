"""Sequences in: token alphabets, FASTA reading and writing, protein sequences for language models."""

from ismtk.sequence.alphabet import AA_ALPHABET, MAX_TOKENS, SYMBOLS, Alphabet, aa_indices
from ismtk.sequence.fasta import (
    TOKENIZER_TAG,
    FastaRecord,
    FastaWriter,
    header_tag,
    read_fasta,
    read_fasta_records,
    tokenizer_tag,
)
from ismtk.sequence.protein import ESM_RESIDUES, read_protein_fasta

__all__ = [
    "AA_ALPHABET",
    "ESM_RESIDUES",
    "MAX_TOKENS",
    "SYMBOLS",
    "TOKENIZER_TAG",
    "Alphabet",
    "FastaRecord",
    "FastaWriter",
    "aa_indices",
    "header_tag",
    "read_fasta",
    "read_fasta_records",
    "read_protein_fasta",
    "tokenizer_tag",
]
