"""k-means codebooks of residue embeddings: the structure-token vocabulary of ISM.

The ISM paper clusters mean-pooled autoencoder embeddings z^l of experimental structures by k-means
(K = 64, chosen by the elbow method); one cluster, s*, collects disordered, sparse environments and is
left out of the structure-tuning loss.

Given structural alignments of training chains, the k-means runs on ``z W`` instead, where ``W`` (``D x m``)
is Fisher's linear discriminant with aligned residue pairs as the classes (:func:`aligned_pair_metric`), and
tokens are the nearest centroids under ``|(z - c) W|``. Euclidean k-means splits the directions in which
embeddings vary most (10 of 64 principal components hold over 90 % of the variance), whether or not aligned
residues of homologs agree there; ``W`` weights directions by how well they agree, as 3Di's states were trained
to be conserved across aligned pairs (docs/ism-tokens.md).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ismtk.atomic import atomic_write
from ismtk.autoencoder.corpus import CorpusFilter
from ismtk.errors import InputError
from ismtk.sequence.alphabet import MAX_TOKENS, Alphabet

__all__ = [
    "CODEBOOK_FILE",
    "ELBOW_KS",
    "ClusterReport",
    "Codebook",
    "KMeansResult",
    "assign",
    "build_codebook",
    "choose_k",
    "disorder_token",
    "elbow",
    "file_sha256",
    "kmeans",
    "residue_embeddings",
    "AlignedPairs",
    "aligned_pair_embeddings",
    "aligned_pair_metric",
    "inverse_sqrt",
]

_CHUNK = 65536  # rows per distance block: bounds memory at chunk x K floats
#: Directions kept by :func:`aligned_pair_metric`.
METRIC_DIMS = 16
#: Ridge added to the within-pair covariance, relative to its largest eigenvalue.
METRIC_RIDGE = 1e-3


@dataclass(frozen=True)
class KMeansResult:
    """``centroids`` ``(K, D) float32``, ``labels`` ``(N,) int64``, ``inertia`` = sum of squared distances."""

    centroids: np.ndarray
    labels: np.ndarray
    inertia: float
    iterations: int


def _sq_distances(x: torch.Tensor, c: torch.Tensor, c_norm: torch.Tensor) -> torch.Tensor:
    """``(n, K)`` squared Euclidean distances ``|x|^2 - 2 x.c + |c|^2`` (clamped at 0)."""
    d = torch.addmm(c_norm.unsqueeze(0), x, c.T, alpha=-2.0)
    d += (x * x).sum(1, keepdim=True)
    return d.clamp_min_(0.0)


def _nearest(x: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of and squared distance to the nearest centroid for every row, in blocks of rows."""
    c_norm = (c * c).sum(1)
    labels = torch.empty(len(x), dtype=torch.int64)
    dist = torch.empty(len(x), dtype=x.dtype)
    for start in range(0, len(x), _CHUNK):
        d = _sq_distances(x[start : start + _CHUNK], c, c_norm)
        dist[start : start + _CHUNK], labels[start : start + _CHUNK] = d.min(1)
    return labels, dist


def assign(x: np.ndarray, centroids: np.ndarray, metric: np.ndarray | None = None) -> np.ndarray:
    """``(N,) int64`` index of the nearest centroid of each row of ``x`` ``(N, D)``, under the distance
    ``|(x - c) metric|`` (``metric`` ``(D, m)``; Euclidean without it).

    Computed in float64, so the choice does not depend on the BLAS blocking (and thread count).
    """
    x, c = np.asarray(x, np.float64), np.asarray(centroids, np.float64)
    if metric is not None:
        x, c = x @ metric, c @ metric
    labels, _ = _nearest(torch.from_numpy(x), torch.from_numpy(c))
    return labels.numpy()


def inverse_sqrt(covariance: np.ndarray, ridge: float = METRIC_RIDGE) -> np.ndarray:
    """``(D, D) float64`` symmetric whitening ``(S + eps I)^(-1/2)`` of a covariance ``S``, ``eps = ridge`` times its
    largest eigenvalue (so directions of no variance are not blown up)."""
    values, vectors = np.linalg.eigh(np.asarray(covariance, np.float64))
    values = np.maximum(values, 0.0) + ridge * values.max()
    return (vectors / np.sqrt(values)) @ vectors.T


