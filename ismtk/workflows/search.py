"""The search workflows behind the commands: inputs (structures, token FASTA or databases) to hits on disk.

Each input names the tokenizer of its tokens (a database in its header, a token FASTA in its records'
``tokenizer=`` tags); :func:`open_input` resolves that tokenizer once, and the search passes the object on:
the query side is read (or encoded) with the target's tokenizer, and the default matrix is that tokenizer's.

>>> db, tokenizer = open_input(["tests/data/search/d1ycca_.pdb.gz"])
>>> tokenizer.identity, db.names, db.tokenizer, db.residues
('3di', ['d1ycca_'], '3di', 107)

:func:`search_to_m8` is ``ismtk search``: two domains against the five of tests/data/search find themselves.

>>> import tempfile
>>> hits = Path(tempfile.mkdtemp()) / "hits.m8"
>>> queries = ["tests/data/search/d1ycca_.pdb.gz", "tests/data/search/d1nu4a_.pdb.gz"]
>>> run = search_to_m8(queries, ["tests/data/search"], hits, columns="query,target,evalue")
>>> run.queries, run.targets
(2, 5)
>>> rows = [line.split() for line in hits.read_text().splitlines()]
>>> [row[:2] for row in rows if row[0] == row[1]]
[['d1ycca_', 'd1ycca_'], ['d1nu4a_', 'd1nu4a_']]
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from ismtk.atomic import atomic_write
from ismtk.errors import InputError, IsmtkError, TooFewToFit
from ismtk.search.align import DEFAULT_GAP_EXTEND, DEFAULT_GAP_OPEN, Aligner
from ismtk.search.combined import MAIN_TRACK, parse_score
from ismtk.search.db import AA_TRACK, SequenceDB, TokenTrack, fasta_tokens, is_db
from ismtk.search.evalue import DEFAULT_NULL_PAIRS, fit_evd
from ismtk.search.hit3d import (
    ALIGNMENT_TYPES,
    COLUMNS_3D,
    PROB_COLUMN,
    TMALIGN_MIN_LENGTH,
    JudgedHit,
    JudgeOptions,
    tmalign_hit,
)
from ismtk.search.m8 import (
    DEFAULT_COLUMNS,
    SORTABLE_COLUMNS,
    needs_alignment,
    needs_coordinates,
    parse_columns,
    sort_hits,
    write_m8,
)
from ismtk.search.matrix import EvdParams, SubstitutionMatrix, load_matrix
from ismtk.search.merge import shard_keys
from ismtk.search.prob import ProbFit, find_fit
from ismtk.search.search import (
    DEFAULT_OPTIONS,
    Hit,
    Searcher,
    SearchOptions,
    column_scorer,
    score_tracks,
    tracks_on_aa_mode,
    with_aa_weight,
    with_fit,
)
from ismtk.sequence import AA_ALPHABET, aa_indices, read_protein_fasta
from ismtk.sequence.fasta import tokenizer_tag
from ismtk.structure.read import ReadOptions, find_structure_files, path_list
from ismtk.tokenizers import DEFAULT_TOKENIZER, Tokenizer, load_tokenizer, tokenizer_for, tokenizer_module
from ismtk.workflows.encode import EntryNames, encode_files, start_workers

__all__ = [
    "DEFAULT_MODE",
    "FASTA_SUFFIXES",
    "Mode",
    "SearchRun",
    "check_judging",
    "fit_matrix_evd",
    "is_fasta",
    "judge_hits",
    "load_input",
    "load_search_db",
    "open_input",
    "resolve_matrix",
    "resolve_score",
    "with_score",
    "score_mode",
    "score_tokenizers",
    "search_to_m8",
    "start_encoding",
    "with_default_fit",
]

#: What is aligned: the structure tokens, or the amino acids (with an amino-acid matrix).
Mode = Literal["tokens", "aa"]
DEFAULT_MODE: Mode = "tokens"
#: Inputs read as token FASTA (anything else is a database folder or structures).
FASTA_SUFFIXES = (".fa", ".fasta", ".faa", ".fa.gz", ".fasta.gz", ".faa.gz")
#: Called with each input left out (a file, chain or FASTA record), before the work goes on without it.
SkipHandler = Callable[[IsmtkError], None]
_READ = ReadOptions()


def open_input(
    inputs: str | Path | Sequence[str | Path],
    tokenizer: Tokenizer | str | Path | None = None,
    options: ReadOptions = _READ,
    threads: int = 1,
    on_skip: SkipHandler | None = None,
    given_by: str = "--tokenizer",
    mode: Mode = DEFAULT_MODE,
    need_tokenizer: bool = True,
    tracks: Sequence[Tokenizer] = (),
    progress: Callable[..., None] | None = None,
) -> tuple[SequenceDB, Tokenizer | None]:
    """A search input as a :class:`SequenceDB`, with the tokenizer of its tokens (``None`` in ``aa`` mode).

    ``inputs``: one database folder, token FASTA file(s), or structure files/folders/path lists. A database
    names its tokenizer in its header (a database holding ``tokenizer``'s tokens as another track is read as
    led by that track, :meth:`SequenceDB.led_by`) and a token FASTA in its records' tags (untagged FASTA are read as
    ``tokenizer``'s, else as :data:`~ismtk.tokenizers.DEFAULT_TOKENIZER`'s); ``tokenizer`` (the user's choice,
    or the target's for a query; ``given_by`` says which, for messages) must then be the same. Structures
    are encoded with ``tokenizer`` (default 3Di). What cannot be used goes to ``on_skip`` (without one: a
    :class:`UserWarning` each) and is left out: missing
    or unreadable structure files, chains the tokenizer cannot use, FASTA records without a sequence, and entries
    whose name an earlier entry has (the first keeps it).
    In ``aa`` mode the database holds the amino acids as tokens (a FASTA input is read as protein sequences) and
    its tokenizer is not resolved; neither is a database's when ``need_tokenizer`` is false (for callers that
    neither encode with it nor take its matrix).
    Structures are also encoded by each of ``tracks`` from the same reading, stored as more token tracks (chains
    that one of them cannot encode go to ``on_skip``); a database holds the tracks it was made with, a token FASTA
    one. ``progress(n, total=None)`` hears of every structure file encoded (``total`` first, with ``n = 0``).
    """
    paths = path_list(inputs)
    tokenizer = load_tokenizer(tokenizer) if tokenizer is not None else None
    kind = input_kind(paths)
    if kind == "fasta" and not all(map(is_fasta, paths)):
        raise InputError("mix of FASTA and structure inputs; give one kind")
    if mode == "aa":
        if kind == "db":
            return SequenceDB.load(paths[0]).as_amino_acids(), None
        if kind == "fasta":
            return _protein_db(paths), None
        db, _ = open_input(paths, tokenizer, options, threads, on_skip, given_by, progress=progress)
        return db.as_amino_acids(), None
    if kind == "db":
        db = SequenceDB.load(paths[0])
        if tokenizer is None:  # a tokenizer of the score that made the database's main tokens needs no --tokenizer
            tokenizer = next((t for t in tracks if t.identity == db.tokenizer), None)
        if tokenizer is not None and tokenizer.identity in db.tracks:
            db = db.led_by(tokenizer.identity)
        if not need_tokenizer and tokenizer is None:
            return db, None
        resolved = tokenizer_for(db.tokenizer, tokenizer, str(paths[0]), given_by)
        return replace(db, tokenizer=resolved.identity), resolved
    if kind == "fasta":
        for path in paths:
            tag = tokenizer_tag(path)
            if tag is not None:
                named = tokenizer
                tokenizer = tokenizer_for(tag, tokenizer, str(path), given_by)
                given_by = given_by if named is not None else str(path)  # later files must match this one
        tokenizer = tokenizer if tokenizer is not None else load_tokenizer(DEFAULT_TOKENIZER)
        records = list(_usable_records(paths, tokenizer, on_skip))
        if not records:
            raise InputError(f"{', '.join(map(str, paths))}: no record with a sequence (see the skipped ones above)")
        return SequenceDB.from_records(records, tokenizer.alphabet, tokenizer.identity), tokenizer
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(DEFAULT_TOKENIZER)
    files = find_structure_files(paths, keep_missing=True)
    others = list({t.identity: t for t in tracks if t.identity != tokenizer.identity}.values())
    return _encoded(files, tokenizer, options, threads, on_skip, others, progress), tokenizer


def _protein_db(paths: list[Path]) -> SequenceDB:
    """Protein FASTA files as a database of their amino acids (``aa`` mode), read by :func:`read_protein_fasta`'s
    rules (a token FASTA, naming its ``tokenizer=``, is refused)."""
    records = []
    for path in paths:
        found, _ = read_protein_fasta(path)
        records += [(name, aa_indices(np.frombuffer(seq.encode(), np.uint8)), seq) for name, seq in found]
    return SequenceDB.from_records(records, AA_ALPHABET, AA_TRACK)


def is_fasta(path: str | Path) -> bool:
    """Whether ``path`` is named as a FASTA file (:data:`FASTA_SUFFIXES`)."""
    return Path(path).name.lower().endswith(FASTA_SUFFIXES)


def input_kind(paths: str | Path | Sequence[str | Path]) -> Literal["db", "fasta", "structures"]:
    """How :func:`open_input` reads ``paths``: one database folder, token FASTA (any FASTA among them), or
    structure files, folders and path lists."""
    paths = path_list(paths)
    if len(paths) == 1 and is_db(paths[0]):
        return "db"
    return "fasta" if any(map(is_fasta, paths)) else "structures"


def start_encoding(
    inputs: str | Path | Sequence[str | Path], tokenizers: Iterable[str | Path], threads: int
) -> list[Path] | None:
    """The structure files of ``inputs`` when :func:`open_input` will encode them (not a database nor token
    FASTA), after starting the server its encoding workers fork from (:func:`ismtk.workflows.encode.start_workers`)
    for ``tokenizers`` (names or folders, as :func:`load_tokenizer` takes them) on ``threads`` workers, so that
    the server's imports run while this process loads the tokenizers. Give the files to :func:`open_input` in place
    of ``inputs`` (folders are walked once). ``None`` for a database or token FASTA."""
    paths = path_list(inputs)
    if input_kind(paths) != "structures":
        return None
    files = find_structure_files(paths, keep_missing=True)
    start_workers(len(files), threads, [tokenizer_module(t) for t in tokenizers])
    return files


def _encoded(
    files: list[Path],
    tokenizer: Tokenizer,
    options: ReadOptions,
    threads: int,
    on_skip: SkipHandler | None,
    tracks: Sequence[Tokenizer] = (),
    progress: Callable[..., None] | None = None,
) -> SequenceDB:
    """Every usable chain of ``files`` encoded by ``tokenizer`` (and by each of ``tracks``, as more token tracks),
    with amino acids and C-alpha coordinates."""
    chains, problems = [], []
    names = EntryNames()
    advance = progress or (lambda n=1, total=None: None)
    advance(0, total=len(files))
    with closing(encode_files(files, tokenizer, options, threads, tracks=tracks)) as results:
        for result in results:
            advance(1)
            result = names.claim(result)
            chains.extend(result.chains)
            problems += result.skipped
            for problem in result.skipped:
                _skip(problem, on_skip)
    if not chains:
        first = f" (first: {problems[0]})" if problems else ""
        raise InputError(f"no chain could be encoded from {len(files)} structure file(s){first}")
    records = ((c.name, c.tokens, c.sequence) for c in chains)
    db = SequenceDB.from_records(records, tokenizer.alphabet, tokenizer.identity, [c.ca for c in chains])
    more = {t.identity: TokenTrack(t.alphabet, np.concatenate([c.tracks[k] for c in chains]))
            for k, t in enumerate(tracks)}
    return replace(db, tracks=more) if more else db


def _usable_records(
    paths: list[Path], tokenizer: Tokenizer, on_skip: SkipHandler | None
) -> Iterator[tuple[str, np.ndarray, None]]:
    """The records of token FASTA files, without those that have no sequence (nothing to align) or repeat an
    earlier record's name (hits could not be told apart); those go to ``on_skip``."""
    seen: set[str] = set()
    for path in paths:
        for name, tokens in fasta_tokens(path, tokenizer.alphabet, tokenizer.identity):
            if not len(tokens):
                _skip(InputError(f"{path}: record {name} has no sequence"), on_skip)
            elif name in seen:
                _skip(InputError(f"{path}: record name {name} is already taken by an earlier record"), on_skip)
            else:
                seen.add(name)
                yield name, tokens, None


