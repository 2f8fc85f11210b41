"""Fit the ``prob`` column's logistic curve on the matrix-training domains and check its calibration on the bench.

Searches the ``--train`` domains all-versus-all (no E-value cut-off, self-hits left out), labels each pair
homologous (same SCOP superfamily) or not (different fold; same fold, other superfamily: left out), fits
``P = 1 / (1 + exp(-(a + b S + c S / min(m, n))))`` on the corrected scores S and lengths m, n
(:mod:`ismtk.search.prob`) and stores the fit
in ``--out`` (added to, or replacing the fit of the same scoring scheme). Then searches the ``--bench`` domains
all-versus-all the same way and prints a reliability table: pairs binned by predicted probability, their mean
prediction against the observed share of homologs, over all pairs and over those a default search reports
(E <= 10).

Example (the shipped fits, ``docs/benchmarks.md``)::

    python benchmarks/fit_prob.py --db db3di --lookup lookup.tsv --train train.txt --bench bench.txt \\
        --name "3Di (3di.out)" --out ismtk/data/matrices/prob.json
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np

from ismtk.bench.scope40 import read_lookup, read_names
from ismtk.search.db import SequenceDB
from ismtk.search.matrix import load_matrix
from ismtk.search.prob import (
    PROB_FILE,
    ProbFit,
    fit_logistic,
    prob_features,
    read_fits,
    write_fits,
)
from ismtk.search.search import Searcher, SearchOptions, column_scorer
from ismtk.workflows.search import with_score

BINS = (0.0, 0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0)


def labelled_scores(db: SequenceDB, names: list[str], lookup: dict[str, str], options: SearchOptions, matrix,
                    matrices=None):
    """(corrected scores, query lengths, target lengths, homologous?, E-values) of every labelled ordered pair of
    ``names`` (self-pairs left out)."""
    index = {n: i for i, n in enumerate(db.names)}
    part = db.select([index[n] for n in names])
    lengths = part.lengths()
    searcher = Searcher(part, matrix, options, matrices=matrices)
    scores, labels, evalues, pair_lengths = [], [], [], []
    for i, hits in enumerate(searcher.search(part)):
        q = lookup[names[i]].split(".")
        for h in hits:
            if h.target == i:
                continue
            t = lookup[names[h.target]].split(".")
            if q[:3] == t[:3]:
                labels.append(True)
            elif q[:2] != t[:2]:
                labels.append(False)
            else:
                continue
            scores.append(h.score)
            evalues.append(h.evalue)
            pair_lengths.append((lengths[i], lengths[h.target]))
    qlen, tlen = np.array(pair_lengths, np.int64).reshape(-1, 2).T
    return np.array(scores, float), qlen, tlen, np.array(labels, bool), np.array(evalues, float)


def reliability(prob: np.ndarray, homologous: np.ndarray) -> list[str]:
    rows = ["| predicted | pairs | homologous | mean predicted | observed |", "| --- | --- | --- | --- | --- |"]
    for lo, hi in itertools.pairwise(BINS):
        inside = (prob >= lo) & ((prob < hi) if hi < 1 else (prob <= hi))
        if inside.any():
            rows.append(
                f"| {lo:g}-{hi:g} | {inside.sum():,} | {homologous[inside].sum():,} | "
                f"{prob[inside].mean():.3f} | {homologous[inside].mean():.3f} |"
            )
    brier = float(np.mean((prob - homologous) ** 2))
    rows.append(f"Brier score {brier:.5f} over {len(prob):,} pairs ({homologous.sum():,} homologous)")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", required=True, help="database holding the train and bench domains")
    parser.add_argument("--lookup", required=True, help="sid<TAB>sccs")
    parser.add_argument("--train", required=True, help="names the fit is made on (matrix_train)")
    parser.add_argument("--bench", required=True, help="names the calibration is checked on (bench)")
    parser.add_argument("--name", required=True, help="name of the scoring scheme in the fit file")
    parser.add_argument("--matrix", default=None)
    parser.add_argument("--mode", default="tokens", choices=["tokens", "aa"])
    parser.add_argument("--aa-weight", type=float, default=0.0)
    parser.add_argument("--score", help="a multi-track --score of the database's tracks (e.g. 3di:1,ism:0.25,aa:0.5)")
    parser.add_argument("--gap-open", type=int, default=10)
    parser.add_argument("--gap-extend", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(PROB_FILE), help="fit file to add the fit to")
    args = parser.parse_args()
    db = SequenceDB.load(args.db)
    if args.mode == "aa":
        db = db.as_amino_acids()
    lookup = read_lookup(args.lookup)
    matrix = load_matrix(args.matrix, db.tokenizer)
    options = SearchOptions(
        gap_open=args.gap_open,
        gap_extend=args.gap_extend,
        max_evalue=float("inf"),
        max_seqs=len(db),
        trace=False,
        aa_weight=args.aa_weight,
        threads=args.threads,
    )
    options, matrices = with_score(options, args.score, db)
    start = time.perf_counter()
    train, bench = read_names(args.train), read_names(args.bench)
    scores, qlen, tlen, homologous, _ = labelled_scores(db, train, lookup, options, matrix, matrices)
    intercept, (by_score, per_residue) = fit_logistic(prob_features(scores, qlen, tlen), homologous)
    fit = ProbFit(
        args.name,
        column_scorer(db, matrix, options, matrices=matrices)[0].fit_key(),
        intercept,
        float(by_score),
        float(per_residue),
        f"scope40_dev matrix_train, {len(train)} domains all-vs-all: {homologous.sum():,} same-"
        f"superfamily vs {(~homologous).sum():,} different-fold pairs",
    )
    fits = [f for f in read_fits(args.out) if f.key != fit.key] if Path(args.out).is_file() else []
    write_fits(args.out, [*fits, fit])
    print(
        f"{args.name}: intercept {intercept:.4f}, score {by_score:.5f}, score per residue {per_residue:.4f} "
        f"({time.perf_counter() - start:.0f} s); {fit.fitted_on} -> {args.out}"
    )
    print("train (fit) pairs:")
    print("\n".join(reliability(fit.probability(scores, qlen, tlen), homologous)))
    scores, qlen, tlen, homologous, evalues = labelled_scores(db, bench, lookup, options, matrix, matrices)
    for label, keep in (("all pairs", np.ones(len(scores), bool)), ("pairs with E <= 10", evalues <= 10)):
        print(f"bench ({len(bench)} domains all-vs-all), {label}:")
        print("\n".join(reliability(fit.probability(scores[keep], qlen[keep], tlen[keep]), homologous[keep])))


if __name__ == "__main__":
    main()
