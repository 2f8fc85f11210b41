"""Search: every query against every (prefiltered) target, scored, E-valued, ranked, optionally traced."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from ismtk.errors import InputError
from ismtk.search.align import DEFAULT_GAP_EXTEND, DEFAULT_GAP_OPEN, Aligner, Alignment
from ismtk.search.combined import CombinedAligner
from ismtk.search.db import SequenceDB
from ismtk.search.evalue import bit_score, evalue, fit_evd
from ismtk.search.matrix import EvdParams, SubstitutionMatrix, load_matrix
from ismtk.search.prefilter import DEFAULT_MAX_CANDIDATES, UngappedPrefilter

__all__ = ["DEFAULT_MAX_EVALUE", "DEFAULT_MAX_SEQS", "Hit", "SearchOptions", "Searcher"]

#: Hits with a larger E-value are not reported (Foldseek's ``-e`` default).
DEFAULT_MAX_EVALUE = 10.0
#: At most this many hits per query (Foldseek's ``--max-seqs`` default).
DEFAULT_MAX_SEQS = 1000


@dataclass(frozen=True)
class SearchOptions:
    """Search settings; the defaults are those of the command line."""

    gap_open: int = DEFAULT_GAP_OPEN
    gap_extend: int = DEFAULT_GAP_EXTEND
    max_evalue: float = DEFAULT_MAX_EVALUE
    max_seqs: int = DEFAULT_MAX_SEQS
    exhaustive: bool = True
    max_candidates: int = DEFAULT_MAX_CANDIDATES
    threads: int = 1
    trace: bool = True
    #: Weight of the amino-acid matrix added to the token score (0: tokens alone), see :mod:`ismtk.search.combined`.
    aa_weight: float = 0.0


@dataclass(frozen=True)
class Hit:
    """One query-target hit: ``raw`` SW score, ``score`` = raw minus reversed-query score (ranks hits)."""

    query: int
    target: int
    raw: int
    score: int
    evalue: float
    bits: float
    alignment: Alignment | None = None


class Searcher:
    """Searches queries against one target database with one matrix.

    The E-value parameters come from the matrix header for these gap penalties; if it has none, or an amino-acid
    term is added (``options.aa_weight``, with ``aa_matrix``, default BLOSUM62), they are fitted on the target
    database (see :mod:`ismtk.search.evalue`) and :attr:`evd_fitted` is set.
    """

    def __init__(
        self,
        target: SequenceDB,
        matrix: SubstitutionMatrix,
        options: SearchOptions = SearchOptions(),
        aa_matrix: SubstitutionMatrix | None = None,
    ):
        if options.max_seqs < 1 or options.threads < 1:
            raise InputError("--max-seqs and --threads must be at least 1")
        if options.aa_weight < 0:
            raise InputError(f"--aa-weight must be 0 (off) or positive, got {options.aa_weight}")
        self.target = target
        self.options = options
        symbols, gaps = target.alphabet.symbols, (options.gap_open, options.gap_extend)
        self.aligner: Aligner | CombinedAligner
        if options.aa_weight > 0:
            if target.tokenizer == "aa":
                raise InputError("--aa-weight adds amino acids to structure tokens; it does not apply to --mode aa")
            aa_matrix = aa_matrix if aa_matrix is not None else load_matrix(None, "aa")
            self.aligner = CombinedAligner(matrix, symbols, aa_matrix, options.aa_weight, *gaps)
            params = None
        else:
            self.aligner = Aligner(matrix, symbols, *gaps)
            params = matrix.evd_for(*gaps)
        self._targets = [self.aligner.target(target, j) for j in range(len(target))]
        self.evd_fitted = params is None
        self.evd: EvdParams = params if params is not None else fit_evd(self.aligner, target)
        self._prefilter = None if options.exhaustive else UngappedPrefilter(target, matrix)

    def check_query(self, query: SequenceDB) -> None:
        """Raise :class:`InputError` when the query's tokens are not those of the target database."""
        if query.alphabet.symbols != self.target.alphabet.symbols or query.tokenizer != self.target.tokenizer:
            raise InputError(
                f"query tokens ({query.tokenizer}, alphabet {query.alphabet.symbols!r}) do not match the target "
                f"database ({self.target.tokenizer}, alphabet {self.target.alphabet.symbols!r}); encode both the "
                "same way"
            )
        if self.options.aa_weight > 0 and query.aa is None:
            raise InputError(
                "--aa-weight needs the queries' amino acids: give structures or a database, not token FASTA"
            )

    def search_one(self, query: SequenceDB, i: int) -> list[Hit]:
        """Ranked hits of query entry ``i``: best corrected score first (ties: lower target index)."""
        tokens = np.asarray(query.token_seq(i))
        profile = self.aligner.query(query, i)
        if self._prefilter is None:
            candidates = range(len(self.target))
        else:
            candidates = self._prefilter.candidates(tokens, self.options.max_candidates)
        targets = self._targets
        ids = np.asarray(candidates, dtype=np.int64)
        if not len(ids):
            return []
        raw, corrected = np.array(self.aligner.score_many(profile, [targets[j] for j in ids]), dtype=np.int64).T
        e = evalue(corrected, len(tokens), self.target.residues, self.evd)
        keep = np.flatnonzero(e <= self.options.max_evalue)
        keep = keep[np.lexsort((ids[keep], -corrected[keep]))][: self.options.max_seqs]
        bits = bit_score(corrected[keep], self.evd)
        hits = []
        for k, b in zip(keep, bits, strict=True):
            alignment = self.aligner.trace(profile, targets[ids[k]]) if self.options.trace else None
            hits.append(Hit(i, int(ids[k]), int(raw[k]), int(corrected[k]), float(e[k]), float(b), alignment))
        return hits

    def search(self, query: SequenceDB) -> Iterator[list[Hit]]:
        """Hits of every query in order, computed by ``options.threads`` threads (parasail and the compiled
        kernels release the GIL)."""
        self.check_query(query)
        if self.options.threads == 1:
            for i in range(len(query)):
                yield self.search_one(query, i)
            return
        with ThreadPoolExecutor(self.options.threads) as pool:
            yield from pool.map(lambda i: self.search_one(query, i), range(len(query)))