def _skip(problem: IsmtkError, on_skip: SkipHandler | None) -> None:
    """Hand what is left out to ``on_skip``; without one, a library caller hears of it as a warning."""
    if on_skip is not None:
        on_skip(problem)
    else:
        warnings.warn(f"skipped {problem}", stacklevel=2)


def load_input(
    inputs: str | Path | Sequence[str | Path],
    tokenizer: Tokenizer | str | Path | None = None,
    options: ReadOptions = _READ,
    threads: int = 1,
    on_skip: SkipHandler | None = None,
) -> SequenceDB:
    """The database of :func:`open_input`, without its tokenizer."""
    return open_input(inputs, tokenizer, options, threads, on_skip)[0]


def load_search_db(
    inputs: str | Path | Sequence[str | Path],
    tokenizer: str | Path | None = None,
    mode: Mode = DEFAULT_MODE,
    read_options: ReadOptions = _READ,
    threads: int = 1,
    on_skip: SkipHandler | None = None,
) -> SequenceDB:
    """One search side as a database (see :func:`open_input`; ``tokenizer`` by name or folder). The tokenizer
    of a database is not looked up unless ``tokenizer`` is given (and must then match)."""
    chosen = load_tokenizer(tokenizer) if tokenizer is not None else None
    return open_input(inputs, chosen, read_options, threads, on_skip, mode=mode, need_tokenizer=False)[0]


