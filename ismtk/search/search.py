"""Search: every query against every (prefiltered) target, scored, E-valued, ranked, optionally traced.

Scores come from the vectorised multi-track kernel (:mod:`ismtk.search.swipe`), one compiled call per query that
releases the GIL, so queries run on threads and scale with cores; output does not depend on the thread count.
Tracebacks (only for reported hits) come from parasail for tokens alone and from the reference kernel with the
amino-acid term.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from ismtk.errors import InputError
from ismtk.search.align import DEFAULT_GAP_EXTEND, DEFAULT_GAP_OPEN, Aligner, Alignment
from ismtk.search.combined import MAIN_TRACK, TrackAligner
from ismtk.search.db import AA_TRACK, SequenceDB
from ismtk.search.evalue import DEFAULT_NULL_PAIRS, bit_score, evalue, fit_evd, shipped_evd
from ismtk.search.matrix import EvdParams, SubstitutionMatrix, load_matrix
from ismtk.search.prefilter import DEFAULT_MAX_CANDIDATES, KmerPrefilter, PrefilterSettings
from ismtk.search.tracks import ScoreTracks
from ismtk.sequence import AA_ALPHABET

__all__ = [
    "DEFAULT_AA_WEIGHT",
    "DEFAULT_OPTIONS",
    "DEFAULT_MAX_EVALUE",
    "DEFAULT_MAX_SEQS",
    "Hit",
    "SearchOptions",
    "Searcher",
    "column_scorer",
    "parse_split",
    "score_tracks",
    "shard",
    "tracks_on_aa_mode",
    "with_fit",
    "with_aa_weight",
]

#: Hits with a larger E-value are not reported (Foldseek's ``-e`` default).
DEFAULT_MAX_EVALUE = 10.0
#: At most this many hits per query (Foldseek's ``--max-seqs`` default).
DEFAULT_MAX_SEQS = 1000
#: Threads take queries in windows of this many per thread, each window longest query first (so no thread is
#: left alone with a long query at the end), the next window queued before the last one's hits are returned.
QUERY_WINDOW = 64


@dataclass(frozen=True)
class SearchOptions:
    """Search settings: the command line's but for ``aa_weight``, which is 0 here (tokens alone); the commands use
    :data:`DEFAULT_OPTIONS` (tokens + 0.5 x amino acids where both sides carry them)."""

    gap_open: int = DEFAULT_GAP_OPEN
    gap_extend: int = DEFAULT_GAP_EXTEND
    max_evalue: float = DEFAULT_MAX_EVALUE
    max_seqs: int = DEFAULT_MAX_SEQS
    exhaustive: bool = True
    max_candidates: int = DEFAULT_MAX_CANDIDATES
    threads: int = 1
    trace: bool = True
    #: Weight of the amino-acid matrix added to the token score (0: tokens alone), see :mod:`ismtk.search.combined`;
    #: the same as ``score=(("tokens", 1.0), ("aa", aa_weight))``. ``None`` (the commands' default,
    #: :data:`DEFAULT_OPTIONS`): :data:`DEFAULT_AA_WEIGHT` where both sides carry amino acids, else 0
    #: (:func:`with_aa_weight`).
    aa_weight: float | None = 0.0
    #: ``((track, weight), ...)``: the weighted tracks summed per column (``--score``, :func:`ismtk.search.combined.
    #: parse_score`); a track is ``tokens`` (the target's main tokens), ``aa`` or a tokenizer identity of another
    #: token track of the target. Empty: the main tokens alone, plus ``aa_weight`` x amino acids.
    score: tuple[tuple[str, float], ...] = ()
    #: Prefilter k-mer length, similar-k-mer threshold, segment minimum (:mod:`ismtk.search.prefilter`).
    prefilter: PrefilterSettings = field(default_factory=PrefilterSettings)
    #: ``(I, N)``: search only shard I (1-based) of N of the target database; E-values still count all of it.
    split: tuple[int, int] | None = None
    #: Scale of the composition-bias correction of the query's column scores (0: off), see
    #: :meth:`ismtk.search.tracks.ScoreTracks.composition_bias`.
    comp_bias: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.score, str):
            raise InputError(f"score {self.score!r}: a tuple of (track, weight) pairs; parse a --score text with "
                             "ismtk.search.combined.parse_score")
        if isinstance(self.split, str):
            raise InputError(f"split {self.split!r}: an (I, N) tuple; parse an I/N text with parse_split")


def parse_split(text: str) -> tuple[int, int]:
    """``"I/N"`` (1 <= I <= N) as ``(I, N)``; raises :class:`InputError` otherwise."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        index = count = 0
    if not 1 <= index <= count:
        raise InputError(f"--split takes I/N with 1 <= I <= N (shard I of N), got {text!r}")
    return index, count


