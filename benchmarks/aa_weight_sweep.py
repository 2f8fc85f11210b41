"""Choose the weight of the amino-acid term (``--aa-weight``) on domains that are not benchmark queries.

Searches ``--queries`` against ``--db`` once per weight (0 = tokens alone, parasail; > 0 = tokens + weight x
BLOSUM62, numba Gotoh) and prints the SCOPe40 sensitivity up to the first false positive (noselfhit) per level.
Run it on the matrix-training domains (``role=matrix_train`` of scope40_dev, fold-disjoint from the bench), pick
the weight there, then report the bench with ``scope40_table.py --aa-weight``: the bench never picks the weight.

    python benchmarks/aa_weight_sweep.py --db train3di --lookup lookup.tsv --queries matrix_train.txt \\
        --weights 0 0.5 1 1.5 2 --threads 2
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from ismtk.bench.scope40 import LEVELS, rank_by_search, read_lookup, score_queries, summarize
from ismtk.names import read_names
from ismtk.search.search import SearchOptions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="database folder with amino acids (createdb from structures)")
    ap.add_argument("--lookup", required=True)
    ap.add_argument("--queries", required=True, help="query names (database entries)")
    ap.add_argument("--matrix", default=None, help="token matrix (default: the tokenizer's)")
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5, 2.0])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    lookup, queries = read_lookup(args.lookup), read_names(args.queries)
    base = SearchOptions(exhaustive=True, threads=args.threads)
    print(f"| aa weight | {' | '.join(LEVELS)} | seconds |\n| --- | --- | --- | --- | --- |")
    for weight in args.weights:
        start = time.perf_counter()
        ranked, names = rank_by_search([args.db], queries, args.matrix, options=replace(base, aa_weight=weight))
        s = summarize(score_queries(ranked, lookup, names, "noselfhit"))
        cells = " | ".join(f"{v:.3f} (n={n})" for v, n in zip(s.per_level, s.per_level_queries, strict=True))
        print(f"| {weight:g} | {cells} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
