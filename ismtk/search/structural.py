"""Geometry of aligned C-alpha pairs: superposition, RMSD, TM-score and LDDT.

Superposition and TM-score take the coordinates of the aligned pairs: ``x`` ``(n, 3)`` (query residues) and ``y``
``(n, 3)`` (the target residues they are aligned with), row k of each being one aligned pair; LDDT takes whole
chains and the aligned index pairs.

* **Superposition** (Kabsch 1976): the rotation ``u`` and translation ``t`` minimising ``sum_k |u x_k + t - y_k|^2``,
  from the SVD of the covariance of the centred pairs, with the sign fix that keeps ``det(u) = +1``.
* **TM-score** (Zhang & Skolnick 2004, Proteins 57:702): ``TM = max_{u,t} (1 / L) sum_k 1 / (1 + (d_k / d0(L))^2)``
  with ``d_k = |u x_k + t - y_k|`` and ``d0(L) = 1.24 (L - 15)^(1/3) - 1.8`` (at least 0.5 A) for the normalising
  length ``L``. The maximum is searched as in their TM-score program: superpose on seed fragments of the aligned
  pairs (lengths n, n/2, n/4, ... down to 4, starting every quarter fragment length; for at most 16 pairs also every
  three of them, the best three refined), then repeatedly re-superpose
  on the pairs closer than ``d0_search = clip(d0, 4.5, 8)`` A (the cut-off grows by 0.5 A while fewer than 3 pairs
  pass) until the set stops changing (at most 20 rounds), keeping the best score met on the way.
* **LDDT** (Mariani et al. 2013, Bioinformatics 29:2722), with the query as the reference: the neighbours of an
  aligned query residue are the query residues within 15 A of it; each neighbour distance counts as preserved when
  the neighbour is aligned too and the target's distance between the two partners differs by less than 0.5, 1, 2
  or 4 A; the residue's score is the fraction preserved, averaged over the four thresholds. Superposition-free.

Kernels are compiled with numba and release the GIL.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ismtk.compiled import jit

__all__ = [
    "LDDT_RADIUS",
    "LDDT_THRESHOLDS",
    "Superposition",
    "kabsch",
    "lddt",
    "rmsd",
    "tm_d0",
    "tm_score",
    "tm_superpose",
]

#: Neighbours of a residue for LDDT: other residues within this distance (A) in the reference (the query).
LDDT_RADIUS = 15.0
#: A reference distance is preserved at a threshold when the target's differs by less than it (A).
LDDT_THRESHOLDS = (0.5, 1.0, 2.0, 4.0)
#: Shortest seed fragment and most refinement rounds of the TM-score search (the TM-score program's values).
_MIN_SEED = 4
_ROUNDS = 20
#: Alignments of at most this many pairs also seed from every three of them: few pairs leave the fragments few
#: starts, and a short alignment's small d0 rewards the superposition of its best few pairs.
_ALL_TRIPLES = 16
#: The selection cut-off stops growing here (A), whatever the distances (guards against non-finite input).
_MAX_CUTOFF = 1e4


@dataclass(frozen=True)
class Superposition:
    """``y ~ x @ u.T + t``: ``u`` ``(3, 3)`` rotation, ``t`` ``(3,)`` translation, and the TM-score it reaches."""

    u: np.ndarray
    t: np.ndarray
    tm_score: float


@jit
def _jacobi_top(a):  # pragma: no cover - numba
    """Unit eigenvector of the largest eigenvalue of a symmetric ``(4, 4)`` matrix (cyclic Jacobi rotations)."""
    a = a.copy()
    v = np.eye(4)
    for _sweep in range(50):
        off = 0.0
        for p in range(3):
            for q in range(p + 1, 4):
                off += a[p, q] * a[p, q]
        if off < 1e-30 * (1.0 + np.abs(a).max() ** 2):
            break
        for p in range(3):
            for q in range(p + 1, 4):
                if a[p, q] == 0.0:
                    continue
                theta = (a[q, q] - a[p, p]) / (2.0 * a[p, q])
                tan = (1.0 if theta >= 0 else -1.0) / (abs(theta) + np.sqrt(theta * theta + 1.0))
                cos = 1.0 / np.sqrt(tan * tan + 1.0)
                sin = tan * cos
                for k in range(4):  # columns p, q of a @ J
                    akp, akq = a[k, p], a[k, q]
                    a[k, p], a[k, q] = cos * akp - sin * akq, sin * akp + cos * akq
                for k in range(4):  # rows p, q of J.T @ (a @ J)
                    apk, aqk = a[p, k], a[q, k]
                    a[p, k], a[q, k] = cos * apk - sin * aqk, sin * apk + cos * aqk
                for k in range(4):
                    vkp, vkq = v[k, p], v[k, q]
                    v[k, p], v[k, q] = cos * vkp - sin * vkq, sin * vkp + cos * vkq
    best = 0
    for k in range(1, 4):
        if a[k, k] > a[best, best]:
            best = k
    return v[:, best]


@jit
def _kabsch(x, y, rows, n):  # pragma: no cover - numba
    """Least-squares rotation and translation of ``x[rows[:n]]`` onto ``y[rows[:n]]`` (``(., 3) float64``, n >= 1),
    solved with the unit quaternion of Horn (1987): the top eigenvector of a ``4 x 4`` matrix of their covariance."""
    cx = np.zeros(3)
    cy = np.zeros(3)
    for r in range(n):
        k = rows[r]
        for a in range(3):
            cx[a] += x[k, a]
            cy[a] += y[k, a]
    cx /= n
    cy /= n
    s = np.zeros((3, 3))  # s[a, b] = sum_k (x_ka - cx_a) (y_kb - cy_b)
    for r in range(n):
        k = rows[r]
        for a in range(3):
            for b in range(3):
                s[a, b] += (x[k, a] - cx[a]) * (y[k, b] - cy[b])
    key = np.array([
        [s[0, 0] + s[1, 1] + s[2, 2], s[1, 2] - s[2, 1], s[2, 0] - s[0, 2], s[0, 1] - s[1, 0]],
        [s[1, 2] - s[2, 1], s[0, 0] - s[1, 1] - s[2, 2], s[0, 1] + s[1, 0], s[2, 0] + s[0, 2]],
        [s[2, 0] - s[0, 2], s[0, 1] + s[1, 0], -s[0, 0] + s[1, 1] - s[2, 2], s[1, 2] + s[2, 1]],
        [s[0, 1] - s[1, 0], s[2, 0] + s[0, 2], s[1, 2] + s[2, 1], -s[0, 0] - s[1, 1] + s[2, 2]],
    ])
    q0, q1, q2, q3 = _jacobi_top(key)
    u = np.array([
        [q0 * q0 + q1 * q1 - q2 * q2 - q3 * q3, 2 * (q1 * q2 - q0 * q3), 2 * (q1 * q3 + q0 * q2)],
        [2 * (q1 * q2 + q0 * q3), q0 * q0 - q1 * q1 + q2 * q2 - q3 * q3, 2 * (q2 * q3 - q0 * q1)],
        [2 * (q1 * q3 - q0 * q2), 2 * (q2 * q3 + q0 * q1), q0 * q0 - q1 * q1 - q2 * q2 + q3 * q3],
    ])
    t = cy.copy()
    for a in range(3):
        t[a] -= u[a, 0] * cx[0] + u[a, 1] * cx[1] + u[a, 2] * cx[2]
    return u, t


def kabsch(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rotation ``u`` ``(3, 3)`` and translation ``t`` ``(3,)`` minimising ``sum |u x_k + t - y_k|^2``
    (Kabsch 1976) for ``(n, 3)`` pairs; the identity for n = 0."""
    x, y = _pairs(x, y)
    if not len(x):
        return np.eye(3), np.zeros(3)
    return _kabsch(x, y, np.arange(len(x)), len(x))