#: The weight of the amino acids in the commands' default score, tokens + 0.5 x BLOSUM62 where both sides carry
#: amino acids (Foldseek's 3Di+AA): chosen on the matrix-training domains of scope40_dev; the default because it finds
#: more homologs than tokens alone on the bench at 1.2x their search time (docs/benchmarks.md).
DEFAULT_AA_WEIGHT = 0.5
#: The commands' search defaults (``search``, ``easy-search``, ``benchmark scope40``).
DEFAULT_OPTIONS = SearchOptions(aa_weight=None)


def with_aa_weight(
    options: SearchOptions,
    target: SequenceDB,
    query: SequenceDB | None = None,
    matrix: SubstitutionMatrix | None = None,
) -> SearchOptions:
    """``options`` with ``aa_weight=None`` made a number: :data:`DEFAULT_AA_WEIGHT` when the target (and ``query``,
    if given) carry amino acids, structure tokens are searched (not amino acids alone) and no ``score`` is given;
    else 0, tokens alone (token FASTA carry no amino acids). Also 0 for a target of one entry, unless E-value
    parameters ship for that combined score with ``matrix`` (:func:`shipped_evd`): otherwise they are fitted on pairs
    of target entries, and tokens alone have them in the matrix header."""
    if options.aa_weight is not None:
        return options
    sides = [target] if query is None else [target, query]
    auto = (not options.score and target.tokenizer != AA_TRACK and all(db.aa is not None for db in sides)
            and (len(target) >= 2 or (matrix is not None and _default_fit_ships(target, matrix, options))))
    return replace(options, aa_weight=DEFAULT_AA_WEIGHT if auto else 0.0)


def _default_fit_ships(target: SequenceDB, matrix: SubstitutionMatrix, options: SearchOptions) -> bool:
    """Whether E-value parameters ship for tokens + :data:`DEFAULT_AA_WEIGHT` x BLOSUM62 over ``target``."""
    score = ((MAIN_TRACK, 1.0), (AA_TRACK, DEFAULT_AA_WEIGHT))
    aligner, _ = _weighted_aligner(score, target, matrix, load_matrix(None, "aa"), {}, options)
    return shipped_evd(aligner.fit_key()) is not None


def _weighted_aligner(
    score: tuple[tuple[str, float], ...],
    target: SequenceDB,
    matrix: SubstitutionMatrix,
    aa_matrix: SubstitutionMatrix,
    matrices: Mapping[str, SubstitutionMatrix],
    options: SearchOptions,
) -> tuple[TrackAligner, tuple[np.ndarray, ...]]:
    """The aligner of the weighted tracks ``score`` over ``target`` (gaps of ``options``) and its tracks'
    unweighted tables. Each track's table is its matrix over the target's symbols of that track:
    ``matrix`` for the main tokens, ``aa_matrix`` for the amino acids, ``matrices[name]`` for another tokenizer."""
    tables = []
    for name, _ in score:
        if name == MAIN_TRACK:
            tables.append(matrix.restricted(target.alphabet.symbols))
        elif name == AA_TRACK:
            tables.append(aa_matrix.restricted(AA_ALPHABET.symbols))
        else:
            track = target.track(name)
            if name not in matrices:
                raise InputError(f"no substitution matrix for the {name} track")
            tables.append(matrices[name].restricted(track.alphabet.symbols))
    tracks = ScoreTracks.weighted(tables, [weight for _, weight in score])
    names = [name for name, _ in score]
    return TrackAligner(tracks, names, options.gap_open, options.gap_extend), tuple(tables)


