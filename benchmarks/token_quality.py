"""Token usage and learnability of a structure tokenizer (docs/benchmarks.md, "ISM tokens").

Usage: entropy (bits), dead tokens and the share of the disorder token s* over the test tokens.
Learnability: the per-residue token accuracy of a *simple sequence model*, a linear softmax over the one-hot
amino acids of a +-7 window (:func:`ismtk.bench.tokens.fit_window_probe`), fitted on the training FASTAs and
scored on the test records; next to it the accuracy of always predicting the most frequent training token.
Tokenizers with different K compare through information: the model's test cross-entropy against the entropy of the test
tokens (bits per residue the local sequence explains).

    python benchmarks/token_quality.py --train train.ism.fasta --train-aa train.aa.fasta \\
        --test rest.ism.fasta --test-aa rest.aa.fasta --names bench.txt --codebook ism/codebook.json
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

from ismtk.autoencoder.codebook import Codebook
from ismtk.bench.tokens import WINDOW, fit_window_probe
from ismtk.tokenizers import read_fasta


def _records(tokens: str, aa: str, names: set[str] | None, code: dict[str, int]) -> list[tuple[np.ndarray, str]]:
    seqs = dict(read_fasta(aa))
    return [(np.array([code[c] for c in t]), seqs[n]) for n, t in read_fasta(tokens) if names is None or n in names]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", required=True, help="token FASTA of the training structures")
    ap.add_argument("--train-aa", required=True, help="amino-acid FASTA of the same structures")
    ap.add_argument("--test", required=True)
    ap.add_argument("--test-aa", required=True)
    ap.add_argument("--names", help="score only these test records (one name per line)")
    ap.add_argument("--symbols", help="token alphabet (default: the symbols seen in training)")
    ap.add_argument("--codebook", help="ISM codebook.json: alphabet and the disorder token s*")
    args = ap.parse_args()

    names = set(Path(args.names).read_text().split()) if args.names else None
    book = Codebook.load(args.codebook) if args.codebook else None
    seen = {c for _, t in read_fasta(args.train) for c in t}
    symbols = book.alphabet.symbols if book else args.symbols or "".join(sorted(seen))
    k = len(symbols)
    code = {c: i for i, c in enumerate(symbols)}
    train = _records(args.train, args.train_aa, None, code)
    test = _records(args.test, args.test_aa, names, code)
    yt = np.concatenate([t for t, _ in test])

    counts = np.bincount(yt, minlength=k)
    p = counts[counts > 0] / counts.sum()
    probe = fit_window_probe(train, test, k)
    print(
        f"tokens: K={k}, {len(train):,} training records ({probe.train_residues:,} residues), "
        f"{len(test):,} test records ({probe.test_residues:,} residues)"
    )
    print(
        f"usage (test): entropy {-(p * np.log2(p)).sum():.2f} bits of {math.log2(k):.2f}, "
        f"dead tokens {int((counts == 0).sum())}",
        end="",
    )
    if book is not None:
        print(
            f", s* = token {book.disorder_token} ({symbols[book.disorder_token]}) "
            f"share {counts[book.disorder_token] / counts.sum():.3f}",
            end="",
        )
    print()
    entropy = -(p * np.log2(p)).sum()
    print(
        f"learnability: majority token {probe.majority_accuracy:.3f}, linear +-{WINDOW} AA window "
        f"{probe.accuracy:.3f}; cross-entropy {probe.cross_entropy:.2f} bits, {entropy - probe.cross_entropy:.2f} "
        f"bits below the token entropy, {probe.bits_over_baseline:.2f} bits over the training token frequencies"
    )


if __name__ == "__main__":
    main()
