"""Search speed on 1 and 2 cores, the multi-track kernel against parasail, and what the prefilter costs.

Prints, each variant run interleaved ``--repeats`` times and the fastest run kept (the machine is shared; the load
is printed):

1. **Kernels on the same pairs** (``--speed-queries`` queries x every target): a bare Python loop over parasail
   (``sw_striped_profile_16``, reused profile) scoring tokens forward only and forward + reversed query (ismtk's
   work per pair), against ismtk's vectorised kernel for tokens alone and for tokens + amino acids
   (``--aa-weight``) and for each ``--score`` (multi-track databases). Goal: tokens + amino acids within 1.5x of
   parasail's token-only time.
2. **Search on 1 and 2 threads** (the same queries): exhaustive and prefiltered, tokens and tokens + amino acids,
   side by side, with a check that the ``.m8`` written on 2 threads is byte-identical to 1 thread. Goal: >= 1.8x.
   Twice: every hit kept without tracebacks (the kernels' scaling; making a Python object per hit for all 2,369
   targets is the serial part), and with the search's default options (E <= 10, tracebacks), as users run it.
   CPU/wall is the process's CPU seconds (all threads) per wall second of the many-thread run: near the thread
   count when nothing serialises the threads, lower when the GIL or other jobs on the machine hold them back.
3. With ``--lookup``: the SCOPe40 sensitivity (noselfhit) of exhaustive and prefiltered search over all
   ``--queries`` and the prefilter's speed-up (goal: >= 5x at <= 1 % loss per level).
4. With ``--foldseek`` and ``--structures``: Foldseek's sensitivity and times (createdb, search) on the same files,
   queries and core count, exhaustive and with its prefilter, next to ismtk's.

Example::

    python benchmarks/search_speed.py --db db3di --queries bench.txt --lookup lookup.tsv --aa-weight 0.5 \\
        --foldseek ../shared/tools/foldseek/foldseek --structures $D/scope40_dev/pdb $D/cath2738/pdb
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import time
from dataclasses import replace

import numpy as np
import parasail

from ismtk.bench.scope40 import LEVELS, read_lookup, score_queries, sensitivity_loss, summarize
from ismtk.names import read_names
from ismtk.search.db import SequenceDB
from ismtk.search.m8 import DEFAULT_COLUMNS, parse_columns, write_m8
from ismtk.search.matrix import SubstitutionMatrix
from ismtk.search.search import Searcher, SearchOptions
from ismtk.workflows.search import open_input, resolve_matrix, with_score


def load() -> str:
    return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def parasail_loop(queries: list[bytes], targets: list[bytes], pmatrix, reversed_too: bool) -> float:
    start = time.perf_counter()
    for q in queries:
        forward = parasail.profile_create_16(q, pmatrix)
        backward = parasail.profile_create_16(q[::-1], pmatrix) if reversed_too else None
        for t in targets:
            _ = parasail.sw_striped_profile_16(forward, t, 10, 1).score
            if backward is not None:
                _ = parasail.sw_striped_profile_16(backward, t, 10, 1).score
    return time.perf_counter() - start


def kernel_loop(searcher: Searcher, query: SequenceDB) -> float:
    codes, scorer = searcher.scorer.codes(query), searcher.scorer
    start = time.perf_counter()
    for i in range(len(query)):
        one = codes[:, query.offsets[i] : query.offsets[i + 1]]
        scorer.tracks.score_many(one, searcher._codes, searcher._offsets, searcher.entries, 10, 1)
    return time.perf_counter() - start


def timed_search(searcher: Searcher, query: SequenceDB) -> tuple[float, list, float]:
    """Wall seconds, hits, and CPU seconds of all the process's threads."""
    start, cpu = time.perf_counter(), time.process_time()
    hits = list(searcher.search(query))
    return time.perf_counter() - start, hits, time.process_time() - cpu


def m8_bytes(searcher: Searcher, matrix: SubstitutionMatrix, matrices: dict, query: SequenceDB) -> bytes:
    """The ``.m8`` (default columns, raw score, CIGAR; E <= 10) of ``searcher``'s settings (token ``matrix``, other
    tracks' ``matrices``) with tracebacks."""
    traced = Searcher(searcher.target, matrix, replace(searcher.options, trace=True, max_evalue=10), matrices=matrices)
    out = io.StringIO()
    write_m8(out, traced.search(query), query, searcher.target, parse_columns(DEFAULT_COLUMNS + ",raw,cigar"))
    return out.getvalue().encode()


def _scores(hits: list) -> list:
    """What a run's hits say, alignments aside (their arrays do not compare with ``==``; the .m8 covers them)."""
    return [[(h.query, h.target, h.raw, h.score, h.evalue, h.bits) for h in per_query] for per_query in hits]


