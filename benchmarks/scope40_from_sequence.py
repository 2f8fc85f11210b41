"""Structure search from sequence alone on scope40_dev: tokens predicted by a structure-tuned ESM2 vs amino acids.

The bench queries' amino acids (taken from the database, which was made from structures) go through the
predictor's head for the database's tokenizer; the predicted token strings are searched against the true
structure tokens of the whole database. Beside them: amino-acid Smith-Waterman (BLOSUM62) of the same
queries, and the queries' true structure tokens (the ceiling of a perfect predictor). Prints the
noselfhit/selfhit tables and writes per-query files to ``--out-dir``.

    python benchmarks/scope40_from_sequence.py --db db3di --lookup lookup.tsv --queries bench.txt \\
        --predictor run/export --out-dir seq_report
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ismtk.bench.scope40 import LEVELS, rank_by_search, read_lookup, write_report
from ismtk.names import read_names
from ismtk.plm.predict import predicted_db
from ismtk.search.search import SearchOptions
from ismtk.workflows.search import open_input


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True, help="token database made from structures (createdb)")
    ap.add_argument("--lookup", required=True)
    ap.add_argument("--queries", required=True)
    ap.add_argument("--predictor", required=True, help="structure-tune export folder (model + heads.pt)")
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    db, tokenizer = open_input([args.db])
    queries = read_names(args.queries)
    index = {n: i for i, n in enumerate(db.names)}
    options = SearchOptions(exhaustive=True, threads=args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        fasta = Path(tmp) / "queries.fasta"
        fasta.write_text("".join(f">{q}\n{db.aa_seq(index[q])}\n" for q in queries))
        predicted = predicted_db(fasta, args.predictor, tokenizer)
    agree = sum(int((predicted.token_seq(k) == db.token_seq(index[q])).sum()) for k, q in enumerate(queries))
    print(f"predicted tokens equal the structure's at {agree / predicted.residues:.3f} of {predicted.residues:,} "
          "residues")

    ranked, names = {}, []
    for label, kwargs in {
        f"{db.tokenizer} predicted from sequence": dict(query_db=predicted),
        "amino acids, BLOSUM62": dict(queries=queries, mode="aa"),
        f"{db.tokenizer} from the structure (ceiling)": dict(queries=queries),
    }.items():
        ranked[label], names = rank_by_search([args.db], options=options, **kwargs)
    summaries = write_report(args.out_dir, read_lookup(args.lookup), ranked, names)
    for variant, rows in summaries.items():
        print(f"\n{len(queries)} queries vs {len(names)} entries ({variant})\n")
        print("| method | " + " | ".join(LEVELS) + " |\n| --- | --- | --- | --- |")
        for method, s in rows.items():
            cells = (f"{v:.3f} (n={n})" for v, n in zip(s.per_level, s.per_level_queries, strict=True))
            print(f"| {method} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
