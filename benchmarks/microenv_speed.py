"""Speed of masked microenvironment extraction (goal: >= 20,000 residues/s on one core).

Reads the structures first (not timed), then times :func:`ismtk.structure.microenvironments` over every
residue of every chain, best of ``--repeats``; also times the neighbour search alone.

    PYTHONPATH=. python benchmarks/microenv_speed.py /work/shared/data/structures/pdb --files 100
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ismtk.structure import find_structure_files, read_structure
from ismtk.structure.microenv import microenvironments, neighbour_lists

GOAL = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("--files", type=int, default=100, help="Structure files to use (evenly spaced).")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    files = find_structure_files(args.inputs)
    files = files[:: max(1, len(files) // args.files)][: args.files]
    chains = [c for f in files for c in read_structure(f).chains]
    residues = sum(len(c) for c in chains)
    microenvironments(chains[0])  # compile / load the numba cache
    for label, fn in (("neighbour search", neighbour_lists), ("microenvironments", microenvironments)):
        best = float("inf")
        for _ in range(args.repeats):
            start = time.perf_counter()
            for chain in chains:
                fn(chain)
            best = min(best, time.perf_counter() - start)
        print(
            f"{label:18s} {len(chains)} chains, {residues:,} residues: {residues / best:,.0f} residues/s "
            f"(best of {args.repeats})"
        )
    envs = [microenvironments(c) for c in chains[:20]]
    atoms = sum(int(e.n_atoms.sum()) for e in envs) / sum(len(e) for e in envs)
    print(f"mean atoms per microenvironment (first 20 chains): {atoms:.1f}; goal {GOAL:,} residues/s")


if __name__ == "__main__":
    main()