def sensitivity(hits: list, query: SequenceDB, db: SequenceDB, lookup: dict) -> tuple[float, ...]:
    ranked = {query.names[i]: [(db.names[h.target], h.score) for h in h_list] for i, h_list in enumerate(hits)}
    return summarize(score_queries(ranked, lookup, db.names, "noselfhit")).per_level


def scored_options(db: SequenceDB, args: argparse.Namespace) -> dict[str, tuple[SearchOptions, dict]]:
    """The scores compared, by label: tokens alone, tokens + ``--aa-weight`` x amino acids and each ``--score``,
    as search options (the score's tracks named as the database holds them) and the matrices of their other
    token tracks."""
    schemes = {"tokens": (SearchOptions(aa_weight=0.0), {})}
    if args.aa_weight > 0:
        schemes[f"tokens+{args.aa_weight:g}xAA"] = SearchOptions(aa_weight=args.aa_weight), {}
    for text in args.score:
        schemes[text] = with_score(SearchOptions(), text, db)
    return schemes


def thread_scaling(searchers: dict, timed: SequenceDB, matrix: SubstitutionMatrix, schemes: dict,
                   args: argparse.Namespace, title: str) -> None:
    """Part 2 for one set of searchers keyed by (score label, mode, threads): times on 1 and n threads and
    whether the timed runs' hits, and their ``.m8`` with tracebacks, are identical."""
    times, cpu, found = {k: float("inf") for k in searchers}, {}, {}
    for _ in range(args.repeats):
        for k, s in searchers.items():
            seconds, found[k], used = timed_search(s, timed)
            if seconds < times[k]:
                times[k], cpu[k] = seconds, used
    print(f"\n2. search: the same {len(timed)} queries, {title}, best of {args.repeats}; {load()}")
    width = max(len(label) for label in schemes) + len(", exhaustive")
    print(
        f"  {'':{width}s} {'1 thread':>10s} {f'{args.threads} threads':>10s} {'speed-up':>9s} {'CPU/wall':>9s}  "
        "hits and .m8 identical"
    )
    for label, (_, matrices) in schemes.items():
        for mode in ("exhaustive", "prefilter"):
            one, many = times[label, mode, 1], times[label, mode, args.threads]
            one_m8, many_m8 = (m8_bytes(searchers[label, mode, t], matrix, matrices, timed) for t in (1, args.threads))
            same = one_m8 == many_m8 and _scores(found[label, mode, 1]) == _scores(found[label, mode, args.threads])
            print(
                f"  {label + ', ' + mode:{width}s} {one:9.2f}s {many:9.2f}s {one / many:8.2f}x "
                f"{cpu[label, mode, args.threads] / many:8.2f}  {same}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="database folder (createdb from structures)")
    parser.add_argument("--queries", help="query names, database entries (default: every entry)")
    parser.add_argument("--lookup", help="SCOP lookup: also measure sensitivities and the prefilter's loss")
    parser.add_argument("--matrix", default=None)
    parser.add_argument("--aa-weight", type=float, default=0.5, help="weight of the amino-acid track (0: skip it)")
    parser.add_argument("--score", nargs="*", default=[], help="--score texts measured as well (multi-track databases)")
    parser.add_argument("--speed-queries", type=int, default=30, help="queries of the timings of parts 1 and 2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads of the many-core runs (and of Foldseek)")
    parser.add_argument("--foldseek", help="path of the Foldseek binary: also run it side by side")
    parser.add_argument("--structures", nargs="+", help="structure folders/files the database was made from")
    args = parser.parse_args()
    if args.foldseek and not (args.structures and args.lookup):
        parser.error("--foldseek needs --structures and --lookup")

    db, tokenizer = open_input([args.db])
    matrix = resolve_matrix(args.matrix, tokenizer)
    names = read_names(args.queries) if args.queries else db.names
    queries, timed = db.named(names), db.named(names[: args.speed_queries])
    pairs = len(timed) * len(db)
    print(f"{len(db):,} targets ({db.residues:,} residues); {len(queries)} queries; {load()}")
    schemes = scored_options(db, args)
    labels = list(schemes)
    every_hit = {"trace": False, "max_evalue": float("inf"), "max_seqs": len(db)}
    searchers, defaults = {}, {}
    for label, (options, matrices) in schemes.items():
        for mode in ("exhaustive", "prefilter"):
            for t in (1, args.threads):
                chosen = replace(options, exhaustive=mode == "exhaustive", threads=t)
                searchers[label, mode, t] = Searcher(db, matrix, replace(chosen, **every_hit), matrices=matrices)
                defaults[label, mode, t] = Searcher(db, matrix, chosen, matrices=matrices)
    for s in [*searchers.values(), *defaults.values()]:  # compile / load the kernels before timing
        list(s.search(db.named(names[:2])))

    # 1. kernels on the same pairs
    pmatrix = matrix.to_parasail(db.alphabet.symbols)
    symbols = np.frombuffer(db.alphabet.symbols.encode(), np.uint8)
    qbytes = [symbols[timed.token_seq(i)].tobytes() for i in range(len(timed))]
    tbytes = [symbols[db.token_seq(j)].tobytes() for j in range(len(db))]
    runs = {
        "parasail tokens, forward only": lambda: parasail_loop(qbytes, tbytes, pmatrix, False),
        "parasail tokens, forward + reversed": lambda: parasail_loop(qbytes, tbytes, pmatrix, True),
        **{
            f"ismtk kernel {label}, forward + reversed": (
                lambda label=label: kernel_loop(searchers[label, "exhaustive", 1], timed)
            )
            for label in labels
        },
    }
    best = {k: float("inf") for k in runs}
    for _ in range(args.repeats):
        for k, run in runs.items():
            best[k] = min(best[k], run())
    print(
        f"\n1. kernels: {len(timed)} queries x {len(db):,} targets = {pairs:,} pairs, 1 thread, "
        f"best of {args.repeats}; "
        f"{load()}"
    )
    for k, seconds in best.items():
        print(f"  {k:{max(map(len, runs))}s} {seconds:7.2f} s {pairs / seconds:10,.0f} pairs/s")
    reference = best["parasail tokens, forward + reversed"]
    for label in labels:
        mine = best[f"ismtk kernel {label}, forward + reversed"]
        print(
            f"  ismtk {label} / parasail tokens (same work, forward + reversed): {mine / reference:.2f}x time; "
            f"/ parasail forward only: {mine / best['parasail tokens, forward only']:.2f}x"
        )

    # 2. search on 1 and n threads
    for title, variant in (("every hit kept, no tracebacks", searchers), ("default options (E <= 10, tracebacks)",
                                                                           defaults)):
        thread_scaling(variant, timed, matrix, schemes, args, title)

    if not args.lookup:
        return
    # 3. sensitivity (every hit ranked) and prefilter speed-up (default options, as a user searches) over all queries
    lookup = read_lookup(args.lookup)
    print(f"\n3. {len(queries)} queries, {args.threads} threads: search time with default options (E <= 10, "
          f"tracebacks), and with every hit kept (no tracebacks); noselfhit sensitivity of every hit ranked "
          f"({', '.join(LEVELS)}); {load()}")
    width = max(len(label) for label in labels) + len(", exhaustive")
    for label in labels:
        result = {}
        for mode in ("exhaustive", "prefilter"):
            default_seconds = timed_search(defaults[label, mode, args.threads], queries)[0]
            seconds, hits, _ = timed_search(searchers[label, mode, args.threads], queries)
            result[mode] = default_seconds, seconds, np.array(sensitivity(hits, queries, db, lookup))
            print(
                f"  {label + ', ' + mode:{width}s} {default_seconds:7.1f} s default, {seconds:7.1f} s every hit  "
                + " / ".join(f"{v:.4f}" for v in result[mode][2])
            )
        loss = sensitivity_loss(result["exhaustive"][2], result["prefilter"][2])
        print(
            f"  {label}: prefilter {result['exhaustive'][0] / result['prefilter'][0]:.2f}x faster with default options "
            f"({result['exhaustive'][1] / result['prefilter'][1]:.2f}x with every hit kept), loss "
            + " / ".join(f"{x:+.2%}" for x in loss)
        )

    if args.foldseek:
        from foldseek_peer import entry_files, run_foldseek

        from ismtk.tokenizers import load_tokenizer
        from ismtk.workflows.search import load_input

        files = entry_files(args.structures)
        missing = [n for n in db.names if n not in files]
        if missing:
            raise SystemExit(f"{len(missing)} database entries have no structure file, e.g. {missing[:3]}")
        print(
            f"\n4. Foldseek ({args.foldseek}) on the same {len(db):,} files and {len(queries)} queries, "
            f"{args.threads} threads; {load()}"
        )
        start = time.perf_counter()
        load_input([files[n] for n in db.names], load_tokenizer(db.tokenizer), threads=args.threads)
        print(f"  ismtk createdb (encode the {len(db):,} files, {db.tokenizer}): {time.perf_counter() - start:.1f} s")
        for exhaustive in (True, False):
            run = run_foldseek(
                args.foldseek, [files[n] for n in db.names], [files[n] for n in queries.names], args.threads, exhaustive
            )
            ranked = {q: run.ranked.get(q, []) for q in queries.names}
            sens = summarize(score_queries(ranked, lookup, db.names, "noselfhit")).per_level
            print(
                f"  Foldseek {'exhaustive' if exhaustive else 'prefilter (default)':20s} createdb "
                f"{run.createdb_seconds:5.1f} s, search {run.search_seconds:6.1f} s  "
                + " / ".join(f"{v:.4f}" for v in sens)
            )
    print(f"\npeak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB; {load()}")


if __name__ == "__main__":
    main()