def with_default_fit(db: SequenceDB, tokenizer: Tokenizer | None) -> SequenceDB:
    """``db`` with the E-value parameters of its default score stored (:func:`ismtk.search.search.with_fit`); as it
    is, when its tokenizer has no matrix yet (a new tokenizer's is learned from such a database) or its entries are
    too few to fit on: its searches then fit, or say why they cannot, themselves."""
    try:
        matrix = resolve_matrix(None, tokenizer)
    except InputError:
        return db
    try:
        return with_fit(db, matrix)
    except TooFewToFit:
        return db


def resolve_matrix(
    matrix: str | Path | None, tokenizer: Tokenizer | None, mode: Mode = DEFAULT_MODE
) -> SubstitutionMatrix:
    """``matrix`` (a file or shipped name), by default the matrix of ``tokenizer`` (BLOSUM62 in ``aa`` mode)."""
    if mode == "aa" or tokenizer is None:
        return load_matrix(matrix, "aa")
    loaded = load_matrix(matrix, tokenizer.matrix)
    if matrix is None:
        _check_learned_for(loaded, tokenizer)
    return loaded


def _check_learned_for(matrix: SubstitutionMatrix, tokenizer: Tokenizer) -> None:
    """Refuse a tokenizer's own matrix whose title (``learn-matrix`` writes the identity first) names other tokens of
    the same kind: a folder re-clustered after its ``matrix.out`` was learned."""
    learned_for = _learned_for(matrix)
    kind, _, _ = learned_for.partition(":")
    if kind == tokenizer.identity.partition(":")[0] and learned_for != tokenizer.identity:  # (ism-residual: ism:...)
        raise InputError(
            f"the matrix of tokenizer {tokenizer.identity} was learned for {learned_for}, whose tokens differ (the "
            "folder was clustered again since); learn one for these tokens with 'ismtk learn-matrix', or pass --matrix"
        )