def aligned_pair_metric(
    first: np.ndarray, second: np.ndarray, z: np.ndarray, dims: int = METRIC_DIMS, ridge: float = METRIC_RIDGE
) -> np.ndarray:
    """``(D, dims) float64`` projection in which structurally aligned residues have close embeddings.

    Fisher's linear discriminant with each aligned pair as a class: ``first``/``second`` ``(P, D)`` hold the
    embeddings of the two residues of ``P`` aligned pairs. Embeddings are whitened by the within-pair covariance
    ``S_w = E[(a - b)(a - b)^T] / 2`` (plus ``ridge`` times its largest eigenvalue, so directions in which pairs
    never differ are not blown up), and the ``dims`` directions of largest variance of ``z`` ``(N, D)`` (the
    embeddings to cluster) in that space are kept: the directions with most spread between residues relative to
    the spread within aligned pairs.
    """
    if first.shape != second.shape or first.ndim != 2 or len(first) < 2 or z.ndim != 2:
        raise InputError(f"aligned pairs need two (P, D) arrays with P >= 2; got {first.shape} and {second.shape}")
    if not 1 <= dims <= z.shape[1]:
        raise InputError(f"metric dimensions {dims} out of range 1-{z.shape[1]}")
    diff = np.asarray(first, np.float64) - np.asarray(second, np.float64)
    if not diff.any():
        raise InputError("aligned residues have identical embeddings (self-alignments only?): no metric to learn")
    whiten = inverse_sqrt(diff.T @ diff / (2 * len(diff)), ridge)
    _, spread = np.linalg.eigh(np.cov(np.asarray(z, np.float64) @ whiten, rowvar=False))
    return whiten @ spread[:, ::-1][:, :dims]


@dataclass(frozen=True)
class AlignedPairs:
    """Embeddings ``first``/``second`` ``(P, D)`` of the two residues of ``P`` structurally aligned pairs, from
    ``alignments`` alignments; ``skipped``: structure files that could not be read (one line each)."""

    first: np.ndarray
    second: np.ndarray
    alignments: int
    skipped: tuple[str, ...] = ()


