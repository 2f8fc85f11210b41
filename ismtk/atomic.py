"""Atomic file output: readers never see a half-written file, and a failed run leaves the old one.

An output is written to a temporary beside it, ``.NAME.part`` (a file, or a folder for :func:`atomic_folder`), and
renamed onto it at the end. The writer holds a lock on its temporary while it writes. A run killed with
``kill -9`` leaves its temporary behind; the next write of the same output finds its lock free and starts over in
it, so leftovers do not pile up. A second live writer of the same output gets a temporary of its own.

An output that is a symbolic link is written where the link points (the link stays), and one that is not a
regular file (``/dev/stdout``, a named pipe, ``>(command)``) is written directly: it cannot be replaced.
"""

from __future__ import annotations

import fcntl
import gzip
import io
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ismtk.errors import InputError

__all__ = ["atomic_folder", "atomic_write", "ensure_folder", "real_output", "special_output", "temporary_of"]


def ensure_folder(path: str | Path) -> None:
    """Create the folder ``path`` (and its parents) unless it exists; :class:`InputError` naming it where it cannot
    be, for example because it or a parent is a file."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise InputError(f"{path}: cannot make this folder ({reason}); is it or a parent a file?") from None


def special_output(path: str | Path) -> bool:
    """Whether ``path`` (through any symbolic link) is there but no regular file or folder: a device, a pipe."""
    path = Path(path)
    return path.exists() and not path.is_file() and not path.is_dir()


def real_output(path: str | Path) -> Path:
    """Where writing the file ``path`` goes: the file a symbolic link points to (followed to its end, even if
    nothing is there yet), else ``path`` itself."""
    path = Path(path)
    return path.resolve() if path.is_symlink() else path


def temporary_of(path: str | Path) -> Path:
    """The temporary that :func:`atomic_write` and :func:`atomic_folder` fill for ``path``: ``.NAME.part``."""
    path = Path(path)
    return path.with_name(f".{path.name}.part")


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside ``path``; move it onto ``path`` only when the block succeeds.

    ``mode`` is ``"w"`` (text, UTF-8), ``"wb"``, or ``"w+b"`` (bytes that can be read back, for a writer that
    seeks and reads, as HDF5 does). A path ending in ``.gz`` is gzip-compressed (not with ``"w+b"``).
    """
    if special_output(path):  # a device or a pipe: written as it is, nothing to rename
        with open(path, "wb") as raw, _encoded(raw, Path(path), mode) as handle:
            yield handle
        return
    path = real_output(path)
    ensure_folder(path.parent)
    fd, tmp = _locked_file(path)
    try:
        with os.fdopen(fd, "r+b" if mode == "w+b" else "wb") as raw:  # (fd is empty and open for both)
            with _encoded(raw, path, mode) as handle:
                yield handle
            raw.flush()
            os.fsync(raw.fileno())
            os.replace(tmp, path)  # while locked: nobody takes the temporary over before it is renamed
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def _encoded(raw: IO[bytes], path: Path, mode: str) -> Iterator[IO]:
    """``raw`` as the handle ``mode`` asks for (text: UTF-8), gzip-compressed for a ``.gz`` path; flushed (and the
    gzip stream closed) when the block succeeds."""
    stream: IO = gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) if path.name.lower().endswith(".gz") else raw
    handle = stream if mode in ("wb", "w+b") else io.TextIOWrapper(stream, encoding="utf-8", newline="\n")
    yield handle
    handle.flush()
    if stream is not raw:
        stream.close()


@contextmanager
def atomic_folder(path: str | Path) -> Iterator[Path]:
    """A temporary folder beside ``path`` to fill; it replaces ``path`` (a folder, or nothing) only when the block
    succeeds: the old folder is renamed aside (``.NAME.old``), the new one renamed in, then the old one deleted.
    The folder gets the usual permissions (``0777`` less the umask), as :func:`os.mkdir` gives. A symbolic link
    is followed: the folder it points to is replaced, the link kept."""
    path = real_output(path)
    ensure_folder(path.parent)
    tmp = temporary_of(path)
    lock = _lock_leftover(tmp)
    if lock is None and tmp.exists():  # another live writer: a folder of our own
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part"))
        os.chmod(tmp, 0o777 & ~_umask())
    else:
        if lock is not None:
            os.close(lock)
            shutil.rmtree(tmp)
        tmp.mkdir()
    lock = os.open(tmp, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield tmp
        if path.exists():  # moved aside, not deleted, first: a kill leaves the old folder or the new, never half one
            old = path.with_name(f".{path.name}.old")
            if old.is_symlink() or old.is_file():  # a leftover of a version that moved links aside
                old.unlink()
            elif old.exists():
                shutil.rmtree(old)
            path.rename(old)
            tmp.rename(path)
            shutil.rmtree(old)
        else:
            tmp.rename(path)
    finally:
        os.close(lock)
        if tmp.exists():
            shutil.rmtree(tmp)


def _locked_file(path: Path) -> tuple[int, Path]:
    """A locked, empty temporary file for ``path``: ``.NAME.part`` (a killed writer's leftover taken over), or a
    private one while another live writer holds that."""
    tmp = temporary_of(path)
    while True:
        fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)  # the umask applies
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.chmod(name, 0o666 & ~_umask())  # mkstemp makes 0600 files
            return fd, Path(name)
        try:
            same = os.stat(tmp).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:  # not renamed away by the writer that held it a moment ago
            os.ftruncate(fd, 0)
            os.chmod(tmp, 0o666 & ~_umask())
            return fd, tmp
        os.close(fd)


def _lock_leftover(tmp: Path) -> int | None:
    """A descriptor holding the lock of an existing temporary folder nobody writes, else ``None``."""
    try:
        fd = os.open(tmp, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    return fd


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
