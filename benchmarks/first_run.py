"""Wall time of the README's main command on a fresh install and again with warm caches, for several
source trees side by side (e.g. before and after a change).

"Fresh" runs with an empty numba cache and an empty bytecode cache (``NUMBA_CACHE_DIR``,
``PYTHONPYCACHEPREFIX``), as after ``pip install``; "warm" repeats it with the caches the fresh run left.
Runs are interleaved over trees and repeats; each line gives the 1-minute load average before it.

    git archive 6aa9576 | tar -x -C /tmp/before
    python benchmarks/first_run.py /tmp/before . [--repeats 2] [--args '--tokenizer 3di']
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The README's main command (output into a temporary folder).
COMMAND = ["encode", "tests/data/structures", "-o", "{out}/tokens.fasta"]


def run(tree: Path, caches: Path, out: Path, args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree), "NUMBA_CACHE_DIR": str(caches / "numba"),
           "PYTHONPYCACHEPREFIX": str(caches / "pyc")}
    command = [sys.executable, "-m", "ismtk", *[a.format(out=out) for a in COMMAND], *args]
    start = time.perf_counter()
    subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trees", nargs="+", type=Path, help="source trees (each with ismtk/ and tests/data)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--args", default="", help="extra encode arguments, e.g. '--tokenizer 3di'")
    args = ap.parse_args()
    extra = args.args.split()
    times: dict[tuple[str, str], list[float]] = {}
    loads: dict[tuple[str, str], list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for k, tree in enumerate(args.trees):
                caches = Path(tmp) / f"cache{k}_{r}"
                for state in ("fresh", "warm"):
                    key = (str(tree), state)
                    loads.setdefault(key, []).append(f"{os.getloadavg()[0]:.1f}")
                    times.setdefault(key, []).append(run(tree.resolve(), caches, Path(tmp), extra))
    print(f"command: ismtk {' '.join(COMMAND)} {' '.join(extra)}; {args.repeats} repeat(s), median")
    for (tree, state), ts in times.items():
        print(f"{tree:>30} {state:>5}: {statistics.median(ts):6.1f} s  (runs {', '.join(f'{t:.1f}' for t in ts)}; "
              f"load {', '.join(loads[(tree, state)])})")


if __name__ == "__main__":
    main()