def rmsd(x: np.ndarray, y: np.ndarray) -> float:
    """Root-mean-square distance of ``(n, 3)`` pairs after their least-squares superposition (0 for n = 0)."""
    x, y = _pairs(x, y)
    if not len(x):
        return 0.0
    u, t = _kabsch(x, y, np.arange(len(x)), len(x))
    return float(np.sqrt(np.mean(np.sum((x @ u.T + t - y) ** 2, axis=1))))


def tm_d0(length: int) -> float:
    """TM-score's distance scale ``d0(L) = 1.24 (L - 15)^(1/3) - 1.8`` A, at least 0.5 A (Zhang & Skolnick 2004)."""
    return max(0.5, 1.24 * np.cbrt(length - 15.0) - 1.8) if length > 15 else 0.5


@jit
def _score(x, y, u, t, d0, distances):  # pragma: no cover - numba
    """Sum of ``1 / (1 + (d / d0)^2)`` under ``(u, t)``; fills ``distances``."""
    total = 0.0
    for k in range(x.shape[0]):
        d2 = 0.0
        for a in range(3):
            moved = u[a, 0] * x[k, 0] + u[a, 1] * x[k, 1] + u[a, 2] * x[k, 2] + t[a] - y[k, a]
            d2 += moved * moved
        distances[k] = np.sqrt(d2)
        total += 1.0 / (1.0 + d2 / (d0 * d0))
    return total


