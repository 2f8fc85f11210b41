"""Prefilter settings against exhaustive search: sensitivity kept and time per query, for a grid of settings.

Exhaustive Smith-Waterman scores every query against every target once; a prefiltered search scores the same
pairs for its candidates, so its ranking is the exhaustive ranking restricted to the candidates. For every
setting of the grid (similar-k-mer threshold, amino-acid k-mer length and threshold, double-hit spacing, segment
minimum, candidates per query, length penalty of the ranking) this prints the SCOPe40 sensitivity (noselfhit) of
that restricted ranking, its loss against exhaustive search per level, and the time per query (1 thread) of the
prefilter and of Smith-Waterman on its candidates, against exhaustive Smith-Waterman. Choose settings on the
``matrix_train`` domains (against their database), then report on the bench.

Example::

    python benchmarks/prefilter_sweep.py --db train3di --queries matrix_train.txt --lookup lookup.tsv \\
        --aa-weight 0 0.5 --threshold 20 21 --aa-kmer 3 --aa-threshold 0 13 14 15 --candidates 70 100
"""

from __future__ import annotations

import argparse
import itertools
import os
import time

import numpy as np

from ismtk.bench.scope40 import read_lookup, score_queries, sensitivity_loss, summarize
from ismtk.names import read_names
from ismtk.search.combined import AA_TRACK
from ismtk.search.prefilter import PrefilterSettings
from ismtk.search.search import Searcher, SearchOptions
from ismtk.workflows.search import open_input, resolve_matrix, with_score


def sensitivity(
    order: list[tuple[np.ndarray, np.ndarray]], keep: list[np.ndarray] | None, queries, db, lookup
) -> np.ndarray:
    """Per-level sensitivity of each query's ranking ``order`` (target indices best first, and their scores, whose
    ties :func:`score_queries` scores as such), restricted to ``keep``."""
    ranked = {}
    for i, (targets, scores) in enumerate(order):
        if keep is not None:
            kept = np.isin(targets, keep[i])
            targets, scores = targets[kept], scores[kept]
        ranked[queries.names[i]] = [(db.names[t], int(v)) for t, v in zip(targets, scores, strict=True)]
    return np.array(summarize(score_queries(ranked, lookup, db.names, "noselfhit")).per_level)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--queries", required=True, help="query names (database entries)")
    parser.add_argument("--lookup", required=True)
    parser.add_argument("--matrix", help="matrix of the tokens (a file or a shipped name; default: the tokenizer's)")
    parser.add_argument("--aa-weight", type=float, nargs="*", default=[0.0, 0.5])
    parser.add_argument("--score", nargs="+", default=[], help="--score texts to sweep as well (multi-track databases)")
    parser.add_argument("--threshold", type=int, nargs="+", default=[PrefilterSettings.kmer_threshold])
    parser.add_argument("--aa-kmer", type=int, nargs="+", default=[PrefilterSettings.aa_kmer])
    parser.add_argument("--aa-threshold", type=int, nargs="+", default=[PrefilterSettings.aa_threshold],
                        help="amino-acid seeds' thresholds (0: none; used where the score has amino acids)")
    parser.add_argument("--spacing", type=int, nargs="+", default=[PrefilterSettings.spacing])
    parser.add_argument("--min-segment", type=int, nargs="+", default=[PrefilterSettings.min_segment])
    parser.add_argument("--candidates", type=int, nargs="+", default=[100])
    parser.add_argument("--length-penalty", type=float, nargs="+", default=[PrefilterSettings.length_penalty])
    args = parser.parse_args()

    db, tokenizer = open_input([args.db])
    matrix = resolve_matrix(args.matrix, tokenizer)
    queries = db.named(read_names(args.queries))
    lookup = read_lookup(args.lookup)
    print(f"{len(queries)} queries x {len(db):,} targets; load average {os.getloadavg()[0]:.2f}")
    schemes = [(f"weight {w:g}", SearchOptions(aa_weight=w, threads=1), None) for w in args.aa_weight]
    schemes += [(text, SearchOptions(threads=1), text) for text in args.score]
    for label, options, score in schemes:
        options, matrices = with_score(options, score, db)
        searcher = Searcher(db, matrix, options, matrices=matrices)
        has_aa = AA_TRACK in searcher.scorer.names[1:]
        tracks, codes = searcher.scorer.tracks, searcher.scorer.codes(queries)
        one = [np.ascontiguousarray(codes[:, queries.offsets[i] : queries.offsets[i + 1]]) for i in range(len(queries))]
        profiles = [tracks.profile(c) for c in one]
        # every kernel the exhaustive search and any candidate subset may use, loaded before timing
        tracks.score_many(one[0], searcher._codes, searcher._offsets, searcher.entries, 10, 1, warm_up=True)
        start = time.perf_counter()
        order = []
        for c in one:
            corrected = tracks.score_many(c, searcher._codes, searcher._offsets, searcher.entries, 10, 1)[:, 1]
            best = np.lexsort((searcher.entries, -corrected))
            order.append((searcher.entries[best], corrected[best]))
        exhaustive = (time.perf_counter() - start) / len(one)
        full = sensitivity(order, None, queries, db, lookup)
        print(f"\n{label}: exhaustive {1000 * exhaustive:.2f} ms/query, "
              + " / ".join(f"{x:.4f}" for x in full))
        print(f"  {'threshold':>9s} {'aa k':>4s} {'aa thr':>6s} {'spacing':>7s} {'min seg':>7s} {'cand':>5s} "
              f"{'penalty':>7s} {'seeded':>7s} {'prefilter':>10s} {'SW':>7s} {'speed-up':>8s}  sensitivity (loss)")
        grid = itertools.product(args.threshold, args.aa_kmer, args.aa_threshold if has_aa else [0],
                                 args.spacing, args.min_segment)
        for threshold, aa_kmer, aa_threshold, spacing, minimum in grid:
            settings = PrefilterSettings(kmer_threshold=threshold, spacing=spacing, min_segment=minimum,
                                         aa_kmer=aa_kmer, aa_threshold=aa_threshold)
            prefilter = searcher.prefilter(settings)
            prefilter.seeded(one[0], profiles[0])
            start = time.perf_counter()
            seeded = [prefilter.seeded(c, p) for c, p in zip(one, profiles, strict=True)]
            seconds = (time.perf_counter() - start) / len(one)
            for n, penalty in itertools.product(args.candidates, args.length_penalty):
                keep = [prefilter.best(t, s, n, penalty) for t, s in seeded]
                start = time.perf_counter()
                for c, ids in zip(one, keep, strict=True):
                    if len(ids):
                        tracks.score_many(c, searcher._codes, searcher._offsets, ids, 10, 1)
                sw = (time.perf_counter() - start) / len(one)
                sens = sensitivity(order, keep, queries, db, lookup)
                loss = sensitivity_loss(full, sens)
                print(
                    f"  {threshold:9d} {aa_kmer:4d} {aa_threshold:6d} {spacing:7d} {minimum:7d} {n:5d} {penalty:7g} "
                    f"{np.mean([len(t) for t, _ in seeded]):7.0f} {1000 * seconds:8.2f}ms {1000 * sw:5.2f}ms "
                    f"{exhaustive / (seconds + sw):7.2f}x  "
                    + " / ".join(f"{x:.4f} ({y:+.1%})" for x, y in zip(sens, loss, strict=True))
                )


if __name__ == "__main__":
    main()
