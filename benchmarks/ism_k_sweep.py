"""How K, the codebook draw and the encoder change scope40_dev sensitivity of ISM tokens.

Embeds every residue of the database structures once per encoder, fits a K-means codebook per K and per seed
(the seed draws the clustered residues and seeds k-means) on the embeddings of the matrix-training domains
(fold-disjoint from the bench; allowed for token vocabularies by the data rules), learns each codebook's matrix
from the same TM-align alignments (``train.aln``), and searches the queries against the whole database
(exhaustive, noselfhit) with each amino-acid weight. Prints one table row per codebook and weight, and with
several seeds the range over them: one draw's luck is not an encoder's merit.

    python benchmarks/ism_k_sweep.py --model ismtk/data/ism --files all_files.txt --train train_files.txt \\
        --alignments train.aln --lookup lookup.tsv --queries bench.txt -k 16 32 64

Several encoders judged on held-out queries (the database = the training domains; 4 draws, tokens alone and
with 0.5 x BLOSUM62):

    python benchmarks/ism_k_sweep.py --model runs/a runs/b --files train_files.txt --train train_files.txt \\
        --alignments hom.aln --lookup lookup.tsv --queries held_out.txt --seeds 0 1 2 3 --aa-weights 0 0.5
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

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


def embed_files(model_dir: str, files: list[Path]) -> tuple[list[str], list[str], list[np.ndarray], list[Path]]:
    """Names, amino acids, embeddings ``z`` and source file of every chain of ``files``."""
    model = load_autoencoder(model_dir)
    names, aas, z, sources = [], [], [], []
    for path in files:
        chains = read_structure(path).chains
        for chain, emb in zip(chains, embed_chains(model, chains), strict=True):
            names.append(chain.name)
            aas.append(chain.sequence)
            z.append(emb)
            sources.append(path)
    return names, aas, z, sources


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, nargs="+", help="autoencoder folders (model.json + model.pt)")
    ap.add_argument("--files", required=True, help="all database structures (.txt list or folder)")
    ap.add_argument("--train", required=True, help="the matrix-training structures (.txt list)")
    ap.add_argument("--alignments", required=True, help="TM-align alignments of training pairs (align-pairs)")
    ap.add_argument("--lookup", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("-k", type=int, nargs="+", default=[16, 32, 64])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="codebook draws (residue sample + seeding)")
    ap.add_argument("--aa-weights", type=float, nargs="+", default=[0.0], help="0 = tokens alone")
    ap.add_argument("--max-points", type=int, default=100_000)
    ap.add_argument("--threads", type=int, default=1, help="threads of the embedding (torch) and of the searches")
    ap.add_argument("--out-dir", default="ism_k_sweep")
    args = ap.parse_args()
    if max(args.k) > MAX_TOKENS:
        ap.error(f"-k: token alphabets hold at most {MAX_TOKENS} one-byte symbols")

    torch.set_num_threads(args.threads)
    train = {Path(p).name for p in find_structure_files([args.train])}
    files = find_structure_files([args.files])
    lookup, queries = read_lookup(args.lookup), read_names(args.queries)
    ranges: dict[tuple[str, int, float], list[tuple[float, ...]]] = defaultdict(list)
    print("| model | K | seed | aa weight | inertia per point | family | superfamily | fold |\n"
          "| --- | --- | --- | --- | --- | --- | --- | --- |")
    for model_dir in args.model:
        label = Path(model_dir).name
        start = time.perf_counter()
        names, aas, z, sources = embed_files(model_dir, files)
        is_train = [p.name in train for p in sources]
        residues = sum(len(e) for e in z)
        print(f"{label}: embedded {len(z):,} chains ({residues:,} residues) in {time.perf_counter() - start:.0f} s",
              flush=True)
        pool = np.concatenate([e for e, t in zip(z, is_train, strict=True) if t])
        for seed in args.seeds:
            sample = pool[np.random.default_rng(seed).permutation(len(pool))[: args.max_points]]
            for k in args.k:
                fit = kmeans(sample, k, n_init=1, seed=seed)
                alphabet = Alphabet.of_size(k)
                records = [(n, assign(e, fit.centroids), a) for n, e, a in zip(names, z, aas, strict=True)]
                with tempfile.TemporaryDirectory() as tmp:
                    train_db = SequenceDB.from_records(
                        (r for r, keep in zip(records, is_train, strict=True) if keep), alphabet, f"ism-k{k}"
                    )
                    matrix, _ = learn_matrix(train_db, [args.alignments])
                    write_matrix(Path(tmp) / "m.out", matrix)
                    SequenceDB.from_records(records, alphabet, f"ism-k{k}").save(Path(tmp) / "db")
                    for weight in args.aa_weights:
                        options = SearchOptions(exhaustive=True, threads=args.threads, aa_weight=weight)
                        ranked, all_names = rank_by_search([Path(tmp) / "db"], queries, matrix=Path(tmp) / "m.out",
                                                           options=options)
                        key = f"{label}-k{k}-s{seed}-aa{weight:g}"
                        s = write_report(Path(args.out_dir) / key, lookup, {key: ranked}, all_names)["noselfhit"][key]
                        ranges[label, k, weight].append(s.per_level)
                        print(f"| {label} | {k} | {seed} | {weight:g} | {fit.inertia / len(sample):.3f} | "
                              + " | ".join(f"{v:.3f}" for v in s.per_level) + " |", flush=True)
    if len(args.seeds) > 1:
        print(f"\nrange over {len(args.seeds)} draws (min-max):\n"
              "| model | K | aa weight | family | superfamily | fold |\n| --- | --- | --- | --- | --- | --- |")
        for (label, k, weight), rows in ranges.items():
            cells = " | ".join(f"{min(v):.3f}-{max(v):.3f}" for v in zip(*rows, strict=True))
            print(f"| {label} | {k} | {weight:g} | {cells} |")


if __name__ == "__main__":
    main()
