"""The autoencoder's training corpus: which chains, sampled how, streamed as microenvironment batches.

A corpus is a list of chains with a sequence cluster and a split. In a chain index (``index.csv``, the
layout of ``data/structures/``; several inputs may each have their own) each row is a chain; rows
homologous to benchmark sets are dropped by default (see :class:`CorpusFilter`). A file in no index is its
own cluster, and a seeded 5% of such files is held out for validation. Each epoch takes one random chain
per cluster (so lysozymes and antibodies do not dominate) and at most ``residues_per_chain`` random residues
of it; chains are read a few at a time, their
microenvironments shuffled in a buffer and cut into fixed-size parts (:func:`shard_stream`; a batch is made of
the parts of several data shards, see :mod:`ismtk.autoencoder.loader`). Everything random depends only on
the seed, the epoch and the shard, so a resumed run, or a run over any number of processes, sees the same
batches.
"""

from __future__ import annotations

import csv
import hashlib
import zlib
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ismtk.errors import InputError, StructureError
from ismtk.structure.chain import ProteinChain, require_backbone
from ismtk.structure.microenv import RADIUS, Microenvironments, collate, microenvironments
from ismtk.structure.read import ReadOptions, find_structure_files, read_structure
from ismtk.train.order import epoch_permutation

__all__ = [
    "INDEX_NAME",
    "CorpusEntry",
    "CorpusFilter",
    "Corpus",
    "SkipLog",
    "load_corpus",
    "epoch_entries",
    "expected_envs",
    "chain_residues",
    "shard_stream",
    "validation_set",
]

#: Name of the chain index looked for in input folders.
INDEX_NAME = "index.csv"


@dataclass(frozen=True)
class CorpusEntry:
    """One chain of the corpus (``chain=None``: one chain of the file, drawn at random when read)."""

    path: str
    chain: str | None
    cluster: str
    split: str
    n_residues: int | None = None


@dataclass(frozen=True)
class CorpusFilter:
    """Index rows left out of training and validation, so that later benchmarks stay clean.

    ``drop_bench_homologs``: rows whose ``scope40_dev_homolog`` contains ``bench`` (homologous at 40% to a
    ``scope40_dev`` benchmark domain; the tokens made by this model are benchmarked there), and rows with ``role =
    bench`` (those domains themselves, in ``scope40_dev/classification.tsv``).
    ``drop_ts50_homologs``: rows with ``ts50_homolog = 1`` (homologous to the TS50 probe set).
    """

    drop_bench_homologs: bool = True
    drop_ts50_homologs: bool = True


@dataclass
class Corpus:
    """Train and validation chains, and one line per decision worth logging."""

    train: list[CorpusEntry]
    val: list[CorpusEntry]
    notes: list[str] = field(default_factory=list)

    @property
    def clusters(self) -> list[str]:
        """Sorted training clusters (one chain of each is used per epoch)."""
        return sorted({e.cluster for e in self.train})

    def fingerprint(self) -> str:
        """SHA-256 of the chains (file name, chain, cluster, split) in both splits: what a resumed run must train
        on again for its data order and schedule to continue (file names, not paths, so data may move)."""
        rows = sorted(f"{Path(e.path).name}\t{e.chain}\t{e.cluster}\t{e.split}" for e in self.train + self.val)
        return hashlib.sha256("\n".join(rows).encode()).hexdigest()


@dataclass
class SkipLog:
    """Counts of what was skipped while streaming, with the first message of each kind."""

    counts: Counter = field(default_factory=Counter)
    first: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, message: str) -> None:
        self.counts[kind] += 1
        self.first.setdefault(kind, message)

    def summary(self) -> str:
        """Each kind's count and first message, e.g. ``unreadable files: 2 reads (first: x.pdb: empty file)``;
        counted per read, and training reads a file again each epoch (and a shard that runs short, within one)."""
        kinds = sorted(self.counts.items())
        return ", ".join(f"{kind}: {n} read(s) (first: {self.first[kind]})" for kind, n in kinds) or "nothing"