def column_scorer(
    target: SequenceDB,
    matrix: SubstitutionMatrix,
    options: SearchOptions,
    aa_matrix: SubstitutionMatrix | None = None,
    matrices: Mapping[str, SubstitutionMatrix] | None = None,
) -> tuple[TrackAligner, tuple[np.ndarray, ...]]:
    """The column scores of a search of ``target`` with ``options`` (its tracks, weights and gaps) as a
    :class:`TrackAligner`, and the unweighted ``(K_t, K_t)`` tables of its tracks (the prefilter's seeds). Its
    :meth:`~ismtk.search.combined.TrackAligner.fit_key` names the scoring scheme of shipped E-value and probability
    fits."""
    score = score_tracks(options, target.tokenizer)
    if score == ((MAIN_TRACK, 1.0),):
        seeds = matrix.restricted(target.alphabet.symbols)
        tracks = ScoreTracks((seeds.astype(np.int32),))
        return TrackAligner(tracks, (MAIN_TRACK,), options.gap_open, options.gap_extend), (seeds,)
    aa_matrix = aa_matrix if aa_matrix is not None else load_matrix(None, "aa")
    return _weighted_aligner(score, target, matrix, aa_matrix, matrices or {}, options)


def score_tracks(options: SearchOptions, main: str = MAIN_TRACK) -> tuple[tuple[str, float], ...]:
    """The weighted tracks of a search: ``options.score``, else the main tokens (plus ``aa_weight`` x amino acids);
    a track named ``main`` (the target's tokenizer identity) is written ``tokens``."""
    aa_weight = options.aa_weight or 0.0  # None (not yet resolved, see with_aa_weight): none
    if options.score and aa_weight > 0:
        raise InputError("give --score or --aa-weight, not both (--aa-weight W is --score TOKENIZER:1,aa:W)")
    score = options.score or ((MAIN_TRACK, 1.0), *(((AA_TRACK, aa_weight),) if aa_weight > 0 else ()))
    return tuple((MAIN_TRACK if name == main else name, weight) for name, weight in score)


def shard(offsets: np.ndarray, index: int, count: int) -> tuple[int, int]:
    """Entries ``[start, stop)`` of shard ``index`` (1-based) of ``count``: consecutive entries, split where the
    cumulative residue count crosses each ``k / count`` of the total, so shards hold about equal residues."""
    offsets = np.asarray(offsets, dtype=np.int64)
    cuts = np.searchsorted(offsets[1:], offsets[-1] * np.arange(count + 1) / count, side="left")
    cuts[0], cuts[-1] = 0, len(offsets) - 1
    return int(cuts[index - 1]), int(cuts[index])


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


def with_fit(db: SequenceDB, matrix: SubstitutionMatrix, options: SearchOptions = DEFAULT_OPTIONS) -> SequenceDB:
    """``db`` with the E-value parameters of a search with ``options`` (the commands' default score) fitted now and
    stored in :attr:`SequenceDB.fits`, so that such searches of the saved database skip the fit (same parameters,
    same output). Unchanged when those parameters come from the matrix header or ismtk's shipped fits."""
    searcher = Searcher(db, matrix, options)
    if searcher.evd_key is None:
        return db
    return replace(db, fits={**db.fits, searcher.evd_key: searcher.evd})


def tracks_on_aa_mode() -> InputError:
    """The error for a score that adds tracks to a search of the amino acids alone (``--mode aa``)."""
    return InputError(
        "adding tracks to structure tokens (--aa-weight, --score) does not apply to --mode aa (which is --score aa)"
    )


