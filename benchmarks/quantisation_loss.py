"""What quantising ISM embeddings into tokens costs: Smith-Waterman over the embeddings against the same search over
their tokens.

Embeds every chain of ``--files`` with the encoder of ``--tokenizer`` (an ISM tokenizer folder, or ``ism`` for the
shipped one), then searches each ``--queries`` entry against all chains with ismtk's scalar affine-gap kernel
(:func:`ismtk.search.gotoh.sw_score`, gaps 10/1 half-bits): once over the tokens with the tokenizer's matrix, and
once per ``--top`` over the embeddings with the position-specific score ``S(i, j) = alpha (cos(z_i, z_j) - c0)``,
``alpha`` and ``c0`` set so that random residue pairs score on average what they score under the matrix and
identical embeddings score ``top``. A score of every query position against every target position is one
track whose symbols are the target's positions, so both searches run the same kernel; scores are multiplied by
8 and rounded (gaps too), which leaves the token scores exact. Both rank the targets by raw score (no
reversed-query correction, unlike ``ismtk search``) and are judged noselfhit up to the first false positive.
``--baseline 3di`` adds the same search over another tokenizer's tokens with its shipped matrix.
``--residual W ...`` adds a second token per residue, two-level residual quantisation: k-means (K of the codebook,
seed 0) of the residuals ``z - c(token)`` of up to 100,000 residues of the searched chains, a log-odds matrix of
these residual tokens from the close pairs of ``--alignments`` (as ``ismtk learn-matrix``: TM >= 0.6, no
pseudocount), and the search scored ``S = M(token) + W M2(residual token)``.

    python benchmarks/quantisation_loss.py --tokenizer ism --files train_files.txt --queries held_out.txt \\
        --lookup lookup.tsv --top 12 16 20 --baseline 3di [--residual 0.5 1 --alignments train.aln]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ismtk.autoencoder.codebook import assign, kmeans
from ismtk.autoencoder.io import embed_chains
from ismtk.bench.scope40 import read_lookup, score_queries, summarize
from ismtk.names import read_names
from ismtk.search.db import SequenceDB
from ismtk.search.gotoh import sw_score
from ismtk.search.learn import count_aligned_tokens
from ismtk.search.matrix import load_matrix, log_odds
from ismtk.sequence.alphabet import Alphabet
from ismtk.structure import find_structure_files, read_structure
from ismtk.tokenizers import load_tokenizer

SCALE = 8  # integer kernel: scores and gaps in 1/8 half-bits


def rank_all(
    query_scores, names: list[str], offsets: np.ndarray, queries: list[str]
) -> dict[str, list[tuple[str, int]]]:
    """Targets of each query by descending raw Smith-Waterman score (positive scores only); ``query_scores(k)``
    gives the ``(m, N)`` float scores of query ``k``'s positions against all residues."""
    where = {n: k for k, n in enumerate(names)}
    ranked = {}
    for q in queries:
        k = where[q]
        flat = np.ascontiguousarray(np.rint(query_scores(k) * SCALE).astype(np.int32).T)
        scores = np.empty(len(names), np.int64)
        for t in range(len(names)):
            lo, hi = offsets[t], offsets[t + 1]
            scores[t] = sw_score(flat[lo:hi][None], np.arange(hi - lo)[None], 10 * SCALE, SCALE)
        order = np.argsort(-scores, kind="stable")
        ranked[q] = [(names[i], int(scores[i])) for i in order if scores[i] > 0]
    return ranked


def token_table(tokenizer) -> np.ndarray:
    """``(K, K) float32`` scores of the tokenizer's shipped matrix, in its alphabet's order (token codes)."""
    return load_matrix(None, tokenizer.matrix).restricted(tokenizer.alphabet.symbols).astype(np.float32)


def token_scores(table: np.ndarray, tokens: np.ndarray, offsets: np.ndarray):
    """``query_scores`` of :func:`rank_all` for substitution ``table`` over the concatenated ``tokens``."""
    return lambda k: table[tokens[offsets[k] : offsets[k + 1]]][:, tokens]


