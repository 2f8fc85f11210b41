"""Are the E-values honest? Mean number of false-positive hits per query with E <= x, against x.

Searches ``--queries`` against ``--db`` and counts, per query, hits to a labelled domain of another SCOP fold or to
an unlabelled entry (decoy) with E-value at most each threshold. For calibrated E-values the mean count per query
is about the threshold (somewhat below it, since some cross-fold hits are real, and E counts all chance hits).

Example::

    python benchmarks/evalue_calibration.py --db db3di --lookup lookup.tsv --queries bench.txt
"""

from __future__ import annotations

import argparse

import numpy as np

from ismtk.bench.scope40 import read_lookup
from ismtk.names import read_names
from ismtk.search.db import SequenceDB
from ismtk.search.search import Searcher, SearchOptions
from ismtk.workflows.search import open_input, resolve_matrix

THRESHOLDS = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True)
    parser.add_argument("--lookup", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--matrix", default=None)
    parser.add_argument("--mode", default="tokens", choices=["tokens", "aa"])
    parser.add_argument("--aa-weight", type=float, default=0.0, help="token + weight x BLOSUM62 (E-values fitted)")
    args = parser.parse_args()
    db, tokenizer = open_input([args.db], mode=args.mode)
    lookup = read_lookup(args.lookup)
    names = read_names(args.queries)
    index = {n: i for i, n in enumerate(db.names)}
    query = SequenceDB.from_records(
        ((n, db.token_seq(index[n]), db.aa_seq(index[n]) if db.aa is not None else None) for n in names), db.alphabet,
        db.tokenizer,
    )
    options = SearchOptions(trace=False, max_evalue=max(THRESHOLDS), max_seqs=len(db), aa_weight=args.aa_weight)
    searcher = Searcher(db, resolve_matrix(args.matrix, tokenizer, args.mode), options)
    counts = np.zeros(len(THRESHOLDS))
    for q, hits in zip(names, searcher.search(query), strict=True):
        fold = lookup[q].rsplit(".", 2)[0]
        for h in hits:
            label = lookup.get(db.names[h.target])
            if label is None or label.rsplit(".", 2)[0] != fold:
                counts += np.array([h.evalue <= t for t in THRESHOLDS])
    print(f"{args.matrix or 'default matrix'} ({args.mode}, aa weight {args.aa_weight:g}), {len(names)} queries vs "
          f"{len(db)} entries, "
          f"lambda {searcher.evd.lam:.4g}, K {searcher.evd.k:.4g}")
    for t, c in zip(THRESHOLDS, counts / len(names), strict=True):
        print(f"  E <= {t:g}: {c:.4f} false-positive hits per query")


if __name__ == "__main__":
    main()
