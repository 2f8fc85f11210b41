"""Fit the E-value parameters of multi-track scores on the matrix-training database and store them for ismtk.

A matrix header holds the parameters of its tokens alone; a score that adds tracks (the default tokens + 0.5 x
BLOSUM62, 3Di + ISM, ...) is otherwise fitted on each searched database, which is slow on large ones and rough on
small ones. For each ``--score`` this fits the parameters on random pairs of the ``--names`` entries of ``--db``
exactly as a search of those entries would (:func:`ismtk.search.evalue.fit_evd`) and stores them in ``--out`` under
the scheme's key (replacing a fit of the same scheme). Searches with exactly that scheme (same matrices, weights
and gaps) then use them (:func:`ismtk.search.evalue.shipped_evd`).

Example (the shipped fits; ``train_names.txt``: the 1,905 matrix-training entries, ``matrices/README.md``)::

    python benchmarks/fit_evd.py --db db_all --names train_names.txt \\
        --score 3di:1,aa:0.5 3di:1,ism:0.25 3di:1,ism:0.25,aa:0.5 3di:1,ism:1 3di:1,ism:1,aa:0.5 ism:1,aa:0.5 \\
        ism:1,ism-residual:1 ism:1,ism-residual:1,aa:0.5 3di:1,ism:0.25,ism-residual:0.25 \\
        3di:1,ism:0.25,ism-residual:0.25,aa:0.5 --out ismtk/data/matrices/evd.json
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ismtk.names import read_names
from ismtk.search.db import SequenceDB
from ismtk.search.evalue import DEFAULT_NULL_PAIRS, EVD_FILE, fit_evd, read_evd_fits, write_evd_fits
from ismtk.search.search import Searcher, SearchOptions
from ismtk.tokenizers import tokenizer_for
from ismtk.workflows.search import resolve_matrix, with_score


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="database folder (createdb) holding every track of the scores")
    parser.add_argument("--names", required=True, help="the entries to fit on (never benchmark domains)")
    parser.add_argument("--score", nargs="+", required=True, help="scores as for 'ismtk search --score'")
    parser.add_argument("--out", default=str(EVD_FILE))
    args = parser.parse_args()

    db = SequenceDB.load(args.db)
    db = db.named(read_names(args.names))
    fits = read_evd_fits(args.out) if Path(args.out).is_file() else {}
    for text in args.score:
        start = time.perf_counter()
        options, matrices = with_score(SearchOptions(), text, db)
        searcher = Searcher(db, resolve_matrix(None, tokenizer_for(db.tokenizer)), options, matrices=matrices)
        # the searcher fitted them on db unless they are shipped already: then fit again, the same way
        params = searcher.evd if searcher.evd_fitted else fit_evd(searcher.scorer, db)
        key = searcher.scorer.fit_key()
        fits[key] = {
            "name": f"--score {text}, gaps {params.gap_open}/{params.gap_extend}",
            "fitted_on": f"{DEFAULT_NULL_PAIRS} random pairs of {len(db):,} entries of {args.db} ({args.names})",
            "gap_open": params.gap_open,
            "gap_extend": params.gap_extend,
            "lambda": params.lam,
            "k": params.k,
        }
        print(f"{text}: key {key}, lambda {params.lam:.6g}, K {params.k:.6g} ({time.perf_counter() - start:.0f} s)")
    write_evd_fits(args.out, fits)
    print(f"{len(fits)} fits -> {args.out}")


if __name__ == "__main__":
    main()
