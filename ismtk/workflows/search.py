"""The search workflows behind the commands: inputs (structures, token FASTA or databases) to hits on disk."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np

from ismtk.atomic import atomic_write
from ismtk.errors import InputError, StructureError
from ismtk.search.align import DEFAULT_GAP_EXTEND, DEFAULT_GAP_OPEN, Aligner
from ismtk.search.db import SequenceDB, is_db
from ismtk.search.evalue import DEFAULT_NULL_PAIRS, fit_evd
from ismtk.search.hit3d import ALIGNMENT_TYPES, COLUMNS_3D, PROB_COLUMN, JudgedHit, JudgeOptions, tmalign_hit
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
from ismtk.search.prob import ProbFit, find_fit
from ismtk.search.search import Hit, Searcher, SearchOptions
from ismtk.structure.read import ReadOptions, find_structure_files
from ismtk.tokenizers import Tokenizer, load_tokenizer
from ismtk.workflows.encode import encode_files

__all__ = [
    "Mode",
    "SearchRun",
    "check_judging",
    "fit_matrix_evd",
    "judge_hits",
    "load_input",
    "load_search_db",
    "search_to_m8",
]

#: What is aligned: the structure tokens, or the amino acids (with an amino-acid matrix).
Mode = Literal["tokens", "aa"]
SkipHandler = Callable[[StructureError], None]


def load_search_db(
    inputs: Sequence[str | Path],
    tokenizer: str,
    mode: Mode = "tokens",
    read_options: ReadOptions = ReadOptions(),
    threads: int = 1,
    on_skip: SkipHandler | None = None,
) -> SequenceDB:
    """One search side as a database: a DB folder, token FASTA, or structures encoded with ``tokenizer``."""
    db = load_input(inputs, load_tokenizer(tokenizer), read_options, threads, on_skip)
    return db.as_amino_acids() if mode == "aa" else db


_FASTA_SUFFIXES = (".fa", ".fasta", ".faa", ".fa.gz", ".fasta.gz", ".faa.gz")


def load_input(
    inputs: Sequence[str | Path],
    tokenizer: Tokenizer,
    options: ReadOptions = ReadOptions(),
    threads: int = 1,
    on_skip=None,
) -> SequenceDB:
    """A search input as a :class:`SequenceDB`: one database folder, token FASTA file(s), or structures.

    Token FASTA are read with ``tokenizer``'s alphabet (no amino acids); structures are encoded with
    ``tokenizer`` (chains it cannot use are passed to ``on_skip`` and left out) and keep their amino acids and
    C-alpha coordinates.
    """
    paths = [Path(p) for p in inputs]
    if len(paths) == 1 and is_db(paths[0]):
        return SequenceDB.load(paths[0])
    fasta = [p for p in paths if p.name.lower().endswith(_FASTA_SUFFIXES)]
    if fasta:
        if len(fasta) != len(paths):
            raise InputError("mix of FASTA and structure inputs; give one kind")
        dbs = [SequenceDB.from_fasta(p, tokenizer.alphabet, tokenizer.name) for p in fasta]
        return SequenceDB.from_records(
            ((n, db.token_seq(i), None) for db in dbs for i, n in enumerate(db.names)), tokenizer.alphabet, tokenizer.name
        )
    files = find_structure_files(paths)
    chains = []
    for result in encode_files(files, tokenizer, options, threads):
        chains.extend(result.chains)
        if on_skip is not None:
            for problem in result.skipped:
                on_skip(problem)
    if not chains:
        raise InputError(f"no chain could be encoded from {len(files)} structure file(s)")
    records = ((c.name, c.tokens, c.sequence) for c in chains)
    return SequenceDB.from_records(records, tokenizer.alphabet, tokenizer.name, [c.ca for c in chains])


@dataclass(frozen=True)
class SearchRun:
    """Counts of one search."""

    queries: int
    targets: int
    hits: int
    seconds: float
    evd: EvdParams
    evd_fitted: bool


def search_to_m8(
    query: Sequence[str | Path],
    target: Sequence[str | Path],
    output: str | Path,
    matrix: str | Path | None = None,
    tokenizer: str = "3di",
    mode: Mode = "tokens",
    columns: str = DEFAULT_COLUMNS,
    options: SearchOptions = SearchOptions(),
    read_options: ReadOptions = ReadOptions(),
    on_skip: SkipHandler | None = None,
    predictor: str | Path | None = None,
    judge: JudgeOptions = JudgeOptions(),
) -> SearchRun:
    """Search ``query`` against ``target`` and write the hits as ``.m8`` (atomically).

    ``matrix`` is a file or shipped name; by default the matrix of the target's tokenizer (or BLOSUM62 in
    ``aa`` mode). With ``predictor`` (a structure-tune export), ``query`` is a protein FASTA whose tokens
    are predicted from sequence alone (:func:`ismtk.plm.predict.predicted_db`). ``judge`` realigns (TM-align) and
    reorders the reported hits (:func:`judge_hits`). Raises :class:`InputError` for mismatched alphabets, empty
    inputs, an unusable matrix, or 3D columns asked of inputs without C-alpha coordinates.
    """
    start = time.perf_counter()
    names = parse_columns(columns)
    target_db = load_search_db(target, tokenizer, mode, read_options, options.threads, on_skip)
    if predictor is not None:
        from ismtk.plm.predict import predicted_db

        if len(query) != 1 or mode != "tokens":
            raise InputError("--predictor takes one protein FASTA as the query and searches structure tokens (--mode tokens)")
        query_db = predicted_db(query[0], predictor, target_db.tokenizer, target_db.alphabet)
    else:
        query_db = load_search_db(query, target_db.tokenizer if mode == "tokens" else tokenizer, mode, read_options,
                                  options.threads, on_skip)
    substitution = load_matrix(matrix, target_db.tokenizer)
    prob_fit = check_judging(names, judge, query_db, target_db, substitution, options, (query, target))
    trace = needs_alignment([*names, *([judge.sort_by] if judge.sort_by else [])]) and judge.alignment_type == "sw"
    if trace != options.trace:
        options = replace(options, trace=trace)
    searcher = Searcher(target_db, substitution, options)
    searcher.check_query(query_db)
    hits = searcher.search(query_db)
    if prob_fit is not None or judge != JudgeOptions() or needs_coordinates(names):
        hits = judge_hits(hits, query_db, target_db, judge, prob_fit)
    with atomic_write(output, "w") as out:
        count = write_m8(out, hits, query_db, target_db, names)
    return SearchRun(len(query_db), len(target_db), count, time.perf_counter() - start, searcher.evd,
                     searcher.evd_fitted)


def check_judging(
    columns: Sequence[str],
    judge: JudgeOptions,
    query: SequenceDB,
    target: SequenceDB,
    matrix: SubstitutionMatrix,
    options: SearchOptions,
    sources: tuple[object, object] = ("query", "target"),
) -> ProbFit | None:
    """Check that ``columns`` and ``judge`` can be computed for these inputs before anything is searched; returns
    the probability fit when ``prob`` is asked for. ``sources`` name the query and target in messages."""
    if judge.alignment_type not in ALIGNMENT_TYPES:
        raise InputError(f"--alignment-type must be one of {', '.join(ALIGNMENT_TYPES)}, got {judge.alignment_type!r}")
    if judge.sort_by is not None and judge.sort_by not in SORTABLE_COLUMNS:
        raise InputError(f"cannot sort by {judge.sort_by!r}; numeric columns: {', '.join(SORTABLE_COLUMNS)}")
    asked = [*columns, *([judge.sort_by] if judge.sort_by else [])]
    spatial = sorted(set(asked) & set(COLUMNS_3D)) + (["--alignment-type tmalign"] if judge.alignment_type == "tmalign" else [])
    for db, source in zip((query, target), sources):
        if spatial and db.ca is None:
            name = source[0] if isinstance(source, (list, tuple)) and len(source) == 1 else source
            raise InputError(
                f"{name}: {', '.join(spatial)} need C-alpha coordinates, which this input does not carry (token FASTA, "
                f"predicted tokens, or a database made before createdb stored them); give structure files, or remake "
                f"the database with 'ismtk createdb STRUCTURES... DB'"
            )
    if PROB_COLUMN not in asked:
        return None
    return find_fit(matrix, options.gap_open, options.gap_extend, options.aa_weight)


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
    mode: Mode = "tokens",
    tokenizer: str = "3di",
    gap_open: int = DEFAULT_GAP_OPEN,
    gap_extend: int = DEFAULT_GAP_EXTEND,
    null_pairs: int = DEFAULT_NULL_PAIRS,
) -> tuple[SubstitutionMatrix, EvdParams]:
    """``matrix`` with E-value parameters fitted on null pairs of ``sequences`` (see :mod:`ismtk.search.evalue`)."""
    db = load_search_db(sequences, tokenizer, mode)
    substitution = load_matrix(matrix, db.tokenizer)
    params = fit_evd(Aligner(substitution, db.alphabet.symbols, gap_open, gap_extend), db, null_pairs)
    return substitution.with_evd(params), params
