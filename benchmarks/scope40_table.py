"""The SCOPe40 table of docs/benchmarks.md: 3Di (Foldseek's and ismtk's matrix), amino acids, 3Di+AA, TM-align ceiling.

Two settings:

* A: ``--queries`` (scope40_dev role=bench) against the whole database ``--db`` (all of scope40_dev + cath2738
  decoys), every search method;
* B: the queries whose TM-align row is complete (``--tm`` from ``scope40_tmalign.py``) against the bench domains
  only, every search method (their rankings restricted to bench targets) and TM-align ranked by TM-score
  normalised by the query; with ``--setting-b`` instead of ``--tm`` (no TM-align run at hand: it takes most of an
  hour on one core), every query against the queries, the search methods only.

Prints markdown tables (noselfhit and selfhit, per level over queries with a positive at that level) and writes
per-query ``.rocx`` files, summaries and cumulative plots to ``--out-dir``.

With ``--foldseek`` (the binary's path) and ``--structures`` (the files the database was made from), Foldseek
searches the same files with the same queries and threads, exhaustively and with its prefilter; its rows join
setting A.

Example::

    python benchmarks/scope40_table.py --db db3di --lookup lookup.tsv --queries bench.txt \\
        --foldseek-matrix mat3di.fitted.out --extra "ismtk ISM, learned matrix" db_ism ism \\
        --tm tm_bench --out-dir scope40_report --aa-weight 1 --score 3di:1,ism:0.25,aa:0.5
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ismtk.bench.scope40 import LEVELS, rank_by_search, read_lookup, write_report
from ismtk.names import read_names
from ismtk.search.combined import parse_score
from ismtk.search.search import SearchOptions


def _table(title: str, summaries) -> str:
    lines = [f"**{title}**", "", "| method | " + " | ".join(LEVELS) + " |", "| --- | --- | --- | --- |"]
    for method, s in summaries.items():
        cells = [f"{v:.3f} (n={n})" for v, n in zip(s.per_level, s.per_level_queries, strict=True)]
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--lookup", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--foldseek-matrix", required=True, help="Foldseek's mat3di.out (with fitted EVD line)")
    parser.add_argument("--extra", nargs=3, action="append", default=[], metavar=("LABEL", "DB", "MATRIX"),
                        help="one more method: a token database of the same entries and its matrix (e.g. ISM)")
    parser.add_argument("--score", action="append", default=[], metavar="SCORE",
                        help="one more method: a multi-track --score of the database's tracks (repeatable; e.g. "
                        "3di:1,ism:0.25,ism-residual:0.25,aa:0.5 over createdb --tracks 3di,ism,ism-residual)")
    parser.add_argument("--aa-weight", type=float, default=0.0,
                        help="also rank each token method with this weight x BLOSUM62 added (3Di+AA); databases "
                        "need amino acids (choose the weight with aa_weight_sweep.py, not on the bench)")
    setting_b = parser.add_mutually_exclusive_group()
    setting_b.add_argument("--tm", help="prefix of scope40_tmalign.py output (setting B)")
    setting_b.add_argument("--setting-b", action="store_true", help="setting B without the TM-align row")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--foldseek", help="path of the Foldseek binary: add its rows (exhaustive and its prefilter)")
    parser.add_argument("--structures", nargs="+", help="structure folders/files of the database (with --foldseek)")
    args = parser.parse_args()
    if args.foldseek and not args.structures:
        parser.error("--foldseek needs --structures")

    lookup = read_lookup(args.lookup)
    queries = read_names(args.queries)
    options = SearchOptions(exhaustive=True, threads=args.threads)
    methods = {
        "ismtk 3Di, Foldseek matrix": dict(matrix=args.foldseek_matrix),
        "ismtk 3Di, learned matrix": dict(matrix=None),
        "ismtk AA, BLOSUM62": dict(matrix=None, mode="aa"),
        **{label: dict(matrix=matrix, db=db) for label, db, matrix in args.extra},
        **{f"ismtk --score {text}": dict(matrix=None, score=parse_score(text)) for text in args.score},
    }
    if args.aa_weight > 0:
        with_aa = {"ismtk 3Di+AA, learned matrix": dict(matrix=None)}
        with_aa |= {f"{label} +AA": dict(matrix=matrix, db=db) for label, db, matrix in args.extra}
        for label, kwargs in with_aa.items():
            methods[f"{label} ({args.aa_weight:g} x BLOSUM62)"] = {**kwargs, "aa_weight": args.aa_weight}
    ranked, names = {}, None
    for label, kwargs in methods.items():
        start = time.perf_counter()
        db = kwargs.pop("db", args.db)
        method_options = replace(options, aa_weight=kwargs.pop("aa_weight", 0.0), score=kwargs.pop("score", ()))
        ranked[label], names = rank_by_search([db], queries, options=method_options, **kwargs)
        print(f"{label}: {len(queries)} queries x {len(names)} targets in {time.perf_counter() - start:.0f} s")
    if args.foldseek:
        from foldseek_peer import entry_files, run_foldseek

        files = entry_files(args.structures)
        for exhaustive in (True, False):
            run = run_foldseek(args.foldseek, [files[n] for n in names], [files[q] for q in queries], args.threads,
                               exhaustive)
            label = f"Foldseek 3Di+AA ({'exhaustive' if exhaustive else 'prefilter, its defaults'})"
            ranked[label] = {q: run.ranked.get(q, []) for q in queries}
            print(f"{label}: createdb {run.createdb_seconds:.1f} s, search {run.search_seconds:.1f} s on "
                  f"{args.threads} threads")
    out = Path(args.out_dir)
    a = write_report(out / "A_bench_vs_all", lookup, ranked, names)
    for variant in ("noselfhit", "selfhit"):
        print(_table(f"A. {len(queries)} bench queries vs {len(names)} entries ({variant})", a[variant]))

    if args.tm or args.setting_b:
        if args.tm:
            tm = np.load(f"{args.tm}.npy")
            tm_names = read_names(f"{args.tm}.names")
            complete = [tm_names[i] for i in range(len(tm_names)) if not np.isnan(tm[i]).any()]
        else:
            tm_names = complete = list(queries)
        bench = set(tm_names)
        restricted = {m: {q: [t for t in r[q] if t[0] in bench] for q in complete} for m, r in ranked.items()}
        if args.tm:
            column = {n: i for i, n in enumerate(tm_names)}
            restricted["TM-align (tmtools), TM by query"] = {
                q: [tm_names[j] for j in np.argsort(-tm[column[q]], kind="stable")] for q in complete
            }
        b = write_report(out / "B_tm_subset_vs_bench", lookup, restricted, tm_names)
        for variant in ("noselfhit", "selfhit"):
            which = "queries with complete TM-align rows" if args.tm else "queries"
            print(_table(f"B. {len(complete)} {which} vs {len(tm_names)} bench domains "
                         f"({variant})", b[variant]))


if __name__ == "__main__":
    main()