def score_mode(mode: Mode, options: SearchOptions) -> tuple[Mode, SearchOptions]:
    """``--score aa`` (the amino acids alone) is ``--mode aa``: the mode and options that search it that way;
    :class:`InputError` when ``--mode aa`` comes with another score, or for a mode that is neither."""
    if mode not in ("tokens", "aa"):
        raise InputError(f"mode {mode!r}: tokens or aa")
    if options.score == ((AA_TRACK, 1.0),):
        return "aa", replace(options, score=())
    if mode == "aa" and (options.score or (options.aa_weight or 0) > 0):
        raise tracks_on_aa_mode()
    return mode, options


def score_tokenizers(options: SearchOptions) -> list[Tokenizer]:
    """The tokenizers of the token tracks that ``options.score`` names (by name, identity or folder), in order."""
    return [load_tokenizer(name) for name, _ in options.score if name not in (AA_TRACK, MAIN_TRACK)]


def resolve_score(
    options: SearchOptions, target: SequenceDB, tokenizers: Sequence[Tokenizer] | None = None
) -> tuple[SearchOptions, dict[str, SubstitutionMatrix]]:
    """``options`` with the tokenizers of ``--score`` named by their identity (``tokens`` for the target's own),
    and the shipped matrices of the target's other token tracks it scores, by identity (:class:`Searcher`).
    ``tokenizers``: :func:`score_tokenizers` of ``options``, loaded here when not given."""
    found = iter(score_tokenizers(options) if tokenizers is None else tokenizers)
    score, matrices = [], {}
    for name, weight in options.score:
        if name not in (AA_TRACK, MAIN_TRACK):
            tokenizer = next(found)
            name = MAIN_TRACK if tokenizer.identity == target.tokenizer else tokenizer.identity
            if name != MAIN_TRACK:
                target.track(name)  # the target must hold it
                matrices[name] = resolve_matrix(None, tokenizer)
        if any(name == seen for seen, _ in score):
            shown = "the database's main tokens" if name == MAIN_TRACK else name
            raise InputError(f"--score names {shown} twice (as {', '.join(n for n, _ in options.score)}); give each "
                             "track once, with the sum of its weights")
        score.append((name, weight))
    return replace(options, score=tuple(score)), matrices