def aligned_pair_embeddings(
    model_dir: str | Path,
    structures: Sequence[str | Path],
    alignments: str | Path,
    min_tm: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> AlignedPairs:
    """Embeddings of the two residues of every close pair (within 5 A after superposition) of the structural
    alignments (``ismtk align-pairs``) with TM >= ``min_tm`` (default: the learn-matrix threshold).

    ``structures``: files, folders or lists with the aligned chains (named as in the alignments); alignments of
    chains missing there (or in files that cannot be read), or of another length, are not used.
    """
    from ismtk.autoencoder.io import embed_chains, load_autoencoder
    from ismtk.autoencoder.pairs import aligned_chains

    model = load_autoencoder(model_dir)
    found = aligned_chains(structures, alignments, min_tm)
    chains, wanted = found.chains, found.alignments
    names = sorted(chains)
    z = {}
    for start in range(0, len(names), 64):
        batch = names[start : start + 64]
        z.update(zip(batch, embed_chains(model, [chains[n] for n in batch]), strict=True))
        if progress is not None:
            progress(len(batch))
    first, second = [], []
    for a in wanted:
        i, j = a.close_pairs()
        first.append(z[a.name1][i])
        second.append(z[a.name2][j])
    return AlignedPairs(np.concatenate(first), np.concatenate(second), len(wanted), found.skipped)


def _kmeanspp(x: torch.Tensor, k: int, gen: torch.Generator) -> torch.Tensor:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007): 2 + log k candidates per step, all
    scored with one matrix product."""
    n = len(x)
    trials = 2 + int(math.log(k))
    x_norm = (x * x).sum(1, keepdim=True)

    def sq_dist(points: torch.Tensor) -> torch.Tensor:  # (N, m) squared distances to m points
        return torch.addmm(x_norm + (points * points).sum(1), x, points.T, alpha=-2.0).clamp_min_(0.0)

    centers = [x[int(torch.randint(n, (1,), generator=gen))]]
    closest = sq_dist(centers[0][None]).squeeze(1)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:  # fewer distinct points than K: repeat one
            centers.append(centers[-1])
            continue
        candidates = torch.multinomial(closest / total, trials, replacement=True, generator=gen)
        cand_d = torch.minimum(closest.unsqueeze(1), sq_dist(x[candidates]))
        best = int(cand_d.sum(0).argmin())
        centers.append(x[candidates[best]])
        closest = cand_d[:, best].contiguous()
    return torch.stack(centers)


def _lloyd(x, c, max_iter, tol, gen):
    """Lloyd iterations until the centroid shift (relative to the data variance) drops below ``tol``."""
    scale = float(x.var(0).mean()) or 1.0
    labels = torch.zeros(len(x), dtype=torch.int64)
    for it in range(1, max_iter + 1):  # noqa: B007 -- the count is returned
        labels, dist = _nearest(x, c)
        sums = torch.zeros_like(c).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=len(c)).to(x.dtype)
        new = sums / counts.clamp_min(1).unsqueeze(1)
        empty = torch.nonzero(counts == 0).flatten()
        if len(empty):  # restart dead codes at the points farthest from their centroid
            new[empty] = x[dist.topk(len(empty)).indices]
        shift = float(((new - c) ** 2).sum(1).max()) / scale
        c = new
        if shift < tol:
            break
    labels, dist = _nearest(x, c)
    return c, labels, float(dist.double().sum()), it


def _minibatch(x, c, max_iter, tol, batch_size, gen):
    """Mini-batch k-means (Sculley 2010): per-centre learning rate 1 / count; one pass = N / batch
    steps; stops when a pass changes the inertia on a fixed sample by less than ``tol`` (relative)."""
    counts = torch.zeros(len(c), dtype=x.dtype)
    probe = x[torch.randint(len(x), (min(len(x), 8 * batch_size),), generator=gen)]
    previous = math.inf
    steps_per_pass = max(1, len(x) // batch_size)
    for it in range(1, max_iter + 1):  # noqa: B007 -- the count is returned
        for _ in range(steps_per_pass):
            batch = x[torch.randint(len(x), (batch_size,), generator=gen)]
            labels, _ = _nearest(batch, c)
            batch_counts = torch.bincount(labels, minlength=len(c)).to(x.dtype)
            sums = torch.zeros_like(c).index_add_(0, labels, batch)
            counts += batch_counts
            hit = batch_counts > 0
            rate = (batch_counts[hit] / counts[hit]).unsqueeze(1)
            c[hit] = (1 - rate) * c[hit] + rate * sums[hit] / batch_counts[hit].unsqueeze(1)
        inertia = float(_nearest(probe, c)[1].double().sum())
        if previous - inertia <= tol * inertia:
            break
        previous = inertia
    labels, dist = _nearest(x, c)
    return c, labels, float(dist.double().sum()), it


def kmeans(
    x: np.ndarray,
    k: int,
    *,
    n_init: int = 3,
    max_iter: int = 100,
    tol: float = 1e-4,
    seed: int = 0,
    batch_size: int | None = None,
) -> KMeansResult:
    """k-means of ``x`` ``(N, D)``: greedy k-means++ seeding, ``n_init`` restarts, best inertia kept.

    ``batch_size`` switches Lloyd iterations for mini-batch updates (for millions of points);
    ``max_iter`` then counts passes over the data. Deterministic for a given ``seed`` and thread count.
    """
    if x.ndim != 2 or len(x) < k:
        raise InputError(f"k-means needs an (N, D) array with N >= K={k}; got shape {x.shape}")
    if not np.isfinite(x).all():
        raise InputError(f"k-means needs finite values; {int((~np.isfinite(x)).any(1).sum())} of {len(x)} rows hold "
                         "NaN or infinity")
    data = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    best: KMeansResult | None = None
    for restart in range(n_init):
        gen = torch.Generator().manual_seed(seed * 1000 + restart)
        c = _kmeanspp(data, k, gen)
        if batch_size:
            c, labels, inertia, it = _minibatch(data, c, max_iter, tol, batch_size, gen)
        else:
            c, labels, inertia, it = _lloyd(data, c, max_iter, tol, gen)
        if best is None or inertia < best.inertia:
            best = KMeansResult(c.numpy().copy(), labels.numpy(), inertia, it)
    assert best is not None
    return best


def elbow(
    x: np.ndarray, ks: Sequence[int], seed: int = 0, progress: Callable[[int], None] | None = None, **kwargs
) -> list[float]:
    """Inertia of k-means for each K in ``ks`` (for the elbow plot)."""
    out = []
    for k in ks:
        out.append(kmeans(x, k, seed=seed, **kwargs).inertia)
        if progress is not None:
            progress(1)
    return out


def choose_k(ks: Sequence[int], inertias: Sequence[float]) -> int:
    """The elbow: the K farthest below the straight line joining the first and last points of the
    (K, log inertia) curve, both axes scaled to [0, 1] (the "kneedle" criterion, Satopaa et al. 2011,
    on a log scale so that one sharp drop is not drowned by the large inertias of small K)."""
    k = np.asarray(ks, dtype=float)
    y = np.log(np.asarray(inertias, dtype=float))
    kn = (k - k[0]) / (k[-1] - k[0])
    yn = (y - y.min()) / ((y.max() - y.min()) or 1.0)
    line = yn[0] + (yn[-1] - yn[0]) * kn
    return int(k[int(np.argmax(line - yn))])


def disorder_token(labels: np.ndarray, n_atoms: np.ndarray, k: int) -> int:
    """s*: the cluster whose members have the sparsest microenvironments (lowest median atom count).

    ``labels`` ``(N,)`` cluster of each residue, ``n_atoms`` ``(N,)`` atoms in its masked 8 A
    microenvironment. Disordered termini and loops have few neighbours, so their environments are sparse.
    """
    medians = np.full(k, np.inf)
    for cluster in range(k):
        members = n_atoms[labels == cluster]
        if len(members):
            medians[cluster] = np.median(members)
    return int(np.argmin(medians))


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file (ties a codebook to the encoder weights it was made from)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class Codebook:
    """Centroids ``(K, D) float32`` plus what a tokenizer needs to use them.

    Stored as one JSON file (plain numbers, no pickle): ``k``, ``dim``, ``alphabet``, ``disorder_token``
    (s*, or ``null``), ``encoder_sha256``, ``centroids``; for codebooks with a metric, the ``metric`` ``(D, m)`` of
    :func:`assign`; for a residual codebook, the whole ``base`` codebook it refines.

    A residual codebook (``base`` set) quantises what the base token leaves, as the second stage of residual vector
    quantisation: the token of ``z`` is the centroid nearest to ``z - c_base(z)``, where ``c_base(z)`` is the centroid
    of ``z``'s base token. Its tokens are a second track of the same residues: a base token and a residual token
    together tell apart embeddings that the base token alone lumps together.
    """

    centroids: np.ndarray
    alphabet: Alphabet
    disorder_token: int | None
    encoder_sha256: str
    metric: np.ndarray | None = None
    base: Codebook | None = None

    def __post_init__(self) -> None:
        if self.base is not None and (self.base.metric is not None or self.base.base is not None):
            raise InputError("a residual codebook refines a plain codebook (one without a metric or a base of its own)")
        k, dim = self.centroids.shape if self.centroids.ndim == 2 else (0, 0)
        if not k or not dim or not np.isfinite(self.centroids).all():
            raise InputError(f"centroids must be a finite (K, D) table, got shape {self.centroids.shape}")
        if len(self.alphabet) != k:
            raise InputError(f"{k} centroids but an alphabet of {len(self.alphabet)} symbols")
        if self.disorder_token is not None and not 0 <= self.disorder_token < k:
            raise InputError(f"disorder_token {self.disorder_token} is not a token of 0..{k - 1}")
        if self.metric is not None and (self.metric.ndim != 2 or self.metric.shape[0] != dim
                                        or not self.metric.shape[1] or not np.isfinite(self.metric).all()):
            raise InputError(f"metric must be a finite ({dim}, m) table, got shape {self.metric.shape}")
        if self.base is not None and self.base.centroids.shape[1] != dim:
            raise InputError(f"a residual codebook of width {dim} refines one of width {self.base.centroids.shape[1]}")

    @property
    def k(self) -> int:
        return len(self.centroids)

    def residuals(self, z: np.ndarray) -> np.ndarray:
        """``(N, D) float64`` what this codebook quantises: ``z`` itself, or for a residual codebook ``z`` minus the
        centroid of its base token."""
        z = np.asarray(z, np.float64)
        return z if self.base is None else z - self.base.quantised(z)

    def assign(self, z: np.ndarray) -> np.ndarray:
        """``(N,) uint8`` token of each embedding row of ``z`` ``(N, D)``."""
        return assign(self.residuals(z), self.centroids, self.metric).astype(np.uint8)

    def quantised(self, z: np.ndarray) -> np.ndarray:
        """``(N, D) float32`` the embeddings as the tokens tell them: the centroid of each row's token, plus (for a
        residual codebook) the centroid of its base token."""
        z = np.asarray(z, np.float64)
        mine = self.centroids[self.assign(z)]
        return (mine if self.base is None else self.base.quantised(z) + mine).astype(np.float32)

    def to_dict(self) -> dict:
        """The JSON document :meth:`save` writes."""
        doc = {
            "format": _FORMATS[(self.metric is not None, self.base is not None)],
            "k": self.k,
            "dim": int(self.centroids.shape[1]),
            "alphabet": self.alphabet.symbols,
            "disorder_token": self.disorder_token,
            "encoder_sha256": self.encoder_sha256,
            "centroids": [[float(v) for v in row] for row in self.centroids.astype(np.float32)],
        }
        if self.metric is not None:
            doc["metric"] = [[float(v) for v in row] for row in self.metric.astype(np.float64)]
        if self.base is not None:
            doc["base"] = self.base.to_dict()
        return doc

    @classmethod
    def from_dict(cls, doc: dict) -> Codebook:
        """The codebook of a :meth:`to_dict` document (:class:`InputError` for a format newer than this ismtk)."""
        if doc.get("format", _FORMATS[False, False]) not in _FORMATS.values():
            raise InputError(f"codebook format {doc['format']!r} is newer than this ismtk: upgrade ismtk")
        centroids = np.asarray(doc["centroids"], dtype=np.float32)
        if centroids.shape != (doc["k"], doc["dim"]):
            raise InputError(f"centroids of shape {centroids.shape}, but k = {doc['k']} and dim = {doc['dim']}")
        metric = None if doc.get("metric") is None else np.asarray(doc["metric"], dtype=np.float64)
        base = cls.from_dict(doc["base"]) if doc.get("base") is not None else None
        return cls(centroids, Alphabet(doc["alphabet"]), doc["disorder_token"], doc["encoder_sha256"], metric, base)

    def save(self, path: str | Path) -> None:
        with atomic_write(path) as handle:
            json.dump(self.to_dict(), handle, indent=1)

    @classmethod
    def load(cls, path: str | Path) -> Codebook:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except InputError as exc:
            raise InputError(f"{path}: {exc}") from exc
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}: not an ismtk codebook ({type(exc).__name__}: {exc})") from exc


#: Codebook file format by whether it has a metric and whether it has a base (a format not listed here is refused
#: as newer).
_FORMATS = {
    (False, False): "ismtk-codebook/1",
    (True, False): "ismtk-codebook/2",
    (False, True): "ismtk-codebook/3",
    (True, True): "ismtk-codebook/3",
}
#: File name of the codebook inside an ISM tokenizer folder (beside ``model.json`` and ``model.pt``).
CODEBOOK_FILE = "codebook.json"
#: K values tried by the elbow method when ``k`` is not given.
ELBOW_KS = (8, 16, 24, 32, 48, 64)


@dataclass(frozen=True)
class ClusterReport:
    """What :func:`build_codebook` did: K, s* (``None`` for a residual codebook), the points used, token usage and
    the elbow curve."""

    k: int
    disorder_token: int | None
    points: int
    inertia: float
    usage: np.ndarray
    elbow_ks: tuple[int, ...] = ()
    elbow_inertias: tuple[float, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def entropy_bits(self) -> float:
        """Shannon entropy of token usage (log2 K when every token is used equally)."""
        used = self.usage[self.usage > 0]
        return float(-(used * np.log2(used)).sum())

    @property
    def dead_tokens(self) -> int:
        """Tokens no residue was assigned to."""
        return int((self.usage == 0).sum())


def residue_embeddings(
    model_dir: str | Path,
    inputs: Sequence[str | Path],
    max_points: int,
    residues_per_chain: int = 10**9,
    seed: int = 0,
    index: str | Path | Sequence[str | Path] | None = None,
    progress: Callable[[int], None] | None = None,
    corpus_filter: CorpusFilter = CorpusFilter(),
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``z`` ``(N, D)`` and microenvironment atom counts ``(N,)`` of training-split residues of ``inputs``.

    Chains come from :func:`ismtk.autoencoder.corpus.load_corpus` (one per entry; benchmark homologs dropped
    when an index says which); up to ``residues_per_chain`` random residues of each are candidates, and at most
    ``max_points`` of all candidates are kept, drawn uniformly at random. The chains are read twice: once to count
    the candidates and draw the sample, then again to embed, only the chains that hold a drawn residue; memory
    stays within ``max_points`` embeddings however large the corpus, and the result is the same as embedding every
    candidate and then drawing (each chain is embedded whole, as the tokenizer does).
    """
    import copy

    from ismtk.autoencoder.corpus import SkipLog, chain_residues, load_corpus
    from ismtk.autoencoder.io import embed_microenvironments, load_autoencoder
    from ismtk.structure.microenv import microenvironments

    model = load_autoencoder(model_dir)
    corpus = load_corpus(inputs, index, corpus_filter)
    rng = np.random.default_rng(seed)
    replay = copy.deepcopy(rng)  # the second reading draws the same chains and residues
    skips = SkipLog()
    counts = np.array([len(r) for _, r in chain_residues(corpus.train, residues_per_chain, 1, rng, skips)], np.int64)
    total = int(counts.sum())
    if not total:
        raise InputError(f"no usable chain among {', '.join(map(str, inputs))}")
    keep = np.sort(rng.choice(total, max_points, replace=False)) if total > max_points else np.arange(total)
    starts = np.concatenate([[0], np.cumsum(counts)])
    bounds = np.searchsorted(keep, starts)  # chain c's drawn residues: keep[bounds[c]:bounds[c + 1]]
    zs, atoms = [], []
    chains = chain_residues(corpus.train, residues_per_chain, 1, replay, SkipLog())
    for c, (chain, residues) in enumerate(chains):
        rows = keep[bounds[c] : bounds[c + 1]] - starts[c]
        if len(rows):
            envs = microenvironments(chain, residues, radius=model.cfg.radius)
            zs.append(embed_microenvironments(model, envs)[rows])
            atoms.append(envs.n_atoms[rows])
        if progress is not None:
            progress(1)
    z, n_atoms = np.concatenate(zs), np.concatenate(atoms)
    notes = list(corpus.notes) + [f"skipped {skips.summary()}"] if skips.counts else list(corpus.notes)
    return z, n_atoms, notes


