"""SCOPe40 sensitivity and search time of weighted track combinations (``search --score``) on one database.

For each ``--scores`` text (e.g. ``3di``, ``3di:1,aa:0.5``, ``3di:1,ism:0.3,aa:0.5``), searches the ``--queries``
against the database (every pair, setting A of docs/benchmarks.md) and prints the sensitivity up to the first
false positive per level (noselfhit), the seconds of the E-value fit for that combination and of the search.
Then times the searches of ``--speed-queries`` queries again, the combinations interleaved ``--repeats`` times,
the fastest run kept, as a ratio to the first combination's time (the machine is shared; the load is printed).

Choose weights on the matrix-training domains (``--entries`` restricts the database to the matrix-training
entries, ``--queries`` to the ``role=matrix_train`` domains), never on the bench; then report the bench rows
with the chosen combinations:

    python benchmarks/score_sweep.py --db db_tracks --entries train_names.txt --queries matrix_train.txt \\
        --lookup lookup.tsv --scores 3di 3di:1,aa:0.5 3di:1,ism:0.2 3di:1,ism:0.2,aa:0.5 --threads 2
"""

from __future__ import annotations

import argparse
import os
import time

from ismtk.bench.scope40 import LEVELS, read_lookup, score_queries, summarize
from ismtk.names import read_names
from ismtk.search.db import SequenceDB
from ismtk.search.search import Searcher, SearchOptions
from ismtk.tokenizers import tokenizer_for
from ismtk.workflows.search import resolve_matrix, with_score


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def searcher(db: SequenceDB, text: str, base: SearchOptions) -> Searcher:
    """The exhaustive searcher of ``--score text`` over ``db`` (its main tokenizer's shipped matrix)."""
    options, matrices = with_score(base, text, db)
    return Searcher(db, resolve_matrix(None, tokenizer_for(db.tokenizer)), options, matrices=matrices)


def timed_search(s: Searcher, queries: SequenceDB) -> tuple[float, list[list[str]]]:
    start = time.perf_counter()
    ranked = [[(s.target.names[h.target], h.score) for h in hits] for hits in s.search(queries)]
    return time.perf_counter() - start, ranked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="database folder with every track of the scores (createdb --tracks)")
    ap.add_argument("--entries", help="names of the database entries to search (default: all)")
    ap.add_argument("--queries", required=True, help="query names (database entries)")
    ap.add_argument("--lookup", required=True)
    ap.add_argument("--scores", nargs="+", required=True, help="--score texts, the first is the reference of times")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--speed-queries", type=int, default=100, help="queries of the interleaved timing (0: skip)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    db = SequenceDB.load(args.db)
    index = {name: i for i, name in enumerate(db.names)}
    if args.entries:
        db = db.select([index[name] for name in read_names(args.entries)])
        index = {name: i for i, name in enumerate(db.names)}
    names = read_names(args.queries)
    queries = db.select([index[name] for name in names])
    lookup = read_lookup(args.lookup)
    base = SearchOptions(trace=False, max_evalue=float("inf"), max_seqs=len(db), threads=args.threads)
    print(f"{len(queries)} queries x {len(db):,} entries ({db.residues:,} residues, tracks "
          f"{', '.join(db.track_names)}), {args.threads} thread(s); {load()}")
    print(f"| --score | {' | '.join(LEVELS)} | E-value fit s | search s | load |\n|{' --- |' * 7}")
    searchers = {}
    for text in args.scores:
        start = time.perf_counter()
        s = searchers[text] = searcher(db, text, base)
        fit = time.perf_counter() - start
        seconds, ranked = timed_search(s, queries)
        summary = summarize(score_queries(dict(zip(names, ranked, strict=True)), lookup, db.names, "noselfhit"))
        cells = " | ".join(f"{v:.3f} (n={n})" for v, n in zip(summary.per_level, summary.per_level_queries,
                                                                strict=True))
        print(f"| {text} | {cells} | {fit:.1f} | {seconds:.1f} | {os.getloadavg()[0]:.2f} |", flush=True)
    if not args.speed_queries:
        return
    timed = queries.select(list(range(min(args.speed_queries, len(queries)))))
    best = {text: float("inf") for text in args.scores}
    for _ in range(args.repeats):
        for text, s in searchers.items():
            best[text] = min(best[text], timed_search(s, timed)[0])
    reference = best[args.scores[0]]
    print(f"\nsearch time of {len(timed)} queries x {len(db):,} entries, best of {args.repeats} interleaved; {load()}")
    for text, seconds in best.items():
        print(f"  {text:32s} {seconds:7.2f} s  {seconds / reference:5.2f}x {args.scores[0]}")


if __name__ == "__main__":
    main()