def with_score(
    options: SearchOptions, score: str | None, target: SequenceDB
) -> tuple[SearchOptions, dict[str, SubstitutionMatrix]]:
    """``options`` scoring the ``--score`` text ``score`` (e.g. ``3di:1,ism:0.25,aa:0.5``) over ``target``, and the
    matrices of its other token tracks (:func:`resolve_score`); ``options`` as they are and none without ``score``."""
    if not score:
        return options, {}
    return resolve_score(replace(options, score=parse_score(score)), target)


#: E-value parameters fitted on fewer database entries than this are rough (a few sequences' null pairs).
RELIABLE_FIT_ENTRIES = 100


def _learned_for(matrix: SubstitutionMatrix) -> str:
    """The first word of ``matrix``'s title: what it scores (``learn-matrix`` writes the tokenizer's identity
    there; BLOSUM/PAM tables name themselves), or ``""``."""
    return matrix.title.split(" ", 1)[0] if matrix.title else ""


def matrix_mismatch(matrix: SubstitutionMatrix, tokens: str | None) -> str | None:
    """Why ``matrix`` does not fit what is aligned (``tokens``: the identity of the token track, ``None`` for amino
    acids), read from its title (``learn-matrix`` writes the tokenizer's identity first; BLOSUM/PAM tables name
    themselves), or ``None`` when the title names nothing it contradicts. Letters shared by two alphabets (every
    3Di letter is an ISM token) cannot tell a foreign matrix apart; its title can."""
    from ismtk.tokenizers import TOKENIZERS

    learned_for = _learned_for(matrix)
    if learned_for.upper().startswith(("BLOSUM", "PAM")):
        return None if tokens is None else (f"it is an amino-acid matrix ({learned_for}), but structure tokens "
                                            f"({tokens}) are aligned; add --mode aa to align amino acids")
    if learned_for.partition(":")[0].lower() not in TOKENIZERS:
        return None
    if tokens is None:
        return f"it was learned for {learned_for} tokens, but amino acids are aligned"
    if learned_for != tokens:
        return f"it was learned for {learned_for} tokens, but these are {tokens} tokens (their letters mean others)"
    return None


