"""What each ``--format-output`` column costs per hit, through the path ``search`` takes to write it.

Searches the ``--queries`` against the ``--db`` (exhaustive, hits up to ``--evalue``, at most ``--max-seqs`` per
query, alignments traced), then, for each column alone, judges the hits afresh
(:func:`ismtk.workflows.search.judge_hits`: new geometry caches, the probability fit when ``prob`` is asked) and
writes them (:func:`ismtk.search.m8.write_m8`) to memory, ``--repeats`` times. Prints the best time per hit of each
column beyond that of ``query,target`` (the floor: judging and writing only, printed too) and the time per hit of
the traceback (search with vs without it). With ``--tmalign-queries`` the hits of the first that many queries are
also realigned with TM-align (``--alignment-type tmalign``).

Example (the figures of ``docs/search.md``)::

    python benchmarks/column_cost.py --db db3di --queries bench30.txt --repeats 3 --tmalign-queries 30
    python benchmarks/column_cost.py --db db3di --queries bench30.txt -e inf --max-seqs 100 --tmalign-queries 3
"""

from __future__ import annotations

import argparse
import io
import os
import time
from dataclasses import replace

from ismtk.bench.scope40 import read_names
from ismtk.search.db import SequenceDB
from ismtk.search.hit3d import COLUMNS_3D, PROB_COLUMN, JudgeOptions
from ismtk.search.m8 import write_m8
from ismtk.search.matrix import load_matrix
from ismtk.search.prob import find_fit
from ismtk.search.search import Searcher, SearchOptions, column_scorer
from ismtk.workflows.search import judge_hits


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="database made by createdb (with coordinates)")
    parser.add_argument("--queries", required=True, help="names of database entries to search with")
    parser.add_argument("--max-seqs", type=int, default=100)
    parser.add_argument("-e", "--evalue", type=float, default=SearchOptions.max_evalue, help="report hits up to this")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--tmalign-queries", type=int, default=0, help="queries whose hits TM-align realigns")
    args = parser.parse_args()
    db = SequenceDB.load(args.db)
    index = {n: i for i, n in enumerate(db.names)}
    query = db.select([index[n] for n in read_names(args.queries)])
    matrix = load_matrix(None, db.tokenizer)
    options = SearchOptions(max_evalue=args.evalue, max_seqs=args.max_seqs)
    fit = find_fit(column_scorer(db, matrix, options)[0].fit_key(), f"the default score of {args.db}")
    setting = f"-e {args.evalue:g} --max-seqs {args.max_seqs}"
    print(f"{len(query)} queries x {len(db)} entries, {setting}; {load()}", flush=True)

    searched = {}
    for trace in (False, True, False, True):
        start = time.perf_counter()
        hits = list(Searcher(db, matrix, replace(options, trace=trace)).search(query))
        searched[trace] = min(searched.get(trace, float("inf")), time.perf_counter() - start)
    n_hits = sum(len(h) for h in hits)
    print(f"{n_hits:,} hits; search {searched[False]:.2f} s untraced, {searched[True]:.2f} s traced (best of 2)")

    def cost(columns: list[str], judge: JudgeOptions, subset: list) -> float:
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            judged = judge_hits(subset, query, db, judge, fit if PROB_COLUMN in columns else None)
            write_m8(io.StringIO(), judged, query, db, columns)
            best = min(best, time.perf_counter() - start)
        return best / max(sum(len(h) for h in subset), 1)

    print("| column(s) | ms per hit |\n| --- | --- |")
    traceback = 1e3 * (searched[True] - searched[False]) / n_hits
    print(f"| traceback (qstart ... cigar, qaln, taln need it) | {traceback:.3f} |")
    floor = cost(["query", "target"], JudgeOptions(), hits)
    print(f"| query,target (judging and writing only) | {1e3 * floor:.3f} |", flush=True)
    for column in (PROB_COLUMN, *COLUMNS_3D, "lddt,alntmscore,qtmscore,ttmscore,rmsd,u,t,lddtfull"):
        per_hit = cost(["query", "target", *column.split(",")], JudgeOptions(), hits)
        print(f"| {column} | {1e3 * (per_hit - floor):.3f} |", flush=True)
    if args.tmalign_queries:
        subset = hits[: args.tmalign_queries]
        per_hit = cost(["query", "target"], JudgeOptions(alignment_type="tmalign"), subset)
        print(f"| --alignment-type tmalign ({sum(len(h) for h in subset):,} hits) | {1e3 * (per_hit - floor):.3f} |")
    print(load())


if __name__ == "__main__":
    main()
