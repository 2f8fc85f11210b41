"""Test helpers: a tiny ESM2 (2 layers, width 32) and paired amino-acid / token FASTA files."""

from __future__ import annotations

import numpy as np
import torch

from ismtk.plm.esm import EsmConfig

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



def memorising_export(
    folder,
    records: list[tuple[str, str]],
    targets: dict[str, str],
    alphabet: str,
    stream: str,
    width: int = 48,
    min_accuracy: float = 1.0,
    tokenizer: str | None = None,
):
    """An export folder (fair-esm backbone + heads.pt) whose head reproduces ``targets`` (at least
    ``min_accuracy`` of the positions; exactly by default); ``tokenizer``: the identity the head's stream records
    as the maker of its training tokens.

    The backbone is random (2 layers, ``width`` wide: enough features for the positions to be linearly
    separable); one linear head is fitted on its last-layer features until it memorises each record's
    token string (the kind of model ``predict-tokens`` runs).
    """
    from ismtk.plm.esm import esm_alphabet, save_fair_esm
    from ismtk.plm.forward import esm2_representations
    from ismtk.plm.heads import StreamInfo, TokenHeads, backbone_digest, save_heads

    torch.manual_seed(0)
    model = EsmConfig(num_layers=2, embed_dim=width, attention_heads=4).build().eval()
    _, _, tokens = esm_alphabet().get_batch_converter()(records)
    with torch.inference_mode():
        hidden = esm2_representations(model, tokens, [2])[2]
    x = torch.cat([hidden[i, 1 : len(s) + 1] for i, (_, s) in enumerate(records)]).clone()
    y = torch.cat([torch.tensor([alphabet.index(c) + 1 for c in targets[n]]) for n, _ in records])
    info = StreamInfo(stream, alphabet, tokenizer=tokenizer)
    heads = TokenHeads(width, [info], layer=2, backbone=backbone_digest(model))
    opt = torch.optim.Adam(heads.parameters(), lr=0.05)
    for _ in range(1000):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(heads(x)[stream], y).backward()
        opt.step()
    accuracy = (heads(x)[stream][:, 1:].argmax(-1) + 1 == y).float().mean().item()
    if accuracy < min_accuracy:
        raise RuntimeError(f"the test heads reproduce {accuracy:.1%} of their targets, below {min_accuracy:.0%}")
    save_fair_esm(model, folder / "esm2_t2_tiny.pt")
    save_heads(heads, folder / "heads.pt")
    return folder
