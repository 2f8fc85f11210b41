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
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import numba
from filelock import FileLock
from numba.core import event

__all__ = ["LOCK_NAME", "jit", "lock_path"]

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


def jit(function: Callable | None = None, /, **options) -> Callable:
    """``numba.njit(cache=True, nogil=True, **options)``, used bare (``@jit``) or with options
    (``@jit(inline="always")``)."""
    options = {"cache": True, "nogil": True, **options}
    return numba.njit(**options) if function is None else numba.njit(**options)(function)
