"""Structurally aligned residue pairs: the training data of a substitution matrix.

Foldseek learned its 3Di matrix from TM-align alignments of fold-disjoint SCOPe domains with TM-score >= 0.6,
counting only residue pairs that the superposition puts within 5 A of each other (van Kempen et al. 2024,
Methods "3Di substitution matrix"). This module computes such alignments with ``tmtools`` and reads and writes
them in the format of Foldseek's ``tmaln-06.out``: whitespace-separated
``name1 name2 TM TM1 TM2 RMSD len1 len2 alnlen CIGAR`` where the CIGAR runs over both chains with
``P`` = aligned pair within the distance cut-off, ``M`` = aligned pair farther apart, ``D`` = residue of chain 1
only, ``I`` = residue of chain 2 only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ismtk.atomic import atomic_write
from ismtk.errors import InputError, StructureError
from ismtk.names import read_rows
from ismtk.structure.read import ReadOptions, find_structure_files, name_taken, read_structure

__all__ = [
    "DEFAULT_MAX_DISTANCE",
    "DEFAULT_MIN_TM",
    "MIN_RESIDUES",
    "StructuralAlignment",
    "alignable",
    "align_many",
    "align_structure_files",
    "align_structures",
    "read_alignments",
    "read_chains",
    "read_pair_list",
    "write_alignments",
]

#: Residue pairs farther apart than this after superposition (A) are not counted (Foldseek: about 5 A).
DEFAULT_MAX_DISTANCE = 5.0
#: TM-align needs at least this many residues in each chain.
MIN_RESIDUES = 3
#: Alignments with a lower TM-score (the smaller of the two normalisations) are not used (Foldseek: 0.6).
DEFAULT_MIN_TM = 0.6

_CIGAR = re.compile(r"(\d+)([MPID])")


@dataclass(frozen=True)
class StructuralAlignment:
    """One pairwise structural alignment.

    ``cigar`` covers chain 1 and chain 2 from their first residue; :meth:`close_pairs` gives the residue
    indices of the ``P`` (close) columns.
    """

    name1: str
    name2: str
    tm1: float
    tm2: float
    rmsd: float
    len1: int
    len2: int
    cigar: str

    @property
    def tm(self) -> float:
        """The smaller TM-score (normalised by the longer chain), as in ``tmaln-06.out``."""
        return min(self.tm1, self.tm2)

    def close_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """``(n,) int64`` residue indices into chain 1 and chain 2 of the close aligned pairs."""
        i = j = 0
        first, second = [], []
        for count, op in _CIGAR.findall(self.cigar):
            n = int(count)
            if op == "P":
                first.append(np.arange(i, i + n))
                second.append(np.arange(j, j + n))
            i += n if op in "MPD" else 0
            j += n if op in "MPI" else 0
        if (i, j) != (self.len1, self.len2):
            raise InputError(
                f"alignment {self.name1} {self.name2}: CIGAR covers {i}/{j} residues, lengths say "
                f"{self.len1}/{self.len2}"
            )
        if not first:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        return np.concatenate(first), np.concatenate(second)


def _cigar(ops: Iterable[str]) -> str:
    out, last, run = [], None, 0
    for op in ops:
        if op == last:
            run += 1
            continue
        if last is not None:
            out.append(f"{run}{last}")
        last, run = op, 1
    if last is not None:
        out.append(f"{run}{last}")
    return "".join(out)


def align_structures(
    name1: str,
    ca1: np.ndarray,
    seq1: str,
    name2: str,
    ca2: np.ndarray,
    seq2: str,
    max_distance: float = DEFAULT_MAX_DISTANCE,
) -> StructuralAlignment:
    """TM-align (Zhang & Skolnick 2005, via ``tmtools``) two chains given their ``(L, 3)`` C-alpha coordinates.

    Chain 1 is superposed on chain 2 with TM-align's rotation; aligned pairs whose C-alphas are within
    ``max_distance`` A become ``P`` columns of the CIGAR, the other aligned pairs ``M``.
    """
    import tmtools

    x = np.ascontiguousarray(ca1, dtype=np.float64)
    y = np.ascontiguousarray(ca2, dtype=np.float64)
    result = tmtools.tm_align(x, y, seq1, seq2)
    moved = x @ np.asarray(result.u).T + np.asarray(result.t)
    ops, i, j = [], 0, 0
    for a, b in zip(result.seqxA, result.seqyA, strict=True):
        if a != "-" and b != "-":
            ops.append("P" if np.linalg.norm(moved[i] - y[j]) <= max_distance else "M")
        else:
            ops.append("D" if a != "-" else "I")
        i += a != "-"
        j += b != "-"
    return StructuralAlignment(
        name1, name2, float(result.tm_norm_chain1), float(result.tm_norm_chain2), float(result.rmsd),
        len(seq1), len(seq2), _cigar(ops),
    )


_chains: dict[str, tuple[np.ndarray, str]] = {}
_max_distance = DEFAULT_MAX_DISTANCE


def _init(chains: dict[str, tuple[np.ndarray, str]], max_distance: float) -> None:
    global _chains, _max_distance
    _chains, _max_distance = chains, max_distance


def _align_pair(pair: tuple[str, str]) -> StructuralAlignment:
    (ca1, seq1), (ca2, seq2) = _chains[pair[0]], _chains[pair[1]]
    return align_structures(pair[0], ca1, seq1, pair[1], ca2, seq2, _max_distance)


def align_many(
    chains: dict[str, tuple[np.ndarray, str]],
    pairs: Sequence[tuple[str, str]],
    max_distance: float = DEFAULT_MAX_DISTANCE,
    threads: int = 1,
) -> Iterator[StructuralAlignment]:
    """TM-align each ``(name1, name2)`` of ``pairs``; ``chains`` maps names to ``((L, 3) CA, sequence)``.

    Results come in the order of ``pairs``; ``threads`` worker processes (spawned, never nested). Every member
    must be in ``chains`` with at least :data:`MIN_RESIDUES` residues (:func:`alignable` sorts pairs out).
    """
    if threads <= 1:
        _init(chains, max_distance)
        yield from map(_align_pair, pairs)
        return
    with ProcessPoolExecutor(threads, mp_context=get_context("spawn"), initializer=_init,
                             initargs=(chains, max_distance)) as pool:
        # chunks of up to 16 pairs, but small enough that a few pairs still reach every worker
        yield from pool.map(_align_pair, pairs, chunksize=max(1, min(16, len(pairs) // (4 * threads))))


def alignable(
    chains: dict[str, tuple[np.ndarray, str]], pairs: Iterable[tuple[str, str]], on_skip: Callable[[str], None]
) -> list[tuple[str, str]]:
    """The ``pairs`` that TM-align can align: both members among ``chains``, each with at least
    :data:`MIN_RESIDUES` residues; ``on_skip`` is told of each other pair and why."""
    kept = []
    for pair in pairs:
        missing = [name for name in pair if name not in chains]
        short = [name for name in pair if name in chains and len(chains[name][1]) < MIN_RESIDUES]
        if missing:
            on_skip(f"pair {pair[0]} {pair[1]}: no readable structure has a chain named {', '.join(missing)}")
        elif short:
            on_skip(f"pair {pair[0]} {pair[1]}: {', '.join(short)} has fewer than {MIN_RESIDUES} residues")
        else:
            kept.append(pair)
    return kept


def read_chains(
    paths: Iterable[str | Path], options: ReadOptions = ReadOptions(), on_skip: Callable[[str], None] | None = None
) -> dict[str, tuple[np.ndarray, str]]:
    """``name -> ((L, 3) float32 C-alpha coordinates, amino acids)`` of every chain in ``paths``.

    Files or chains that cannot be read raise :class:`ismtk.errors.StructureError`, or with ``on_skip`` are
    reported to it and left out; so is a chain whose name an earlier file's chain has (the first keeps it, as in
    ``encode`` and ``createdb``).
    """
    chains: dict[str, tuple[np.ndarray, str]] = {}
    source: dict[str, str] = {}
    for path in map(str, paths):
        try:
            read = read_structure(path, options)
        except StructureError as exc:
            if on_skip is None:
                raise
            on_skip(str(exc))
            continue
        mine: set[str] = set()
        for chain in read.chains:
            if chain.name in source:
                problem = name_taken(path, chain.name, chain.chain_id, source[chain.name], chain.name in mine)
                if on_skip is None:
                    raise problem
                on_skip(str(problem))
                continue
            chains[chain.name] = (chain.ca, chain.sequence)
            source[chain.name] = path
            mine.add(chain.name)
    return chains


def read_alignments(path: str | Path, min_tm: float = 0.0) -> Iterator[StructuralAlignment]:
    """Alignments of a ``tmaln-06.out``-style file with ``tm >= min_tm`` (empty columns are tolerated)."""
    path = Path(path)
    try:
        handle = path.open()
    except OSError as exc:
        raise InputError(f"{path}: cannot open alignment file ({exc.strerror or exc})") from exc
    with handle:
        try:
            yield from _parse_alignments(path, handle, min_tm)
        except UnicodeDecodeError:
            raise InputError(f"{path}: not a text file of alignments (tmaln-06.out format, see align-pairs)") from None


def _parse_alignments(path: Path, handle: Iterable[str], min_tm: float) -> Iterator[StructuralAlignment]:
    for number, line in enumerate(handle, 1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        try:
            name1, name2, _tm, tm1, tm2, rmsd, len1, len2, _alnlen, cigar = fields
            aln = StructuralAlignment(
                name1, name2, float(tm1), float(tm2), float(rmsd), int(len1), int(len2), cigar
            )
        except ValueError:
            raise InputError(
                f"{path}: line {number}: expected 'name1 name2 TM TM1 TM2 RMSD len1 len2 alnlen CIGAR'"
            ) from None
        if aln.tm >= min_tm:
            yield aln


def write_alignments(path: str | Path, alignments: Iterable[StructuralAlignment]) -> int:
    """Write alignments in ``tmaln-06.out`` format (tab-separated, one per line); returns how many."""
    count = 0
    with atomic_write(path, "w") as out:
        for a in alignments:
            aligned = sum(int(n) for n, op in _CIGAR.findall(a.cigar) if op in "MP")
            out.write(
                f"{a.name1}\t{a.name2}\t{a.tm:.6g}\t{a.tm1:.6g}\t{a.tm2:.6g}\t{a.rmsd:.6g}\t"
                f"{a.len1}\t{a.len2}\t{aligned}\t{a.cigar}\n"
            )
            count += 1
    return count


def read_pair_list(path: str | Path) -> list[tuple[str, str]]:
    """``(name1, name2)`` of a whitespace-separated file with two entry names per line (``#`` lines skipped)."""
    return [(row.fields[0], row.fields[1]) for row in read_rows(path, "pairs", 2, "two entry names")]


def align_structure_files(
    inputs: Iterable[str | Path],
    pair_list: str | Path,
    output: str | Path,
    max_distance: float = DEFAULT_MAX_DISTANCE,
    threads: int = 1,
    options: ReadOptions = ReadOptions(),
    progress: Callable[..., None] | None = None,
    on_skip: Callable[[str], None] | None = None,
) -> int:
    """TM-align the pairs of ``pair_list`` among the chains of structure ``inputs``; write them to ``output``.

    ``progress(n=1, total=None)`` is called with the number of pairs once the chains are read, then once per
    aligned pair. Unreadable files and pairs that cannot be aligned are told to ``on_skip`` and left out (without
    it, the first raises :class:`InputError`)."""

    def refuse(problem: str) -> None:
        raise InputError(problem)

    chains = read_chains(find_structure_files(inputs, keep_missing=on_skip is not None), options, on_skip)
    pairs = alignable(chains, read_pair_list(pair_list), on_skip or refuse)
    if not pairs:  # an older output stays as it was
        raise InputError(f"{pair_list}: none of its pairs names two usable chains of the inputs; nothing written")
    aligned = align_many(chains, pairs, max_distance, threads)
    if progress is not None:
        progress(0, total=len(pairs))
        aligned = _reporting(aligned, progress)
    return write_alignments(output, aligned)


def _reporting(items: Iterator[StructuralAlignment], progress: Callable[..., None]) -> Iterator[StructuralAlignment]:
    for item in items:
        yield item
        progress()
