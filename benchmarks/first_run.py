"""Wall and CPU time of the README's main command (or of a first all-vs-all ``easy-search`` of the same files,
``--command easy-search``) on a fresh install and again with warm caches, for several source trees side by side
(e.g. before and after a change).

Prints the wall time, the CPU time of the process and its workers (steadier than wall time on a busy machine)
and, of the wall time, the encoding or search time the command reports (the rest is start-up: imports, loading
the model, starting workers). "Fresh" runs a copy of the tree without any ``__pycache__`` (so ismtk's
bytecode and numba caches start empty, as after ``pip install -e .``; pip compiles the bytecode of the packages
it installs, so theirs is warm); "warm" repeats it with the caches the fresh run left. ``--cold-site-packages``
also empties the bytecode cache of every installed package (``PYTHONPYCACHEPREFIX``), as after
``pip install --no-compile``.
Runs are interleaved over trees and repeats; each line gives the 1-minute load average before it.

    git archive 6aa9576 | tar -x -C /tmp/before
    python benchmarks/first_run.py /tmp/before . [--repeats 2] [--args '--tokenizer 3di'] [--command easy-search]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

#: The README's main command and a Foldseek user's first search (outputs into a temporary folder).
COMMANDS = {
    "encode": ["encode", "tests/data/structures", "-o", "{out}/tokens.fasta"],
    "easy-search": ["easy-search", "tests/data/structures", "tests/data/structures", "{out}/hits.m8"],
}


def run(
    tree: Path, caches: Path, out: Path, command: list[str], cold_site_packages: bool
) -> tuple[float, float, float]:
    """Wall time, CPU time (with the workers') of the command in a ``__pycache__``-free copy of ``tree`` under
    ``caches`` (made by the first call) and the encoding or search time it reports (the rest is start-up)."""
    copy = caches / "tree"
    if not copy.exists():
        for part in ("ismtk", "tests/data"):
            shutil.copytree(tree / part, copy / part, ignore=shutil.ignore_patterns("__pycache__"))
    tree = copy
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("NUMBA_CACHE_DIR", None)
    if cold_site_packages:
        env["PYTHONPYCACHEPREFIX"] = str(caches / "pyc")
    command = [sys.executable, "-m", "ismtk", *[a.format(out=out) for a in command]]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    reported = re.search(r" in ([0-9.]+) s ", done.stderr)
    return wall, cpu, float(reported.group(1)) if reported else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trees", nargs="+", type=Path, help="source trees (each with ismtk/ and tests/data)")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--command", choices=sorted(COMMANDS), default="encode")
    ap.add_argument("--args", default="", help="extra arguments of the command, e.g. '--tokenizer 3di'")
    ap.add_argument(
        "--cold-site-packages", action="store_true", help="also run without the installed packages' bytecode"
    )
    args = ap.parse_args()
    command = COMMANDS[args.command] + args.args.split()
    times: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    loads: dict[tuple[str, str], list[str]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            for k, tree in enumerate(args.trees):
                caches = Path(tmp) / f"cache{k}_{r}"
                for state in ("fresh", "warm"):
                    key = (str(tree), state)
                    loads.setdefault(key, []).append(f"{os.getloadavg()[0]:.1f}")
                    timing = run(tree.resolve(), caches, Path(tmp), command, args.cold_site_packages)
                    times.setdefault(key, []).append(timing)
    print(f"command: ismtk {' '.join(command)}; {args.repeats} repeat(s), median")
    for (tree, state), ts in times.items():
        walls, cpus, reported = ([t[i] for t in ts] for i in range(3))
        print(
            f"{tree:>30} {state:>5}: {statistics.median(walls):6.1f} s ({statistics.median(cpus):5.1f} s CPU), of "
            f"which {args.command} {statistics.median(reported):5.1f} s  (runs wall/CPU/reported "
            f"{', '.join('/'.join(f'{x:.1f}' for x in t) for t in ts)}; load {', '.join(loads[(tree, state)])})"
        )


if __name__ == "__main__":
    main()
