"""Hits judged in 3D on the SCOPe40 bench: ranking by TM-score vs by the token score, the time it adds, and what
storing coordinates on a 16-bit grid changes.

Setting A of ``docs/benchmarks.md``: the ``--queries`` against the whole ``--db`` (decoys included), exhaustive
token search keeping the ``--max-seqs`` best hits per query with their Smith-Waterman alignments. Those hits are then

* ranked by the token score (as ``ismtk benchmark scope40``; also over all hits, no ``--max-seqs`` cut);
* re-ranked by ``alntmscore``, ``qtmscore`` or ``lddt`` of their Smith-Waterman alignments (``--sort-by``);
* realigned with TM-align (``--alignment-type tmalign``) and re-ranked by ``alntmscore`` or ``qtmscore``.

Each ranking is scored with Foldseek's sensitivity up to the first false positive (:func:`ismtk.bench.scope40.
score_queries`, both variants) and the seconds per hit of each column (and of TM-align) are printed. With
``--structures``, the 3D columns of the first ``--precision-queries`` queries' hits are recomputed from the float32
coordinates of the structure files, and from float16 ones, and the largest differences to the stored
(int16-grid) coordinates' values are printed.

Example::

    python benchmarks/scope40_3d.py --db db3di --lookup lookup.tsv --queries bench.txt --max-seqs 100 \\
        --structures $D/scope40_dev/pdb $D/cath2738/pdb -o scope40_3d
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from ismtk.bench.scope40 import LEVELS, read_lookup, read_names, score_queries, summarize
from ismtk.search.db import SequenceDB
from ismtk.search.hit3d import HitGeometry, tmalign_hit
from ismtk.search.matrix import load_matrix
from ismtk.search.pairs import read_chains
from ismtk.search.search import Searcher, SearchOptions
from ismtk.structure.read import find_structure_files

PRECISION_COLUMNS = ("lddt", "alntmscore", "qtmscore", "ttmscore", "rmsd")


def load() -> str:
    return "load average " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def geometry(query: SequenceDB, target: SequenceDB, hit, coords=None) -> HitGeometry:
    """The hit's geometry on the stored coordinates, or on ``coords`` (name -> (L, 3)) when given."""
    if coords is None:
        q, t = query.ca_coords(hit.query), target.ca_coords(hit.target)
    else:
        q, t = coords[query.names[hit.query]], coords[target.names[hit.target]]
    return HitGeometry(q, t, hit.alignment.pairs, hit.alignment.columns)


def rank(hits, order: list[np.ndarray], query: SequenceDB, target: SequenceDB) -> dict[str, list[str]]:
    return {query.names[i]: [target.names[hits[i][k].target] for k in o] for i, o in enumerate(order)}


