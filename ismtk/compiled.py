"""Numba kernels compiled once, cached on disk, and safe when many ismtk processes start at once.

Numba caches each compiled signature of a function in an index file plus one object file per signature. Two
processes that compile different signatures of one function at the same moment can each pick the same object file
name: the index then names one signature and the file holds the other's code, and every later process that loads it
fails (``In 'NRT_adapt_ndarray_to_python', 'descr' is NULL``) or worse (numba issues #4807, #10128). A job array of
``ismtk encode`` or ``ismtk search`` tasks on a fresh install is exactly that case. :func:`jit` is ``numba.njit``
with the cache on and the GIL released; importing this module makes every numba compilation of the process (cache
lookup, compilation, cache save) hold an exclusive lock on one file beside the cache, so processes compile one at a
time and the later ones load what the first saved. Threads of one process queue on the same lock.

The lock does not help where two kernels share a qualified name (closures made per parameter): numba names the
compiled code and the Environment of constants it reads by that name, the argument types and a counter that restarts
in every process, so such kernels cached by different processes can share one Environment once loaded together and
fail the same way, with no two processes ever at work at once. Give each such closure a name of its own (as
:func:`ismtk.search.swipe._kernel` does).

Numba checks a cached kernel against its own file only, yet compiles into it the kernels and constants it takes
from other modules (:mod:`ismtk.search.swipe` calls :func:`ismtk.search.gotoh.sw_score`): after an edit of the callee,
or an upgrade over an older install (pip leaves the old ``__pycache__`` in place), the caller would load its old code
and return old results. :func:`jit` therefore stamps every cache with a digest of all modules that import this one
(:func:`kernel_sources_digest`): any change to one of them recompiles every kernel once. A kernel that reads a
constant of a module that does not import this one is not covered.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numba
from filelock import FileLock
from numba.core import caching, event

__all__ = ["LOCK_NAME", "jit", "kernel_sources_digest", "lock_path", "sources_digest"]

#: Name of the lock file, in the folder of :func:`lock_path`.
LOCK_NAME = "ismtk-numba.lock"


def lock_path() -> Path:
    """The lock file: in ``NUMBA_CACHE_DIR`` when set, else in this package's ``__pycache__`` (where numba caches
    its kernels) when writable, else in ``~/.cache/ismtk`` (numba then caches in the user's home too)."""
    if numba.config.CACHE_DIR:
        folder = Path(numba.config.CACHE_DIR)
    else:
        folder = Path(__file__).parent / "__pycache__"
        try:
            folder.mkdir(exist_ok=True)
        except OSError:
            pass
        if not os.access(folder, os.W_OK):
            folder = Path.home() / ".cache" / "ismtk"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / LOCK_NAME


_UNLOCKED = object()


class _CompileLock(event.Listener):
    """Holds the file lock while a thread holds numba's compiler lock (re-entrant: nested compilations count)."""

    def __init__(self) -> None:
        self._lock: FileLock | object | None = None
        self._guard = threading.Lock()

    def _file_lock(self) -> FileLock | None:
        with self._guard:
            if self._lock is None:
                try:
                    self._lock = FileLock(lock_path())  # one descriptor and count per thread (thread_local)
                except OSError:  # no writable folder: compile unlocked, as numba alone would
                    self._lock = _UNLOCKED
            return None if self._lock is _UNLOCKED else self._lock

    def on_start(self, event: event.Event) -> None:
        if lock := self._file_lock():
            lock.acquire()

    def on_end(self, event: event.Event) -> None:
        if lock := self._file_lock():
            lock.release()


event.register("numba:compiler_lock", _CompileLock())


def sources_digest(root: Path) -> str:
    """SHA-256 of ``root``'s ``compiled.py`` and of every module under ``root`` that imports ``ismtk.compiled``."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        text = path.read_bytes()
        if path == root / "compiled.py" or b"ismtk.compiled" in text:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0" + text + b"\0")
    return digest.hexdigest()


@functools.cache
def kernel_sources_digest() -> str:
    """:func:`sources_digest` of this package (the kernels' sources), once per process."""
    return sources_digest(Path(__file__).parent)


class _PackageStamp:
    """Locator mixin: numba's stamp of the kernel's own file, with :func:`kernel_sources_digest`."""

    def get_source_stamp(self):
        return super().get_source_stamp(), kernel_sources_digest()


try:  # numba's cache classes (not public API: without them, numba's own cache, stamped by each file alone)

    class _KernelCacheImpl(caching.CompileResultCacheImpl):
        _locator_classes = [
            type(c.__name__, (_PackageStamp, c), {}) for c in caching.CompileResultCacheImpl._locator_classes
        ]

    class _KernelCache(caching.FunctionCache):
        """numba's cache of one function, fresh only while no kernel source of the package changed."""

        _impl_class = _KernelCacheImpl

except AttributeError:  # pragma: no cover - another numba
    _KernelCache = None


def jit(function: Callable | None = None, /, **options) -> Callable:
    """``numba.njit(cache=True, nogil=True, **options)``, used bare (``@jit``) or with options
    (``@jit(inline="always")``); the cache is stamped with :func:`kernel_sources_digest`."""
    options = {"cache": True, "nogil": True, **options}
    if _KernelCache is None:
        return numba.njit(**options) if function is None else numba.njit(**options)(function)
    cache = options.pop("cache")

    def compile_(function: Callable) -> Callable:
        dispatcher = numba.njit(**options)(function)
        if cache:
            dispatcher._cache = _KernelCache(dispatcher.py_func)  # what numba's enable_caching sets, stamped
        return dispatcher

    return compile_ if function is None else compile_(function)