@jit
def _set_key(chosen, m):  # pragma: no cover - numba
    """A 64-bit fingerprint of the index set ``chosen[:m]`` (sum of mixed indices; collisions are negligible)."""
    key = np.uint64(m)
    for k in range(m):
        z = np.uint64(chosen[k] + 1) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(31))) * np.uint64(0xBF58476D1CE4E5B9)
        key += z ^ (z >> np.uint64(29))
    return key


@jit
def _refine(x, y, d0, d0_search, chosen, m, distances, seen, best, best_u, best_t):  # pragma: no cover - numba
    """From the pairs ``chosen[:m]``: superpose, score, re-select the pairs closer than the cut-off, until the set
    repeats one already superposed (from this or another seed) or :data:`_ROUNDS` pass; the best ``(sum, u, t)``."""
    n = x.shape[0]
    for _round in range(_ROUNDS):
        key = _set_key(chosen, m)  # a set is marked when it is superposed, never before
        if key in seen:
            break
        seen[key] = 1
        u, t = _kabsch(x, y, chosen, m)
        total = _score(x, y, u, t, d0, distances)
        if total > best:
            best, best_u, best_t = total, u, t
        cutoff = d0_search
        while True:
            m = 0
            for k in range(n):
                if distances[k] < cutoff:
                    chosen[m] = k
                    m += 1
            if m >= 3 or m == n or cutoff > _MAX_CUTOFF:
                break
            cutoff += 0.5
    return best, best_u, best_t


