"""E-values of Smith-Waterman scores from an extreme-value (Gumbel) distribution fitted per matrix.

Local alignment scores of unrelated sequences of lengths ``m`` and ``n`` follow
``P(S >= x) = 1 - exp(-K m n exp(-lambda x))`` (Karlin & Altschul 1990; for gapped alignments with fitted
``lambda`` and ``K``, Altschul & Gish 1996). Foldseek subtracts the reversed-query score; the upper tail of that
corrected score keeps the same exponential form, so the same two parameters are fitted to corrected scores.

Null scores are the corrected scores of random pairs of real database sequences, exactly the statistic a search
ranks (not sequences against reversed sequences: reversal destroys the ordered motifs that unrelated real folds
share, which makes the tail too steep; docs/search.md); the lower half is treated as censored so only the tail
shapes the fit. The few homologous pairs among random pairs make the fit slightly conservative.

A matrix file's header holds the parameters of its tokens alone. Scores that add tracks (tokens + 0.5 x BLOSUM62,
3Di + ISM, ...) get theirs from ``ismtk/data/matrices/evd.json`` when ismtk ships a fit for that exact scheme
(:func:`shipped_evd`, keyed by :meth:`ismtk.search.combined.TrackAligner.fit_key`; made on the matrix-training
database by ``benchmarks/fit_evd.py``); other schemes are fitted on the searched database.
"""

from __future__ import annotations

import json
import math
from functools import cache
from pathlib import Path

import numpy as np

from ismtk.atomic import atomic_write
from ismtk.errors import InputError, TooFewToFit
from ismtk.search.align import Aligner
from ismtk.search.combined import TrackAligner
from ismtk.search.db import SequenceDB
from ismtk.search.matrix import MATRIX_DIR, EvdParams

__all__ = [
    "DEFAULT_NULL_PAIRS",
    "EVD_FILE",
    "bit_score",
    "evalue",
    "fit_evd",
    "fit_gumbel",
    "null_scores",
    "read_evd_fits",
    "shipped_evd",
    "write_evd_fits",
]

#: Random sequence pairs scored to fit the extreme-value distribution.
DEFAULT_NULL_PAIRS = 4000
#: Where the fit looks for lambda (per score unit): ISM's wide scores fit at about 0.02, BLOSUM62's at 0.23.
_LAMBDA_RANGE = (1e-6, 10.0)
#: The shipped fits of multi-track scores.
EVD_FILE = MATRIX_DIR / "evd.json"
_EVD_FORMAT = "ismtk-evd/1"


def evalue(score: np.ndarray | float, query_length: int, db_residues: int, params: EvdParams) -> np.ndarray:
    """Expected number of chance hits scoring at least ``score``: ``K m N exp(-lambda S)`` (``N`` = DB residues)."""
    s = np.asarray(score, dtype=np.float64)
    return params.k * query_length * db_residues * np.exp(-params.lam * s)


def bit_score(score: np.ndarray | float, params: EvdParams) -> np.ndarray:
    """Normalised score in bits: ``(lambda S - ln K) / ln 2``."""
    return (params.lam * np.asarray(score, dtype=np.float64) - math.log(params.k)) / math.log(2)


