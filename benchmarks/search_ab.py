"""Same search, two checkouts of ismtk: is the output byte-identical, and how do the run times compare?

Runs ``python -m ismtk search QUERY TARGET -o OUT [extra options]`` with ``PYTHONPATH`` set to each checkout in turn,
``--repeats`` times interleaved (old, new, old, new, ...), each a fresh process, and prints every wall time, the
best of each side, their ratio, the load average, and whether the outputs are identical.

Example (a checkout of the branch point unpacked with ``git archive``)::

    python benchmarks/search_ab.py --old base/ --new . --query bench_queries.fa --target db3di -- -t 1
"""

from __future__ import annotations

import argparse
import filecmp
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(checkout: Path, args: list[str], output: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(checkout.resolve())}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "ismtk", "search", *args[:2], "-o", str(output), *args[2:]], env=env,
                   check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", required=True, type=Path, help="checkout of the reference version")
    parser.add_argument("--new", required=True, type=Path, help="checkout of the version under test")
    parser.add_argument("--query", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("extra", nargs="*", help="more search options (after --)")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory() as tmp:
        outputs = {side: Path(tmp) / f"{side}.m8" for side in times}
        for _ in range(args.repeats):
            for side, checkout in (("old", args.old), ("new", args.new)):
                times[side].append(run(checkout, [args.query, args.target, *args.extra], outputs[side]))
                print(f"{side}: {times[side][-1]:.2f} s (load average {os.getloadavg()[0]:.2f})", flush=True)
        same = filecmp.cmp(outputs["old"], outputs["new"], shallow=False)
        lines = sum(1 for _ in outputs["new"].open())
    best = {side: min(t) for side, t in times.items()}
    print(f"best old {best['old']:.2f} s, best new {best['new']:.2f} s: new/old = {best['new'] / best['old']:.3f}; "
          f"outputs identical: {same} ({lines:,} lines)")


if __name__ == "__main__":
    main()
