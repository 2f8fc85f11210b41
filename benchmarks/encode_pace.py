"""How steadily ``encode_files`` hands back results: the wall time, and the gaps between results as a progress bar
sees them (a result that arrives together with others shows as one jump).

    python benchmarks/encode_pace.py FILES_OR_FOLDERS... --tokenizer ism --threads 2

Run it with ``PYTHONPATH`` at two checkouts to compare them on the same files.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ismtk.structure import find_structure_files
from ismtk.tokenizers import load_tokenizer
from ismtk.workflows.encode import encode_files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+")
    parser.add_argument("--tokenizer", default="ism")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    tokenizer = load_tokenizer(args.tokenizer)
    paths = find_structure_files(args.inputs)
    start = time.perf_counter()
    arrivals = []
    for _ in encode_files(paths, tokenizer, threads=args.threads):
        arrivals.append(time.perf_counter() - start)
    wall = arrivals[-1]
    times = np.array(arrivals)
    jumps = np.split(times, np.flatnonzero(np.diff(times) > 0.01) + 1)  # results within 10 ms: one jump
    sizes = [len(j) for j in jumps]
    gaps = np.diff([j[0] for j in jumps])
    print(f"{len(paths)} files, {args.tokenizer}, {args.threads} workers: {wall:.1f} s; {len(jumps)} jumps of "
          f"{np.mean(sizes):.1f} files on average (largest {max(sizes)}); gaps between jumps: median "
          f"{np.median(gaps) if len(gaps) else 0:.2f} s, largest {gaps.max() if len(gaps) else 0:.2f} s")


if __name__ == "__main__":
    main()
