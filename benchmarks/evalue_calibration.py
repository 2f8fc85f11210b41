"""Are the E-values honest? Mean number of false-positive hits per query with E <= x, against x.

Searches ``--queries`` against ``--db`` and counts, per query, hits to a labelled domain of another SCOP fold or to
an unlabelled entry (decoy) with E-value at most each threshold. For calibrated E-values the mean count per query
is about the threshold (somewhat below it, since some cross-fold hits are real, and E counts all chance hits).

Example::

    python benchmarks/evalue_calibration.py --db db3di --lookup lookup.tsv --queries bench.txt
    python benchmarks/evalue_calibration.py --db db_all --lookup lookup.tsv --queries bench.txt \
        --score 3di:1,ism:0.25,ism-residual:0.25,aa:0.5
"""

from __future__ import annotations

import argparse

import numpy as np

from ismtk.bench.scope40 import read_lookup
from ismtk.names import read_names
from ismtk.search.search import Searcher, SearchOptions
from ismtk.workflows.search import open_input, resolve_matrix, with_score

THRESHOLDS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--lookup", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--matrix", default=None)
    parser.add_argument("--mode", default="tokens", choices=["tokens", "aa"])
    parser.add_argument("--aa-weight", type=float, default=0.0, help="token + weight x BLOSUM62 (E-values fitted)")
    parser.add_argument("--score", help="a --score text instead of --aa-weight (a database holding its tracks)")
    args = parser.parse_args()
    db, tokenizer = open_input([args.db], mode=args.mode)
    lookup = read_lookup(args.lookup)
    names = read_names(args.queries)
    query = db.named(names)
    options = SearchOptions(trace=False, max_evalue=max(THRESHOLDS), max_seqs=len(db), aa_weight=args.aa_weight)
    options, matrices = with_score(options, args.score, db)
    searcher = Searcher(db, resolve_matrix(args.matrix, tokenizer, args.mode), options, matrices=matrices)
    counts = np.zeros(len(THRESHOLDS))
    for q, hits in zip(names, searcher.search(query), strict=True):
        fold = lookup[q].rsplit(".", 2)[0]
        for h in hits:
            label = lookup.get(db.names[h.target])
            if label is None or label.rsplit(".", 2)[0] != fold:
                counts += np.array([h.evalue <= t for t in THRESHOLDS])
    scheme = args.score or f"{args.mode}, aa weight {args.aa_weight:g}"
    source = "fitted for this database" if searcher.evd_fitted else "shipped"
    print(f"{args.matrix or 'default matrix'} ({scheme}), {len(names)} queries vs {len(db)} entries, "
          f"lambda {searcher.evd.lam:.4g}, K {searcher.evd.k:.4g} ({source})")
    for t, c in zip(THRESHOLDS, counts / len(names), strict=True):
        print(f"  E <= {t:g}: {c:.4f} false-positive hits per query")


if __name__ == "__main__":
    main()
