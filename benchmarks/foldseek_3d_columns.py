"""Foldseek's structural columns beside ismtk's, on Foldseek's own alignments.

Runs ``foldseek easy-search STRUCTURES STRUCTURES`` (exhaustive, all hits) asking for the alignment and the columns
``lddt,lddtfull,alntmscore,qtmscore,ttmscore,rmsd``, recomputes each with ismtk (:class:`ismtk.search.hit3d.
HitGeometry`) on the same aligned pairs and the same structures, and prints per column the largest and the mean
absolute difference, how often ismtk's value is the larger, and how many differences are not numbers (Foldseek's
value is ``nan``: it prints that for ``alntmscore`` of one-pair alignments). TM-align (tmtools) scoring the same
fixed alignment is printed beside the TM-scores. The Foldseek binary is only called here, never by ismtk or its tests.

Example (the second on the first 50 bench domains, linked into one folder)::

    python benchmarks/foldseek_3d_columns.py --foldseek $T/foldseek/foldseek tests/data/search
    python benchmarks/foldseek_3d_columns.py --foldseek $T/foldseek/foldseek bench50/
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import tmtools

from ismtk.search.align import cigar_pairs, gapped_pair
from ismtk.search.hit3d import HitGeometry
from ismtk.search.pairs import read_chains
from ismtk.structure.read import find_structure_files

FIELDS = "query,target,qstart,tstart,cigar,alnlen,lddt,lddtfull,alntmscore,qtmscore,ttmscore,rmsd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("structures", help="folder of structure files, searched all-versus-all")
    parser.add_argument("--foldseek", required=True, help="path of the foldseek binary")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    chains = read_chains(find_structure_files([args.structures]))
    with tempfile.TemporaryDirectory() as tmp:
        hits = Path(tmp) / "hits.m8"
        subprocess.run(
            [
                args.foldseek,
                "easy-search",
                args.structures,
                args.structures,
                str(hits),
                str(Path(tmp) / "t"),
                "--exhaustive-search",
                "1",
                "-e",
                "inf",
                "--threads",
                str(args.threads),
                "--format-output",
                FIELDS,
                "-v",
                "1",
            ],
            check=True,
        )
        rows = [line.rstrip("\n").split("\t") for line in hits.open()]
    diffs: dict[str, list[float]] = {
        c: []
        for c in (
            "lddt",
            "lddtfull",
            "alntmscore",
            "qtmscore",
            "ttmscore",
            "rmsd",
            "qtmscore vs TM-align",
            "ttmscore vs TM-align",
        )
    }
    for q, t, qstart, tstart, cigar, alnlen, lddt, full, aln, qtm, ttm, rmsd in rows:
        (x, sx), (y, sy) = chains[q], chains[t]
        pairs = cigar_pairs(int(qstart), int(tstart), cigar)
        ours = HitGeometry(x.astype(np.float64), y.astype(np.float64), pairs, int(alnlen))
        for column, theirs in (
            ("lddt", lddt),
            ("alntmscore", aln),
            ("qtmscore", qtm),
            ("ttmscore", ttm),
            ("rmsd", rmsd),
        ):
            diffs[column].append(ours.value(column) - float(theirs))
        diffs["lddtfull"] += list(ours.lddtfull - np.array(full.split(","), float))
        fixed = tmtools.tm_align(x.astype(np.float64), y.astype(np.float64), sx, sy, list(gapped_pair(pairs, sx, sy)))
        diffs["qtmscore vs TM-align"].append(ours.qtmscore - fixed.tm_norm_chain1)
        diffs["ttmscore vs TM-align"].append(ours.ttmscore - fixed.tm_norm_chain2)
    print(f"{len(rows)} Foldseek hits among {len(chains)} structures; ismtk minus Foldseek (or minus TM-align):")
    print("| column | max abs difference | mean abs difference | ismtk larger | not a number |")
    print("| --- | --- | --- | --- | --- |")
    for column, values in diffs.items():
        d = np.array(values)
        finite = d[np.isfinite(d)]  # Foldseek prints nan for some columns of one-pair alignments
        print(
            f"| {column} | {np.abs(finite).max():.4f} | {np.abs(finite).mean():.4f} | {(finite > 1e-9).mean():.0%} | "
            f"{len(d) - len(finite)} |"
        )


if __name__ == "__main__":
    main()