class Searcher:
    """Searches queries against one target database with one matrix per track.

    The tracks and their weights are :func:`score_tracks` of ``options``; ``matrix`` scores the main tokens,
    ``aa_matrix`` (default BLOSUM62) the amino acids and ``matrices`` (by tokenizer identity) the other token
    tracks. The E-value parameters come from the matrix header for these gap penalties when the main tokens alone
    are scored, from ismtk's shipped fits for a shipped combination of tracks (:func:`shipped_evd`), else from the
    target database's stored fit, else they are fitted on the target database for this combination (see
    :mod:`ismtk.search.evalue`); :attr:`evd_fitted` is set unless they come from the header or the shipped fits.
    """

    def __init__(
        self,
        target: SequenceDB,
        matrix: SubstitutionMatrix,
        options: SearchOptions = SearchOptions(),
        aa_matrix: SubstitutionMatrix | None = None,
        matrices: Mapping[str, SubstitutionMatrix] | None = None,
    ):
        if options.max_seqs < 1 or options.threads < 1:
            raise InputError("--max-seqs and --threads must be at least 1")
        if options.comp_bias < 0:
            raise InputError(f"the composition-bias scale must be 0 (off) or positive, got {options.comp_bias}")
        if options.split is not None and not 1 <= options.split[0] <= options.split[1]:
            raise InputError(f"--split takes I/N with 1 <= I <= N, got {options.split[0]}/{options.split[1]}")
        options = with_aa_weight(options, target, matrix=matrix)
        if options.aa_weight < 0:
            raise InputError(f"--aa-weight must be 0 (off) or positive, got {options.aa_weight}")
        self.target = target
        self.options = options
        self.score = score_tracks(options, target.tokenizer)
        if target.tokenizer == AA_TRACK and len(self.score) > 1:
            raise tracks_on_aa_mode()
        gaps = (options.gap_open, options.gap_extend)
        self.aligner: Aligner | TrackAligner
        self.scorer, self._tables = column_scorer(target, matrix, options, aa_matrix, matrices)
        if self.score == ((MAIN_TRACK, 1.0),):
            self.aligner = Aligner(matrix, target.alphabet.symbols, *gaps)
            params = matrix.evd_for(*gaps)
        else:
            self.aligner, params = self.scorer, None
            (name, weight), *others = self.score
            if not others and weight == 1.0 and name != AA_TRACK:  # another tokenizer's tokens alone: its header's
                params = (matrices or {})[name].evd_for(*gaps)
        self._codes = self.scorer.codes(target)
        self._background = self.scorer.background(target) if options.comp_bias > 0 else []
        self._offsets = np.ascontiguousarray(target.offsets, dtype=np.int64)
        start, stop = (0, len(target)) if options.split is None else shard(target.offsets, *options.split)
        self.entries = np.arange(start, stop, dtype=np.int64)
        #: Key of this search's fit in :attr:`SequenceDB.fits` (None: the fit is not stored, see :func:`with_fit`).
        self.evd_key = None
        if options.comp_bias > 0:  # scores change: fit their statistics on the target
            params = None
        elif params is None:  # (the main tokens alone: a matrix without parameters for these gaps)
            key = self.scorer.fit_key()
            params = shipped_evd(key)
            if params is None:
                self.evd_key = f"{key}-{DEFAULT_NULL_PAIRS}"
        self.evd_fitted = params is None
        if self.evd_key is not None:
            params = target.fits.get(self.evd_key)
        if params is None:  # not in the header, nor stored in the database
            aligner = self.scorer if options.comp_bias > 0 else self.aligner
            params = fit_evd(aligner, target, comp_bias=options.comp_bias)
        self.evd: EvdParams = params
        self._prefilter = None if options.exhaustive else self.prefilter(options.prefilter)
        self._kernels_loaded = False  # by the first many-thread search (see :meth:`_load_kernels`)

    def prefilter(self, settings: PrefilterSettings) -> KmerPrefilter:
        """The k-mer prefilter of this search's target entries with ``settings``: seeded by the k-mers of the first
        token track of the score (whatever the order of ``--score``), and by the amino acids' when the score has
        them too (their unweighted tables)."""
        names, tables = self.scorer.names, self._tables
        row = next((i for i, name in enumerate(names) if name != AA_TRACK), 0)
        seeds_aa = AA_TRACK in names and names[row] != AA_TRACK  # (a score of amino acids alone seeds with them)
        aa = (names.index(AA_TRACK), tables[names.index(AA_TRACK)]) if seeds_aa else None
        gaps = (self.options.gap_open, self.options.gap_extend)
        return KmerPrefilter(tables[row], self._codes, self._offsets, self.entries, settings, *gaps, aa=aa, row=row)

    def check_query(self, query: SequenceDB) -> None:
        """Raise :class:`InputError` when the query's tokens are not those of the target database, or it lacks a
        track of the score."""
        if query.alphabet.symbols != self.target.alphabet.symbols or query.tokenizer != self.target.tokenizer:
            raise InputError(
                f"query tokens ({query.tokenizer}, alphabet {query.alphabet.symbols!r}) do not match the target "
                f"database ({self.target.tokenizer}, alphabet {self.target.alphabet.symbols!r}); encode both the "
                "same way"
            )
        names = [name for name, _ in self.score]
        if AA_TRACK in names and query.aa is None:
            raise InputError(
                "scoring amino acids (aa in --score, or --aa-weight) needs the queries' amino acids: give structures "
                "or a database, not token FASTA"
            )
        for name in names:
            if name not in (MAIN_TRACK, AA_TRACK) and name not in query.tracks:
                raise InputError(
                    f"the queries have no {name} track (they hold {', '.join(query.track_names)}): give structures, "
                    f"or a database made with 'ismtk createdb ... --tracks {query.tokenizer},{name}'"
                )
            if name in query.tracks and query.tracks[name].alphabet != self.target.track(name).alphabet:
                raise InputError(f"the queries' {name} tokens have another alphabet than the target's")

    def search_one(self, query: SequenceDB, i: int, codes: np.ndarray | None = None) -> list[Hit]:
        """Ranked hits of query entry ``i``: best corrected score first (ties: lower target index); a target that
        aligns no pair (raw score 0) is no hit, whatever its E-value.

        ``codes``: the query's ``(T, L)`` track codes when the caller has them (:meth:`search` does)."""
        codes = self.scorer.query(query, i) if codes is None else codes
        tracks, bias = self.scorer.tracks, None
        if self.options.comp_bias > 0:
            bias = tracks.composition_bias(codes, self._background, self.options.comp_bias)
        if self._prefilter is None:
            ids = self.entries
        else:
            ids = self._prefilter.candidates(codes, tracks.profile(codes, bias), self.options.max_candidates)
        if not len(ids):
            return []
        raw, corrected, scored = self._scores(codes, ids, bias)
        e = np.full(len(ids), np.inf)
        e[scored] = evalue(corrected[scored], codes.shape[1], self.target.residues, self.evd)
        keep = np.flatnonzero((e <= self.options.max_evalue) & (raw > 0))  # raw 0: not one aligned pair
        keep = keep[np.lexsort((ids[keep], -corrected[keep]))][: self.options.max_seqs]
        bits = bit_score(corrected[keep], self.evd)
        alignments = self._traces(query, i, codes, bias, ids[keep]) if self.options.trace else [None] * len(keep)
        return [
            Hit(i, int(ids[k]), int(raw[k]), int(corrected[k]), float(e[k]), float(b), alignment)
            for k, b, alignment in zip(keep, bits, alignments, strict=True)
        ]

    def _scores(
        self, codes: np.ndarray, ids: np.ndarray, bias: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(raw, corrected, scored)`` of the query ``codes`` against the targets ``ids``: ``corrected`` (raw less
        the reversed query's raw) is known at the positions ``scored``. An exhaustive search under a finite
        ``max_evalue`` aligns the reversed query only where the raw score alone reaches it: the corrected score is
        at most the raw one, so a target whose raw score misses the cut-off is never reported. On the bench a fifth
        of the targets pass (the longer ones, mostly), and the scores take 0.91x the time of both passes for all;
        the query alone costs 0.67x both, the work per target column that both passes share being a third. A
        prefilter's few candidates are scored in one call, which shares that work."""
        tracks, gaps = self.scorer.tracks, (self.options.gap_open, self.options.gap_extend)
        if not np.isfinite(self.options.max_evalue) or self._prefilter is not None:
            raw, corrected = tracks.score_many(codes, self._codes, self._offsets, ids, *gaps, bias).T
            return raw, corrected, np.arange(len(ids))
        raw = tracks.score_many(codes, self._codes, self._offsets, ids, *gaps, bias, reverse=False)[:, 0]
        e_raw = evalue(raw, codes.shape[1], self.target.residues, self.evd)
        scored = np.flatnonzero(e_raw <= self.options.max_evalue)
        corrected = np.zeros(len(ids), np.int64)
        if len(scored):
            reversed_query = np.ascontiguousarray(codes[:, ::-1])
            reversed_bias = None if bias is None else np.ascontiguousarray(bias[::-1])
            backward = tracks.score_many(reversed_query, self._codes, self._offsets, ids[scored], *gaps, reversed_bias,
                                         reverse=False)[:, 0]  # fmt: skip
            corrected[scored] = raw[scored] - backward
        return raw, corrected, scored

    def _traces(
        self, query: SequenceDB, i: int, codes: np.ndarray, bias: np.ndarray | None, ids: np.ndarray
    ) -> list[Alignment]:
        """Tracebacks of query ``i`` (``codes``) against the target indices ``ids``: parasail for tokens alone, else
        the multi-track kernels (which also take the composition bias)."""
        if not len(ids):
            return []
        if bias is None and isinstance(self.aligner, Aligner):
            profile = self.aligner.query(query, i)
            return [self.aligner.trace(profile, self.aligner.target(self.target, int(j))) for j in ids]
        return self.scorer.trace_many(codes, self._codes, self._offsets, ids, bias)

    def search(self, query: SequenceDB) -> Iterator[list[Hit]]:
        """Hits of every query in order, computed by ``options.threads`` threads (the kernels release the GIL)."""
        self.check_query(query)
        codes = self.scorer.codes(query)

        def one(i: int) -> list[Hit]:
            return self.search_one(query, i, codes[:, query.offsets[i] : query.offsets[i + 1]])

        if self.options.threads == 1 or len(query) < 2:
            yield from map(one, range(len(query)))
            return
        if not self._kernels_loaded:
            self._load_kernels(codes[:, query.offsets[0] : query.offsets[1]])
            self._kernels_loaded = True
        lengths, window = np.diff(query.offsets), QUERY_WINDOW * self.options.threads
        with ThreadPoolExecutor(self.options.threads) as pool:
            pending: deque[list[Future]] = deque()
            for start in range(0, len(query), window):
                block = np.arange(start, min(start + window, len(query)))
                futures = {}
                for i in block[np.argsort(-lengths[block], kind="stable")]:
                    futures[i] = pool.submit(one, int(i))
                pending.append([futures[i] for i in block])
                if len(pending) > 1:
                    yield from (future.result() for future in pending.popleft())
            for futures in pending:
                yield from (future.result() for future in futures)

    def _load_kernels(self, codes: np.ndarray) -> None:
        """Run every compiled function of a search once on this thread (see :func:`ismtk.search.swipe.load_kernels`),
        with the argument types of the search: ``codes`` is a query's ``(T, L)`` slice of its database's codes."""
        codes = np.ascontiguousarray(codes)
        tracks, bias = self.scorer.tracks, None
        if self.options.comp_bias > 0:
            bias = tracks.composition_bias(codes, self._background, self.options.comp_bias)
        gaps = self.options.gap_open, self.options.gap_extend
        prefilter = self._prefilter is not None  # scores a subset of the entries per query, else all of them
        tracks.score_many(codes, self._codes, self._offsets, self.entries, *gaps, bias, warm_up=True, subsets=prefilter)
        if prefilter:
            self._prefilter.candidates(codes, tracks.profile(codes, bias), 1)
        if self.options.trace and not (bias is None and isinstance(self.aligner, Aligner)) and len(self.entries):
            self.scorer.trace_many(codes, self._codes, self._offsets, self.entries[:1], bias)  # parasail: no need
