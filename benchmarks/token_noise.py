"""How stable a tokenizer's tokens are when the atoms move a little (docs/benchmarks.md, "Why ISM tokens ...").

Homologous domains differ locally by about an Angstrom, so tokens that change under far smaller moves cannot agree
between homologs however well they describe one structure. For chains drawn from ``--files`` (every chain of each
file), every atom is moved by Gaussian noise of standard deviation ``sigma`` per coordinate (coordinate RMSD
``sigma * sqrt(3)``; drawn from ``--seed``), the chains are encoded again, and the share of residues whose token
changed is printed per tokenizer and sigma. Random tokens with the same usage would change at ``1 - sum p_k^2``,
printed as the ceiling.

    python benchmarks/token_noise.py --files train_files.txt --tokenizers 3di ism --sample 40
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from ismtk.errors import IsmtkError
from ismtk.names import read_names
from ismtk.structure.chain import ProteinChain
from ismtk.structure.read import read_structure
from ismtk.tokenizers import load_tokenizer


def jittered(chains: list[ProteinChain], sigma: float, rng: np.random.Generator) -> list[ProteinChain]:
    """Copies of ``chains`` whose atoms moved by ``N(0, sigma^2)`` per coordinate."""
    return [
        dataclasses.replace(c, coords=(c.coords + rng.normal(0.0, sigma, c.coords.shape)).astype(c.coords.dtype))
        for c in chains
    ]


def changed_share(before: list[np.ndarray], after: list[np.ndarray]) -> float:
    """Share of residues whose token differs between two encodings of the same chains."""
    return float(np.mean(np.concatenate(before) != np.concatenate(after)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", required=True, help="structure paths, one per line")
    ap.add_argument("--tokenizers", nargs="+", default=["3di", "ism"], help="3di, ism, or ISM tokenizer folders")
    ap.add_argument("--sigma", type=float, nargs="+", default=[0.1, 0.2, 0.4, 0.8], help="noise per coordinate, A")
    ap.add_argument("--sample", type=int, default=40, help="files drawn (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)  # the tokens do not depend on it; one thread keeps a niced training run going
    files = read_names(args.files)
    files = [files[i] for i in np.random.default_rng(args.seed).permutation(len(files))[: args.sample]]
    chains = []
    for path in files:
        try:
            chains += read_structure(path).chains
        except IsmtkError as exc:
            print(f"skipped: {exc}")
    tokenizers = {name: load_tokenizer(name) for name in args.tokenizers}
    clean = {name: t.encode_many(chains) for name, t in tokenizers.items()}
    print(f"{len(chains)} chains, {sum(len(c) for c in chains):,} residues")
    width = max(len(name) for name in tokenizers)
    print(f"  {'tokenizer':{width}s} " + " ".join(f"{f'sigma {s:g} A':>11s}" for s in args.sigma) + "  ceiling")
    moved = [jittered(chains, s, np.random.default_rng([args.seed, i])) for i, s in enumerate(args.sigma)]
    for name, tokenizer in tokenizers.items():
        shares = [changed_share(clean[name], tokenizer.encode_many(m)) for m in moved]
        usage = np.bincount(np.concatenate(clean[name])) / sum(len(c) for c in chains)
        print(f"  {name:{width}s} " + " ".join(f"{x:11.3f}" for x in shares) + f"  {1 - np.sum(usage**2):7.3f}")


if __name__ == "__main__":
    main()
