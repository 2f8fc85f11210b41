"""Search speed against a bare parasail loop, and what the prefilter costs in sensitivity.

Prints alignments (query-target pairs) per second per core of:

* a bare Python loop over parasail (``sw_striped_profile_16`` with a reused profile) scoring each pair once,
  and twice (forward + reversed query: the work ismtk does per pair);
* ismtk's exhaustive search (``Searcher``, score only, 1 thread) on the same pairs, and with 2 threads (GIL check);
* ismtk with the ungapped prefilter (pairs/s counted over all pairs, i.e. the effective rate);
* with ``--aa-weight``, ismtk's exhaustive search with the amino-acid term (numba Gotoh kernels, 1 thread).

All variants run interleaved ``--repeats`` times and the fastest run of each is kept (the machine is shared).
With ``--lookup``, also the SCOPe40 sensitivity (noselfhit, per level) of exhaustive vs prefiltered search
over the queries. Goals (issue 7): exhaustive within 1.2x of the bare loop doing the same alignments; the
prefilter >= 5x faster with <= 1 % sensitivity loss at every level.

Example::

    python benchmarks/search_speed.py --db db3di --queries bench.txt --lookup lookup.tsv --speed-queries 40
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import parasail

from ismtk.bench.scope40 import LEVELS, read_lookup, score_queries, summarize
from ismtk.names import read_names
from ismtk.search.db import SequenceDB
from ismtk.search.search import Searcher, SearchOptions
from ismtk.workflows.search import open_input, resolve_matrix


def bare_loop(queries: list[bytes], targets: list[bytes], pmatrix, reversed_too: bool) -> float:
    start = time.perf_counter()
    for q in queries:
        forward = parasail.profile_create_16(q, pmatrix)
        backward = parasail.profile_create_16(q[::-1], pmatrix) if reversed_too else None
        for t in targets:
            _ = parasail.sw_striped_profile_16(forward, t, 10, 1).score
            if backward is not None:
                _ = parasail.sw_striped_profile_16(backward, t, 10, 1).score
    return time.perf_counter() - start


def gil_check(aligner, tokens: np.ndarray) -> tuple[float, float]:
    """Count loop turns of a pure-Python thread while another thread runs one long parasail alignment, and alone
    for the same time: similar rates mean the GIL is released during parasail calls (ctypes drops it)."""
    import threading

    long = np.tile(tokens, max(1, 20_000 // len(tokens)))
    profile = aligner.profile(long)
    target = aligner.symbols(long[::-1])
    done, ticks = threading.Event(), [0]

    def align() -> None:
        aligner.score(profile, target)
        done.set()

    def count() -> None:
        while not done.is_set():
            ticks[0] += 1

    threads = [threading.Thread(target=count), threading.Thread(target=align)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    alone, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        alone += 1
    return ticks[0] / seconds, alone / seconds


def ismtk_run(searcher: Searcher, query: SequenceDB) -> tuple[float, list]:
    start = time.perf_counter()
    hits = list(searcher.search(query))
    return time.perf_counter() - start, hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="database folder (createdb)")
    parser.add_argument("--queries", help="query names (default: the first entries)")
    parser.add_argument("--lookup", help="SCOP lookup: also measure the prefilter's sensitivity loss")
    parser.add_argument("--matrix", default=None)
    parser.add_argument("--speed-queries", type=int, default=30, help="queries timed for speed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--aa-weight", type=float, default=0.0, help="also time token + weight x BLOSUM62 scoring")
    parser.add_argument("--max-candidates", type=int, default=SearchOptions().max_candidates)
    args = parser.parse_args()

    db, tokenizer = open_input([args.db])
    matrix = resolve_matrix(args.matrix, tokenizer)
    names = read_names(args.queries) if args.queries else db.names
    index = {n: i for i, n in enumerate(db.names)}
    qdb = SequenceDB.from_records(
        ((n, db.token_seq(index[n]), db.aa_seq(index[n]) if db.aa is not None else None) for n in names), db.alphabet,
        db.tokenizer,
    )
    timed = SequenceDB.from_records(
        ((qdb.names[i], qdb.token_seq(i), qdb.aa_seq(i) if qdb.aa is not None else None)
         for i in range(min(args.speed_queries, len(qdb)))),
        db.alphabet,
        db.tokenizer,
    )
    base = SearchOptions(exhaustive=True, trace=False, max_evalue=float("inf"), max_seqs=len(db), threads=1,
                         max_candidates=args.max_candidates)
    exhaustive = Searcher(db, matrix, base)
    threaded = Searcher(db, matrix, replace(base, threads=2))
    prefiltered = Searcher(db, matrix, replace(base, exhaustive=False))
    combined = Searcher(db, matrix, replace(base, aa_weight=args.aa_weight)) if args.aa_weight > 0 else None
    aligner = exhaustive.aligner
    qbytes = [aligner.symbols(timed.token_seq(i)) for i in range(len(timed))]
    tbytes = [aligner.symbols(db.token_seq(j)) for j in range(len(db))]
    pmatrix = matrix.to_parasail(db.alphabet.symbols)
    pairs = len(timed) * len(db)

    best = {k: float("inf") for k in ("bare x1", "bare x2", "ismtk exhaustive", "ismtk 2 threads", "ismtk prefilter")}
    for _ in range(args.repeats):
        best["bare x1"] = min(best["bare x1"], bare_loop(qbytes, tbytes, pmatrix, False))
        best["bare x2"] = min(best["bare x2"], bare_loop(qbytes, tbytes, pmatrix, True))
        best["ismtk exhaustive"] = min(best["ismtk exhaustive"], ismtk_run(exhaustive, timed)[0])
        best["ismtk 2 threads"] = min(best["ismtk 2 threads"], ismtk_run(threaded, timed)[0])
        best["ismtk prefilter"] = min(best["ismtk prefilter"], ismtk_run(prefiltered, timed)[0])
        if combined is not None:
            best["ismtk +AA"] = min(best.get("ismtk +AA", float("inf")), ismtk_run(combined, timed)[0])
    print(f"{len(timed)} queries x {len(db)} targets = {pairs:,} pairs; {db.residues:,} target residues; "
          f"best of {args.repeats}")
    for name, seconds in best.items():
        cores = 2 if "2 threads" in name else 1
        print(f"  {name:18s} {seconds:8.2f} s  {pairs / seconds:10,.0f} pairs/s  "
              f"{pairs / seconds / cores:10,.0f} pairs/s/core")
    print(f"  exhaustive / bare x2 (same alignments): {best['ismtk exhaustive'] / best['bare x2']:.2f}x time")
    print(f"  exhaustive / bare x1 (forward only):    {best['ismtk exhaustive'] / best['bare x1']:.2f}x time")
    if combined is not None:
        print(f"  +AA ({args.aa_weight:g} x BLOSUM62, numba Gotoh) / exhaustive: "
              f"{best['ismtk +AA'] / best['ismtk exhaustive']:.2f}x time")
    print(f"  2-thread speed-up: {best['ismtk exhaustive'] / best['ismtk 2 threads']:.2f}x")
    during, alone = gil_check(aligner, timed.token_seq(0))
    print(f"  GIL check: a Python thread runs at {during / alone:.0%} of its solo speed while parasail aligns "
          f"(near 100% = GIL released; near 0% = held)")
    print(f"  prefilter speed-up over exhaustive: {best['ismtk exhaustive'] / best['ismtk prefilter']:.2f}x "
          f"(max {args.max_candidates} candidates of {len(db)})")

    if args.lookup:
        lookup = read_lookup(args.lookup)
        summaries = {}
        for label, searcher in (("exhaustive", exhaustive), ("prefilter", prefiltered)):
            seconds, hits = ismtk_run(searcher, qdb)
            ranked = {qdb.names[i]: [db.names[h.target] for h in h_list] for i, h_list in enumerate(hits)}
            summaries[label] = summarize(score_queries(ranked, lookup, db.names, "noselfhit"))
            s = summaries[label]
            print(f"  {label:10s} sensitivity (noselfhit) " + ", ".join(
                f"{lv} {v:.4f} (n={n})" for lv, v, n in zip(LEVELS, s.per_level, s.per_level_queries, strict=True)
            ) + f"  [{len(qdb)} queries in {seconds:.1f} s]")
        loss = np.array(summaries["exhaustive"].per_level) - np.array(summaries["prefilter"].per_level)
        rel = loss / np.maximum(np.array(summaries["exhaustive"].per_level), 1e-12)
        print("  prefilter sensitivity loss: " + ", ".join(
            f"{lv} {d:+.4f} ({r:+.1%})" for lv, d, r in zip(LEVELS, loss, rel, strict=True)))


if __name__ == "__main__":
    main()
