"""Start-up of the command line: wall time, import time and heavy imports of ``ismtk --help`` and of a 3Di encode.

Compares source trees side by side (e.g. main and a branch), runs interleaved, with ``python -X importtime``:

    python benchmarks/cli_startup.py --trees /path/to/main /path/to/branch --repeats 5

For each tree and command it prints the median wall time, the median cumulative import time of the modules
imported (``-X importtime``), and whether torch and torch.distributed.fsdp were imported.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)")


def run(tree: Path, args: list[str]) -> tuple[float, float, set[str]]:
    """Wall seconds, seconds of top-level imports (cumulative) and the modules imported by ``python -m ismtk args``."""
    env = {**os.environ, "PYTHONPATH": str(tree), "COLUMNS": "100"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ismtk", *args], cwd=tree, env=env,
                          capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{tree}: ismtk {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    modules, top = set(), 0
    for match in _LINE.finditer(done.stderr):
        modules.add(match.group(3))
        if len(match.group(2)) == 1:  # top level: its cumulative time includes everything it imported
            top += int(match.group(1))
    return wall, top / 1e6, modules


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trees", nargs="+", type=Path, required=True, help="source trees (repository roots)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        structure = "tests/data/structures/1FQJ_l_u.pdb.gz"
        commands = {
            "ismtk --help": ["--help"],
            "ismtk encode --tokenizer 3di": ["encode", structure, "--tokenizer", "3di", "-t", "1",
                                             "-o", str(Path(tmp) / "x.fasta")],
        }
        results: dict[tuple[str, Path], list[tuple[float, float, set[str]]]] = {}
        for _ in range(args.repeats):
            for label, command in commands.items():
                for tree in args.trees:
                    results.setdefault((label, tree), []).append(run(tree.resolve(), command))
    print(f"load average {os.getloadavg()[0]:.2f} (1 min); medians of {args.repeats} interleaved runs")
    for label in commands:
        print(f"\n{label}")
        for tree in args.trees:
            runs = results[(label, tree)]
            modules = set.union(*(m for _, _, m in runs))
            heavy = [m for m in ("torch", "torch.distributed.fsdp", "numba", "Bio.PDB") if m in modules]
            print(f"  {str(tree):40s} wall {statistics.median(w for w, _, _ in runs):6.2f} s  "
                  f"imports {statistics.median(i for _, i, _ in runs):6.2f} s  {len(modules):5d} modules  "
                  f"heavy: {', '.join(heavy) or 'none'}")


if __name__ == "__main__":
    main()
