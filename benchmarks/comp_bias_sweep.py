"""Does composition-bias correction (MMseqs2/Foldseek's ``--comp-bias-corr``) help ismtk's search?

Searches ``--queries`` against ``--db`` (exhaustive) once per correction scale and amino-acid weight and prints
the SCOPe40 sensitivity up to the first false positive (noselfhit) per level. Run it on the matrix-training
domains (``role=matrix_train``), never on the bench; the correction is ``SearchOptions.comp_bias`` (see
``ScoreTracks.composition_bias``).

    python benchmarks/comp_bias_sweep.py --db train3di --lookup lookup.tsv --queries matrix_train.txt \\
        --scales 0 0.25 0.5 1 --aa-weights 0 0.5 --threads 2
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from ismtk.bench.scope40 import LEVELS, rank_by_search, read_lookup, read_names, score_queries, summarize
from ismtk.search.search import SearchOptions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="database folder with amino acids (createdb from structures)")
    ap.add_argument("--lookup", required=True)
    ap.add_argument("--queries", required=True, help="query names (database entries)")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.0, 0.25, 0.5, 1.0])
    ap.add_argument("--aa-weights", type=float, nargs="+", default=[0.0, 0.5])
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    lookup, queries = read_lookup(args.lookup), read_names(args.queries)
    base = SearchOptions(exhaustive=True, threads=args.threads)
    print(f"| aa weight | comp-bias scale | {' | '.join(LEVELS)} | seconds |\n| --- | --- | --- | --- | --- | --- |")
    for weight in args.aa_weights:
        for scale in args.scales:
            start = time.perf_counter()
            ranked, names = rank_by_search([args.db], queries, options=replace(base, aa_weight=weight, comp_bias=scale))
            s = summarize(score_queries(ranked, lookup, names, "noselfhit"))
            cells = " | ".join(f"{v:.3f} (n={n})" for v, n in zip(s.per_level, s.per_level_queries, strict=True))
            print(f"| {weight:g} | {scale:g} | {cells} | {time.perf_counter() - start:.0f} |", flush=True)


if __name__ == "__main__":
    main()
