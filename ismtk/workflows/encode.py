"""The ``encode`` pipeline: structure files in, token (and amino-acid) FASTA out, at any scale.

- **Workers**: files are read and tokenized in chunks by worker processes (one per core, or one per
  device), never nested; results come back and are written in input order, so the output does not depend
  on the number of workers. Only a few chunks per worker are in flight, so a list of a million files is
  never held as a million parsed structures.
- **Shards** (:class:`Shard`): job ``I`` of ``N`` takes the ``I``-th contiguous share of the inputs;
  concatenating the outputs of shards 1..N gives the output of one run (an entry name that an earlier shard's
  file gives out is skipped, as one run skips it: :func:`earlier_shard_names`).
- **Streaming and resume**: records are written to ``OUT.part`` as they come and renamed onto ``OUT`` at
  the end (:mod:`ismtk.workflows.resumable`); a killed run is continued with ``resume=True``.
- **One path for every input**: a path that does not exist, a list line naming one, an unreadable file
  and an unusable chain are all skipped and reported (:attr:`FileResult.skipped`); the batch goes on.
- **Unique names**: a chain whose entry name an earlier chain already has is skipped and reported
  (:class:`EntryNames`), so every record of the output is told apart.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import select
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import dataclass, field, replace
from multiprocessing import get_all_start_methods, get_context
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from ismtk.errors import InputError, RunInterrupted, StructureError
from ismtk.structure.read import ReadOptions, entry_name, name_taken, path_list, read_structure
from ismtk.tokenizers import load_tokenizer
from ismtk.tokenizers.base import Tokenizer
from ismtk.workflows.resumable import ResumableFasta, inputs_fingerprint

__all__ = [
    "CHUNK_FILES",
    "CHUNK_SECONDS",
    "MIN_FILES_PER_WORKER",
    "TASKS_PER_WORKER",
    "EncodeSummary",
    "EncodedChain",
    "EntryNames",
    "FileResult",
    "Shard",
    "default_threads",
    "encode_file",
    "encode_files",
    "encode_to_fasta",
    "free_cores",
    "resolve_device",
    "start_workers",
    "write_fasta",
]

#: Largest number of files a worker encodes per task (fewer when there are few files per worker).
CHUNK_FILES = 16
#: Work per task, in seconds: slow files (ISM tokens) go one per task, so results (and the progress shown)
#: come steadily instead of in jumps of :data:`CHUNK_FILES`.
CHUNK_SECONDS = 0.5
#: Chunks (of the largest size) in flight per worker: enough to keep it busy, few enough to bound memory.
TASKS_PER_WORKER = 4
#: Fewer files than this per worker are encoded in this process: starting workers costs more than it saves.
MIN_FILES_PER_WORKER = 8


def default_threads() -> int:
    """Number of CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_cores(limit: int) -> int:
    """Of up to ``limit`` of this process's cores, how many no other task runs on now (at least 1).

    Torch's OpenMP threads wait for each other by spinning, so threads beyond the free cores cost more than they
    bring: two threads ran the README's 9 files 1.45x faster than one on an idle 2-core machine, and 2.2x slower
    beside two busy processes (libgomp's dynamic threads follow the load the same way).
    """
    limit = min(limit, default_threads())
    if limit <= 1:  # also 0: no CPU worker asked for
        return 1
    return max(1, min(limit, round(default_threads() - _other_tasks())))


def _other_tasks() -> float:
    """Tasks running now besides this one: the runnable count of ``/proc/loadavg`` less one, else (no such file)
    the 1-minute load average."""
    try:
        return float(Path("/proc/loadavg").read_text().split()[3].split("/")[0]) - 1
    except (OSError, IndexError, ValueError):
        return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


