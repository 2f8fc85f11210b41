"""How often structurally aligned residues get matching ISM tokens, for plain and metric codebooks (held out).

Token quality for homology search rests on aligned residues of homologs getting the same or similar tokens. This
measures it as the relative entropy of the token pairs of close aligned residues (``sum p_ab log2(p_ab / p_a p_b)``,
bits per pair, the information a substitution matrix can use; Altschul 1991): alignments (``ismtk align-pairs``)
are split in two by their first chain's name; the aligned-pair metric is fitted on one half and the relative
entropy measured on the other, so no codebook sees the pairs it is judged on. Codebooks: plain k-means, all
embeddings whitened, embeddings whitened by the within-pair covariance, and Fisher's discriminant
(:func:`ismtk.autoencoder.codebook.aligned_pair_metric`) with several numbers of directions; all K = 64 on the same
residue sample. Example (docs/benchmarks.md)::

    python benchmarks/codebook_metric.py --model ismtk/data/ism --inputs $D/structures --alignments train.aln \\
        --aligned-structures train_files.txt
"""

from __future__ import annotations

import argparse
import tempfile
import zlib
from pathlib import Path

import numpy as np

from ismtk.autoencoder.codebook import (
    aligned_pair_embeddings,
    aligned_pair_metric,
    assign,
    inverse_sqrt,
    kmeans,
    residue_embeddings,
)
from ismtk.search.matrix import count_pairs
from ismtk.search.pairs import DEFAULT_MIN_TM, read_alignments, write_alignments

K = 64


def relative_entropy(first: np.ndarray, second: np.ndarray) -> float:
    """Bits per pair of the symmetric token-pair counts of aligned tokens ``first``/``second``."""
    counts = count_pairs(first, second, K)
    p = counts / counts.sum()
    marginal = p.sum(1)
    used = p > 0
    return float((p[used] * np.log2(p[used] / np.outer(marginal, marginal)[used])).sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="autoencoder folder")
    parser.add_argument("--inputs", nargs="+", required=True, help="structures whose residues are clustered")
    parser.add_argument("--alignments", required=True)
    parser.add_argument("--aligned-structures", nargs="+", required=True)
    parser.add_argument("--max-points", type=int, default=30_000)
    parser.add_argument("--residues-per-chain", type=int, default=32)
    parser.add_argument("--dims", type=int, nargs="+", default=[8, 16, 32])
    args = parser.parse_args()

    halves: list[list] = [[], []]
    for aln in read_alignments(args.alignments, DEFAULT_MIN_TM):
        halves[zlib.crc32(aln.name1.encode()) % 2].append(aln)
    with tempfile.TemporaryDirectory() as tmp:
        pairs = []
        for i, half in enumerate(halves):
            write_alignments(Path(tmp) / f"half{i}.aln", half)
            pairs.append(aligned_pair_embeddings(args.model, args.aligned_structures, Path(tmp) / f"half{i}.aln"))
    fit, held_out = pairs
    z, _, _ = residue_embeddings(args.model, args.inputs, args.max_points, args.residues_per_chain)
    print(f"{len(z):,} residues clustered; metric fitted on {len(fit.first):,} aligned pairs "
          f"({fit.alignments} alignments), measured on {len(held_out.first):,} ({held_out.alignments})")

    diff = fit.first.astype(np.float64) - fit.second
    metrics = {
        "plain k-means": np.eye(z.shape[1]),
        "all embeddings whitened": inverse_sqrt(np.cov(z.astype(np.float64), rowvar=False)),
        "within-pair whitened": inverse_sqrt(diff.T @ diff / (2 * len(diff))),
    }
    for dims in args.dims:
        metrics[f"Fisher, {dims} directions"] = aligned_pair_metric(fit.first, fit.second, z, dims)
    print("| codebook (K = 64) | held-out relative entropy (bits per aligned pair) |\n| --- | --- |")
    for name, metric in metrics.items():
        centroids = kmeans((z.astype(np.float64) @ metric).astype(np.float32), K, n_init=3, seed=0).centroids
        first = assign(held_out.first @ metric, centroids)
        second = assign(held_out.second @ metric, centroids)
        print(f"| {name} | {relative_entropy(first, second):.3f} |", flush=True)


if __name__ == "__main__":
    main()