def load_corpus(
    inputs: Sequence[str | Path],
    index: str | Path | Sequence[str | Path] | None = None,
    corpus_filter: CorpusFilter = CorpusFilter(),
    val_fraction: float = 0.05,
    seed: int = 0,
) -> Corpus:
    """The chains of ``inputs`` (files, folders, path lists), split into train and validation.

    ``index``: one or several chain index tables (CSV, or TSV when the name ends in ``.tsv``): column ``file``
    (relative to the table's folder) and optionally ``chain``, ``cluster40``, ``split`` (``train``/``val``),
    ``n_residues`` (or ``n_res``), ``scope40_dev_homolog``, ``ts50_homolog``. Besides these, the
    ``index.csv`` at the top of every input folder is used. Only rows whose file is among the inputs are
    kept. Cluster ids are shared by all tables (so tables clustered jointly keep their clusters); a row
    without a cluster is its own cluster, a row without a split is for training, a row without a chain
    stands for one chain of its file. Input files in no table are each their own cluster, and a seeded
    ``val_fraction`` of them is held out for validation.
    """
    files = find_structure_files(inputs)
    given = [index] if isinstance(index, (str, Path)) else list(index or [])
    tables = [Path(t) for t in given] + [Path(p) / INDEX_NAME for p in inputs if (Path(p) / INDEX_NAME).is_file()]
    seen: set[Path] = set()
    tables = [t for t in tables if not (t.resolve() in seen or seen.add(t.resolve()))]
    wanted = {str(Path(f).resolve()) for f in files}
    corpus = Corpus([], [])
    covered: set[str] = set()
    for table in tables:
        part, mentioned = _corpus_from_index(table, wanted, corpus_filter)
        corpus.train += part.train
        corpus.val += part.val
        corpus.notes += part.notes
        covered |= mentioned
    rest = [f for f in files if str(Path(f).resolve()) not in covered]
    if rest:
        corpus.notes += _unused_filter_tables(inputs, tables, {str(Path(f).resolve()) for f in rest}, corpus_filter)
        part = _corpus_from_files(rest, val_fraction, seed)
        corpus.train += part.train
        corpus.val += part.val
        corpus.notes += part.notes
    if not corpus.train:
        raise InputError(
            "no training chains left among the inputs (check the paths, the chain indexes and the filters)"
        )
    # the inputs' order must not matter: it picks a cluster's chains and seeds the validation draws
    for part in (corpus.train, corpus.val):
        part.sort(key=lambda e: (Path(e.path).name, e.chain or "", e.path))
    return corpus


#: Folders above an input file searched for tables that filter it (its own folder, then two more: ``data/X/pdb``).
_TABLE_LEVELS = 3
_FILTER_COLUMNS = ("scope40_dev_homolog", "ts50_homolog", "role")


def _unused_filter_tables(
    inputs: Sequence[str | Path], used: list[Path], untabled: set[str], corpus_filter: CorpusFilter
) -> list[str]:
    """Tables this run does not use (in an input folder, or up to two folders above an input file, e.g.
    ``cath2738/classification.tsv`` or ``structures/index.csv`` for ``structures/pdb``) that list homology filters
    for some of the ``untabled`` files. Raises :class:`InputError` when the filter would drop one of them (a
    benchmark homolog would be trained on); otherwise a note for each."""
    given = {t.resolve() for t in used}
    folders = {Path(p).resolve() for p in inputs if Path(p).is_dir()}
    for path in map(Path, untabled):
        folders.update(path.parents[:_TABLE_LEVELS])
    notes = []
    for table in sorted({t.resolve() for f in folders for t in [*f.glob("*.tsv"), *f.glob("*.csv")]} - given):
        if not _filters_in_header(table):
            continue  # not a chain index with filters: not read further (a folder above may hold large tables)
        try:
            rows = _read_table(table)
        except InputError:
            continue
        listed = [row for row in rows if str((table.parent / row["file"]).resolve()) in untabled]
        if not listed:
            continue
        leaking = sum(_dropped_by(row, corpus_filter) is not None for row in listed)
        if leaking:
            raise InputError(
                f"{table} marks {leaking} of the input files as benchmark domains or their homologs, but is not a "
                "chain index of this run, so they would be trained on: give it with --index (or keep them on purpose "
                "with --keep-bench-homologs / --keep-ts50-homologs)"
            )
        notes.append(f"{table} lists {len(listed)} of the input files (none a benchmark homolog); give it with "
                     "--index to use its clusters")
    return notes