@dataclass(frozen=True)
class EncodedChain:
    """Tokens of one chain: ``tokens`` is ``(L,) uint8``, ``sequence`` its amino acids, ``ca`` its ``(L, 3)
    float32`` C-alpha coordinates, ``tracks`` its ``(L,) uint8`` tokens by each tokenizer of the tracks asked for."""

    name: str
    sequence: str
    tokens: np.ndarray
    chain_id: str = ""
    ca: np.ndarray | None = None
    tracks: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class FileResult:
    """What came out of one file: its encoded chains, the chains (or whole file) skipped, and warnings about
    what was read (atoms dropped, a cut last line).

    ``peak_rss`` is the peak resident memory, in bytes, of the process that encoded it (so far), ``seconds``
    the time that process spent on the file.
    """

    path: str
    chains: list[EncodedChain]
    skipped: list[StructureError]
    peak_rss: int = 0
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """True when the file as a whole could not be used (missing, unreadable, no protein chain); a file
        whose chains were skipped one by one (a CA-only chain) is not failed, its chains are skipped."""
        return any(problem.chain is None for problem in self.skipped)


class EntryNames:
    """Entry names given out so far: a chain whose name is taken is skipped, the first one keeps it.

    ``names`` are names already taken: the records of a resumed run (iterable), or name -> the file that gave it
    (a mapping: the files of earlier shards).
    """

    def __init__(self, names: Iterable[str] | Mapping[str, str | None] = ()) -> None:
        self._source: dict[str, str | None] = dict(names) if isinstance(names, Mapping) else dict.fromkeys(names)

    def claim(self, result: FileResult) -> FileResult:
        """``result`` with the chains whose names are taken moved to its skipped chains; takes the others'."""
        kept, skipped = [], list(result.skipped)
        mine: set[str] = set()
        for chain in result.chains:
            if chain.name in self._source:
                first = self._source[chain.name]
                skipped.append(name_taken(result.path, chain.name, chain.chain_id, first, chain.name in mine))
            else:
                self._source[chain.name] = result.path
                mine.add(chain.name)
                kept.append(chain)
        return result if len(kept) == len(result.chains) else replace(result, chains=kept, skipped=skipped)