@dataclass(frozen=True)
class SearchRun:
    """Counts of one search."""

    queries: int
    targets: int
    hits: int
    seconds: float
    evd: EvdParams
    evd_fitted: bool
    #: The weight of the amino acids searched (0: none; the default resolved, see :func:`with_aa_weight`).
    aa_weight: float = 0.0
    #: Things worth a warning: a matrix given that does not fit what is aligned (:func:`matrix_mismatch`).
    notes: tuple[str, ...] = ()


def search_to_m8(
    query: str | Path | Sequence[str | Path],
    target: str | Path | Sequence[str | Path],
    output: str | Path,
    matrix: str | Path | None = None,
    tokenizer: str | Path | Tokenizer | None = None,
    mode: Mode = DEFAULT_MODE,
    columns: str = DEFAULT_COLUMNS,
    options: SearchOptions = DEFAULT_OPTIONS,
    read_options: ReadOptions = _READ,
    on_skip: SkipHandler | None = None,
    predictor: str | Path | None = None,
    judge: JudgeOptions = JudgeOptions(),
    progress: Callable[..., None] | None = None,
) -> SearchRun:
    """Search ``query`` against ``target`` and write the hits as ``.m8`` (atomically), by default as ``ismtk
    search`` does (:data:`~ismtk.search.search.DEFAULT_OPTIONS`).

    The target's tokenizer (its own, else ``tokenizer``, else 3Di; see :func:`open_input`) reads or encodes
    the queries, and gives the default matrix (BLOSUM62 in ``aa`` mode). With ``predictor`` (a
    structure-tune export), ``query`` is a protein FASTA whose tokens are predicted from sequence alone
    (:func:`ismtk.plm.predict.predicted_db`). ``judge`` realigns (TM-align) and reorders the reported hits
    (:func:`judge_hits`). Raises :class:`InputError` for mismatched tokenizers, empty inputs, an unusable matrix,
    3D columns asked of inputs without C-alpha coordinates, or a split search sorted by another column.
    ``progress``: as :func:`open_input`'s, for the target's structures.
    """
    start = time.perf_counter()
    query, target = path_list(query), path_list(target)
    names = parse_columns(columns)
    mode, options = score_mode(mode, options)
    specs = [name for name, _ in options.score if name not in (AA_TRACK, MAIN_TRACK)]
    main = tokenizer if tokenizer is not None else specs[0] if specs else DEFAULT_TOKENIZER
    # a target of structures: its encoding workers' server starts while this process loads the tokenizers
    found = None if isinstance(main, Tokenizer) else start_encoding(target, [main, *specs], options.threads)
    chosen = load_tokenizer(tokenizer) if isinstance(tokenizer, (str, Path)) else tokenizer
    tracks = score_tokenizers(options)
    if chosen is None and tracks and input_kind(target) != "db":
        chosen = tracks[0]  # structures are encoded with the first token track of the score as the main one
    target_db, target_tokenizer = open_input(found or target, chosen, read_options, options.threads, on_skip,
                                             mode=mode, tracks=tracks, progress=progress)
    if predictor is not None:
        from ismtk.plm.predict import predicted_db

        if len(query) != 1 or target_tokenizer is None:
            raise InputError("--predictor takes one protein FASTA as the query and searches structure tokens "
                             "(--mode tokens)")
        query_db = predicted_db(query[0], predictor, target_tokenizer)
    elif target_tokenizer is not None:  # the queries' tokens must be the target's
        target_name = f"the target {', '.join(map(str, target))}"
        query_db, _ = open_input(query, target_tokenizer, read_options, options.threads, on_skip, target_name,
                                 tracks=tracks)
    else:
        query_db, _ = open_input(query, chosen, read_options, options.threads, on_skip, mode=mode)
    substitution = resolve_matrix(matrix, target_tokenizer, mode)
    mismatch = None if matrix is None else matrix_mismatch(substitution, None if mode == "aa" else target_db.tokenizer)
    options, matrices = resolve_score(with_aa_weight(options, target_db, query_db, substitution), target_db, tracks)
    if matrix is not None and mode != "aa" and options.score and all(n != MAIN_TRACK for n, _ in options.score):
        raise InputError(f"--matrix {matrix} is for the target's own tokens ({target_db.tokenizer}), which the score "
                         "does not use; score them too, or search a database led by the track the matrix is for "
                         "(createdb --tracks TRACK,...)")
    prob_fit = check_judging(names, judge, query_db, target_db, substitution, options, (query, target), matrices)
    # TM-align replaces the Smith-Waterman alignments, but for chains too short for it, which keep their own
    short = bool(min(query_db.lengths().min(), target_db.lengths().min()) < TMALIGN_MIN_LENGTH)
    own = judge.alignment_type == "sw" or short
    trace = needs_alignment([*names, *([judge.sort_by] if judge.sort_by else [])]) and own
    if trace != options.trace:
        options = replace(options, trace=trace)
    searcher = Searcher(target_db, substitution, options, matrices=matrices)
    searcher.check_query(query_db)
    hits = searcher.search(query_db)
    if prob_fit is not None or judge != JudgeOptions() or needs_coordinates(names):
        hits = judge_hits(hits, query_db, target_db, judge, prob_fit)
    settings = _search_settings(searcher, judge) if options.split else None  # a shard's key only
    keys = shard_keys(output, options.split, query_db, target_db, names, options.max_seqs, settings)
    with atomic_write(output, "w") as out, keys as keys:
        count = write_m8(out, hits, query_db, target_db, names, keys)
    notes = () if mismatch is None else (f"--matrix {matrix}: {mismatch}",)
    return SearchRun(len(query_db), len(target_db), count, time.perf_counter() - start, searcher.evd,
                     searcher.evd_fitted, searcher.options.aa_weight, notes)


