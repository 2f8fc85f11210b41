"""TM-align (tmtools) of every pair of a set of domains: the ceiling row of the SCOPe40 table.

Writes ``(n, n) float64`` TM-scores normalised by the row (query) domain to ``OUT.npy`` and the names to
``OUT.names``; rows are computed in order and saved every 20 rows, so a run stopped early leaves the first rows
complete (row i is complete once rows 0..i are done: the lower triangle comes from earlier rows). NaN = not computed.

Example::

    python benchmarks/scope40_tmalign.py bench_files.txt -o tm_bench
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import tmtools

from ismtk.search.pairs import read_chains
from ismtk.structure.read import find_structure_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("inputs", nargs="+", help="structure files, folders or .txt path lists")
    parser.add_argument("-o", "--output", required=True, help="output prefix")
    args = parser.parse_args()
    chains = read_chains(find_structure_files(args.inputs))
    names = list(chains)
    Path(f"{args.output}.names").write_text("".join(f"{n}\n" for n in names))
    ca = [np.ascontiguousarray(chains[n][0], dtype=np.float64) for n in names]
    seq = [chains[n][1] for n in names]
    n = len(names)
    tm = np.full((n, n), np.nan)
    np.fill_diagonal(tm, 1.0)
    start = time.perf_counter()
    for i in range(n):
        for j in range(i + 1, n):
            result = tmtools.tm_align(ca[i], ca[j], seq[i], seq[j])
            tm[i, j], tm[j, i] = result.tm_norm_chain1, result.tm_norm_chain2
        if i % 20 == 19 or i == n - 1:
            np.save(f"{args.output}.npy", tm)
            print(f"{i + 1} rows, {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
