"""Search time and memory per query as the target database grows, exhaustive against the k-mer prefilter.

From a database of real entries (``--db``, e.g. scope40_dev + cath2738, 2,369 entries) the script makes larger
databases (``--sizes``) by adding decoys: copies of randomly drawn real entries whose residues are shuffled (each
residue keeps its tokens of every track and its amino acid together, so composition is real and order is random).
Each database is written to ``--work`` and opened by memory map, as a search opens it. For each size, in a fresh
process (so its peak memory is its own):

* the prefilter, once per ``--candidates`` (targets kept per query for Smith-Waterman; the index is built once,
  its build time reported on the first count): index size, seconds per query over ``--queries`` (or a sample of
  them at the larger sizes, ``--sample``), and the SCOPe40 sensitivity (noselfhit) of those queries;
* exhaustive search: seconds per query and sensitivity over the same queries;
* peak RSS of the process (memory-mapped database pages count when touched).

Sensitivity counts only the real entries as positives; decoys rank as false positives, so both methods lose some
sensitivity as the database grows; the prefilter must keep up with exhaustive search while its time grows slower.

Example::

    python benchmarks/search_scaling.py --db db3di --queries bench.txt --lookup lookup.tsv --work /tmp/scaling \\
        --sizes 2369 50000 500000 --sample 449 100 30 [--score 3di:1,ism:0.25,aa:0.5 (a multi-track database)]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ismtk.bench.scope40 import read_lookup, read_names, score_queries, summarize
from ismtk.search.db import SequenceDB, TokenTrack, is_db
from ismtk.search.matrix import load_matrix
from ismtk.search.prefilter import DEFAULT_MAX_CANDIDATES
from ismtk.search.search import Searcher, SearchOptions
from ismtk.workflows.search import with_score


def with_decoys(db: SequenceDB, size: int, seed: int = 0, chunk: int = 50_000) -> SequenceDB:
    """``db`` followed by ``size - len(db)`` shuffled copies of its entries (drawn at random), made ``chunk``
    copies at a time."""
    rng = np.random.default_rng(seed)
    sources = rng.integers(0, len(db), size - len(db))
    tokens, aa = [np.asarray(db.tokens)], [np.asarray(db.aa)] if db.aa is not None else None
    tracks = {name: [np.asarray(track.tokens)] for name, track in db.tracks.items()}
    for first in range(0, len(sources), chunk):
        part = sources[first : first + chunk]
        lengths = np.diff(db.offsets)[part]
        owner = np.repeat(np.arange(len(part)), lengths)
        within = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        residues = np.repeat(db.offsets[part], lengths) + within
        residues = residues[np.lexsort((rng.random(len(owner)), owner))]  # a random order inside each copy
        tokens.append(np.asarray(db.tokens)[residues])
        for parts in tracks.values():
            parts.append(parts[0][residues])
        if aa is not None:
            aa.append(np.asarray(db.aa)[residues])
    offsets = np.concatenate([db.offsets, db.offsets[-1] + np.cumsum(np.diff(db.offsets)[sources])])
    names = db.names + [f"decoy{k}_{db.names[s]}" for k, s in enumerate(sources)]
    return SequenceDB(
        names, offsets, np.concatenate(tokens), db.alphabet, db.tokenizer, None if aa is None else np.concatenate(aa),
        tracks={name: TokenTrack(db.tracks[name].alphabet, np.concatenate(parts)) for name, parts in tracks.items()},
    )


def rss() -> tuple[float, float]:
    """(current, peak) resident memory of this process in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def measure(args: argparse.Namespace, size: int, sample: int) -> dict:
    """One size, in this process: prefilter and exhaustive time, sensitivity and memory (printed as JSON)."""
    db = SequenceDB.load(_path(args, size))
    lookup = read_lookup(args.lookup)
    names = read_names(args.queries)
    names = (
        [names[i] for i in np.random.default_rng(1).permutation(len(names))[:sample]] if sample < len(names) else names
    )
    query = db.named(names)
    options = SearchOptions(
        trace=False, max_evalue=float("inf"), max_seqs=args.max_seqs, threads=args.threads, aa_weight=args.aa_weight
    )
    options, matrices = with_score(options, args.score, db)
    matrix = load_matrix(None, db.tokenizer)
    out = {"size": size, "residues": db.residues, "queries": len(names), "rss_open": rss()[0]}
    runs = [(f"prefilter {n}", replace(options, exhaustive=False, max_candidates=n)) for n in args.candidates]
    indexed = None  # the prefilter's index is built once; each candidate count searches with it
    for label, chosen in [*runs, ("exhaustive", replace(options, exhaustive=True))]:
        start = time.perf_counter()
        if indexed is not None and not chosen.exhaustive:
            searcher = copy.copy(indexed)
            searcher.options = chosen
        else:
            searcher = Searcher(db, matrix, chosen, matrices=matrices)
            indexed = searcher if not chosen.exhaustive else indexed
        setup = time.perf_counter() - start
        list(searcher.search(db.named(names[:2])))  # load the kernels
        start = time.perf_counter()
        hits = list(searcher.search(query))
        seconds = time.perf_counter() - start
        ranked = {query.names[i]: [(db.names[h.target], h.score) for h in hl] for i, hl in enumerate(hits)}
        s = summarize(score_queries(ranked, lookup, db.names, "noselfhit"))
        out[label] = {
            "setup_s": setup,
            "per_query_s": seconds / len(names),
            "sensitivity": list(s.per_level),
            "index_mb": searcher._prefilter.nbytes / 2**20 if searcher._prefilter is not None else 0.0,
            "rss_mb": rss()[0],
        }
        del searcher, hits
    del indexed
    out["peak_rss_mb"] = rss()[1]
    return out