@dataclass(frozen=True)
class Shard:
    """Job ``index`` (1-based) of ``count``: a contiguous share of the inputs, the same on every run."""

    index: int = 1
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> Shard:
        """``"I/N"`` with ``1 <= I <= N`` (e.g. ``$SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT``)."""
        try:
            index, count = (int(part) for part in text.split("/"))
        except ValueError:
            raise InputError(f"--shard must look like I/N (e.g. 3/10), got {text!r}") from None
        if not 1 <= index <= count:
            raise InputError(f"--shard {text}: I must be between 1 and N")
        return cls(index, count)

    def select(self, items: Sequence) -> Sequence:
        """This shard's share of ``items``: ``items[(I-1)*n//N : I*n//N]``."""
        n = len(items)
        return items[(self.index - 1) * n // self.count : self.index * n // self.count]

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def resolve_device(device: str, tokenizer: Tokenizer) -> str:
    """The device ``tokenizer`` runs on for a ``--device`` value (:func:`ismtk.train.launch.resolve_device`:
    ``auto``, ``cpu``, ``cuda``, ``cuda:N``); tokenizers without a neural model (3Di) always run on the CPU.

    Raises :class:`InputError` for a device that is not there.
    """
    if not tokenizer.uses_torch:
        return "cpu"
    from ismtk.train.launch import resolve_device as resolve

    return str(resolve(device))


def worker_devices(device: str, threads: int, gpus: int = 0) -> list[str]:
    """The device of each encoding process: one per GPU with ``gpus``; one on a resolved CUDA ``device`` (processes
    sharing a GPU would each hold a CUDA context and a copy of the model, and add no GPU); else ``threads`` on the
    CPU (``device`` as :func:`resolve_device` returned it)."""
    if gpus:
        return [f"cuda:{i}" for i in range(gpus)]
    return [device] if device.startswith("cuda") else [device] * threads


def _device_failure(exc: Exception) -> bool:
    """True for an accelerator's out-of-memory or runtime error: every later file would fail the same way."""
    torch = sys.modules.get("torch")
    kinds = tuple(getattr(torch, name) for name in ("OutOfMemoryError", "AcceleratorError") if hasattr(torch, name))
    return isinstance(exc, kinds)


def encode_file(
    path: str | Path,
    tokenizer: Tokenizer | str | Path,
    options: ReadOptions = ReadOptions(),
    tracks: Sequence[Tokenizer] = (),
) -> FileResult:
    """Read and tokenize one file; problems are returned in :attr:`FileResult.skipped`, never raised.

    Each chain is also tokenized by each of ``tracks`` (:attr:`EncodedChain.tracks`), from the same reading; a
    chain that one of them cannot use is skipped. An unexpected exception (a bug, not bad input) is reported as a
    skip too, so one file never stops a batch of millions, except a GPU's out-of-memory or device error, raised as
    :class:`~ismtk.errors.RunInterrupted` (every later file would fail too; the run keeps what it wrote and continues
    with ``--resume``). ``tokenizer``: one, or what :func:`load_tokenizer` takes.
    """
    tokenizer = load_tokenizer(tokenizer)
    start = time.perf_counter()
    try:
        structure = read_structure(path, options)
        encoded, skipped = [], list(structure.skipped)
        for chain in structure.chains:
            try:
                tokens = tokenizer.encode(chain)
                more = tuple(track.encode(chain) for track in tracks)
                encoded.append(EncodedChain(chain.name, chain.sequence, tokens, chain.chain_id, chain.ca, more))
            except StructureError as exc:
                skipped.append(exc)
    except StructureError as exc:
        return FileResult(str(path), [], [exc], seconds=time.perf_counter() - start)
    except Exception as exc:  # reported per file (see the docstring), a device failure excepted
        if _device_failure(exc):
            raise RunInterrupted(f"{path}: the device failed while encoding it ({type(exc).__name__}: {exc}); free "
                             "its memory or use another device, then continue with --resume") from exc
        problem = StructureError(path, f"internal error, please report it ({type(exc).__name__}: {exc})")
        return FileResult(str(path), [], [problem], seconds=time.perf_counter() - start)
    return FileResult(str(path), encoded, skipped, warnings=structure.warnings, seconds=time.perf_counter() - start)


def encode_files(
    paths: str | Path | Sequence[str | Path],
    tokenizer: Tokenizer | str | Path,
    options: ReadOptions = ReadOptions(),
    threads: int = 1,
    devices: Sequence[str] | None = None,
    tracks: Sequence[Tokenizer] = (),
) -> Iterator[FileResult]:
    """Encode many files, yielding results in input order (each chain also by each of ``tracks``, see
    :func:`encode_file`).

    ``threads`` worker processes share the files, each using one core; or, with ``devices`` (e.g.
    ``["cuda:0", "cuda:1"]``), one worker per device with the tokenizer moved there. With one worker, or
    fewer than :data:`MIN_FILES_PER_WORKER` files per worker, this process encodes them itself, with a torch
    thread for each CPU worker there would have been, as far as :func:`free_cores` finds cores free.
    Workers take chunks of consecutive files, each about :data:`CHUNK_SECONDS` of work (at most
    :data:`CHUNK_FILES` files); at most :data:`TASKS_PER_WORKER` chunks of the largest size per worker are in
    flight (as many files in smaller chunks). They die with this process, and stop at once when the iterator is
    closed: iterate inside ``with contextlib.closing(encode_files(...))`` so that an exception in the loop's body
    (Ctrl-C while a result is written) stops them too, instead of leaving them to the end of the process. Workers
    import the calling script again, as :mod:`multiprocessing` does: in a script, call this (and everything that
    encodes with ``threads > 1``) under ``if __name__ == "__main__":``.
    """
    if threads < 1:
        raise InputError(f"--threads must be at least 1, got {threads}")
    paths, tokenizer = [str(p) for p in path_list(paths)], load_tokenizer(tokenizer)
    devices = list(devices) if devices else ["cpu"] * threads
    workers = _workers(len(paths), len(devices))
    if workers == 1:
        yield from _encode_here(paths, tokenizer, options, devices[0], tracks, free_cores(devices.count("cpu")))
        return
    largest = max(1, min(CHUNK_FILES, len(paths) // (workers * TASKS_PER_WORKER)))
    context = _worker_context(type(t).__module__ for t in (tokenizer, *tracks))
    queue = context.Queue()
    for device in devices[:workers]:
        queue.put(device)
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker,
        initargs=(tokenizer, options, queue, os.getpid(), tuple(tracks)),
    )
    pending: deque[tuple[Future, int]] = deque()
    pace = _Pace()
    start = in_flight = 0
    limit = workers * TASKS_PER_WORKER * largest  # files in flight, however they are chunked
    try:
        while start < len(paths):
            chunk = pace.files_per_chunk(largest)
            pending.append((pool.submit(_encode_chunk, paths[start : start + chunk]), chunk))
            start += chunk
            in_flight += chunk
            if in_flight >= limit:
                future, done = pending.popleft()
                in_flight -= done
                yield from pace.timed(future.result())
        while pending:
            yield from pace.timed(pending.popleft()[0].result())
    except BrokenProcessPool as exc:
        raise RunInterrupted(
            "an encoding worker process ended abruptly: killed (out of memory?), or, in a Python script, started "
            "without 'if __name__ == \"__main__\":' around the code that calls ismtk with threads > 1 (workers import "
            "the script again, as multiprocessing does); use threads=1 or add the guard; continue with --resume"
        ) from exc
    finally:
        _stop(pool, early=bool(pending))


class _Pace:
    """Seconds per file seen so far, and the chunk size that makes about :data:`CHUNK_SECONDS` of work."""

    def __init__(self) -> None:
        self.files = 0
        self.seconds = 0.0

    def timed(self, results: list[FileResult]) -> list[FileResult]:
        self.files += len(results)
        self.seconds += sum(r.seconds for r in results)
        return results

    def files_per_chunk(self, largest: int) -> int:
        if not self.files:
            return 1
        return max(1, min(largest, int(CHUNK_SECONDS * self.files / max(self.seconds, 1e-9))))


def _encode_here(
    paths: list[str],
    tokenizer: Tokenizer,
    options: ReadOptions,
    device: str,
    tracks: Sequence[Tokenizer] = (),
    threads: int = 1,
) -> Iterator[FileResult]:
    """Encode in this process with ``threads`` torch threads (only as many as :func:`free_cores` finds: spinning
    OpenMP threads on shared cores made the README's 10 files 6x slower, 61-78 s vs 10-14 s at load 9) and one
    BLAS thread (NumPy's BLAS threads over 3Di's small matrix products spin the same way and gain nothing);
    restored afterwards."""
    torch = sys.modules.get("torch")
    previous = torch.get_num_threads() if torch is not None else 0
    for each in (tokenizer, *tracks):
        each.to(device)
    with threadpool_limits(limits=1, user_api="blas"):
        try:
            for path in paths:
                if torch is not None:
                    torch.set_num_threads(threads)
                result = encode_file(path, tokenizer, options, tracks)
                _release_memory()
                yield result
        finally:
            if torch is not None:
                torch.set_num_threads(previous)


def _workers(files: int, devices: int) -> int:
    """Worker processes :func:`encode_files` starts for ``files`` files on ``devices`` devices (1: none, this
    process encodes them)."""
    return min(devices, max(1, files // MIN_FILES_PER_WORKER))


def _worker_context(tokenizer_modules: Iterable[str]):
    """``forkserver`` where there is one (workers fork from a clean server that imported the encoding and
    tokenizer modules once, so they start in milliseconds), else ``spawn``; never a plain fork of a parent
    that may hold threads or CUDA state."""
    if "forkserver" not in get_all_start_methods():
        return get_context("spawn")
    context = get_context("forkserver")
    context.set_forkserver_preload(["__main__", __name__, *sorted(set(tokenizer_modules))])
    return context


def start_workers(files: int, devices: int, tokenizer_modules: Iterable[str]) -> bool:
    """Start the server that :func:`encode_files` forks its workers from now, if it will use workers for
    ``files`` files on ``devices`` devices: the server imports torch and the encoding modules (about 2.5 s on a
    CPU core) while this process goes on loading its own. ``tokenizer_modules``: the modules of the tokenizers
    (:func:`ismtk.tokenizers.tokenizer_module`). True when a server is running (it runs to the end of the process)."""
    if _workers(files, devices) == 1 or _worker_context(tokenizer_modules).get_start_method() != "forkserver":
        return False
    from multiprocessing import forkserver  # POSIX only

    forkserver.ensure_running()  # returns at once: the server imports in the background
    return True


_worker_state: tuple[Tokenizer, ReadOptions, tuple[Tokenizer, ...]] | None = None


def _init_worker(
    tokenizer: Tokenizer, options: ReadOptions, devices, parent: int, tracks: tuple[Tokenizer, ...] = ()
) -> None:
    global _worker_state
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    # one core per worker instead of oversubscribing: BLAS threads spinning in each of two 3Di workers made
    # them 1.27x one worker instead of 1.85x
    threadpool_limits(limits=1, user_api="blas")
    if "torch" in sys.modules:  # neural tokenizers
        sys.modules["torch"].set_num_threads(1)
    device = devices.get()
    _worker_state = (tokenizer.to(device), options, tuple(track.to(device) for track in tracks))


def _encode_chunk(paths: list[str]) -> list[FileResult]:
    assert _worker_state is not None
    results = []
    for path in paths:
        results.append(encode_file(path, *_worker_state))
        _release_memory()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return [replace(r, peak_rss=rss) for r in results]


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


def _release_memory() -> None:
    """Hand memory freed by torch back to the system: the batches of every file have other shapes, and
    glibc keeps the freed blocks, so a worker would otherwise grow by ~10 MB per file."""
    if "torch" in sys.modules and (trim := _malloc_trim()) is not None:
        trim(0)


def _die_with_parent(parent: int) -> None:
    """End this worker as soon as process ``parent`` (the one that called :func:`encode_files`) ends, so
    kill -9 of ``encode`` leaves no orphans (a forkserver worker's own parent is the server, which
    outlives it): a thread waits on a pidfd of the parent (Linux), else polls it."""
    try:
        handle = os.pidfd_open(parent)
    except (AttributeError, OSError):
        handle = None

    def watch() -> None:
        if handle is not None:
            select.select([handle], [], [])
        else:
            while True:
                try:
                    os.kill(parent, 0)
                except ProcessLookupError:
                    break
                time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="ismtk-parent-watch", daemon=True).start()


def _stop(pool: ProcessPoolExecutor, early: bool) -> None:
    """Shut the pool down; on an ``early`` stop (error, Ctrl-C, caller gone: results still pending) kill the
    workers at once.

    The pending futures are left for the pool to fail, not cancelled: CPython 3.11's pool thread, finding its
    workers dead, sets an exception on every pending future and dies with ``InvalidStateError`` (printed as a
    traceback) on one that was cancelled meanwhile."""
    if not early:
        pool.shutdown(wait=True)
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):  # CPython keeps its workers here
        process.kill()
    pool.shutdown(wait=True)


@dataclass
class EncodeSummary:
    """Counts of one ``encode`` run (including the part done before a resume)."""

    files: int = 0
    chains: int = 0
    residues: int = 0
    failed_files: int = 0
    skipped: list[StructureError] = field(default_factory=list)
    seconds: float = 0.0
    resumed_files: int = 0
    residues_before: int = 0
    skipped_before: int = 0
    peak_rss: int = 0

    @property
    def residues_per_second(self) -> float:
        """Residues encoded per second by this run (a resumed run's earlier part not counted)."""
        return (self.residues - self.residues_before) / self.seconds if self.seconds > 0 else 0.0

    @property
    def skip_count(self) -> int:
        """Skipped files and chains, those of the run before a resume included."""
        return len(self.skipped) + self.skipped_before


def encode_to_fasta(
    paths: str | Path | Sequence[str | Path],
    tokenizer: Tokenizer | str | Path,
    tokens_out: str | Path,
    aa_out: str | Path | None = None,
    options: ReadOptions = ReadOptions(),
    threads: int = 1,
    devices: Sequence[str] | None = None,
    shard: Shard = Shard(),
    resume: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> EncodeSummary:
    """Encode this shard's share of ``paths`` into a token FASTA (and an amino-acid FASTA), streaming.

    With ``resume``, the records of a killed run with the same inputs and tokenizer are kept and its files
    skipped. ``on_start(done, total)`` is called once with the files already done and this shard's count.
    Raises :class:`InputError` if no chain at all could be encoded (nothing is written then).
    """
    every = [str(p) for p in path_list(paths)]
    paths = list(shard.select(every))
    tokenizer = load_tokenizer(tokenizer)
    key = inputs_fingerprint(paths, tokenizer.identity, tokenizer.alphabet.symbols, repr(options), aa_out is not None)
    with ResumableFasta(tokens_out, aa_out, key, resume) as out:
        done = out.state.files
        if on_start is not None:
            on_start(done, len(paths))
        earlier = every[: (shard.index - 1) * len(every) // shard.count]  # the files of the shards before this one
        taken = earlier_shard_names(earlier, paths[done:], tokenizer, options)
        with closing(encode_files(paths[done:], tokenizer, options, threads, devices)) as results:
            summary = _write(results, tokenizer, out, on_result, taken, empty_ok=shard.count > 1)
    return summary


def earlier_shard_names(
    earlier: Sequence[str], mine: Sequence[str], tokenizer: Tokenizer, options: ReadOptions = ReadOptions()
) -> dict[str, str]:
    """The entry names (-> their file) that the files before a shard (``earlier``) give out in one run and that a
    file of the shard (``mine``) could also have: one run skips such a name after its first file, so a shard must
    know it for the shards' outputs to add up to one run's. Names are a file's name, or that plus ``_CHAIN``, so
    only files whose names are equal, or one a ``_``-prefix of the other, can collide; those few earlier files are
    encoded here (most shards: none)."""

    def prefixes(base: str) -> set[str]:
        return {base} | {base[:i] for i, c in enumerate(base) if c == "_"}

    bases = {entry_name(p) for p in mine}
    below = set().union(*map(prefixes, bases)) if bases else set()
    names: dict[str, str] = {}
    for path, base in ((p, entry_name(p)) for p in earlier):
        if base in below or prefixes(base) & bases:
            for chain in encode_file(path, tokenizer, options).chains:
                names.setdefault(chain.name, path)
    return names


def write_fasta(
    results: Iterator[FileResult] | Sequence[FileResult],
    tokenizer: Tokenizer,
    tokens_out: str | Path,
    aa_out: str | Path | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> EncodeSummary:
    """Stream ``results`` into a token FASTA (and an amino-acid FASTA); both appear atomically.

    Raises :class:`InputError` if no chain at all could be encoded (nothing is written then).
    """
    with ResumableFasta(tokens_out, aa_out) as out:
        return _write(results, tokenizer, out, on_result)


def _write(
    results,
    tokenizer: Tokenizer,
    out: ResumableFasta,
    on_result,
    taken: Mapping[str, str] | None = None,
    empty_ok: bool = False,
) -> EncodeSummary:
    """Write ``results``; names in ``taken`` (given out by earlier shards) or already written are skipped. Unless
    ``empty_ok`` (a shard of a job array, whose empty part the others' add up with), no chain at all is an error."""
    before = out.state
    summary = EncodeSummary(
        files=before.files,
        chains=before.chains,
        residues=before.residues,
        failed_files=before.failed_files,
        resumed_files=before.files,
        residues_before=before.residues,
        skipped_before=before.skipped,
    )
    start = time.perf_counter()
    names = EntryNames({**dict.fromkeys(out.names()), **(taken or {})})
    for result in results:
        result = names.claim(result)
        summary.files += 1
        summary.failed_files += result.failed
        summary.skipped.extend(result.skipped)
        summary.peak_rss = max(summary.peak_rss, result.peak_rss)
        for chain in result.chains:
            out.write(chain.name, tokenizer.alphabet.decode(chain.tokens), chain.sequence, tokenizer.fasta_tag)
            summary.chains += 1
            summary.residues += len(chain.tokens)
        out.file_done(summary.files, summary.chains, summary.residues, summary.failed_files, summary.skip_count)
        if on_result is not None:
            on_result(result)
    if summary.chains == 0 and summary.files > 0 and not empty_ok:
        raise InputError(f"no chain could be encoded from {summary.files} file(s); nothing written")
    summary.seconds = time.perf_counter() - start
    return summary
