"""How the number of ISM tokens K changes scope40_dev sensitivity, for one autoencoder.

Embeds every residue of the database structures once, fits a K-means codebook per K on the embeddings of the
matrix-training domains (fold-disjoint from the bench; allowed for token vocabularies by the data rules),
learns each K's matrix from the same TM-align alignments (``train.aln``), and searches the bench queries
against the whole database (exhaustive, noselfhit). Prints one table row per K.

    python benchmarks/ism_k_sweep.py --model ismtk/data/ism --files all_files.txt --train train_files.txt \\
        --alignments train.aln --lookup lookup.tsv --queries bench.txt -k 16 32 64
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ismtk.autoencoder.codebook import assign, kmeans
from ismtk.autoencoder.io import embed_chains, load_autoencoder
from ismtk.bench.scope40 import rank_by_search, read_lookup, write_report
from ismtk.names import read_names
from ismtk.search.db import SequenceDB
from ismtk.search.learn import learn_matrix
from ismtk.search.matrix import write_matrix
from ismtk.search.search import SearchOptions
from ismtk.structure import find_structure_files, read_structure
from ismtk.tokenizers import MAX_TOKENS, Alphabet


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="autoencoder folder (model.json + model.pt)")
    ap.add_argument("--files", required=True, help="all database structures (.txt list or folder)")
    ap.add_argument("--train", required=True, help="the matrix-training structures (.txt list)")
    ap.add_argument("--alignments", required=True, help="TM-align alignments of training pairs (align-pairs)")
    ap.add_argument("--lookup", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("-k", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--max-points", type=int, default=100_000)
    ap.add_argument("--out-dir", default="ism_k_sweep")
    args = ap.parse_args()
    if max(args.k) > MAX_TOKENS:
        ap.error(f"-k: token alphabets hold at most {MAX_TOKENS} one-byte symbols")

    model = load_autoencoder(args.model)
    train = {Path(p).name for p in find_structure_files([args.train])}
    names, z, is_train = [], [], []
    start = time.perf_counter()
    for path in find_structure_files([args.files]):
        chains = read_structure(path).chains
        for chain, emb in zip(chains, embed_chains(model, chains), strict=True):
            names.append(chain.name)
            z.append(emb)
            is_train.append(Path(path).name in train)
    residues = sum(len(e) for e in z)
    print(f"embedded {len(z):,} chains ({residues:,} residues) in {time.perf_counter() - start:.0f} s")
    pool = np.concatenate([e for e, t in zip(z, is_train, strict=True) if t])
    sample = pool[np.random.default_rng(0).permutation(len(pool))[: args.max_points]]

    lookup, queries = read_lookup(args.lookup), read_names(args.queries)
    print("| K | inertia per point | family | superfamily | fold |\n| --- | --- | --- | --- | --- |")
    for k in args.k:
        fit = kmeans(sample, k, n_init=1, seed=0)
        alphabet = Alphabet.of_size(k)
        tokens = [assign(e, fit.centroids) for e in z]
        with tempfile.TemporaryDirectory() as tmp:
            records = [(n, t, None) for n, t in zip(names, tokens, strict=True)]
            db = SequenceDB.from_records(records, alphabet, f"ism-k{k}")
            train_db = SequenceDB.from_records(
                (r for r, keep in zip(records, is_train, strict=True) if keep), alphabet, f"ism-k{k}"
            )
            matrix, _ = learn_matrix(train_db, [args.alignments])
            write_matrix(Path(tmp) / "m.out", matrix)
            db.save(Path(tmp) / "db")
            ranked, all_names = rank_by_search([Path(tmp) / "db"], queries, matrix=Path(tmp) / "m.out",
                                               options=SearchOptions(threads=1))
        s = write_report(Path(args.out_dir) / f"k{k}", lookup, {f"K={k}": ranked}, all_names)["noselfhit"][f"K={k}"]
        print(f"| {k} | {fit.inertia / len(sample):.3f} | " + " | ".join(f"{v:.3f}" for v in s.per_level) + " |")


if __name__ == "__main__":
    main()