def _path(args: argparse.Namespace, size: int) -> Path:
    """The database of ``size`` entries: ``--db`` itself at its own size, else a grown one in ``--work``."""
    real = SequenceDB.load(args.db)
    return Path(args.db) if size == len(real) else Path(args.work) / f"db{size}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="database of the real entries (createdb from structures)")
    parser.add_argument("--queries", required=True)
    parser.add_argument("--lookup", required=True)
    parser.add_argument("--work", required=True, help="folder for the grown databases (reused when present)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2369, 50_000, 500_000])
    parser.add_argument("--sample", type=int, nargs="+", help="queries per size (default: all at every size)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--aa-weight", type=float, default=0.0)
    parser.add_argument("--score", help="a --score text instead of --aa-weight (a database holding its tracks)")
    parser.add_argument("--max-seqs", type=int, default=1000, help="hits kept per query (the ranking scored)")
    parser.add_argument("--candidates", type=int, nargs="+", default=[DEFAULT_MAX_CANDIDATES],
                        help="prefilter candidates per query (--max-candidates); one prefilter row each")
    parser.add_argument("--measure", type=int, nargs=2, help=argparse.SUPPRESS)  # internal: SIZE SAMPLE in a child
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args, *args.measure)))
        return

    samples = args.sample or [10**9] * len(args.sizes)
    real = SequenceDB.load(args.db)
    rows = []
    for size, sample in zip(args.sizes, samples, strict=True):
        path = _path(args, size)
        if not is_db(path):
            start = time.perf_counter()
            with_decoys(real, size).save(path)
            print(f"made {path} ({size:,} entries) in {time.perf_counter() - start:.0f} s", flush=True)
        child = [sys.executable, __file__, *sys.argv[1:], "--measure", str(size), str(sample)]
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        done = subprocess.run(child, capture_output=True, text=True, check=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        row["load"] = load
        rows.append(row)
        print(json.dumps(row), flush=True)

    print(
        "\n| entries | residues | queries | candidates | exhaustive s/query | prefilter s/query | speed-up "
        "| exhaustive fam/sfam/fold | prefilter fam/sfam/fold | index MB | peak RSS MB | load |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        ex = r["exhaustive"]
        levels = "/".join(f"{v:.3f}" for v in ex["sensitivity"])
        for n in args.candidates:
            pf = r[f"prefilter {n}"]
            print(
                f"| {r['size']:,} | {r['residues']:,} | {r['queries']} | {n} | {ex['per_query_s']:.3f} "
                f"| {pf['per_query_s']:.3f} | {ex['per_query_s'] / pf['per_query_s']:.1f}x "
                f"| {levels} | {'/'.join(f'{v:.3f}' for v in pf['sensitivity'])} "
                f"| {pf['index_mb']:.0f} | {r['peak_rss_mb']:.0f} | {r['load']} |"
            )


if __name__ == "__main__":
    main()
