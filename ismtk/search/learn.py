"""Learning a substitution matrix for any tokenizer from structurally aligned residue pairs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ismtk.errors import InputError
from ismtk.search.align import DEFAULT_GAP_EXTEND, DEFAULT_GAP_OPEN, Aligner
from ismtk.search.db import SequenceDB
from ismtk.search.evalue import DEFAULT_NULL_PAIRS, fit_evd
from ismtk.search.matrix import SubstitutionMatrix, count_pairs, log_odds
from ismtk.search.pairs import DEFAULT_MIN_TM, read_alignments

__all__ = ["DEFAULT_PSEUDOCOUNT", "LearnReport", "count_aligned_tokens", "learn_matrix"]

#: Added to every pair count; 0 as in Foldseek's 3Di matrix (pseudocounts only help tiny training sets).
DEFAULT_PSEUDOCOUNT = 0.0


@dataclass(frozen=True)
class LearnReport:
    """What went into a learned matrix."""

    alignments: int
    skipped_alignments: int
    pairs: int
    #: Alignments left out for a TM-score below the minimum.
    below_tm: int = 0


def count_aligned_tokens(
    db: SequenceDB, alignment_files: Iterable[str | Path], min_tm: float = DEFAULT_MIN_TM
) -> tuple[np.ndarray, LearnReport]:
    """Symmetric ``(K, K) float64`` counts of the tokens of close aligned pairs (``P`` columns) with TM >= ``min_tm``.

    Alignments naming an entry missing from ``db``, or whose lengths disagree with the tokens, are skipped and
    counted in the report (structures that could not be tokenized, or another cut of the domain), as are those
    below ``min_tm``.
    """
    alignment_files = list(alignment_files)
    index = {name: i for i, name in enumerate(db.names)}
    lengths = db.lengths()
    first, second, used, skipped, below = [], [], 0, 0, 0
    for path in alignment_files:
        for aln in read_alignments(path):
            if aln.tm < min_tm:
                below += 1
                continue
            i, j = index.get(aln.name1), index.get(aln.name2)
            if i is None or j is None or (lengths[i], lengths[j]) != (aln.len1, aln.len2):
                skipped += 1
                continue
            a, b = aln.close_pairs()
            first.append(db.token_seq(i)[a])
            second.append(db.token_seq(j)[b])
            used += 1
    if not used and not (below or skipped):
        raise InputError(f"{', '.join(map(str, alignment_files))}: no alignment in the file(s); make them with "
                         "'ismtk align-pairs'")
    if not used:
        raise InputError(
            f"no usable alignment: {below:,} have a TM-score below {min_tm:g}, and the names or lengths of the other "
            f"{skipped:,} do not match the token sequences"
        )
    x, y = np.concatenate(first), np.concatenate(second)
    return count_pairs(x, y, len(db.alphabet)), LearnReport(used, skipped, len(x), below)


def learn_matrix(
    db: SequenceDB,
    alignment_files: Iterable[str | Path],
    min_tm: float = DEFAULT_MIN_TM,
    pseudocount: float = DEFAULT_PSEUDOCOUNT,
    gap_open: int = DEFAULT_GAP_OPEN,
    gap_extend: int = DEFAULT_GAP_EXTEND,
    null_pairs: int = DEFAULT_NULL_PAIRS,
) -> tuple[SubstitutionMatrix, LearnReport]:
    """Half-bit log-odds matrix over ``db``'s alphabet from aligned pairs, with E-value statistics fitted on
    null pairs of ``db``'s sequences for ``gap_open``/``gap_extend`` (stored in the matrix header)."""
    counts, report = count_aligned_tokens(db, alignment_files, min_tm)
    title = (
        f"{db.tokenizer} log-odds in half-bits, ismtk learn-matrix: {report.pairs} close pairs from "
        f"{report.alignments} alignments with TM >= {min_tm}, pseudocount {pseudocount:g}"
    )
    matrix = log_odds(counts, db.alphabet.symbols, pseudocount, title)
    evd = fit_evd(Aligner(matrix, db.alphabet.symbols, gap_open, gap_extend), db, null_pairs)
    return matrix.with_evd(evd), report
