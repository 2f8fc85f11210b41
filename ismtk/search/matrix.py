"""Substitution matrices: NCBI text format with a statistics header, log-odds learning, parasail conversion.

File format (what :func:`read_matrix` reads and :func:`write_matrix` writes)::

    # <free-text title line>
    # Background (precomputed optional): p_1 ... p_K
    # Lambda     (precomputed optional): 0.3515
    # EVD gap 10 1: lambda=0.27 K=0.04 corrected=1
        A   C   D ...
    A   6  -3   1 ...

The ``Background`` and ``Lambda`` lines are those of Foldseek/MMseqs2 matrices (``mat3di.out``), so their files
read unchanged. ``EVD`` lines hold the extreme-value parameters of gapped Smith-Waterman scores for one gap
penalty pair (see :mod:`ismtk.search.evalue`); a matrix may hold several. The alphabet is the header row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ismtk.atomic import atomic_write
from ismtk.errors import InputError

__all__ = [
    "DEFAULT_MATRICES",
    "MATRIX_DIR",
    "EvdParams",
    "TOKENIZER_MATRIX",
    "SubstitutionMatrix",
    "count_pairs",
    "load_matrix",
    "log_odds",
    "matrix_correlation",
    "read_matrix",
    "ungapped_lambda",
    "write_matrix",
]

#: Folder of the matrices shipped with ismtk (``<name>.out``; recipes in its README.md).
MATRIX_DIR = Path(__file__).resolve().parent.parent / "data" / "matrices"
#: A tokenizer folder's own matrix, used when ``--matrix`` is not given.
TOKENIZER_MATRIX = "matrix.out"
#: The matrix used for each tokenizer (and for amino acids, ``aa``) when none is given.
DEFAULT_MATRICES = {"3di": "3di", "ism": "ism", "aa": "blosum62"}

_EVD = re.compile(r"EVD gap (\d+) (\d+): lambda=(\S+) K=(\S+) corrected=(\d)")


@dataclass(frozen=True)
class EvdParams:
    """Gumbel parameters of local-alignment scores: ``P(S >= x) = 1 - exp(-K m n exp(-lambda x))``.

    ``corrected`` says whether they describe scores minus the reversed-query score (Foldseek's correction).
    """

    gap_open: int
    gap_extend: int
    lam: float
    k: float
    corrected: bool = True


@dataclass(frozen=True)
class SubstitutionMatrix:
    """A scoring matrix over ``symbols``: ``scores`` is ``(K, K) int32`` with rows/columns in symbol order.

    ``background`` is ``(K,) float64`` (or ``None``), ``lam`` the ungapped Karlin-Altschul lambda (or ``None``),
    ``evd`` the fitted gapped statistics.
    """

    symbols: str
    scores: np.ndarray
    title: str = ""
    background: np.ndarray | None = None
    lam: float | None = None
    evd: tuple[EvdParams, ...] = ()
    _parasail: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        k = len(self.symbols)
        if self.scores.shape != (k, k):
            raise InputError(f"matrix over {k} symbols needs {k}x{k} scores, got {self.scores.shape}")
        if len(set(self.symbols.upper())) != k:
            raise InputError(f"matrix symbols {self.symbols!r} repeat a letter (case is ignored)")

    def index(self, alphabet_symbols: str) -> np.ndarray:
        """``(K',) int64`` matrix rows of the symbols of another alphabet (a token alphabet).

        Raises :class:`InputError` when a symbol has no row: the matrix was made for another alphabet.
        """
        position = {c: i for i, c in enumerate(self.symbols.upper())}
        missing = [c for c in alphabet_symbols.upper() if c not in position]
        if missing:
            raise InputError(
                f"matrix {self.title or self.symbols!r} has no row for symbols {''.join(missing)!r} of alphabet "
                f"{alphabet_symbols!r}: it was made for another tokenizer; give a matrix of these tokens"
            )
        return np.array([position[c] for c in alphabet_symbols.upper()], dtype=np.int64)

    def restricted(self, alphabet_symbols: str) -> np.ndarray:
        """``(K', K') int32`` scores of the symbols of another alphabet, in that alphabet's order."""
        rows = self.index(alphabet_symbols)
        return self.scores[np.ix_(rows, rows)]

    def evd_for(self, gap_open: int, gap_extend: int) -> EvdParams | None:
        """The stored EVD parameters for these gap penalties, if any."""
        return next((e for e in self.evd if (e.gap_open, e.gap_extend) == (gap_open, gap_extend)), None)

    def with_evd(self, params: EvdParams) -> SubstitutionMatrix:
        """A copy holding ``params`` (replacing those for the same gap penalties)."""
        kept = tuple(e for e in self.evd if (e.gap_open, e.gap_extend) != (params.gap_open, params.gap_extend))
        return replace(self, evd=kept + (params,))

    def to_parasail(self, alphabet_symbols: str):
        """A ``parasail.Matrix`` over ``alphabet_symbols`` (cached): token ``i`` is symbol ``i``."""
        if alphabet_symbols not in self._parasail:
            import parasail

            sub = self.restricted(alphabet_symbols)
            matrix = parasail.matrix_create(alphabet_symbols, 0, 0)
            for i in range(len(alphabet_symbols)):
                for j in range(len(alphabet_symbols)):
                    matrix[i, j] = int(sub[i, j])
            self._parasail[alphabet_symbols] = matrix
        return self._parasail[alphabet_symbols]


def read_matrix(path: str | Path) -> SubstitutionMatrix:
    """Read an NCBI-format matrix with the optional header lines described in the module docstring."""
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read substitution matrix ({exc})") from exc
    title, background, lam, evd = "", None, None, []
    header: list[str] | None = None
    rows: dict[str, list[int]] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        words = text.split()
        first_symbol_hash = header is None and len(words) > 2 and all(len(w) == 1 for w in words)  # "#  A  B ..."
        if text.startswith("#") and not first_symbol_hash and not (
            header is not None and "#" in header and _is_row(text, len(header))
        ):
            body = text.lstrip("#").strip()
            value = body.split(":", 1)[1] if ":" in body else ""
            try:
                if body.startswith("Background"):
                    background = np.array([float(v) for v in value.split()])
                elif body.startswith("Lambda"):
                    lam = float(value)
                elif (match := _EVD.match(body)) is not None:
                    g, e, la, k, c = match.groups()
                    evd.append(EvdParams(int(g), int(e), float(la), float(k), c == "1"))
                elif not title:
                    title = body
            except ValueError:
                raise InputError(f"{path}: line {number}: unreadable numbers in header {body!r}") from None
            continue
        if header is None:
            header = words
            if any(len(w) != 1 for w in header):
                raise InputError(f"{path}: line {number}: the first row must list one-letter symbols")
            continue
        try:
            values = [float(w) for w in words[1:]]
        except ValueError:
            raise InputError(f"{path}: line {number}: non-numeric score") from None
        odd = next((w for w, v in zip(words[1:], values, strict=True) if not abs(v) < 2**31), None)
        if odd is not None:  # (inf and 1e20 were tracebacks)
            raise InputError(f"{path}: line {number}: score {odd!r} is not a finite score")
        scores = [round(v) for v in values]  # MMseqs2's own files hold decimals (its BLOSUM62), which it rounds
        if len(words[0]) != 1 or len(scores) != len(header):
            raise InputError(f"{path}: line {number}: expected a symbol and {len(header)} scores")
        if words[0] in rows:  # which of the two would be meant?
            raise InputError(f"{path}: line {number}: a second row for {words[0]!r}")
        rows[words[0]] = scores
    if header is None or set(rows) != set(header):
        raise InputError(f"{path}: not an NCBI-format matrix (header row and one row per symbol needed)")
    symbols = "".join(header)
    scores = np.array([rows[c] for c in header], dtype=np.int32)
    if background is not None and len(background) != len(symbols):
        raise InputError(f"{path}: background has {len(background)} values for {len(symbols)} symbols")
    return SubstitutionMatrix(symbols, scores, title, background, lam, tuple(evd))


def _is_row(text: str, k: int) -> bool:
    """Whether ``text`` is a row of ``k`` scores: K = 64 alphabets use ``#``, which otherwise starts a comment."""
    words = text.split()
    try:
        [float(w) for w in words[1:]]
    except ValueError:
        return False
    return len(words[0]) == 1 and len(words) == k + 1


def load_matrix(name_or_path: str | Path | None, tokenizer: str) -> SubstitutionMatrix:
    """A matrix file, a shipped matrix by name (``3di``, ``ism``, ``blosum62``), or (``None``) the default of
    ``tokenizer``, a tokenizer's :attr:`~ismtk.tokenizers.Tokenizer.matrix`: the name of its shipped matrix, or its
    folder, whose ``matrix.out`` is used (``load_tokenizer("ism-residual").matrix`` is the shipped residual folder)."""
    if name_or_path is None:
        own = Path(tokenizer) / TOKENIZER_MATRIX
        if tokenizer in DEFAULT_MATRICES:
            name_or_path = DEFAULT_MATRICES[tokenizer]
        elif own.is_file():
            name_or_path = own
        else:
            raise InputError(
                f"no matrix for tokenizer {tokenizer!r}: neither a shipped matrix ({', '.join(DEFAULT_MATRICES)}) nor "
                f"a folder holding {TOKENIZER_MATRIX}; learn one with 'ismtk learn-matrix' and pass --matrix (or save "
                f"it as {TOKENIZER_MATRIX} in the tokenizer folder)"
            )
    path = Path(name_or_path)
    if not path.exists() and (MATRIX_DIR / f"{name_or_path}.out").is_file():
        path = MATRIX_DIR / f"{name_or_path}.out"
    if not path.exists():
        shipped = ", ".join(sorted(p.stem for p in MATRIX_DIR.glob("*.out")))
        raise InputError(f"matrix {str(name_or_path)!r} is neither a file nor a shipped matrix ({shipped})")
    return read_matrix(path)


def write_matrix(path: str | Path, matrix: SubstitutionMatrix) -> None:
    """Write ``matrix`` in the format :func:`read_matrix` reads (atomically)."""
    lines = [f"# {matrix.title or 'ismtk substitution matrix'}"]
    if matrix.background is not None:
        lines.append("# Background (precomputed optional): " + " ".join(f"{p:.6g}" for p in matrix.background))
    if matrix.lam is not None:
        lines.append(f"# Lambda     (precomputed optional): {matrix.lam:.6g}")
    for e in matrix.evd:
        fit = f"lambda={e.lam:.6g} K={e.k:.6g} corrected={int(e.corrected)}"
        lines.append(f"# EVD gap {e.gap_open} {e.gap_extend}: {fit}")
    width = max(4, len(str(int(np.abs(matrix.scores).max()))) + 2)
    lines.append(" " + "".join(f"{c:>{width}}" for c in matrix.symbols))
    for c, row in zip(matrix.symbols, matrix.scores, strict=True):
        lines.append(c + "".join(f"{int(v):>{width}}" for v in row))
    with atomic_write(path, "w") as out:
        out.write("\n".join(lines) + "\n")


def count_pairs(first: np.ndarray, second: np.ndarray, k: int) -> np.ndarray:
    """Symmetric ``(k, k) float64`` counts of aligned token pairs ``(first[i], second[i])`` (both orders)."""
    counts = np.zeros((k, k), dtype=np.float64)
    np.add.at(counts, (first, second), 1.0)
    return counts + counts.T


def ungapped_lambda(scores: np.ndarray, background: np.ndarray) -> float:
    """Karlin-Altschul lambda: the positive root of ``sum_ab p_a p_b exp(lambda s_ab) = 1`` (Karlin & Altschul 1990).

    Needs a negative expected score and at least one positive score.
    """
    p = np.outer(background, background)
    s = scores.astype(np.float64)
    if (p * s).sum() >= 0 or s.max() <= 0:
        raise InputError("the matrix has a non-negative expected score: no local-alignment statistics exist")
    lo, hi = 1e-6, 1.0
    while (p * np.exp(hi * s)).sum() < 1:
        hi *= 2
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if (p * np.exp(mid * s)).sum() < 1 else (lo, mid)
    return (lo + hi) / 2


def log_odds(
    counts: np.ndarray, symbols: str, pseudocount: float = 0.0, title: str = ""
) -> SubstitutionMatrix:
    """Log-odds matrix in half-bits from symmetric pair counts (Henikoff & Henikoff 1992; Foldseek's 3Di recipe).

    ``p_ab = (c_ab + pseudocount) / sum``, background ``p_a = sum_b p_ab`` (the pair marginals),
    ``s_ab = round(2 log2(p_ab / (p_a p_b)))``. Cells never observed (possible only without pseudocounts)
    get the lowest observed score. ``counts`` is ``(K, K)``; a symbol never seen at all is an error.
    """
    c = np.asarray(counts, dtype=np.float64) + pseudocount
    if c.shape != (len(symbols), len(symbols)) or not np.allclose(c, c.T):
        raise InputError("pair counts must be a symmetric K x K array over the alphabet")
    p = c / c.sum()
    background = p.sum(axis=1)
    unseen = [symbols[i] for i in np.flatnonzero(background == 0)]
    if unseen:
        raise InputError(f"tokens {''.join(unseen)!r} never occur in the aligned pairs; add data or --pseudocount")
    with np.errstate(divide="ignore"):
        ratio = 2 * np.log2(p / np.outer(background, background))
    finite = np.isfinite(ratio)
    scores = np.where(finite, np.rint(np.where(finite, ratio, 0)), np.rint(ratio[finite].min())).astype(np.int32)
    matrix = SubstitutionMatrix(symbols, scores, title, background)
    try:
        return replace(matrix, lam=ungapped_lambda(scores, background))
    except InputError:
        return matrix


def matrix_correlation(a: SubstitutionMatrix, b: SubstitutionMatrix) -> tuple[float, int]:
    """Pearson correlation of the scores two matrices give to the unordered symbol pairs both define, and how many."""
    shared = "".join(c for c in a.symbols if c.upper() in b.symbols.upper())
    upper = np.triu_indices(len(shared))
    x, y = a.restricted(shared)[upper], b.restricted(shared)[upper]
    if len(shared) < 2 or x.std() == 0 or y.std() == 0:
        raise InputError("matrices share too few symbols (or constant scores) for a correlation")
    return float(np.corrcoef(x, y)[0, 1]), x.size

