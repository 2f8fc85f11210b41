"""Foldseek on the same structure files as an ismtk benchmark, for side-by-side figures (never used by the package).

The binary's path is given on the command line (``--foldseek``); it is built from public source (see its README).
Foldseek names entries by file name without extensions, as ismtk does, so both rank the same names.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ismtk.structure.read import entry_name, find_structure_files

__all__ = ["FoldseekRun", "entry_files", "run_foldseek"]


@dataclass(frozen=True)
class FoldseekRun:
    """Per-query ranked targets (best first) and wall-clock seconds of createdb (queries + targets) and search."""

    ranked: dict[str, list[tuple[str, tuple[float, float]]]]  # (target, (-E-value, bits)): equal pairs tie
    createdb_seconds: float
    search_seconds: float


def entry_files(inputs: Sequence[str | Path]) -> dict[str, Path]:
    """``entry name -> structure file`` of folders/files, named as ismtk names entries (``d1avo.1.pdb.gz`` ->
    ``d1avo.1``)."""
    return {entry_name(p): p for p in find_structure_files(inputs)}


def _run(args: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(
            f"{' '.join(args[:3])} failed ({done.returncode}): {done.stderr[-2000:] or done.stdout[-2000:]}"
        )
    return time.perf_counter() - start


def run_foldseek(
    binary: str | Path,
    targets: Sequence[Path],
    queries: Sequence[Path],
    threads: int,
    exhaustive: bool,
    max_seqs: int = 1000,
    evalue: float = 1e5,
) -> FoldseekRun:
    """Foldseek ``createdb`` of the query and target files, ``search`` (3Di+AA, its defaults otherwise; with
    ``exhaustive`` its prefilter is skipped), ``convertalis``; hits ranked by E-value, then bit score."""
    work = Path(tempfile.mkdtemp(prefix="foldseek_peer."))
    try:
        for name, files in (("targets", targets), ("queries", queries)):
            (work / f"{name}.tsv").write_text("".join(f"{Path(f).resolve()}\n" for f in files))
        exe = str(binary)
        made = _run([exe, "createdb", str(work / "targets.tsv"), str(work / "tdb"), "--threads", str(threads)])
        made += _run([exe, "createdb", str(work / "queries.tsv"), str(work / "qdb"), "--threads", str(threads)])
        search = [
            exe,
            "search",
            str(work / "qdb"),
            str(work / "tdb"),
            str(work / "aln"),
            str(work / "tmp"),
            "--threads",
            str(threads),
            "-e",
            str(evalue),
            "--max-seqs",
            str(max_seqs),
        ]
        if exhaustive:
            search += ["--exhaustive-search", "1"]
        seconds = _run(search)
        _run(
            [
                exe,
                "convertalis",
                str(work / "qdb"),
                str(work / "tdb"),
                str(work / "aln"),
                str(work / "hits.m8"),
                "--format-output",
                "query,target,evalue,bits",
            ]
        )
        rows = defaultdict(list)
        for line in (work / "hits.m8").read_text().splitlines():
            query, target, e, bits = line.split("\t")
            rows[query].append((float(e), -float(bits), target))
        # ranked by E-value, then bit score; hits equal in both are ties (scored as such by score_queries)
        ranked = {q: [(t, (-e, -minus_bits)) for e, minus_bits, t in sorted(hits)] for q, hits in rows.items()}
        return FoldseekRun(ranked, made, seconds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