def _search_settings(searcher: Searcher, judge: JudgeOptions) -> dict[str, object]:
    """What makes a search's hits what they are, for a shard's key: the options (less the threads and the split),
    a digest of the weighted score of every track, the E-value statistics and how hits are judged."""
    digest = hashlib.sha256()
    for scores in searcher.scorer.tracks.matrices:
        digest.update(repr(scores.shape).encode() + np.ascontiguousarray(scores, np.int64).tobytes())
    options = asdict(replace(searcher.options, threads=1, split=None))
    return {"options": options, "scores": digest.hexdigest()[:16], "evd": [searcher.evd.lam, searcher.evd.k],
            "judge": asdict(judge)}


def check_judging(
    columns: Sequence[str],
    judge: JudgeOptions,
    query: SequenceDB,
    target: SequenceDB,
    matrix: SubstitutionMatrix,
    options: SearchOptions,
    sources: tuple[object, object] = ("query", "target"),
    matrices: Mapping[str, SubstitutionMatrix] | None = None,
) -> ProbFit | None:
    """Check that ``columns`` and ``judge`` can be computed for these inputs before anything is searched; returns
    the probability fit of the search's scoring scheme (``matrix``, and ``matrices`` of the other token tracks of
    ``options.score``) when ``prob`` is asked for. ``sources`` name the query and target in messages."""
    if judge.alignment_type not in ALIGNMENT_TYPES:
        raise InputError(f"--alignment-type must be one of {', '.join(ALIGNMENT_TYPES)}, got {judge.alignment_type!r}")
    if judge.sort_by is not None and judge.sort_by not in SORTABLE_COLUMNS:
        raise InputError(f"cannot sort by {judge.sort_by!r}; numeric columns: {', '.join(SORTABLE_COLUMNS)}")
    if judge.sort_by is not None and options.split is not None:
        raise InputError("--sort-by cannot be used with --split: merge-hits joins the shards by score")
    asked = [*columns, *([judge.sort_by] if judge.sort_by else [])]
    spatial = sorted(set(asked) & set(COLUMNS_3D))
    if judge.alignment_type == "tmalign":
        spatial.append("--alignment-type tmalign")
    for db, source in zip((query, target), sources, strict=True):
        if spatial and db.ca is None:
            name = source[0] if isinstance(source, (list, tuple)) and len(source) == 1 else source
            verb = "needs" if len(spatial) == 1 else "need"
            raise InputError(
                f"{name}: {', '.join(spatial)} {verb} C-alpha coordinates, which this input does not carry (token "
                f"FASTA, predicted tokens, or a database made before createdb stored them); give structure files, or "
                f"remake the database with 'ismtk createdb STRUCTURES... DB'"
            )
    if PROB_COLUMN not in asked:
        return None
    if options.comp_bias > 0:
        raise InputError("column prob is fitted on scores without composition-bias correction (comp_bias 0)")
    tracks = ",".join(f"{target.tokenizer if n == MAIN_TRACK else n}:{w:g}" for n, w in score_tracks(options))
    gaps = f"{options.gap_open}/{options.gap_extend}"
    scheme = f"--score {tracks} with matrix {matrix.title or '(untitled)'!r} and gaps {gaps}"
    scorer, _ = column_scorer(target, matrix, options, matrices=matrices)
    return find_fit(scorer.fit_key(), scheme)


