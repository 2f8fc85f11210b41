"""Probability that a hit is homologous, from its alignment score: a logistic model fitted per scoring scheme.

``P(homologous) = 1 / (1 + exp(-(a + b S + c S / min(m, n))))`` with ``S`` the reversed-query-corrected score (the
statistic that ranks hits; unlike bits it does not depend on E-value parameters fitted on the searched database)
and ``m``, ``n`` the query and target lengths (the shorter counted as at least :data:`MIN_FIT_LENGTH`): the score,
and the score per residue of the shorter chain (which tells a short, nearly complete match from a long, diluted
one; on the matrix-training domains it beat the score alone, the score with log lengths and the score per residue
alone, docs/benchmarks.md). ``a``, ``b``, ``c`` are
fitted by maximum likelihood (Newton's method on the logistic log-likelihood) on all-versus-all searches
of SCOPe domains, a pair being homologous when both are in the same superfamily and not homologous when their folds
differ (same fold, other superfamily: left out, as Foldseek's benchmark treats them as neither). The probability
therefore carries the share of homologs among that training search's pairs: a different database composition
shifts it (the ranking it gives does not change).

Fits are kept per scoring scheme, keyed as the shipped E-value fits are
(:meth:`ismtk.search.combined.TrackAligner.fit_key`: the weighted score tables of its tracks and the gap penalties,
so a matrix file gets the fit of the identical shipped matrix, and any weighted sum of tracks can have one). Those
shipped with ismtk are in ``ismtk/data/matrices/prob.json`` (how they were made: ``benchmarks/fit_prob.py``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ismtk.errors import InputError
from ismtk.search.matrix import MATRIX_DIR

__all__ = [
    "MIN_FIT_LENGTH",
    "PROB_FILE",
    "ProbFit",
    "find_fit",
    "fit_logistic",
    "prob_features",
    "read_fits",
    "write_fits",
]

#: The shipped fits.
PROB_FILE = MATRIX_DIR / "prob.json"


#: The shorter chain counts as at least this many residues: about the shortest of the domains the fits were made on
#: (1 % of the matrix-training domains are shorter). Below, the score per residue lies outside what the fits saw: chance
#: hits of 10-residue fragments to other folds got P >= 0.9, and the amino-acid fit's negative per-residue weight made
#: P fall as the score rose for chains under 14 residues.
MIN_FIT_LENGTH = 35


def prob_features(score: np.ndarray, qlen: np.ndarray, tlen: np.ndarray) -> np.ndarray:
    """``(n, 2)`` model inputs of ``(n,)`` corrected scores and chain lengths: ``S`` and ``S / min(m, n)``, the shorter
    length counted as at least :data:`MIN_FIT_LENGTH`."""
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    shorter = np.maximum(np.minimum(np.asarray(qlen).reshape(-1), np.asarray(tlen).reshape(-1)), MIN_FIT_LENGTH)
    return np.stack([score, score / shorter], axis=1)


def _logistic(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # 1 / (1 + exp(-z)), without overflow


@dataclass(frozen=True)
class ProbFit:
    """``P = 1 / (1 + exp(-(intercept + score * S + per_residue * S / min(m, n))))`` for one scoring scheme;
    ``name`` and ``fitted_on`` describe it, ``key`` is its :meth:`~ismtk.search.combined.TrackAligner.fit_key`."""

    name: str
    key: str
    intercept: float
    score: float
    per_residue: float
    fitted_on: str = ""

    def probability(self, score: np.ndarray, qlen: np.ndarray, tlen: np.ndarray) -> np.ndarray:
        """``(n,)`` ``P(homologous)`` of ``(n,)`` corrected scores and the query and target lengths."""
        return _logistic(self.intercept + prob_features(score, qlen, tlen) @ np.array([self.score, self.per_residue]))



def fit_logistic(features: np.ndarray, homologous: np.ndarray, iterations: int = 100) -> tuple[float, np.ndarray]:
    """Maximum-likelihood ``(a, w)`` of ``P(homologous) = 1 / (1 + exp(-(a + features @ w)))`` by Newton's method
    (iteratively reweighted least squares); ``features`` ``(n, k)``, ``homologous`` ``(n,) bool``.

    Needs both classes; features are standardised internally, so the Hessian stays well conditioned.
    """
    f = np.asarray(features, dtype=np.float64)
    f = f.reshape(len(f), -1)
    y = np.asarray(homologous, dtype=np.float64)
    if len(f) != len(y) or not len(y) or y.min() == y.max():
        raise InputError("a probability fit needs scores of both homologous and non-homologous pairs")
    centre, scale = f.mean(axis=0), f.std(axis=0)
    scale[scale == 0] = 1.0
    x = np.concatenate([np.ones((len(f), 1)), (f - centre) / scale], axis=1)
    w = np.zeros(x.shape[1])
    for _ in range(iterations):
        p = _logistic(x @ w)
        gradient = x.T @ (y - p)
        hessian = (x * (p * (1 - p))[:, None]).T @ x + 1e-9 * np.eye(len(w))
        step = np.linalg.solve(hessian, gradient)
        w += step
        if np.abs(step).max() < 1e-10:
            break
    weights = w[1:] / scale
    return float(w[0] - weights @ centre), weights


def read_fits(path: str | Path = PROB_FILE) -> list[ProbFit]:
    """The fits stored in a JSON list (default: the shipped ones)."""
    path = Path(path)
    try:
        rows = json.loads(path.read_text())
        return [ProbFit(**row) for row in rows]
    except (OSError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a list of probability fits ({exc})") from exc


def write_fits(path: str | Path, fits: list[ProbFit]) -> None:
    """Store fits as a JSON list (one object per fit)."""
    from ismtk.atomic import atomic_write

    with atomic_write(path, "w") as out:
        out.write(json.dumps([asdict(f) for f in fits], indent=1) + "\n")


def find_fit(key: str, scheme: str) -> ProbFit:
    """The shipped fit of the scoring scheme whose :meth:`~ismtk.search.combined.TrackAligner.fit_key` is ``key``;
    :class:`InputError` naming ``scheme`` (how the user asked for it) and the fitted schemes otherwise."""
    fits = read_fits()
    for fit in fits:
        if fit.key == key:
            return fit
    known = "; ".join(f.name for f in fits)
    raise InputError(f"column prob has no fit for {scheme}; fitted: {known or 'none'}")
