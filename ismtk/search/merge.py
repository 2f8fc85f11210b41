"""Sharded searches: ``search --split I/N`` writes shard I's hits, :func:`merge_hits` joins the shards' outputs.

A shard run searches a consecutive slice of the target database (:func:`ismtk.search.search.shard`) with the E-value
statistics of the whole database, and writes its ``.m8`` plus a key file beside it (``<output>.shard``): a header
line ``# ismtk-shard {json}`` (split, database size, a digest of the names, output and search settings), then one
line per ``.m8`` line, ``query index <TAB> corrected score <TAB> target index``. The merge orders every query's hits
by corrected score (ties: target index), keeps ``max_seqs`` of them and writes the lines unchanged: exactly the
``.m8`` that one run over the whole database writes (with ``--exhaustive``; with ``--prefilter`` each shard keeps
its own ``--max-candidates``, so the shards together align at least the candidates of one run).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import zlib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from ismtk.atomic import atomic_write
from ismtk.errors import InputError
from ismtk.search.db import SequenceDB

__all__ = ["SHARD_SUFFIX", "merge_hits", "shard_keys"]

#: Suffix of a shard's key file, written beside its ``.m8``.
SHARD_SUFFIX = ".shard"
_MAGIC = "# ismtk-shard "


def _keys_path(output: str | Path) -> Path:
    return Path(f"{output}{SHARD_SUFFIX}")


@contextmanager
def shard_keys(
    output: str | Path,
    split: tuple[int, int] | None,
    query: SequenceDB,
    target: SequenceDB,
    columns: Sequence[str],
    max_seqs: int,
    settings: Mapping[str, object] | None = None,
) -> Iterator[IO | None]:
    """The key file of a shard run writing ``output`` (``None`` when ``split`` is ``None``), header written; pass it
    to :func:`ismtk.search.m8.write_m8`. Written atomically, like the ``.m8``. ``settings``: whatever else makes
    the hits what they are (JSON values: scores, gaps, E-value cut-off, matrix, ...); shards whose settings differ
    are refused by :func:`merge_hits`."""
    if split is None:  # a whole search: a key file left beside the output by an earlier shard run is no longer its
        yield None
        _keys_path(output).unlink(missing_ok=True)
        return
    header = {
        "split": list(split),
        "queries": len(query),
        "entries": len(target),
        "residues": target.residues,
        "names": _digest([*query.names, "", *target.names]),
        "columns": ",".join(columns),
        "max_seqs": max_seqs,
        "settings": dict(settings or {}),
    }
    with atomic_write(_keys_path(output), "w") as keys:
        keys.write(_MAGIC + json.dumps(header, sort_keys=True) + "\n")
        yield keys


def _digest(names: Sequence[str]) -> str:
    """A digest of the query and target names: shards of other inputs of the same sizes are told apart."""
    return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]


def _read_shard(path: Path) -> tuple[dict, list[tuple[int, int, int, str]]]:
    """Header and ``(query, -score, target, line)`` records of one shard output."""
    keys = _keys_path(path)
    try:
        key_text = keys.read_bytes().decode(errors="replace")
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the shard output and its {keys.name} ({exc.strerror or exc})") from exc
    key_lines = key_text.splitlines()
    if not key_lines or not key_lines[0].startswith(_MAGIC):
        raise InputError(f"{keys}: not an ismtk shard key file (write shards with search --split I/N)")
    try:
        hit_lines = (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw).decode().splitlines()  # -o X.m8.gz
    except (OSError, EOFError, zlib.error, UnicodeDecodeError) as exc:  # cut short, or not the search's text
        raise InputError(f"{path}: damaged shard output ({exc}); run that shard's search again") from exc
    if len(key_lines) - 1 != len(hit_lines):
        raise InputError(f"{path}: {len(hit_lines)} hits but {len(key_lines) - 1} keys in {keys.name} (damaged?)")
    try:
        header = json.loads(key_lines[0][len(_MAGIC) :])
        if not isinstance(header, dict):
            raise ValueError("its header is not a JSON object")
        split = header.get("split")
        if not (isinstance(split, list) and len(split) == 2 and all(type(v) is int for v in split)
                and 1 <= split[0] <= split[1]):
            raise ValueError(f"its header's split is {split!r}, not [I, N]")
        records = []
        for number, (key, line) in enumerate(zip(key_lines[1:], hit_lines, strict=True), start=1):
            q, score, t, *crc = key.split("\t")  # (shards of 2026-12-02 and earlier: no CRC)
            if crc and crc != [f"{zlib.crc32(line.encode()):08x}"]:
                raise InputError(f"{path}: line {number} is not the hit {keys.name} names there (edited or sorted "
                                 "since the search?); run that shard's search again")
            records.append((int(q), -int(score), int(t), line))
    except ValueError as exc:
        raise InputError(f"{keys}: damaged shard key file ({exc}); run that shard's search again") from exc
    return header, records


def merge_hits(shards: Sequence[str | Path], output: str | Path) -> int:
    """Merge the outputs of all N shards of one split search into ``output``; returns the number of hits.

    Raises :class:`InputError` when shards are missing, repeated, or come from different searches."""
    if not shards:
        raise InputError("give the shard outputs to merge")
    headers, records = [], []
    for path in shards:
        header, rows = _read_shard(Path(path))
        headers.append((Path(path), header))
        records.extend(rows)
    first_path, first = headers[0]
    same = {k: v for k, v in first.items() if k != "split"}
    for path, header in headers[1:]:
        if {k: v for k, v in header.items() if k != "split"} != same or header["split"][1] != first["split"][1]:
            raise InputError(f"{path} and {first_path} come from different searches (database, queries or settings)")
    count = first["split"][1]
    seen = sorted(h["split"][0] for _, h in headers)
    if seen != list(range(1, count + 1)):
        missing = sorted(set(range(1, count + 1)) - set(seen))
        repeated = sorted({i for i in seen if seen.count(i) > 1})
        raise InputError(
            f"a {count}-way split needs shards 1..{count} once each; missing {missing}, repeated {repeated}"
        )
    records.sort(key=lambda r: r[:3])
    written, per_query, current = 0, 0, None
    with atomic_write(output, "w") as out:
        for q, _, _, line in records:
            per_query = per_query + 1 if q == current else 1
            current = q
            if per_query <= first["max_seqs"]:
                out.write(line + "\n")
                written += 1
    return written
