"""Helpers shared by the tests: paths of the real fixtures in tests/data, the labelled SCOPe domains of the search
tests, and a naive Smith-Waterman to check the aligners against. Tests import them from here; conftest files only
hold fixtures."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

__all__ = [
    "FAMILY_D58",
    "HOMOLOGS",
    "ISM_FILES",
    "MMCIF",
    "OTHER",
    "SEARCH_DOMAINS",
    "SHARED_DATA",
    "STRUCTURES",
    "naive_sw",
    "pdb_text",
]

STRUCTURES = Path(__file__).parent / "data" / "structures"
#: mmCIF copies of fixtures (beside, not in, :data:`STRUCTURES`: the same entry twice would repeat its names).
MMCIF = Path(__file__).parent / "data" / "mmcif"
#: Small real SCOPe domains of the search tests.
SEARCH_DOMAINS = Path(__file__).parent / "data" / "search"
#: ``shared/data`` beside the checkout (CI places ``shared/`` next to the clone).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

#: Two cytochromes c (a.3.1.1), two d.58.7.1 domains, one b.40.2.1 domain (all in :data:`SEARCH_DOMAINS`).
HOMOLOGS = ("d1ycca_", "d451ca_")
FAMILY_D58 = ("d1nu4a_", "d2hzca_")
OTHER = "d1c4qa_"
#: Structures of the tiny ISM tokenizer of the ``ism_folder`` fixture.
ISM_FILES = ("1FQJ_l_u", "3SGQ_r_u", "d1a32a_", "d1a1xa_")


def pdb_text(name: str) -> str:
    """Text of a fixture PDB file."""
    return gzip.open(STRUCTURES / f"{name}.pdb.gz", "rt").read()


def naive_sw(a: np.ndarray, b: np.ndarray, scores: np.ndarray, gap_open: int, gap_extend: int) -> int:
    """Gotoh's affine-gap Smith-Waterman, O(mn) in plain Python: a gap of n costs open + (n - 1) * extend."""
    m, n = len(a), len(b)
    h = np.zeros((m + 1, n + 1), dtype=np.int64)
    e = np.full((m + 1, n + 1), -(10**9), dtype=np.int64)
    f = np.full((m + 1, n + 1), -(10**9), dtype=np.int64)
    best = 0
    for i in range(1, m + 1):
        for j in range(1, n + 1):
            e[i, j] = max(e[i, j - 1] - gap_extend, h[i, j - 1] - gap_open)
            f[i, j] = max(f[i - 1, j] - gap_extend, h[i - 1, j] - gap_open)
            h[i, j] = max(0, h[i - 1, j - 1] + scores[a[i - 1], b[j - 1]], e[i, j], f[i, j])
            best = max(best, h[i, j])
    return int(best)


def svd_kabsch(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reference least-squares superposition of x onto y: SVD of the covariance, reflection removed."""
    mx, my = x.mean(axis=0), y.mean(axis=0)
    left, _, right = np.linalg.svd((y - my).T @ (x - mx))
    d = np.sign(np.linalg.det(left @ right))
    u = left @ np.diag([1.0, 1.0, d]) @ right
    return u, my - u @ mx


def tmalign_pairs(result) -> np.ndarray:
    """(query, target) indices of the aligned columns of a tmtools result."""
    i = j = 0
    pairs = []
    for a, b in zip(result.seqxA, result.seqyA, strict=True):
        if a != "-" and b != "-":
            pairs.append((i, j))
        i += a != "-"
        j += b != "-"
    return np.array(pairs)


def slow_lddt(query: np.ndarray, target: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """LDDT per aligned pair, straight from the definition, the query as reference."""
    partner = {int(i): int(j) for i, j in pairs}
    out = []
    for i, j in pairs:
        neighbours = preserved = 0
        for k in range(len(query)):
            d_ref = float(np.linalg.norm(query[i] - query[k]))
            if k == i or d_ref >= 15.0:
                continue
            neighbours += 1
            if k in partner:
                d_model = float(np.linalg.norm(target[j] - target[partner[k]]))
                preserved += sum(abs(d_ref - d_model) < cut for cut in (0.5, 1.0, 2.0, 4.0))
        out.append(preserved / (4 * neighbours) if neighbours else 0.0)
    return np.array(out)


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q