def residual_tokens(embeddings: np.ndarray, tokens: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """``(N,) uint8`` second-level tokens: the residuals ``z - c(token)`` cut by k-means (K = ``len(centroids)``,
    seed 0) of up to 100,000 of them."""
    residuals = embeddings - centroids[tokens]
    rng = np.random.default_rng(0)
    sample = rng.choice(len(residuals), min(100_000, len(residuals)), replace=False)
    second = kmeans(residuals[sample], len(centroids), seed=0).centroids
    return assign(residuals, np.asarray(second, dtype=np.float32)).astype(np.uint8)


def learned_table(names: list[str], offsets: np.ndarray, tokens: np.ndarray, k: int, alignments: str) -> np.ndarray:
    """``(k, k) float32`` half-bit log-odds of ``tokens`` over the close pairs of ``alignments``."""
    alphabet = Alphabet.of_size(k)
    db = SequenceDB(names, offsets, tokens, alphabet, "residual")
    counts, _ = count_aligned_tokens(db, [alignments])
    return log_odds(counts, alphabet.symbols).restricted(alphabet.symbols).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tokenizer", default="ism", help="ISM tokenizer folder (with matrix.out), or ism")
    parser.add_argument("--files", required=True, help="structures: the searched chains (files, folders or lists)")
    parser.add_argument("--queries", required=True, help="query names, a subset of the chains")
    parser.add_argument("--lookup", required=True, help="scope40_dev lookup.tsv")
    parser.add_argument("--top", type=float, nargs="+", default=[16.0], help="score of identical embeddings")
    parser.add_argument("--baseline", help="another tokenizer (e.g. 3di) searched the same way, for reference")
    parser.add_argument("--residual", type=float, nargs="*", default=[], help="weights W of a residual token")
    parser.add_argument("--alignments", help="ismtk align-pairs alignments of the chains, for --residual")
    args = parser.parse_args()
    if args.residual and not args.alignments:
        parser.error("--residual needs --alignments: the residual tokens' matrix is learned from them")

    tokenizer = load_tokenizer(args.tokenizer)
    start = time.perf_counter()
    baseline = load_tokenizer(args.baseline) if args.baseline else None
    names, z, base_tokens = [], [], []
    for path in find_structure_files([args.files]):
        chains = read_structure(path).chains
        names += [c.name for c in chains]
        z += embed_chains(tokenizer.model, chains)
        base_tokens += baseline.encode_many(chains) if baseline else []
    print(f"embedded {len(names):,} chains in {time.perf_counter() - start:.0f} s", flush=True)
    offsets = np.cumsum([0] + [len(e) for e in z])
    embeddings = np.concatenate(z).astype(np.float32)
    unit = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
    tokens = tokenizer.codebook.assign(embeddings)
    table = token_table(tokenizer)
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, len(unit), (2, 200_000))
    mean_cos = float(np.einsum("ij,ij->i", unit[a], unit[b]).mean())
    mean_score = float(table[tokens[a], tokens[b]].mean())
    print(f"random residue pairs: mean cosine {mean_cos:.3f}, mean token score {mean_score:.2f} half-bits")

    lookup = read_lookup(args.lookup)
    queries = read_names(args.queries)
    variants = {}
    if baseline is not None:
        base = np.concatenate(base_tokens)
        variants[f"{baseline.name} tokens, its matrix"] = token_scores(token_table(baseline), base, offsets)
    ism = variants["ISM tokens, learned matrix"] = token_scores(table, tokens, offsets)
    if args.residual:
        second = residual_tokens(embeddings, tokens, tokenizer.codebook.centroids)
        residual = token_scores(learned_table(names, offsets, second, len(table), args.alignments), second, offsets)
        for w in args.residual:
            variants[f"ISM tokens + {w:g} x residual tokens"] = lambda k, w=w: ism(k) + w * residual(k)
    for top in args.top:
        alpha = (top - mean_score) / (1 - mean_cos)
        c0 = 1 - top / alpha
        variants[f"ISM embeddings, cosine score (top {top:g})"] = (
            lambda k, alpha=alpha, c0=c0: alpha * (unit[offsets[k] : offsets[k + 1]] @ unit.T - c0)
        )
    print(f"{len(queries)} queries x {len(names):,} chains, noselfhit, raw scores")
    print("| search | family | superfamily | fold | s |\n| --- | --- | --- | --- | --- |")
    for label, query_scores in variants.items():
        start = time.perf_counter()
        ranked = rank_all(query_scores, names, offsets, queries)
        summary = summarize(score_queries(ranked, lookup, names, "noselfhit"))
        levels = zip(summary.per_level, summary.per_level_queries, strict=True)
        cells = " | ".join(f"{s:.3f} (n={n})" for s, n in levels)
        print(f"| {label} | {cells} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
