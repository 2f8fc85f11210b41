"""The ``encode`` pipeline: structure files in, token (and amino-acid) FASTA out.

Files are read and tokenized by a single pool of worker processes (never nested) and the results
are written in input order, so the output does not depend on the number of workers.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from ismtk.errors import InputError, StructureError
from ismtk.sequence.fasta import FastaWriter
from ismtk.structure.read import ReadOptions, read_structure
from ismtk.tokenizers.base import Tokenizer

__all__ = ["EncodedChain", "FileResult", "EncodeSummary", "default_threads", "encode_file", "encode_files", "write_fasta"]


def default_threads() -> int:
    """Number of CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@dataclass(frozen=True)
class EncodedChain:
    """Tokens of one chain: ``tokens`` is ``(L,) uint8``, ``sequence`` its amino acids, ``ca`` its ``(L, 3)
    float32`` C-alpha coordinates."""

    name: str
    sequence: str
    tokens: np.ndarray
    ca: np.ndarray | None = None


@dataclass(frozen=True)
class FileResult:
    """What came out of one file: its encoded chains and the chains (or whole file) skipped."""

    path: str
    chains: list[EncodedChain]
    skipped: list[StructureError]

    @property
    def failed(self) -> bool:
        """True when nothing of the file could be encoded."""
        return not self.chains and bool(self.skipped)


def encode_file(path: str | Path, tokenizer: Tokenizer, options: ReadOptions = ReadOptions()) -> FileResult:
    """Read and tokenize one file; problems are returned in :attr:`FileResult.skipped`, never raised.

    An unexpected exception (a bug, not bad input) is reported as a skip too, so one file never stops a
    batch of millions.
    """
    try:
        structure = read_structure(path, options)
        encoded, skipped = [], list(structure.skipped)
        for chain in structure.chains:
            try:
                encoded.append(EncodedChain(chain.name, chain.sequence, tokenizer.encode(chain), chain.ca))
            except StructureError as exc:
                skipped.append(exc)
    except StructureError as exc:
        return FileResult(str(path), [], [exc])
    except Exception as exc:  # noqa: BLE001 -- reported per file, see docstring
        return FileResult(str(path), [], [StructureError(path, f"internal error, please report: {exc!r}")])
    return FileResult(str(path), encoded, skipped)


_worker_state: tuple[Tokenizer, ReadOptions] | None = None


def _init_worker(tokenizer: Tokenizer, options: ReadOptions, torch_threads: int) -> None:
    global _worker_state
    _worker_state = (tokenizer, options)
    if "torch" in sys.modules:  # neural tokenizers: share the cores among workers instead of oversubscribing
        sys.modules["torch"].set_num_threads(torch_threads)


def _encode_in_worker(path: str) -> FileResult:
    assert _worker_state is not None
    return encode_file(path, *_worker_state)


def encode_files(
    paths: Sequence[str | Path],
    tokenizer: Tokenizer,
    options: ReadOptions = ReadOptions(),
    threads: int = 1,
) -> Iterator[FileResult]:
    """Encode many files with ``threads`` worker processes, yielding results in input order.

    ``threads == 1`` runs in this process. Workers are started with ``spawn``, so they never inherit
    locks or thread pools (torch, OpenMP) of the parent.
    """
    if threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    paths = [str(p) for p in paths]
    if threads == 1 or len(paths) < 2:
        for path in paths:
            yield encode_file(path, tokenizer, options)
        return
    workers = min(threads, len(paths))
    chunksize = max(1, min(16, len(paths) // (workers * 8)))
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=_init_worker,
        initargs=(tokenizer, options, max(1, default_threads() // workers)),
    ) as pool:
        yield from pool.map(_encode_in_worker, paths, chunksize=chunksize)


@dataclass
class EncodeSummary:
    """Counts of one ``encode`` run."""

    files: int = 0
    chains: int = 0
    residues: int = 0
    failed_files: int = 0
    skipped: list[StructureError] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def residues_per_second(self) -> float:
        return self.residues / self.seconds if self.seconds > 0 else 0.0


def write_fasta(
    results: Iterable[FileResult],
    tokenizer: Tokenizer,
    tokens_out: str | Path,
    aa_out: str | Path | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> EncodeSummary:
    """Stream ``results`` into a token FASTA (and an amino-acid FASTA); both appear atomically.

    Raises :class:`InputError` if no chain at all could be encoded (nothing is written then).
    """
    summary = EncodeSummary()
    start = time.perf_counter()
    with ExitStack() as outputs:
        tokens_writer = outputs.enter_context(FastaWriter(tokens_out))
        aa_writer = outputs.enter_context(FastaWriter(aa_out)) if aa_out is not None else None
        for result in results:
            summary.files += 1
            summary.failed_files += result.failed
            summary.skipped.extend(result.skipped)
            for chain in result.chains:
                tokens_writer.write(chain.name, tokenizer.alphabet.decode(chain.tokens))
                if aa_writer is not None:
                    aa_writer.write(chain.name, chain.sequence)
                summary.chains += 1
                summary.residues += len(chain.tokens)
            if on_result is not None:
                on_result(result)
        if summary.chains == 0:
            raise InputError(f"no chain could be encoded from {summary.files} file(s); nothing written")
    summary.seconds = time.perf_counter() - start
    return summary