def judge_hits(
    hits: Iterable[list[Hit]],
    query: SequenceDB,
    target: SequenceDB,
    judge: JudgeOptions = JudgeOptions(),
    prob_fit: ProbFit | None = None,
) -> Iterator[list[JudgedHit]]:
    """Each query's hits realigned with TM-align (``judge.alignment_type == "tmalign"``), given their homology
    probability (with ``prob_fit``) and a cache for their 3D columns, and reordered by ``judge.sort_by``."""
    for query_hits in hits:
        if judge.alignment_type == "tmalign":
            query_hits = [tmalign_hit(h, query, target) for h in query_hits]
        probs = None
        if prob_fit is not None:
            lengths = [(query.offsets[h.query + 1] - query.offsets[h.query], target.offsets[h.target + 1]
                        - target.offsets[h.target]) for h in query_hits]
            probs = prob_fit.probability([h.score for h in query_hits], *np.array(lengths).reshape(-1, 2).T)
        judged = [
            JudgedHit.of(h, query, target, float(probs[k]) if probs is not None else float("nan"))
            for k, h in enumerate(query_hits)
        ]
        yield sort_hits(judged, query, target, judge.sort_by) if judge.sort_by else judged


def fit_matrix_evd(
    matrix: str | Path,
    sequences: Sequence[str | Path],
    mode: Mode = DEFAULT_MODE,
    tokenizer: str | Path | None = None,
    gap_open: int = DEFAULT_GAP_OPEN,
    gap_extend: int = DEFAULT_GAP_EXTEND,
    null_pairs: int = DEFAULT_NULL_PAIRS,
    on_skip: SkipHandler | None = None,
    on_note: Callable[[str], None] | None = None,
) -> tuple[SubstitutionMatrix, EvdParams]:
    """``matrix`` with E-value parameters fitted on null pairs of ``sequences`` (see :mod:`ismtk.search.evalue`);
    inputs left out go to ``on_skip``; ``on_note`` hears of a matrix that does not fit the sequences
    (:func:`matrix_mismatch`) and of a fit on fewer than :data:`RELIABLE_FIT_ENTRIES` entries."""
    db = load_search_db(sequences, tokenizer, mode, on_skip=on_skip)
    substitution = load_matrix(matrix, db.tokenizer)
    mismatch = matrix_mismatch(substitution, None if mode == "aa" else db.tokenizer)
    if on_note is not None and mismatch is not None:
        on_note(f"{matrix}: {mismatch}")
    if on_note is not None and len(db) < RELIABLE_FIT_ENTRIES:
        on_note(f"E-value parameters fitted on only {len(db)} entries are rough; fit on a larger set of "
                "representative sequences")
    params = fit_evd(Aligner(substitution, db.alphabet.symbols, gap_open, gap_extend), db, null_pairs)
    return substitution.with_evd(params), params