def build_codebook(
    model_dir: str | Path,
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    k: int | None = 64,
    max_points: int = 1_000_000,
    residues_per_chain: int = 10**9,
    seed: int = 0,
    n_init: int = 3,
    index: str | Path | Sequence[str | Path] | None = None,
    progress: Callable[[int], None] | None = None,
    elbow_ks: Sequence[int] = (),
    aligned: AlignedPairs | None = None,
    metric_dims: int = METRIC_DIMS,
    residual: bool = False,
    overwrite: bool = False,
    corpus_filter: CorpusFilter = CorpusFilter(),
) -> ClusterReport:
    """Fit the K-token codebook of an autoencoder and write a complete ISM tokenizer folder.

    ``out_dir`` receives ``codebook.json`` and a copy of the encoder (``model.json``, ``model.pt``), so
    it can be passed as ``--tokenizer``. The inertia of every K in ``elbow_ks`` is written to
    ``elbow.tsv`` and ``elbow.png``; ``k=None`` picks K at the elbow of that curve (of :data:`ELBOW_KS`
    when none is given). s* is chosen by :func:`disorder_token`. ``aligned``: embeddings of aligned residue pairs
    (:func:`aligned_pair_embeddings`); k-means then runs in their :func:`aligned_pair_metric` of ``metric_dims``
    directions, and the codebook assigns by distance in it.

    ``residual``: ``model_dir`` is an ISM tokenizer folder, and the codebook clusters what its tokens leave,
    ``z - c(token)`` (a residual :class:`Codebook`, without s*). Written into a subfolder of ``model_dir``, it uses
    the encoder there instead of a copy. A folder that holds a codebook already is refused unless ``overwrite``.
    ``corpus_filter``: which benchmark homologs the chain indexes leave out (by default all, as in training).
    """
    import shutil

    from ismtk.autoencoder.io import MODEL_CONFIG, MODEL_WEIGHTS

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    if (out_dir / CODEBOOK_FILE).exists() and not overwrite:
        raise InputError(
            f"{out_dir} holds a tokenizer already ({CODEBOOK_FILE}); give another folder, or --overwrite to replace it "
            "(its tokens change: a matrix.out, residual/ or database made for them no longer fits)"
        )
    if residual and aligned is not None:
        raise InputError("a residual codebook is clustered in plain embedding space, without aligned pairs")
    if k is not None and not 2 <= k <= MAX_TOKENS:
        raise InputError(f"-k {k}: a codebook has 2 to {MAX_TOKENS} tokens (one symbol each)")
    base = _base_codebook(model_dir) if residual else None
    z, n_atoms, notes = residue_embeddings(model_dir, inputs, max_points, residues_per_chain, seed, index, progress,
                                           corpus_filter)
    if base is not None:
        z = z - base.quantised(z)
    metric = None if aligned is None else aligned_pair_metric(aligned.first, aligned.second, z, metric_dims)
    x = z if metric is None else (z.astype(np.float64) @ metric).astype(np.float32)
    ks = tuple(n for n in (elbow_ks or (ELBOW_KS if k is None else ())) if n <= len(x))
    inertias = tuple(elbow(x, ks, seed=seed, n_init=n_init))
    if k is None:  # at the elbow of the K that fit an alphabet (the curve may go beyond, for the picture)
        usable = [(n, inertia) for n, inertia in zip(ks, inertias, strict=True) if n <= MAX_TOKENS]
        if len(usable) < 2:
            tried = ", ".join(map(str, elbow_ks or ELBOW_KS))
            raise InputError(f"{len(x)} residues are too few to choose K at an elbow (of K = {tried}, at most "
                             f"{MAX_TOKENS}); give more structures, or -k")
        k = choose_k(*zip(*usable, strict=True))
    result = kmeans(x, k, n_init=n_init, seed=seed)
    # centroids are stored in embedding space: any preimage c of a centroid c' (c W = c') will do
    centroids = result.centroids if metric is None else result.centroids.astype(np.float64) @ np.linalg.pinv(metric)
    star = None if base is not None else disorder_token(result.labels, n_atoms, k)
    out_dir.mkdir(parents=True, exist_ok=True)
    shares_encoder = base is not None and out_dir.resolve().parent == model_dir.resolve()
    for name in () if shares_encoder else (MODEL_CONFIG, MODEL_WEIGHTS):
        if (model_dir / name).resolve() != (out_dir / name).resolve():
            shutil.copyfile(model_dir / name, out_dir / name)
    codebook = Codebook(centroids.astype(np.float32), Alphabet.of_size(k), star, file_sha256(model_dir / MODEL_WEIGHTS),
                        metric, base)
    codebook.save(out_dir / CODEBOOK_FILE)
    if ks:
        _write_elbow(out_dir, ks, inertias, k if k in ks else None)
    usage = np.bincount(result.labels, minlength=k) / len(result.labels)
    return ClusterReport(k, star, len(z), result.inertia, usage, ks, inertias, tuple(notes))