@jit
def _tm_search(x, y, d0, d0_search):  # pragma: no cover - numba
    """Best ``(sum, u, t)`` of the TM-score search over seed fragments (module docstring), and, for at most
    :data:`_ALL_TRIPLES` pairs, over every three of them. A refinement that reaches a set of pairs already refined
    from another seed stops there: from a set on, the rounds are the same."""
    n = x.shape[0]
    best, best_u, best_t = -1.0, np.eye(3), np.zeros(3)
    distances = np.empty(n)
    chosen = np.empty(n, np.int64)
    seen = numba.typed.Dict.empty(numba.types.uint64, numba.types.int64)
    seed = n
    while True:
        for start in range(0, n - seed + 1, max(1, seed // 4)):
            for k in range(seed):
                chosen[k] = start + k
            best, best_u, best_t = _refine(x, y, d0, d0_search, chosen, seed, distances, seen, best, best_u, best_t)
        if seed <= _MIN_SEED:
            break
        seed = max(seed // 2, min(_MIN_SEED, n))
    if 3 < n <= _ALL_TRIPLES:  # every three pairs superposed and scored; the refinement from the best three only
        top, triple = -1.0, np.zeros(3, np.int64)
        for i in range(n):
            for j in range(i + 1, n):
                for k in range(j + 1, n):
                    chosen[0], chosen[1], chosen[2] = i, j, k
                    u, t = _kabsch(x, y, chosen, 3)
                    total = _score(x, y, u, t, d0, distances)
                    if total > top:
                        top, triple[0], triple[1], triple[2] = total, i, j, k
        chosen[:3] = triple
        best, best_u, best_t = _refine(x, y, d0, d0_search, chosen, 3, distances, seen, best, best_u, best_t)
    return best, best_u, best_t


def tm_superpose(x: np.ndarray, y: np.ndarray, length: int) -> Superposition:
    """The superposition of ``(n, 3)`` pairs maximising their TM-score normalised by ``length`` (module docstring).

    ``length`` is the normalising length L (query, target or alignment length); pairs beyond it count as usual, so
    a score above 1 is impossible only when ``n <= L``. n = 0 gives the identity and score 0.
    """
    x, y = _pairs(x, y)
    if length < 1:
        raise ValueError(f"TM-score normalising length must be positive, got {length}")
    if not len(x):
        return Superposition(np.eye(3), np.zeros(3), 0.0)
    d0 = tm_d0(length)
    total, u, t = _tm_search(x, y, d0, min(max(d0, 4.5), 8.0))
    return Superposition(u, t, float(total / length))


def tm_score(x: np.ndarray, y: np.ndarray, length: int) -> float:
    """TM-score of ``(n, 3)`` aligned pairs normalised by ``length`` (Zhang & Skolnick 2004): see
    :func:`tm_superpose`."""
    return tm_superpose(x, y, length).tm_score


def lddt(query: np.ndarray, target: np.ndarray, pairs: np.ndarray, radius: float = LDDT_RADIUS) -> np.ndarray:
    """``(n,) float64`` LDDT of each aligned pair (Mariani et al. 2013), the query being the reference.

    ``query`` ``(Lq, 3)`` and ``target`` ``(Lt, 3)`` are whole chains, ``pairs`` ``(n, 2)`` the aligned (query,
    target) residue indices. The neighbours of aligned query residue i are all other query residues within
    ``radius`` A of it; a neighbour k is preserved at a threshold when it is aligned (to target residue l, i's partner
    being j) and ``||q_i - q_k| - |t_j - t_l|| <`` the threshold. The pair's score is the number preserved over the
    four :data:`LDDT_THRESHOLDS` divided by four times the neighbour count (unaligned neighbours count as lost); a
    residue without neighbours scores 0.
    """
    query, target = _coords(query), _coords(target)
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    x, y = query[pairs[:, 0]], target[pairs[:, 1]]
    count = (_distances(x, query) < radius).sum(axis=1) - 1  # minus the residue itself
    dx, dy = _distances(x, x), _distances(y, y)
    near = dx < radius
    np.fill_diagonal(near, False)
    error = np.abs(dx - dy)
    kept = sum(((error < cut) & near).sum(axis=1) for cut in LDDT_THRESHOLDS)
    return np.divide(kept, len(LDDT_THRESHOLDS) * count, out=np.zeros(len(x)), where=count > 0)


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``(len(a), len(b))`` Euclidean distances."""
    return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))


def _coords(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).reshape(-1, 3)


def _pairs(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = _coords(x), _coords(y)
    if x.shape != y.shape:
        raise ValueError(f"aligned pairs need as many query as target coordinates, got {len(x)} and {len(y)}")
    return x, y
