"""FASTA outputs written as results come, appearing atomically at the end, and resumable after a kill.

Records go to ``OUT.part`` (and ``AA.part``); ``OUT.resume`` is a journal whose first line identifies the
run (a fingerprint of its inputs and settings) and whose every further line is a commit point: the
counts so far and the byte length of each ``.part`` file, written only after those bytes were flushed.
At the end the ``.part`` files are renamed onto the outputs and the journal is removed. A killed run
leaves the three files; ``resume=True`` truncates the ``.part`` files to the last commit point and goes
on from there, and any run without it removes them first. A gzip output (``.gz``) is written as one gzip
member per commit, so every commit point is a valid end of file. The journal is locked while a run
writes, so two runs never write the same output.
"""

from __future__ import annotations

import fcntl
import gzip
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ismtk.atomic import real_output, special_output
from ismtk.errors import InputError, RunInterrupted

__all__ = ["COMMIT_SECONDS", "JOURNAL_SUFFIX", "PART_SUFFIX", "Progress", "ResumableFasta", "inputs_fingerprint"]

#: Longest time between commit points; a killed run loses at most this much work.
COMMIT_SECONDS = 1.0
#: Files written beside each output (``OUT.part``) and beside the token output (``OUT.resume``, the journal).
PART_SUFFIX = ".part"
JOURNAL_SUFFIX = ".resume"
_JOURNAL_VERSION = 1


@dataclass(frozen=True)
class Progress:
    """Counts at a commit point: input files done, chains and residues written, files failed, skips."""

    files: int = 0
    chains: int = 0
    residues: int = 0
    failed_files: int = 0
    skipped: int = 0


def inputs_fingerprint(paths: list[str], *settings: object) -> str:
    """SHA-256 of the input paths (in order) and the settings that shape the output."""
    digest = hashlib.sha256()
    for item in [*paths, "\0", *map(str, settings)]:
        digest.update(str(item).encode() + b"\n")
    return digest.hexdigest()


class _Part:
    """One ``.part`` output: plain text appended directly, or gzip members appended at each commit."""

    def __init__(self, target: Path, length: int | None) -> None:
        self.target = target
        self.path = target.with_name(target.name + PART_SUFFIX)
        self.gzip = target.name.lower().endswith(".gz")
        if length is None:
            self.handle: IO[bytes] = open(self.path, "wb")
        else:
            try:
                self.handle = open(self.path, "r+b")
            except FileNotFoundError:
                raise InputError(f"{self.path} is gone, but its journal is there; run without --resume to start "
                                 "over") from None
            if os.fstat(self.handle.fileno()).st_size < length:
                self.handle.close()
                raise InputError(f"{self.path} is shorter than its journal says; run without --resume to start over")
            self.handle.truncate(length)
            self.handle.seek(length)
        self.buffer: list[str] = []
        self._marked = length or 0  # plain: the byte length at the last mark; gzip: the records buffered by then

    def write(self, text: str) -> None:
        if self.gzip:
            self.buffer.append(text)
        else:
            self.handle.write(text.encode())

    def mark(self) -> None:
        """Note the end of an input file's records: the point that :meth:`flush` with ``to_mark`` commits."""
        self._marked = len(self.buffer) if self.gzip else self.handle.tell()

    def flush(self, to_mark: bool = False) -> int:
        """Write what is buffered, flush to the OS, and return the file length; with ``to_mark``, the length at
        the last :meth:`mark` (records written after it, an input file cut short, are left out: a gzip output
        drops them, a plain one keeps bytes past that length, which a resume truncates)."""
        if self.gzip:
            if to_mark:
                del self.buffer[self._marked:]
            if self.buffer:
                self.handle.write(gzip.compress("".join(self.buffer).encode(), mtime=0))
                self.buffer.clear()
            self._marked = 0
        self.handle.flush()
        return self._marked if to_mark and not self.gzip else self.handle.tell()

    def finish(self) -> None:
        self.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.path, self.target)

    def close(self) -> None:
        if not self.handle.closed:
            self.handle.close()


