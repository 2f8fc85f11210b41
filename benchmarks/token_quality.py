"""Token usage and learnability of a structure tokenizer (docs/benchmarks.md, "ISM tokens").

Usage: entropy (bits), dead tokens and the share of the disorder token s* over the test tokens.
Learnability: the per-residue token accuracy of a *simple sequence model*, a linear softmax over the one-hot
amino acids of a +-7 window (torch, full-batch L-BFGS), fitted on the training FASTAs and scored on the test
records; next to it the accuracy of always predicting the most frequent training token. Tokenizers with
different K compare through information: the model's test cross-entropy against the entropy of the test
tokens (bits per residue the local sequence explains).

    python benchmarks/token_quality.py --train train.ism.fasta --train-aa train.aa.fasta \\
        --test rest.ism.fasta --test-aa rest.aa.fasta --names bench.txt --codebook ism/codebook.json
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from ismtk.autoencoder.codebook import Codebook
from ismtk.tokenizers import read_fasta

AMINO = "ACDEFGHIKLMNPQRSTVWY"
WINDOW = 7


def _records(tokens: str, aa: str, names: set[str] | None) -> list[tuple[str, str]]:
    seqs = dict(read_fasta(aa))
    return [(t, seqs[n]) for n, t in read_fasta(tokens) if names is None or n in names]


def _features(records: list[tuple[str, str]], symbols: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot (2W+1) x 21 window features (21 = unknown / outside the chain) and token labels."""
    index = {c: i for i, c in enumerate(AMINO)}
    code = {c: i for i, c in enumerate(symbols)}
    rows, labels = [], []
    for tokens, aa in records:
        a = np.array([index.get(c, 20) for c in aa], dtype=np.int64)
        padded = np.concatenate([np.full(WINDOW, 20), a, np.full(WINDOW, 20)])
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * WINDOW + 1)
        rows.append(windows + 21 * np.arange(2 * WINDOW + 1))
        labels.append(np.array([code[c] for c in tokens], dtype=np.int64))
    idx = torch.from_numpy(np.concatenate(rows))
    x = torch.zeros(len(idx), 21 * (2 * WINDOW + 1))
    x.scatter_(1, idx, 1.0)
    return x, torch.from_numpy(np.concatenate(labels))


def _fit(x: torch.Tensor, y: torch.Tensor, k: int, l2: float = 1e-4) -> torch.nn.Linear:
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], k)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=200, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y) + l2 * model.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return model


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

    names = set(open(args.names).read().split()) if args.names else None
    train, test = _records(args.train, args.train_aa, None), _records(args.test, args.test_aa, names)
    book = Codebook.load(args.codebook) if args.codebook else None
    symbols = book.alphabet.symbols if book else args.symbols or "".join(sorted({c for t, _ in train for c in t}))
    k = len(symbols)
    x, y = _features(train, symbols)
    xt, yt = _features(test, symbols)

    counts = np.bincount(yt.numpy(), minlength=k)
    p = counts[counts > 0] / counts.sum()
    print(f"tokens: K={k}, {len(train):,} training records ({len(y):,} residues), "
          f"{len(test):,} test records ({len(yt):,} residues)")
    print(f"usage (test): entropy {-(p * np.log2(p)).sum():.2f} bits of {math.log2(k):.2f}, "
          f"dead tokens {int((counts == 0).sum())}", end="")
    if book is not None:
        print(f", s* = token {book.disorder_token} ({symbols[book.disorder_token]}) "
              f"share {counts[book.disorder_token] / counts.sum():.3f}", end="")
    print()
    majority = int(np.bincount(y.numpy(), minlength=k).argmax())
    model = _fit(x, y, k)
    with torch.no_grad():
        train_acc = (model(x).argmax(1) == y).float().mean().item()
        test_acc = (model(xt).argmax(1) == yt).float().mean().item()
        cross_entropy = torch.nn.functional.cross_entropy(model(xt), yt).item() / math.log(2)
    entropy = -(p * np.log2(p)).sum()
    print(f"learnability: majority token {(yt == majority).float().mean().item():.3f}, "
          f"linear +-{WINDOW} AA window {test_acc:.3f} (train {train_acc:.3f}); cross-entropy {cross_entropy:.2f} "
          f"bits, {entropy - cross_entropy:.2f} bits below the token entropy")


if __name__ == "__main__":
    main()
