"""Proof that the gemmi reader gives exactly what the former Biopython reader gave.

For every structure file under the given folders (and, with ``--mmcif``, an mmCIF copy of each written by
gemmi) both readers run with several option sets; chains must agree in every field: names, chain ids,
sequences, residue names, numbers and insertion codes, atom names, elements, owners and coordinates
(bit for bit), C-alpha indices, skipped chains; files one reader refuses must be refused by the other.
3Di tokens are compared too (ISM tokens are a function of the same arrays).

    python tests/reader_equality.py ../shared/data [--mmcif [--mmcif-every K]] [--limit N] [--report diffs.txt]

Prints one line per disagreement and a summary; exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import gemmi
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import biopython_reader

from ismtk.errors import StructureError
from ismtk.structure.read import ReadOptions, find_structure_files, read_structure
from ismtk.tokenizers import ThreeDiTokenizer

#: Option sets every file is read with; a multi-model file is also read as its second model.
OPTION_SETS = (ReadOptions(), ReadOptions(hydrogens=True, ligands=True, chain_names="always"))


def outcome(reader, path: Path, options: ReadOptions):
    """The chains and skips of one reading, or the StructureError it raised."""
    try:
        return reader(path, options)
    except StructureError as exc:
        return exc


def differences(path: Path, options: ReadOptions, tokenizer: ThreeDiTokenizer) -> Iterator[str]:
    """What differs between the two readers on one file and option set (nothing when equal)."""
    old = outcome(biopython_reader.read_structure, path, options)
    new = outcome(read_structure, path, options)
    if isinstance(old, StructureError) or isinstance(new, StructureError):
        if type(old) is not type(new):
            yield f"old: {_short(old)} | new: {_short(new)}"
        return
    if [(e.chain, e.reason) for e in old.skipped] != [(e.chain, e.reason) for e in new.skipped]:
        yield f"skipped chains: old {[str(e) for e in old.skipped]} new {[str(e) for e in new.skipped]}"
    if len(old.chains) != len(new.chains):
        yield f"chains: old {[c.chain_id for c in old.chains]} new {[c.chain_id for c in new.chains]}"
        return
    for a, b in zip(old.chains, new.chains, strict=False):
        for f in fields(a):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if isinstance(x, np.ndarray):
                same = x.dtype == y.dtype and x.shape == y.shape and bool((x.view(np.uint8) == y.view(np.uint8)).all())
            else:
                same = x == y
            if not same:
                yield f"chain {a.chain_id!r} field {f.name}: {_diff(x, y)}"
        try:
            old_tokens, new_tokens = tokenizer.to_string(a), tokenizer.to_string(b)
        except StructureError:
            continue
        if old_tokens != new_tokens:
            yield f"chain {a.chain_id!r}: 3Di tokens differ"


def _short(result) -> str:
    return str(result.reason) if isinstance(result, StructureError) else f"{len(result.chains)} chain(s)"


def _diff(x, y) -> str:
    if isinstance(x, np.ndarray) and x.shape == y.shape and x.dtype == y.dtype:
        bad = np.flatnonzero((x != y).reshape(len(x), -1).any(axis=1)) if len(x) else []
        i = int(bad[0]) if len(bad) else 0
        return f"{len(bad)} rows differ, first at {i}: old {x[i]!r} new {y[i]!r}"
    if isinstance(x, np.ndarray):
        return f"old {x.dtype}{x.shape} new {y.dtype}{y.shape}"
    return f"old {x!r} new {y!r}"


def readings(path: Path) -> Iterator[ReadOptions]:
    """The option sets one file is compared under."""
    yield from OPTION_SETS
    try:
        models = len(gemmi.read_structure(str(path)))
    except (RuntimeError, ValueError):
        return
    if models > 1:
        yield ReadOptions(model=2)


def as_mmcif(path: Path, folder: Path) -> Path | None:
    """An mmCIF copy of a PDB file (written by gemmi), or ``None`` if gemmi cannot read it."""
    try:
        structure = gemmi.read_structure(str(path), merge_chain_parts=False)
        structure.setup_entities()
        out = folder / f"{path.name.split('.')[0]}.cif"
        structure.make_mmcif_document().write_file(str(out))
    except (RuntimeError, ValueError):
        return None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("inputs", nargs="+", type=Path, help="structure files, folders or path lists")
    ap.add_argument("--mmcif", action="store_true", help="also compare on an mmCIF copy of every file")
    ap.add_argument("--mmcif-every", type=int, default=1, metavar="K", help="with --mmcif: of every K-th file only")
    ap.add_argument("--limit", type=int, default=None, help="use the first N files")
    ap.add_argument("--report", type=Path, default=None, help="write every disagreement here too")
    args = ap.parse_args()
    paths = find_structure_files(args.inputs)[: args.limit]
    tokenizer = ThreeDiTokenizer()
    counts: Counter[str] = Counter()
    lines: list[str] = []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(paths, 1):
            variants = [path]
            if args.mmcif and i % args.mmcif_every == 0 and (cif := as_mmcif(path, Path(tmp))) is not None:
                variants.append(cif)
            for variant in variants:
                kind = "mmcif" if variant.suffix == ".cif" else "file"
                for options in readings(variant):
                    counts[f"{kind} readings"] += 1
                    diffs = list(differences(variant, options, tokenizer))
                    counts[f"{kind} readings that differ"] += bool(diffs)
                    for d in diffs:
                        line = f"{path} [{kind} {_label(options)}] {d}"
                        lines.append(line)
                        print(line, flush=True)
                if kind == "mmcif":
                    variant.unlink()
            if i % 200 == 0:
                print(f"... {i}/{len(paths)} files, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    if args.report:
        args.report.write_text("".join(line + "\n" for line in lines))
    print(f"files: {len(paths)}  " + "  ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    print(f"time: {time.perf_counter() - start:.0f} s")
    if lines:
        raise SystemExit(1)


def _label(options: ReadOptions) -> str:
    default = ReadOptions()
    return (
        ",".join(
            f"{f.name}={getattr(options, f.name)}"
            for f in fields(options)
            if getattr(options, f.name) != getattr(default, f.name)
        )
        or "default"
    )


if __name__ == "__main__":
    main()