class ResumableFasta:
    """Context manager writing a token FASTA (and optionally an amino-acid FASTA) as described above.

    ``key`` identifies the run (see :func:`inputs_fingerprint`); without one, a run cannot be resumed.
    :attr:`state` holds the counts of the part already written (non-zero after a resume). Call
    :meth:`write` for each record and :meth:`file_done` after each input file.
    """

    def __init__(
        self, tokens_out: str | Path, aa_out: str | Path | None = None, key: str | None = None, resume: bool = False
    ) -> None:
        given = [Path(tokens_out)] + ([Path(aa_out)] if aa_out is not None else [])
        for target in given:
            if target.is_dir():
                raise InputError(f"{target} is a folder; give a file name for the output")
            if special_output(target):
                raise InputError(f"{target} is no regular file (a device or a pipe): this output is written beside "
                                 "itself as .part and renamed, to resume after a kill; give a file, then read that")
        self.targets = [real_output(target) for target in given]  # a symbolic link: its file, the link kept
        self.journal_path = self.targets[0].with_name(self.targets[0].name + JOURNAL_SUFFIX)
        self.key = key
        self.resume = resume and key is not None
        self.state = Progress()
        self.parts: list[_Part] = []
        self._journal: IO[str] | None = None
        self._last_commit = 0.0
        self._pending: Progress | None = None

    def __enter__(self) -> ResumableFasta:
        for target in self.targets:
            target.parent.mkdir(parents=True, exist_ok=True)
        self._journal = open(self.journal_path, "a+")
        try:
            fcntl.flock(self._journal.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._journal.close()
            raise InputError(
                f"another run is writing {self.targets[0]} (its {self.journal_path.name} is locked)"
            ) from None
        lengths = self._resume_point() if self.resume else None
        if lengths is None:
            self._remove_leftovers()
        try:
            self.parts = [
                _Part(t, n) for t, n in zip(self.targets, lengths or [None] * len(self.targets), strict=False)
            ]
        except BaseException:
            self._close(remove=False)
            raise
        if lengths is None:
            self._journal.seek(0)
            self._journal.truncate()
            header = {"version": _JOURNAL_VERSION, "key": self.key or "", "outputs": [str(t) for t in self.targets]}
            self._journal.write(json.dumps(header) + "\n")
            self._journal.flush()
        self._last_commit = time.monotonic()
        return self

    def _resume_point(self) -> list[int] | None:
        """Byte lengths of the ``.part`` files at the journal's last commit point, or ``None`` to start anew."""
        assert self._journal is not None
        self._journal.seek(0)
        lines = self._journal.read().split("\n")
        if not lines[0].strip():  # no journal yet: nothing to resume
            return None
        try:
            header = dict(json.loads(lines[0]))
        except (json.JSONDecodeError, TypeError, ValueError):
            raise InputError(f"{self.journal_path}: not a resume journal of ismtk (damaged?); run without --resume "
                             "to start over") from None
        if header.get("key") != self.key or header.get("version") != _JOURNAL_VERSION:
            raise InputError(
                f"{self.journal_path} belongs to a run with other inputs or settings; "
                "run without --resume to start over"
            )
        complete = [ln.split() for ln in lines[1:-1]]  # the last element follows the final newline
        points = [p for p in complete if len(p) == 5 + len(self.targets) and all(x.isdigit() for x in p)]
        if not points:
            return None
        values = [int(x) for x in points[-1]]
        self.state = Progress(*values[:5])
        # the journal keeps only its header and this point, so that it does not grow across resumes
        self._journal.seek(0)
        self._journal.truncate()
        self._journal.write(lines[0] + "\n" + " ".join(points[-1]) + "\n")
        self._journal.flush()
        return values[5:]

    def _remove_leftovers(self) -> None:
        """The ``.part`` files of the killed run this journal belonged to (its outputs may have differed)."""
        assert self._journal is not None
        self._journal.seek(0)
        try:
            outputs = json.loads(self._journal.readline()).get("outputs", [])
        except (json.JSONDecodeError, AttributeError):
            outputs = []
        for output in outputs:
            Path(output + PART_SUFFIX).unlink(missing_ok=True)

    def names(self) -> Iterator[str]:
        """Names of the records already in the token output: those a resumed run kept."""
        part = self.parts[0]
        if part.flush() == 0:
            return
        with (gzip.open if part.gzip else open)(part.path, "rb") as handle:
            for line in handle:
                if line.startswith(b">"):
                    yield line[1:].split(maxsplit=1)[0].decode()

    def write(self, name: str, tokens: str, amino_acids: str | None = None, description: str = "") -> None:
        """Append one record (and its amino acids when there is an amino-acid output); ``description`` is the
        token header's text after the name (the tokenizer tag)."""
        self.parts[0].write(f">{name} {description}\n{tokens}\n" if description else f">{name}\n{tokens}\n")
        if len(self.parts) > 1:
            self.parts[1].write(f">{name}\n{amino_acids}\n")

    def file_done(self, files: int, chains: int, residues: int, failed_files: int, skipped: int) -> None:
        """Mark the end of one input file's records; a commit point is written at most every
        :data:`COMMIT_SECONDS`."""
        self._pending = Progress(files, chains, residues, failed_files, skipped)
        for part in self.parts:
            part.mark()
        if time.monotonic() - self._last_commit >= COMMIT_SECONDS:
            self._commit()

    def _commit(self) -> None:
        if self._pending is None:
            return
        assert self._journal is not None
        lengths = [part.flush(to_mark=True) for part in self.parts]  # (on exit: not a file's records cut short)
        p = self._pending
        self._journal.write(
            " ".join(map(str, (p.files, p.chains, p.residues, p.failed_files, p.skipped, *lengths))) + "\n"
        )
        self._journal.flush()
        self._pending = None
        self._last_commit = time.monotonic()

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            for part in reversed(self.parts):  # the token output last: when it exists, both are complete
                part.finish()
            self._close(remove=True)
            return
        keep = self.key is not None and (issubclass(exc_type, RunInterrupted) or not issubclass(exc_type, InputError))
        if keep:  # killed, interrupted, a device or worker failed: leave a resumable state
            self._commit()
        self._close(remove=not keep)

    def _close(self, remove: bool) -> None:
        for part in self.parts:
            part.close()
            if remove:
                part.path.unlink(missing_ok=True)
        if remove:
            self.journal_path.unlink(missing_ok=True)
        if self._journal is not None:
            self._journal.close()