def by(values: list[np.ndarray], ascending: bool = False) -> list[np.ndarray]:
    """Per query, hit order by value (best first; ties keep the token order)."""
    return [np.argsort(v if ascending else -v, kind="stable") for v in values]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="database made by createdb (with coordinates)")
    parser.add_argument("--lookup", required=True)
    parser.add_argument("--queries", required=True)
    parser.add_argument("--max-seqs", type=int, default=100)
    parser.add_argument("--structures", nargs="*", default=[], help="the database's structure files (precision check)")
    parser.add_argument("--precision-queries", type=int, default=40)
    parser.add_argument("--no-tmalign", action="store_true", help="skip the TM-align realignment")
    parser.add_argument("-o", "--out-dir", required=True)
    args = parser.parse_args()
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    db = SequenceDB.load(args.db)
    lookup = read_lookup(args.lookup)
    index = {n: i for i, n in enumerate(db.names)}
    query = db.select([index[n] for n in read_names(args.queries)])
    matrix = load_matrix(None, db.tokenizer)
    print(f"{len(query)} queries x {len(db)} entries, --max-seqs {args.max_seqs}; {load()}", flush=True)

    start = time.perf_counter()
    full = list(
        Searcher(db, matrix, SearchOptions(max_evalue=float("inf"), max_seqs=len(db), trace=False)).search(query)
    )
    print(f"token search, all hits, no traceback: {time.perf_counter() - start:.1f} s", flush=True)
    start = time.perf_counter()
    options = SearchOptions(max_evalue=float("inf"), max_seqs=args.max_seqs, trace=True)
    hits = list(Searcher(db, matrix, options).search(query))
    n_hits = sum(len(h) for h in hits)
    print(f"token search, top {args.max_seqs} traced: {time.perf_counter() - start:.1f} s, {n_hits:,} hits", flush=True)

    rankings = {
        "token score, all hits": rank(full, [np.arange(len(h)) for h in full], query, db),
        f"token score, top {args.max_seqs}": rank(hits, [np.arange(len(h)) for h in hits], query, db),
    }
    seconds: dict[str, float] = {}
    values: dict[str, list[np.ndarray]] = {
        c: [] for c in ("alntmscore", "qtmscore", "lddt", "tm_alntmscore", "tm_qtmscore")
    }
    for name in ("alntmscore", "qtmscore", "lddt"):
        start = time.perf_counter()
        for query_hits in hits:
            values[name].append(np.array([geometry(query, db, h).value(name) for h in query_hits]))
        seconds[f"{name} (Smith-Waterman alignment)"] = time.perf_counter() - start
        rankings[f"SW alignment, --sort-by {name}"] = rank(hits, by(values[name]), query, db)
        print(
            f"{name}: {1e3 * seconds[f'{name} (Smith-Waterman alignment)'] / n_hits:.2f} ms/hit; {load()}", flush=True
        )
    if not args.no_tmalign:
        realign = score = 0.0
        for query_hits in hits:
            t0 = time.perf_counter()
            realigned = [tmalign_hit(h, query, db) for h in query_hits]
            t1 = time.perf_counter()
            geometries = [geometry(query, db, h) for h in realigned]
            values["tm_alntmscore"].append(np.array([g.alntmscore for g in geometries]))
            values["tm_qtmscore"].append(np.array([g.qtmscore for g in geometries]))
            realign, score = realign + t1 - t0, score + time.perf_counter() - t1
        seconds["TM-align realignment"], seconds["alntmscore + qtmscore of the TM-align alignment"] = realign, score
        print(
            f"TM-align: {1e3 * realign / n_hits:.2f} ms/hit, its two TM-scores {1e3 * score / n_hits:.2f} ms/hit; "
            f"{load()}",
            flush=True,
        )
        rankings["TM-align, --sort-by alntmscore"] = rank(hits, by(values["tm_alntmscore"]), query, db)
        rankings["TM-align, --sort-by qtmscore"] = rank(hits, by(values["tm_qtmscore"]), query, db)
    np.savez_compressed(out / "values.npz", **{k: np.concatenate(v) for k, v in values.items() if v})

    print("\nsensitivity up to the 1st FP (setting A):")
    for variant in ("noselfhit", "selfhit"):
        print(f"| ranking ({variant}) | " + " | ".join(LEVELS) + " |\n| --- | --- | --- | --- |")
        for label, ranked in rankings.items():
            s = summarize(score_queries(ranked, lookup, db.names, variant))
            print(
                f"| {label} | "
                + " | ".join(f"{v:.3f} (n={n})" for v, n in zip(s.per_level, s.per_level_queries, strict=True))
                + " |"
            )
    print("\nseconds per hit:")
    for label, total in seconds.items():
        print(f"| {label} | {1e3 * total / n_hits:.2f} ms |")

    if args.structures:
        chains = read_chains(find_structure_files(args.structures))
        exact = {n: chains[n][0].astype(np.float64) for n in db.names}
        half = {n: c.astype(np.float16).astype(np.float64) for n, c in exact.items()}
        worst = {enc: dict.fromkeys((*PRECISION_COLUMNS, "u", "t"), 0.0) for enc in ("int16 grid", "float16")}
        checked = 0
        for query_hits in hits[: args.precision_queries]:
            for h in query_hits:
                reference = geometry(query, db, h, exact)
                for enc, coords in (("int16 grid", None), ("float16", half)):
                    g = geometry(query, db, h, coords)
                    for c in PRECISION_COLUMNS:
                        worst[enc][c] = max(worst[enc][c], abs(g.value(c) - reference.value(c)))
                    for k, c in enumerate(("u", "t")):
                        diff = np.abs(g.target_onto_query[k] - reference.target_onto_query[k]).max()
                        worst[enc][c] = max(worst[enc][c], float(diff))
                checked += 1
        print(f"\nlargest difference to float32 coordinates over {checked:,} hits of {args.precision_queries} queries:")
        print("| stored as | " + " | ".join((*PRECISION_COLUMNS, "u", "t")) + " |")
        for enc, row in worst.items():
            print(f"| {enc} | " + " | ".join(f"{v:.4f}" for v in row.values()) + " |")


if __name__ == "__main__":
    main()