def fit_gumbel(
    scores: np.ndarray, query_lengths: np.ndarray, target_lengths: np.ndarray, censor_quantile: float = 0.5
) -> tuple[float, float]:
    """Maximum-likelihood ``(lambda, K)`` of ``P(S >= x) = 1 - exp(-K m n e^{-lambda x})``, left-censored.

    Scores below the ``censor_quantile`` quantile ``c`` only count as "below ``c``" (likelihood
    ``exp(-K m n e^{-lambda c})``). For fixed lambda the best K is closed-form,
    ``K = n_tail / sum_i m_i n_i e^{-lambda y_i}`` (``y_i`` = score or ``c``); lambda is found by golden-section search.
    All arrays are ``(n,)``.
    """
    x = np.asarray(scores, dtype=np.float64)
    mn = np.asarray(query_lengths, dtype=np.float64) * np.asarray(target_lengths, dtype=np.float64)
    c = float(np.quantile(x, censor_quantile))
    tail = x > c
    if tail.sum() < 20:
        raise TooFewToFit(f"too few distinct null scores ({tail.sum()} above the censoring point) to fit an EVD")
    y = np.where(tail, x, c)
    n_tail = tail.sum()
    log_mn = np.log(mn)
    log_mn_tail = log_mn[tail].sum()

    def log_likelihood(lam: float) -> tuple[float, float]:
        exponent = log_mn - lam * y  # log of sum_i m_i n_i e^{-lambda y_i}, computed as a stable log-sum-exp
        top = exponent.max()
        log_k = math.log(n_tail) - (top + math.log(np.exp(exponent - top).sum()))
        return n_tail * (math.log(lam) + log_k) + log_mn_tail - lam * x[tail].sum() - n_tail, log_k

    bounds = lo, hi = math.log(_LAMBDA_RANGE[0]), math.log(_LAMBDA_RANGE[1])  # golden-section search on ln lambda
    ratio = (math.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    for _ in range(90):
        if log_likelihood(math.exp(a))[0] > log_likelihood(math.exp(b))[0]:
            hi, b = b, a
            a = hi - ratio * (hi - lo)
        else:
            lo, a = a, b
            b = lo + ratio * (hi - lo)
    if min(abs(lo - bounds[0]), abs(hi - bounds[1])) < 1e-6:
        raise TooFewToFit(f"the E-value fit ran into the edge of lambda's range {_LAMBDA_RANGE} (a score scale this "
                          "wide or narrow is not one of a substitution matrix in half-bits)")
    lam = math.exp((lo + hi) / 2)
    return lam, math.exp(log_likelihood(lam)[1])


def null_scores(
    aligner: Aligner | TrackAligner,
    db: SequenceDB,
    pairs: int = DEFAULT_NULL_PAIRS,
    seed: int = 0,
    comp_bias: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Corrected scores of ``pairs`` random (sequence, other sequence) pairs of ``db``; with ``comp_bias`` > 0
    (a :class:`TrackAligner` only) the queries' scores are composition-bias corrected at that scale, with ``db``'s
    background, as a search does.

    Returns ``(scores, query_lengths, target_lengths)``, each ``(pairs,)``.
    """
    if len(db) < 2:
        raise TooFewToFit("fitting E-value statistics needs at least 2 sequences")
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(db), pairs)
    second = (first + rng.integers(1, len(db), pairs)) % len(db)
    scores = np.empty(pairs, dtype=np.float64)
    background = aligner.background(db) if comp_bias > 0 else None
    for k, (i, j) in enumerate(zip(first, second, strict=True)):
        query = aligner.query(db, i)
        if background is None:
            scores[k] = aligner.score(query, aligner.target(db, j))[1]
        else:
            bias = aligner.tracks.composition_bias(query, background, comp_bias)
            scores[k] = aligner.score(query, aligner.target(db, j), bias)[1]
    lengths = db.lengths()
    return scores, lengths[first], lengths[second]


def fit_evd(
    aligner: Aligner | TrackAligner,
    db: SequenceDB,
    pairs: int = DEFAULT_NULL_PAIRS,
    seed: int = 0,
    comp_bias: float = 0.0,
) -> EvdParams:
    """Fit the E-value parameters of ``aligner`` (matrix, amino-acid term, gaps, composition bias) on null pairs
    drawn from ``db``."""
    lam, k = fit_gumbel(*null_scores(aligner, db, pairs, seed, comp_bias))
    return EvdParams(aligner.gap_open, aligner.gap_extend, lam, k, corrected=True)


def read_evd_fits(path: str | Path = EVD_FILE) -> dict[str, dict]:
    """The fits of an ``evd.json`` by key: ``{"name", "fitted_on", "gap_open", "gap_extend", "lambda", "k"}``."""
    try:
        data = json.loads(Path(path).read_text())
        if data.get("format") != _EVD_FORMAT:
            raise ValueError(f"format is {data.get('format')!r}")
        return {fit["key"]: fit for fit in data["fits"]}
    except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
        raise InputError(f"{path}: not an E-value fit file ({_EVD_FORMAT}): {exc}") from exc


def write_evd_fits(path: str | Path, fits: dict[str, dict]) -> None:
    """Write ``fits`` (as :func:`read_evd_fits` returns them) to ``path``, sorted by key, atomically."""
    rows = [{"key": key} | {k: v for k, v in fit.items() if k != "key"} for key, fit in sorted(fits.items())]
    with atomic_write(path) as handle:
        handle.write(json.dumps({"format": _EVD_FORMAT, "fits": rows}, indent=1) + "\n")


@cache
def _shipped() -> dict[str, EvdParams]:
    if not EVD_FILE.is_file():
        return {}
    return {
        key: EvdParams(fit["gap_open"], fit["gap_extend"], fit["lambda"], fit["k"], corrected=True)
        for key, fit in read_evd_fits(EVD_FILE).items()
    }


def shipped_evd(key: str) -> EvdParams | None:
    """The shipped E-value parameters of the scoring scheme with :meth:`TrackAligner.fit_key` ``key``, if any."""
    return _shipped().get(key)
