"""Aligners over several tracks of a database: structure tokens of one or more tokenizers and amino acids in one
score (Foldseek's 3Di+AA; ``--score 3di:1,ism:0.25,aa:0.5``).

Aligning query residue ``i`` with target residue ``j`` scores ``S_tok(q_i, t_j) + rint(w * S_aa(a_i, b_j))``: the
token matrix plus the amino-acid matrix (BLOSUM62 by default; half-bits, like the learned token matrices) weighted
by ``w`` (``--aa-weight``), the two-track case of :class:`ismtk.search.tracks.ScoreTracks`. A sequence is a
``(T, n) uint8`` array of symbol codes, one row per track (:func:`track_codes`). Scores come from the vectorised
kernel, tracebacks from the scalar reference (:mod:`ismtk.search.gotoh`). The reversed-query correction is the same
as for tokens alone (the reversed query keeps each residue's symbols together); E-value parameters are fitted for
the combined score.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from ismtk.errors import InputError
from ismtk.search.align import DEFAULT_GAP_EXTEND, DEFAULT_GAP_OPEN, Alignment, alignment_from_ops, check_gaps
from ismtk.search.db import AA_TRACK, SequenceDB
from ismtk.search.gotoh import sw_trace
from ismtk.search.matrix import SubstitutionMatrix
from ismtk.search.tracks import ScoreTracks
from ismtk.sequence import AA_ALPHABET, aa_indices

__all__ = ["MAIN_TRACK", "TRACKS", "CombinedAligner", "TrackAligner", "parse_score", "track_codes"]

#: The name of a database's main token track (its ``tokenizer``'s tokens) among the tracks of a score.
MAIN_TRACK = "tokens"
#: The tracks of 3Di+AA-style scores: the main structure tokens and the amino acids.
TRACKS = (MAIN_TRACK, AA_TRACK)


def parse_score(text: str) -> tuple[tuple[str, float], ...]:
    """``--score`` text as ``((track, weight), ...)``: comma-separated ``TRACK[:WEIGHT]`` (weight 1 when left out),
    each track once, weights positive. A track is ``aa`` (the amino acids) or a tokenizer (``3di``, ``ism``, an
    identity or an ISM folder), resolved by the caller.

    >>> parse_score("3di:1,ism:0.25,aa:0.5")
    (('3di', 1.0), ('ism', 0.25), ('aa', 0.5))
    """
    score = []
    for part in text.split(","):
        part = part.strip()
        name, sep, weight = part.rpartition(":")
        if not sep or _IDENTITY.fullmatch(part):  # no weight (an ISM identity ism:HEX has a colon of its own)
            name, weight = part, "1"
        try:
            value = float(weight)
        except ValueError:
            value = float("nan")
        if not name or not 0 < value < float("inf"):
            raise InputError(f"--score takes TRACK:WEIGHT,... with positive weights (e.g. 3di:1,aa:0.5), got {text!r}")
        if name in (n for n, _ in score):
            raise InputError(f"--score names track {name} twice: {text!r}")
        score.append((name, value))
    return tuple(score)


#: A tokenizer identity with a checksum (``ism:`` and 12 hex digits), see :mod:`ismtk.tokenizers`.
_IDENTITY = re.compile(r"[a-z0-9]+:[0-9a-f]{12}")


def track_codes(db: SequenceDB, tracks: Sequence[str], entry: int | None = None) -> np.ndarray:
    """``(T, R) uint8`` symbol codes of every residue of ``db`` (or of one ``entry``, ``(T, n)``), one row per named
    track: ``tokens`` (the main token track), ``aa``, or a tokenizer identity of another token track."""
    span = slice(None) if entry is None else slice(db.offsets[entry], db.offsets[entry + 1])
    rows = []
    for name in tracks:
        if name == AA_TRACK:
            if db.aa is None:
                raise InputError(
                    "scoring with amino acids (aa in --score, or --aa-weight) needs them on both sides: give "
                    "structures or a database made from structures, not token FASTA"
                )
            rows.append(aa_indices(np.asarray(db.aa[span])))
        else:
            values = db.tokens if name == MAIN_TRACK else db.track(name).tokens
            rows.append(np.asarray(values[span], dtype=np.uint8))
    return np.ascontiguousarray(rows[0][None, :]) if len(rows) == 1 else np.stack(rows)


class TrackAligner:
    """Smith-Waterman over named tracks of databases with one :class:`ScoreTracks` and gap penalties.

    The interface of :class:`ismtk.search.align.Aligner`: :meth:`query` and :meth:`target` give an entry's
    ``(T, n)`` codes, :meth:`score`/:meth:`score_many` the (raw, corrected) scores, :meth:`trace` the alignment.
    """

    def __init__(
        self,
        tracks: ScoreTracks,
        names: Sequence[str],
        gap_open: int = DEFAULT_GAP_OPEN,
        gap_extend: int = DEFAULT_GAP_EXTEND,
    ) -> None:
        check_gaps(gap_open, gap_extend)
        if len(names) != len(tracks):
            raise InputError(f"{len(tracks)} track matrices but {len(names)} track names")
        self.tracks, self.names = tracks, tuple(names)
        self.gap_open, self.gap_extend = gap_open, gap_extend

    def codes(self, db: SequenceDB) -> np.ndarray:
        """``(T, R) uint8`` codes of every residue of ``db``."""
        return track_codes(db, self.names)

    def fit_key(self) -> str:
        """A digest of what E-value parameters fitted for this aligner depend on besides the database: the tracks'
        weighted scores and the gap penalties (:attr:`SequenceDB.fits` is keyed by it). Not the tracks' names (a
        tokenizer's track scores the same whether it is a database's main track or another one), nor their order
        (a column's score is their sum: ``aa:0.5,3di:1`` scores as ``3di:1,aa:0.5``)."""
        digest = hashlib.sha256(f"{len(self.names)}|{self.gap_open}|{self.gap_extend}".encode())
        for table in sorted(
            np.ascontiguousarray(matrix, np.int32).tobytes() + str(matrix.shape).encode()
            for matrix in self.tracks.matrices
        ):
            digest.update(table)
        return digest.hexdigest()[:16]

    def query(self, db: SequenceDB, i: int) -> np.ndarray:
        """``(T, L) uint8`` codes of entry ``i`` of ``db``."""
        return track_codes(db, self.names, i)

    def target(self, db: SequenceDB, j: int) -> np.ndarray:
        """``(T, n) uint8`` codes of entry ``j`` of ``db``."""
        return track_codes(db, self.names, j)

    def score(self, query: np.ndarray, target: np.ndarray, bias: np.ndarray | None = None) -> tuple[int, int]:
        """``(raw, corrected)``: corrected = raw - score of the reversed query (``bias``: see
        :meth:`ScoreTracks.score_many`)."""
        raw, corrected = self.score_many(query, [target], bias)[0]
        return int(raw), int(corrected)

    def score_many(self, query: np.ndarray, targets: list[np.ndarray], bias: np.ndarray | None = None) -> np.ndarray:
        """``(N, 2) int64`` :meth:`score` of ``query`` against each target, in one compiled call."""
        offsets = np.zeros(len(targets) + 1, np.int64)
        np.cumsum([t.shape[1] for t in targets], out=offsets[1:])
        codes = np.concatenate(targets, axis=1) if targets else np.zeros((len(self.tracks), 0), np.uint8)
        ids = np.arange(len(targets), dtype=np.int64)
        return self.tracks.score_many(query, codes, offsets, ids, self.gap_open, self.gap_extend, bias)

    def background(self, db: SequenceDB) -> list[np.ndarray]:
        """Per-track symbol frequencies of ``db`` (the background of :meth:`ScoreTracks.composition_bias`)."""
        sizes = [m.shape[1] for m in self.tracks.matrices]
        return [
            np.bincount(row, minlength=k)[:k] / max(len(row), 1)
            for row, k in zip(self.codes(db), sizes, strict=True)
        ]

    def trace(self, query: np.ndarray, target: np.ndarray, bias: np.ndarray | None = None) -> Alignment:
        """The optimal local alignment with its traceback (``bias``: see :meth:`ScoreTracks.score_many`)."""
        return self.trace_profile(self.tracks.profile(query, bias), target)

    def trace_many(
        self, query: np.ndarray, codes: np.ndarray, offsets: np.ndarray, ids: np.ndarray, bias: np.ndarray | None = None
    ) -> list[Alignment]:
        """:meth:`trace` of ``query`` against the entries ``ids`` of ``(T, R)`` database ``codes`` split by
        ``offsets``, traced side by side (:meth:`ScoreTracks.trace_many`)."""
        traces = self.tracks.trace_many(query, codes, offsets, ids, self.gap_open, self.gap_extend, bias)
        return [alignment_from_ops(*trace) for trace in traces]

    def trace_profile(self, profile: np.ndarray, target: np.ndarray) -> Alignment:
        """:meth:`trace` from the query's ``(T, C, L)`` profile (:meth:`ScoreTracks.profile`), which a caller
        tracing one query against many targets builds once."""
        target = np.ascontiguousarray(self.tracks.check(target, "target"))
        score, qstart, tstart, ops = sw_trace(profile, target, self.gap_open, self.gap_extend)
        return alignment_from_ops(score, qstart, tstart, ops)


class CombinedAligner(TrackAligner):
    """Tokens scored by ``matrix`` plus ``aa_weight`` x ``aa_matrix`` of the amino acids (3Di+AA)."""

    def __init__(
        self,
        matrix: SubstitutionMatrix,
        alphabet_symbols: str,
        aa_matrix: SubstitutionMatrix,
        aa_weight: float,
        gap_open: int = DEFAULT_GAP_OPEN,
        gap_extend: int = DEFAULT_GAP_EXTEND,
    ) -> None:
        if not aa_weight > 0:
            raise InputError(f"the amino-acid weight must be positive, got {aa_weight}")
        self.matrix, self.aa_matrix, self.aa_weight = matrix, aa_matrix, aa_weight
        self.alphabet_symbols = alphabet_symbols
        tracks = ScoreTracks.weighted(
            [matrix.restricted(alphabet_symbols), aa_matrix.restricted(AA_ALPHABET.symbols)], [1.0, aa_weight]
        )
        super().__init__(tracks, TRACKS, gap_open, gap_extend)
