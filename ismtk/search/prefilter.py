"""k-mer prefilter: similar k-mers of the query in an index of the database, double hits, chained diagonals.

The prefilter of MMseqs2 and Foldseek (Steinegger & Soeding 2017, van Kempen et al. 2024), with FASTA's joining of
diagonal regions (Pearson & Lipman 1988) to rank, in five stages:

1. **Similar k-mers.** For every query position ``i`` all k-mers ``x`` scoring
   ``sum_m S(q_{i+m}, x_m) >= threshold`` under the token matrix are enumerated (depth-first over symbols sorted by
   score, pruned once even the best remaining symbols cannot reach the threshold). When the search scores amino
   acids too, the query's amino-acid k-mers seed the same way under their own matrix and threshold (BLAST's
   neighbourhood words): homologs whose tokens share few similar k-mers, such as short all-helical domains, are
   often found by their sequence.
2. **Index lookup, double hits.** Each similar k-mer is looked up in :class:`KmerIndex` (every k-mer of the token
   track, and of the amino acids, of the database, as entry and position lists); a hit of target ``t`` at position
   ``j`` lies on diagonal ``j - i``. All hits are grouped by (target, diagonal) with a radix sort; a diagonal is
   seeded when it holds two hits of either kind (MMseqs2's double-hit rule, exact here: MMseqs2 remembers one
   diagonal per target).
3. **Gap-free segments.** Each double hit is extended both ways along its diagonal until the running score falls
   :data:`_X_DROP` below its best (BLAST's ungapped X-drop extension), under the search's full column score (all
   tracks, e.g. tokens + amino acids).
4. **Chaining.** A target's prefilter score is the best chain of its (at most 16 best) segments in alignment
   order, a change of diagonal by ``g`` costing a gap of ``g`` (``open + (g - 1) * extend``). 3Di alignments of
   remote homologs are gapped: their best single diagonal often scores like noise (29 half-bits for a
   Smith-Waterman score of 232), so ranking by the best diagonal alone lost homologs that the chain keeps.
5. **Ranking.** Targets are ranked by chain score less ``length_penalty * ln(n)`` for a target of ``n`` residues,
   the length term of an E-value (``E = K m n exp(-lambda S)``, ranked by ``S - ln(n) / lambda``) with an empirical
   weight: a long unrelated target collects many weak segments, and without the term such targets crowded
   out remote homologs. The ``max_candidates`` best go on to Smith-Waterman.

Work per query grows with the number of k-mer hits, not with the size of the database: an index lookup touches only
the targets that share a similar k-mer. Settings were chosen on the ``matrix_train`` domains (docs/benchmarks.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ismtk.compiled import jit
from ismtk.errors import InputError

__all__ = [
    "DEFAULT_AA_KMER",
    "DEFAULT_AA_THRESHOLD",
    "DEFAULT_KMER",
    "DEFAULT_KMER_THRESHOLD",
    "DEFAULT_LENGTH_PENALTY",
    "DEFAULT_MAX_CANDIDATES",
    "DEFAULT_MIN_SEGMENT",
    "KmerIndex",
    "KmerPrefilter",
    "POSITION_LIMIT",
    "PrefilterSettings",
    "prefilter_scores",
    "similar_kmers",
]

#: Targets kept per query for Smith-Waterman.
DEFAULT_MAX_CANDIDATES = 100
#: k-mer length of the index.
DEFAULT_KMER = 4
#: A query k-mer's similar k-mers score at least this under the token matrix (half-bits).
DEFAULT_KMER_THRESHOLD = 20
#: k-mer length and similar-k-mer threshold (half-bits, unweighted BLOSUM62) of amino-acid seeds; threshold 0: none.
DEFAULT_AA_KMER = 3
DEFAULT_AA_THRESHOLD = 14
#: Gap-free segments of seeded diagonals scoring below this are not chained (half-bits).
DEFAULT_MIN_SEGMENT = 20
#: Two hits on one diagonal count as a double hit when they start at least this far apart.
DEFAULT_SPACING = 1
#: Ranking penalty per e-fold of target length (half-bits).
DEFAULT_LENGTH_PENALTY = 20.0
_SHIFT = 1 << 31
_MAX_SEGMENTS = 256
_X_DROP = 10
#: Longest entry whose k-mer positions the index stores in 16 bits (longer entries: 32 bits for all).
POSITION_LIMIT = 2**16 - 1
_MAX_CHAINED = 16
_RADIX_BITS = 11
_RADIX = 1 << _RADIX_BITS


@jit
def _count_kmers(codes, offsets, ids, k, size):  # pragma: no cover - numba
    """``(size**k + 1,) int64`` CSR starts of the k-mer index of entries ``ids`` (:func:`_fill_index`)."""
    keys = size**k
    starts = np.zeros(keys + 1, np.int64)
    for e in ids:
        key = 0
        for p in range(offsets[e], offsets[e + 1]):
            key = (key * size + codes[p]) % keys
            if p - offsets[e] >= k - 1:
                starts[key + 1] += 1
    for key in range(keys):
        starts[key + 1] += starts[key]
    return starts


@jit
def _fill_index(codes, offsets, ids, k, size, starts, entries, positions):  # pragma: no cover - numba
    """Fill ``entries`` and ``positions`` (``starts[-1]`` each) with the hits of every k-mer ``key = sum_m x_m
    size**(k-1-m)``: ``starts[key]:starts[key + 1]``, by entry then position."""
    keys = size**k
    fill = starts[:-1].copy()
    for e in ids:
        key = 0
        for p in range(offsets[e], offsets[e + 1]):
            key = (key * size + codes[p]) % keys
            at = p - offsets[e] - (k - 1)
            if at >= 0:
                entries[fill[key]] = e
                positions[fill[key]] = at
                fill[key] += 1


@jit
def similar_kmers(query, scores, k, threshold):  # pragma: no cover - numba
    """Every k-mer scoring at least ``threshold`` against a query k-mer: ``(keys (n,) int64, positions (n,) int32)``
    in order of query position; ``scores`` ``(K, K)`` the token matrix, ``query`` ``(L,)`` token codes."""
    size = scores.shape[0]
    order = np.empty((size, size), np.int64)  # order[a]: symbols by descending score against a
    for a in range(size):
        order[a] = np.argsort(-scores[a], kind="mergesort")
    keys = np.empty(1024, np.int64)
    where = np.empty(1024, np.int32)
    n = 0
    choice = np.zeros(k, np.int64)  # index into order[q] at each depth
    partial = np.zeros(k + 1, np.int64)
    rest = np.zeros(k + 1, np.int64)  # best score still reachable from depth m on
    for i in range(query.shape[0] - k + 1):
        for m in range(k - 1, -1, -1):
            rest[m] = rest[m + 1] + scores[query[i + m], order[query[i + m], 0]]
        if rest[0] < threshold:
            continue
        depth = 0
        choice[0] = 0
        while depth >= 0:
            if choice[depth] == size:
                depth -= 1
                if depth >= 0:
                    choice[depth] += 1
                continue
            a = query[i + depth]
            value = partial[depth] + scores[a, order[a, choice[depth]]]
            if value + rest[depth + 1] < threshold:  # symbols are sorted: no later choice does better
                choice[depth] = size
                continue
            if depth == k - 1:
                if n == keys.shape[0]:
                    keys = np.concatenate((keys, np.empty(n, np.int64)))
                    where = np.concatenate((where, np.empty(n, np.int32)))
                key = 0
                for m in range(k):
                    key = key * size + order[query[i + m], choice[m]]
                keys[n] = key
                where[n] = i
                n += 1
                choice[depth] += 1
            else:
                partial[depth + 1] = value
                depth += 1
                choice[depth] = 0
    return keys[:n], where[:n]


@jit
def _radix_sort(keys, payload):  # pragma: no cover - numba
    """Sort ``uint64`` keys (and ``payload`` alongside) stably, least significant digit (11 bits) first, as many
    passes as the largest key has digits."""
    n = keys.shape[0]
    other_keys, other_payload = np.empty_like(keys), np.empty_like(payload)
    top = keys.max() if n else np.uint64(0)
    mask = np.uint64(_RADIX - 1)
    counts = np.empty(_RADIX + 1, np.int64)
    shift = 0
    while shift < 64 and (top >> np.uint64(shift)) > 0:
        counts[:] = 0
        for x in range(n):
            counts[((keys[x] >> np.uint64(shift)) & mask) + 1] += 1
        for c in range(_RADIX):
            counts[c + 1] += counts[c]
        for x in range(n):
            bucket = (keys[x] >> np.uint64(shift)) & mask
            other_keys[counts[bucket]] = keys[x]
            other_payload[counts[bucket]] = payload[x]
            counts[bucket] += 1
        keys, other_keys = other_keys, keys
        payload, other_payload = other_payload, payload
        shift += _RADIX_BITS
    return keys, payload


@jit
def _hits(keys, where, starts, entries, positions, length, span):  # pragma: no cover - numba
    """Every index hit of the similar k-mers, grouped: ``(groups, at)`` with ``groups`` the sorted ``target *
    span + diagonal + length`` (``span`` > query + longest target length covers every diagonal) and ``at`` the
    query positions, ascending within a group (the sort is stable and hits come in query order)."""
    total = 0
    for h in range(keys.shape[0]):
        total += starts[keys[h] + 1] - starts[keys[h]]
    span = np.uint64(span)
    groups = np.empty(total, np.uint64)
    at = np.empty(total, np.int32)
    n = 0
    for h in range(keys.shape[0]):
        key, i = keys[h], where[h]
        for p in range(starts[key], starts[key + 1]):
            groups[n] = np.uint64(entries[p]) * span + np.uint64(positions[p] - i + length)
            at[n] = i
            n += 1
    groups, at = _radix_sort(groups, at)
    return groups, at


@jit(inline="always")
def _column_score(profile, targets, j, i):  # pragma: no cover - numba
    s = 0
    for t in range(profile.shape[0]):
        s += profile[t, targets[t, j], i]
    return s


@jit
def _extend(profile, targets, start, length, diagonal, i, x_drop):  # pragma: no cover - numba
    """Gap-free X-drop extension of a hit at query position ``i`` on ``diagonal`` (BLAST's ungapped extension):
    ``(begin, end, score)`` of the best segment through ``i``, extending each way until the running score falls
    ``x_drop`` below its best."""
    first, last = max(0, -diagonal), min(profile.shape[2], length - diagonal)
    run = best = 0
    end = i
    for q in range(i, last):  # branch-free updates: whether a column raises the best is unpredictable
        run += _column_score(profile, targets, start + q + diagonal, q)
        end = q + 1 if run > best else end
        best = max(best, run)
        if run < best - x_drop:
            break
    run = left = 0
    begin = i
    for q in range(i - 1, first - 1, -1):
        run += _column_score(profile, targets, start + q + diagonal, q)
        begin = q if run > left else begin
        left = max(left, run)
        if run < left - x_drop:
            break
    return begin, end, best + left


@jit(inline="always")
def _insertion_sort(order, n, values, sign):  # pragma: no cover - numba
    """Sort ``order[:n]`` (indices into ``values``) stably by ``sign * values``, ascending, in place."""
    for a in range(1, n):
        x = order[a]
        b = a - 1
        while b >= 0 and sign * values[order[b]] > sign * values[x]:
            order[b + 1] = order[b]
            b -= 1
        order[b + 1] = x


@jit
def _chain(segments, n, gap_open, gap_extend, order, chain):  # pragma: no cover - numba
    """Best chain of segments in alignment order (each starts after the previous ends in query and target), a
    change of diagonal by ``g`` costing ``gap_open + (g - 1) * gap_extend``: FASTA's joining of regions. Only the
    :data:`_MAX_CHAINED` best segments take part (a homolog's chain needs few; noise makes many weak ones).
    ``order``/``chain``: work arrays of at least ``n`` entries."""
    if n == 1:
        return segments[0, 3]
    for a in range(n):
        order[a] = a
    if n > _MAX_CHAINED:
        _insertion_sort(order, n, segments[:, 3], -1)
        n = _MAX_CHAINED
    _insertion_sort(order, n, segments[:, 0], 1)
    best = 0
    for a in range(n):
        sa = order[a]
        value = segments[sa, 3]
        for b in range(a):
            sb = order[b]
            if (segments[sb, 1] <= segments[sa, 0]
                    and segments[sb, 1] + segments[sb, 2] <= segments[sa, 0] + segments[sa, 2]):
                shift = abs(segments[sa, 2] - segments[sb, 2])
                value = max(value, chain[sb] + segments[sa, 3] - (gap_open + (shift - 1) * gap_extend if shift else 0))
        chain[sa] = value
        best = max(best, value)
    return best


@jit
def prefilter_scores(
    keys, where, starts, entries, positions, profile, targets, offsets, longest, spacing, min_segment, gap_open,
    gap_extend,
):  # pragma: no cover - numba
    """``(seeded, scores)``: the targets with a double hit (sorted) and their prefilter scores, the best chain of
    the gap-free segments (X-drop extensions of their double hits scoring at least ``min_segment``; 0 if none).

    A double hit is two hits on one diagonal whose query positions are at least ``spacing`` apart; it is extended
    from its second hit unless an earlier extension of the diagonal already covers that position. ``keys``/``where``
    the query's similar k-mers (:func:`similar_kmers`), ``starts``/``entries``/``positions`` the index, ``profile``
    ``(T, C, L)`` the query's column scores per track, ``targets`` ``(T, R)`` target codes, ``longest`` the length
    of the longest target."""
    length = profile.shape[2]
    span = length + longest + 2
    groups, at = _hits(keys, where, starts, entries, positions, length, span)
    seeded = np.empty(1024, np.int64)
    scores = np.zeros(1024, np.int64)
    segments = np.empty((_MAX_SEGMENTS, 4), np.int64)
    order, chain = np.empty(_MAX_SEGMENTS, np.int64), np.empty(_MAX_SEGMENTS, np.int64)
    count = n = 0
    current = -1
    g = 0
    while g < groups.shape[0]:
        h = g  # the hits of one diagonal: groups[g:h]
        while h < groups.shape[0] and groups[h] == groups[g]:
            h += 1
        t = np.int64(groups[g] // span)
        if t != current:
            if n:
                scores[count - 1] = _chain(segments, n, gap_open, gap_extend, order, chain)
            current, n = t, 0
        first, covered, seed = at[g], -1, False
        diagonal = np.int64(groups[g] % span) - length
        start, size = offsets[t], offsets[t + 1] - offsets[t]
        for x in range(g + 1, h):
            if at[x] - first < spacing or at[x] < covered:
                continue
            if not seed:
                seed = True
                if count == seeded.shape[0]:
                    seeded = np.concatenate((seeded, np.empty(count, np.int64)))
                    scores = np.concatenate((scores, np.zeros(count, np.int64)))
                if count == 0 or seeded[count - 1] != t:
                    seeded[count] = t
                    count += 1
            begin, end, score = _extend(profile, targets, start, size, diagonal, at[x], _X_DROP)
            covered = end
            if score >= min_segment:
                slot = n
                if n == _MAX_SEGMENTS:  # full (a long target's noise): the weakest segment makes room
                    slot = np.argmin(segments[:, 3])
                    if segments[slot, 3] >= score:
                        continue
                else:
                    n += 1
                segments[slot, 0], segments[slot, 1], segments[slot, 2], segments[slot, 3] = begin, end, diagonal, score
        g = h
    if n:
        scores[count - 1] = _chain(segments, n, gap_open, gap_extend, order, chain)
    return seeded[:count], scores[:count]


@dataclass(frozen=True)
class PrefilterSettings:
    """The prefilter's knobs (defaults chosen on the ``matrix_train`` domains, docs/benchmarks.md)."""

    kmer: int = DEFAULT_KMER
    kmer_threshold: int = DEFAULT_KMER_THRESHOLD
    min_segment: int = DEFAULT_MIN_SEGMENT
    #: The two hits of a double hit start at least this many query positions apart (1: any two hits).
    spacing: int = DEFAULT_SPACING
    #: Targets are ranked by ``score - length_penalty * ln(target length)`` (half-bits; see the module).
    length_penalty: float = DEFAULT_LENGTH_PENALTY
    #: Amino-acid seeds (searches that score amino acids): k-mer length and threshold, 0 for none.
    aa_kmer: int = DEFAULT_AA_KMER
    aa_threshold: int = DEFAULT_AA_THRESHOLD


@dataclass(frozen=True)
class KmerIndex:
    """Every k-mer of the token track of some database entries: ``hits of key`` =
    ``entries[starts[key]:starts[key + 1]]`` at ``positions[...]`` (0-based start of the k-mer in its entry;
    ``uint16`` when no indexed entry is longer than :data:`POSITION_LIMIT`, which saves a quarter of the index)."""

    k: int
    size: int
    starts: np.ndarray
    entries: np.ndarray
    positions: np.ndarray

    @classmethod
    def build(cls, tokens: np.ndarray, offsets: np.ndarray, ids: np.ndarray, k: int, size: int) -> KmerIndex:
        """Index the entries ``ids`` of ``(R,) uint8`` tokens over an alphabet of ``size`` symbols."""
        if not 1 <= k <= 8 or size**k > 2**31:
            raise InputError(f"k-mer length {k} is out of range for {size} symbols")
        tokens, offsets, ids = np.asarray(tokens), np.asarray(offsets, np.int64), np.asarray(ids, np.int64)
        starts = _count_kmers(tokens, offsets, ids, k, size)
        longest = int(np.diff(offsets)[ids].max(initial=0))
        entries = np.empty(starts[-1], np.int32)
        positions = np.empty(starts[-1], np.uint16 if longest <= POSITION_LIMIT else np.int32)
        _fill_index(tokens, offsets, ids, k, size, starts, entries, positions)
        return cls(k, size, starts, entries, positions)

    @property
    def nbytes(self) -> int:
        return self.starts.nbytes + self.entries.nbytes + self.positions.nbytes


class KmerPrefilter:
    """The prefilter over the entries ``ids`` of a target database; :meth:`candidates` picks a query's targets.

    ``scores`` is the ``(K, K)`` token matrix that seeds, the tokens being row ``row`` of ``codes``;
    ``codes``/``offsets`` are the target's ``(T, R)`` track codes whose full column score ranks the seeded
    diagonals; gaps as in the search. ``aa`` (the
    row of the amino acids in ``codes`` and their unweighted matrix), when the search scores amino acids, adds
    amino-acid seeds (``settings.aa_kmer``, ``settings.aa_threshold``; none at threshold 0).
    """

    def __init__(
        self,
        scores: np.ndarray,
        codes: np.ndarray,
        offsets: np.ndarray,
        ids: np.ndarray,
        settings: PrefilterSettings = PrefilterSettings(),
        gap_open: int = 10,
        gap_extend: int = 1,
        aa: tuple[int, np.ndarray] | None = None,
        row: int = 0,
    ) -> None:
        self.codes, self.offsets, self.settings = codes, np.asarray(offsets, np.int64), settings
        self.gap_open, self.gap_extend = gap_open, gap_extend
        self.seeds = [(row, np.ascontiguousarray(scores, dtype=np.int64), settings.kmer, settings.kmer_threshold)]
        if aa is not None and settings.aa_threshold > 0:
            self.seeds.append((aa[0], np.ascontiguousarray(aa[1], dtype=np.int64), settings.aa_kmer,
                               settings.aa_threshold))
        indexes = [KmerIndex.build(codes[row], offsets, ids, k, table.shape[0]) for row, table, k, _ in self.seeds]
        # one key space: the keys of seed track s follow those of the tracks before it
        self._key_offsets = np.cumsum([0] + [index.size**index.k for index in indexes])
        if len(indexes) == 1:
            self._starts, self._entries, self._positions = indexes[0].starts, indexes[0].entries, indexes[0].positions
        else:
            hits = np.cumsum([0] + [len(index.entries) for index in indexes])
            self._starts = np.concatenate(
                [index.starts[:-1] + first for index, first in zip(indexes, hits, strict=False)] + [hits[-1:]]
            )
            self._entries = np.concatenate([index.entries for index in indexes])
            self._positions = np.concatenate([index.positions for index in indexes])
        self._lengths = np.diff(self.offsets)
        self.longest = int(self._lengths.max()) if len(self._lengths) else 0

    @property
    def nbytes(self) -> int:
        """Bytes of the k-mer index (of every seed track)."""
        return self._starts.nbytes + self._entries.nbytes + self._positions.nbytes

    def similar(self, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(keys, positions)``: the similar k-mers of every seed track of ``(T, L)`` query codes, keys in the
        joint key space, in order of query position (stable: token k-mers before amino-acid ones)."""
        parts = [similar_kmers(np.ascontiguousarray(query[row]), table, k, threshold)
                 for row, table, k, threshold in self.seeds]
        if len(parts) == 1:
            return parts[0]
        keys = np.concatenate([key + first for (key, _), first in zip(parts, self._key_offsets, strict=False)])
        where = np.concatenate([at for _, at in parts])
        order = np.argsort(where, kind="stable")
        return keys[order], where[order]

    def seeded(self, query: np.ndarray, profile: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(targets, scores)``: the seeded database entries (sorted) and their prefilter scores, for ``(T, L)``
        query codes and their ``(T, C, L)`` profile."""
        settings = self.settings
        keys, where = self.similar(query)
        return prefilter_scores(keys, where, self._starts, self._entries, self._positions, profile, self.codes,
                                self.offsets, self.longest, settings.spacing, settings.min_segment, self.gap_open,
                                self.gap_extend)

    def candidates(
        self, query: np.ndarray, profile: np.ndarray, max_candidates: int = DEFAULT_MAX_CANDIDATES
    ) -> np.ndarray:
        """Sorted ``int64`` indices of the (at most) ``max_candidates`` best-ranked seeded targets (:meth:`best`)."""
        return self.best(*self.seeded(query, profile), max_candidates)

    def best(
        self, targets: np.ndarray, scores: np.ndarray, max_candidates: int, length_penalty: float | None = None
    ) -> np.ndarray:
        """Sorted ``int64`` indices of the (at most) ``max_candidates`` of the seeded ``targets`` ranked highest by
        their ``scores`` less ``length_penalty`` (default: the settings') ``* ln(target length)`` (ties: lower
        index first; a seeded target whose segments all fall below the minimum scores 0)."""
        penalty = self.settings.length_penalty if length_penalty is None else length_penalty
        rank = scores - penalty * np.log(self._lengths[targets])
        return np.sort(targets[np.argsort(-rank, kind="stable")[:max_candidates]])
