"""Test helpers: a tiny ESM2 (2 layers, width 32) and paired amino-acid / token FASTA files."""

from __future__ import annotations

import numpy as np
import torch

from ismtk.models.esm import EsmConfig

AMINO = "ACDEFGHIKLMNPQRSTVWY"
TINY = EsmConfig(num_layers=2, embed_dim=32, attention_heads=4)


def tiny_esm(seed: int = 0):
    """A randomly initialised tiny ESM2 (seeded)."""
    torch.manual_seed(seed)
    return TINY.build().eval()


def write_pairs(folder, n: int = 24, seed: int = 0, min_len: int = 20, max_len: int = 60):
    """AA FASTA + 3Di-alphabet token FASTA where each token is a fixed function of its residue (learnable)."""
    rng = np.random.default_rng(seed)
    aa_lines, tok_lines = [], []
    for i in range(n):
        seq = "".join(rng.choice(list(AMINO), size=int(rng.integers(min_len, max_len))))
        tokens = "".join(AMINO[(AMINO.index(c) * 7) % 20] for c in seq)
        aa_lines.append(f">p{i}\n{seq}\n")
        tok_lines.append(f">p{i}\n{tokens}\n")
    (folder / "aa.fasta").write_text("".join(aa_lines))
    (folder / "tok.fasta").write_text("".join(tok_lines))
    return folder / "aa.fasta", folder / "tok.fasta"

