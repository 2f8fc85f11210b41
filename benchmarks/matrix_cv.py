"""Judge a substitution-matrix recipe out of sample: cross-validation over SCOP folds of the matrix-training domains.

A matrix learned from alignments among the very domains it is then searched on is judged in-sample (with K = 64 ISM
letters, 2,080 letter pairs fit the alignments they are counted on). Here the query domains' folds are split into
``--folds`` groups (sorted fold names dealt out in turn); each group's queries are searched with a matrix learned
from every alignment that touches none of that group's domains, and the sensitivities (noselfhit, up to the first
false positive) are pooled over all queries. Each ``--set`` is one recipe: a label and its alignment files
(``tmaln-06.out`` format, e.g. ``ismtk align-pairs``); ``--extra-tokens`` holds the tokens of aligned entries that
are not in ``--db`` (for example training chains). Ranking uses the reversed-query-corrected score, so the
E-value fit of the matrices does not matter here (a quick one on 200 null pairs is made).

    python benchmarks/matrix_cv.py --db train3di --extra-tokens chains3di --lookup lookup.tsv \\
        --queries matrix_train.txt --set shipped train.aln --set more train.aln more.aln --weights 0 0.5
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import replace
from pathlib import Path

from ismtk.bench.scope40 import LEVELS, rank_by_search, read_lookup, score_queries, summarize
from ismtk.names import read_names
from ismtk.search.db import SequenceDB
from ismtk.search.learn import DEFAULT_MIN_TM, DEFAULT_PSEUDOCOUNT, learn_matrix
from ismtk.search.matrix import write_matrix
from ismtk.search.pairs import read_alignments, write_alignments
from ismtk.search.search import SearchOptions


def joined(db: SequenceDB, extra: SequenceDB | None) -> SequenceDB:
    """``db``'s entries followed by ``extra``'s (same tokenizer), as one database to count aligned tokens in."""
    if extra is None:
        return db
    if extra.tokenizer != db.tokenizer:
        raise SystemExit(f"--extra-tokens has tokenizer {extra.tokenizer}, --db has {db.tokenizer}")
    aa = db.aa is not None and extra.aa is not None
    records = [(n, d.token_seq(i), d.aa_seq(i) if aa else None) for d in (db, extra) for i, n in enumerate(d.names)]
    return SequenceDB.from_records(records, db.alphabet, db.tokenizer)


def fold_groups(queries: list[str], lookup: dict[str, str], folds: int) -> list[list[str]]:
    """The queries split by SCOP fold (class.fold) into ``folds`` groups: sorted fold names dealt out in turn."""
    fold_of = {q: ".".join(lookup[q].split(".")[:2]) for q in queries}
    group = {f: k % folds for k, f in enumerate(sorted(set(fold_of.values())))}
    return [[q for q in queries if group[fold_of[q]] == g] for g in range(folds)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="database of the query domains and their targets")
    ap.add_argument("--extra-tokens", default=None, help="database of more aligned entries (counted, not searched)")
    ap.add_argument("--lookup", required=True)
    ap.add_argument("--queries", required=True, help="query names (database entries)")
    ap.add_argument("--set", nargs="+", action="append", required=True, metavar=("LABEL", "ALIGNMENTS"),
                    help="a recipe: its label, then its alignment files (repeat for each recipe)")
    ap.add_argument("--folds", type=int, default=2)
    ap.add_argument("--weights", type=float, nargs="+", default=[0.0], help="amino-acid weights to search with")
    ap.add_argument("--min-tm", type=float, default=DEFAULT_MIN_TM, help="alignments counted: TM-score at least")
    ap.add_argument("--pseudocount", type=float, default=DEFAULT_PSEUDOCOUNT,
                    help="added to every letter pair's count (learn-matrix --pseudocount)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    lookup, queries = read_lookup(args.lookup), read_names(args.queries)
    db = SequenceDB.load(args.db)
    counted = joined(db, SequenceDB.load(args.extra_tokens) if args.extra_tokens else None)
    groups = fold_groups(queries, lookup, args.folds)
    base = SearchOptions(exhaustive=True, threads=args.threads)
    print(f"{len(queries)} queries in {args.folds} groups of {', '.join(str(len(g)) for g in groups)}")
    print(f"| recipe | aa weight | {' | '.join(LEVELS)} |\n| --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for label, *files in args.set:
            results: dict[float, list] = {w: [] for w in args.weights}
            for g, held in enumerate(groups):
                out = set(held)
                kept = Path(tmp, f"{label}.{g}.aln")
                write_alignments(kept, (a for f in files for a in read_alignments(f)
                                        if a.name1 not in out and a.name2 not in out))
                matrix, report = learn_matrix(counted, [kept], args.min_tm, args.pseudocount, null_pairs=200)
                path = Path(tmp, f"{label}.{g}.out")
                write_matrix(path, matrix)
                print(f"  {label}, group {g}: {report.alignments} alignments, {report.pairs:,} close pairs", flush=True)
                for w in args.weights:
                    ranked, names = rank_by_search([args.db], held, path, options=replace(base, aa_weight=w))
                    results[w] += score_queries(ranked, lookup, names, "noselfhit")
            for w in args.weights:
                s = summarize(results[w])
                cells = " | ".join(f"{v:.3f} (n={n})" for v, n in zip(s.per_level, s.per_level_queries, strict=True))
                print(f"| {label} | {w:g} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
