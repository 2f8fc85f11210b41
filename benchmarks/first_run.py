"""Wall time of the README's main command on a fresh install and again with warm caches, for several
source trees side by side (e.g. before and after a change).

Prints the wall time and, of it, the encoding time the command reports (the rest is start-up: imports,
loading the model, starting workers). "Fresh" runs a copy of the tree without any ``__pycache__`` (so ismtk's
bytecode and numba caches start empty, as after ``pip install -e .``; pip compiles the bytecode of the packages
it installs, so theirs is warm); "warm" repeats it with the caches the fresh run left. ``--cold-site-packages``
also empties the bytecode cache of every installed package (``PYTHONPYCACHEPREFIX``), as after
``pip install --no-compile``.
Runs are interleaved over trees and repeats; each line gives the 1-minute load average before it.

    git archive 6aa9576 | tar -x -C /tmp/before
    python benchmarks/first_run.py /tmp/before . [--repeats 2] [--args '--tokenizer 3di']
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The README's main command (output into a temporary folder).
COMMAND = ["encode", "tests/data/structures", "-o", "{out}/tokens.fasta"]


def run(tree: Path, caches: Path, out: Path, args: list[str], cold_site_packages: bool) -> tuple[float, float]:
    """Wall time of the command in a ``__pycache__``-free copy of ``tree`` under ``caches`` (made by the first
    call) and the encoding time it reports (the rest is start-up)."""
    copy = caches / "tree"
    if not copy.exists():
        for part in ("ismtk", "tests/data"):
            shutil.copytree(tree / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    tree = copy
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("NUMBA_CACHE_DIR", None)
    if cold_site_packages:
        env["PYTHONPYCACHEPREFIX"] = str(caches / "pyc")
    command = [sys.executable, "-m", "ismtk", *[a.format(out=out) for a in COMMAND], *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    reported = re.search(r" in ([0-9.]+) s ", done.stderr)
    return wall, float(reported.group(1)) if reported else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trees", nargs="+", type=Path, help="source trees (each with ismtk/ and tests/data)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--args", default="", help="extra encode arguments, e.g. '--tokenizer 3di'")
    ap.add_argument(
        "--cold-site-packages", action="store_true", help="also run without the installed packages' bytecode"
    )
    args = ap.parse_args()
    extra = args.args.split()
    times: dict[tuple[str, str], list[tuple[float, float]]] = {}
    loads: dict[tuple[str, str], list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for k, tree in enumerate(args.trees):
                caches = Path(tmp) / f"cache{k}_{r}"
                for state in ("fresh", "warm"):
                    key = (str(tree), state)
                    loads.setdefault(key, []).append(f"{os.getloadavg()[0]:.1f}")
                    timing = run(tree.resolve(), caches, Path(tmp), extra, args.cold_site_packages)
                    times.setdefault(key, []).append(timing)
    print(f"command: ismtk {' '.join(COMMAND)} {' '.join(extra)}; {args.repeats} repeat(s), median")
    for (tree, state), ts in times.items():
        walls, encodes = [w for w, _ in ts], [e for _, e in ts]
        print(
            f"{tree:>30} {state:>5}: {statistics.median(walls):6.1f} s, of which encoding "
            f"{statistics.median(encodes):5.1f} s  (runs {', '.join(f'{w:.1f}/{e:.1f}' for w, e in ts)}; "
            f"load {', '.join(loads[(tree, state)])})"
        )


if __name__ == "__main__":
    main()