def _base_codebook(folder: Path) -> Codebook:
    """The codebook of the ISM tokenizer folder a residual codebook refines (:class:`InputError` if it has none, or
    one that cannot be refined)."""
    if not (folder / CODEBOOK_FILE).is_file():
        raise InputError(f"{folder}: no {CODEBOOK_FILE}; a residual codebook refines the tokens of an ISM tokenizer "
                         "folder (make one with 'ismtk cluster' first)")
    base = Codebook.load(folder / CODEBOOK_FILE)
    if base.metric is not None or base.base is not None:
        raise InputError(f"{folder / CODEBOOK_FILE}: a residual codebook refines a plain codebook, not one with a "
                         "metric or a residual one")
    return base


def _write_elbow(out_dir: Path, ks: Sequence[int], inertias: Sequence[float], chosen: int | None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with atomic_write(out_dir / "elbow.tsv") as handle:
        handle.write("k\tinertia\n" + "".join(f"{k}\t{v:.6g}\n" for k, v in zip(ks, inertias, strict=True)))
    fig, ax = plt.subplots(figsize=(4.5, 3.2))
    ax.plot(ks, inertias, marker="o")
    usable = [(k, inertia) for k, inertia in zip(ks, inertias, strict=True) if k <= MAX_TOKENS]
    elbow_k = choose_k(*zip(*usable, strict=True)) if len(usable) >= 2 else None  # among K an alphabet holds
    if elbow_k is not None:
        ax.axvline(elbow_k, color="grey", linestyle="--", label=f"elbow: K={elbow_k}")
    if chosen is not None and chosen != elbow_k:
        ax.axvline(chosen, color="tab:red", linestyle=":", label=f"used: K={chosen}")
    ax.set_xlabel("K")
    ax.set_ylabel("k-means inertia")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "elbow.png", dpi=110)
    plt.close(fig)