def _filters_in_header(table: Path) -> bool:
    """Whether the first line of ``table`` names a ``file`` column and a homology filter column."""
    try:
        with table.open(newline="") as handle:
            header = next(csv.reader(handle, delimiter="\t" if table.name.lower().endswith(".tsv") else ","), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return False
    return "file" in header and bool(set(_FILTER_COLUMNS) & set(header))


def _dropped_by(row: dict[str, str], corpus_filter: CorpusFilter) -> str | None:
    """Why ``corpus_filter`` leaves an index row out of training and validation, or ``None``."""
    if corpus_filter.drop_bench_homologs and (row.get("role") or "").strip() == "bench":
        return "a scope40_dev bench domain"
    if corpus_filter.drop_bench_homologs and "bench" in (row.get("scope40_dev_homolog") or ""):
        return "homologous to scope40_dev bench"
    if corpus_filter.drop_ts50_homologs and (row.get("ts50_homolog") or "0").strip() == "1":
        return "homologous to ts50"
    return None


def _read_table(index: Path) -> list[dict[str, str]]:
    try:
        with index.open(newline="") as handle:
            reader = csv.DictReader(handle, delimiter="\t" if index.name.lower().endswith(".tsv") else ",")
            rows = list(reader)
    except OSError as exc:
        raise InputError(f"{index}: cannot read the chain index ({exc.strerror})") from exc
    except (csv.Error, UnicodeDecodeError) as exc:
        raise InputError(f"{index}: not a chain index table ({exc})") from exc
    if "file" not in (reader.fieldnames or []):
        raise InputError(f"{index}: chain index lacks the column 'file'")
    if not rows:
        raise InputError(f"{index}: chain index has a header but no rows")
    return rows


def _corpus_from_index(index: Path, files: set[str], corpus_filter: CorpusFilter) -> tuple[Corpus, set[str]]:
    """The kept rows of one table, and every input file the table mentions (kept or dropped)."""
    rows = _read_table(index)
    kept: list[CorpusEntry] = []
    mentioned: set[str] = set()
    dropped = Counter()
    for row in rows:
        path = str((index.parent / row["file"]).resolve())
        if path not in files:
            dropped["file not among the inputs"] += 1
            continue
        mentioned.add(path)
        why = _dropped_by(row, corpus_filter)
        if why is not None:
            dropped[why] += 1
            continue
        chain = (row.get("chain") or "").strip() or None  # a blank cell: any chain, as without the column
        cluster = (row.get("cluster40") or "").strip() or f"{path}:{chain}"
        n = (row.get("n_residues") or row.get("n_res") or "").strip()
        split = (row.get("split") or "").strip() or "train"
        kept.append(CorpusEntry(path, chain, cluster, split, int(n) if n.isdigit() else None))
    train = [e for e in kept if e.split == "train"]
    val = [e for e in kept if e.split == "val"]
    clusters = len({e.cluster for e in train})
    notes = [f"chain index {index}: {len(rows)} rows, {len(train)} train chains in {clusters} clusters, {len(val)} val"]
    notes += [f"dropped {n} row(s): {why}" for why, n in sorted(dropped.items())]
    return Corpus(train, val, notes), mentioned


def _corpus_from_files(files: list[Path], val_fraction: float, seed: int) -> Corpus:
    def is_val(path: Path) -> bool:
        return zlib.crc32(f"{seed}:{path.name}".encode()) / 2**32 < val_fraction

    entries = [CorpusEntry(str(p), None, str(p), "val" if is_val(p) else "train") for p in files]
    train = [e for e in entries if e.split == "train"] or entries
    val = [e for e in entries if e.split == "val" and e not in train]
    notes = [f"{len(files)} files in no chain index: each its own cluster; {len(val)} held out for validation (a "
             f"seeded {val_fraction:.0%}, neither trained on nor clustered)"]
    return Corpus(train, val, notes)


def epoch_entries(corpus: Corpus, epoch: int, seed: int) -> list[CorpusEntry]:
    """One random training chain per cluster, in a random order; depends only on ``(seed, epoch)``."""
    by_cluster: dict[str, list[CorpusEntry]] = {}
    for entry in corpus.train:
        by_cluster.setdefault(entry.cluster, []).append(entry)
    clusters = sorted(by_cluster)
    rng = np.random.default_rng([seed, epoch, 1])
    picks = [by_cluster[c][rng.integers(len(by_cluster[c]))] for c in clusters]
    return [picks[i] for i in epoch_permutation(len(picks), epoch, seed)]


def expected_envs(corpus: Corpus, residues_per_chain: int) -> float:
    """Expected microenvironments per epoch (from ``n_residues`` where the index has it)."""
    by_cluster: dict[str, list[int]] = {}
    for e in corpus.train:
        n = residues_per_chain if e.n_residues is None else min(e.n_residues, residues_per_chain)
        by_cluster.setdefault(e.cluster, []).append(n)
    return float(sum(np.mean(v) for v in by_cluster.values()))


def _read_chain(
    entry: CorpusEntry, options: ReadOptions, rng: np.random.Generator, skips: SkipLog
) -> ProteinChain | None:
    try:
        structure = read_structure(entry.path, options)
    except StructureError as exc:
        skips.add("unreadable files", str(exc))
        return None
    for problem in structure.skipped:
        skips.add("unusable chains", str(problem))
    chains = structure.chains
    if entry.chain is not None:
        chains = [c for c in chains if c.chain_id == entry.chain]
    if not chains:
        skips.add("chains not found", f"{entry.path}: chain {entry.chain!r} not found")
        return None
    usable = []
    for chain in chains:  # the chains an ISM tokenizer encodes (a CA-only chain has no microenvironments worth one)
        try:
            require_backbone(chain, "ISM tokens are made from all-atom microenvironments")
            usable.append(chain)
        except StructureError as exc:
            skips.add("unusable chains", str(exc))
    if not usable:
        return None
    return usable[int(rng.integers(len(usable)))] if len(usable) > 1 else usable[0]


def chain_residues(
    entries: Sequence[CorpusEntry],
    residues_per_chain: int,
    min_residues: int,
    rng: np.random.Generator,
    skips: SkipLog,
    options: ReadOptions = ReadOptions(),
) -> Iterator[tuple[ProteinChain, np.ndarray]]:
    """Each usable chain, in order, with up to ``residues_per_chain`` of its residues drawn at random (sorted)."""
    for entry in entries:
        chain = _read_chain(entry, options, rng, skips)
        if chain is None:
            continue
        if len(chain) < min_residues:
            skips.add("chains too short", f"{chain.name}: {len(chain)} residues < {min_residues}")
            continue
        residues = np.arange(len(chain))
        if len(chain) > residues_per_chain:
            residues = np.sort(rng.choice(len(chain), residues_per_chain, replace=False))
        yield chain, residues


def shard_stream(
    entries: Sequence[CorpusEntry],
    part_size: int,
    residues_per_chain: int,
    min_residues: int,
    shuffle_chains: int,
    rng: np.random.Generator,
    skips: SkipLog,
    fallback: Sequence[CorpusEntry] = (),
    options: ReadOptions = ReadOptions(),
    radius: float = RADIUS,
) -> Iterator[Microenvironments]:
    """Endless parts of ``part_size`` shuffled microenvironments of ``entries``, read again when used up.

    Chains are read ``shuffle_chains`` at a time; their microenvironments, with what was left over from the
    previous group, are shuffled together before being cut, so a part mixes several chains while only a
    few chains are in memory (microenvironments of ``radius`` Å). Each new pass draws new residues. If a whole
    pass yields nothing (no entries, or none usable), the stream reads ``fallback`` instead; if that yields
    nothing either, it raises :class:`InputError`.
    """
    pending: Microenvironments | None = None
    sources = [list(entries), list(fallback)]
    while sources:
        found = False
        for start in range(0, len(sources[0]), shuffle_chains):
            group = sources[0][start : start + shuffle_chains]
            chosen = chain_residues(group, residues_per_chain, min_residues, rng, skips, options)
            parts = [microenvironments(chain, residues, radius=radius) for chain, residues in chosen]
            found = found or bool(parts)
            if pending is not None:
                parts.insert(0, pending)
            if not parts:
                continue
            pool = collate(parts)
            pool = pool.take(rng.permutation(len(pool)))
            n_full = len(pool) // part_size
            for b in range(n_full):
                yield pool.take(np.arange(b * part_size, (b + 1) * part_size))
            pending = pool.take(np.arange(n_full * part_size, len(pool)))
        if not found:
            sources.pop(0)
    raise InputError(f"no usable training chain among {len(fallback) or len(entries)} (skipped: {skips.summary()})")


def validation_set(
    entries: Sequence[CorpusEntry],
    residues_per_chain: int,
    min_residues: int,
    seed: int,
    skips: SkipLog,
    first: int = 0,
    step: int = 1,
    options: ReadOptions = ReadOptions(),
    radius: float = RADIUS,
) -> Microenvironments:
    """The fixed validation microenvironments of ``entries[first::step]``: up to ``residues_per_chain``
    residues of each chain, drawn with a seed per entry, so that the shares of several ranks together are
    exactly the set one process reads."""
    parts: list[Microenvironments] = []
    for i in range(first, len(entries), step):
        rng = np.random.default_rng([seed, 3, i])
        chosen = chain_residues(entries[i : i + 1], residues_per_chain, min_residues, rng, skips, options)
        parts += [microenvironments(chain, residues, radius=radius) for chain, residues in chosen]
    return collate(parts)
