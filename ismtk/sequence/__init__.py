"""Sequences in: token alphabets, FASTA reading and writing, protein sequences for language models."""

from ismtk.sequence.alphabet import AA_ALPHABET, MAX_TOKENS, SYMBOLS, Alphabet, aa_indices
from ismtk.sequence.fasta import FastaWriter, read_fasta
from ismtk.sequence.protein import ESM_RESIDUES, read_protein_fasta

__all__ = [
    "AA_ALPHABET",
    "ESM_RESIDUES",
    "MAX_TOKENS",
    "SYMBOLS",
    "Alphabet",
    "FastaWriter",
    "aa_indices",
    "read_fasta",
    "read_protein_fasta",
]
