"""What one column step of the lane kernel costs at 64, 32 and 16 lanes, for one track and for two.

``ismtk.search.swipe`` picks the lane count of a call from the targets' lengths and a cost per column step per
lane count (``_LANE_COST``): fewer lanes waste less on targets that end early, but each step may cost more or less
than its share of the 64-lane step, depending on how the compiler vectorised that loop. This script measures it
on random tokens (scores do not change the work): ``--queries`` queries of 80-250 residues against ``--targets``
random targets of 60-300 residues, every lane count on the same targets, best of ``--repeats``, one thread. It
prints milliseconds per lane count and the cost of one column step relative to 64 lanes (a lane count's steps:
the larger of its targets' total length over its lanes and the longest target), and the lane count ``_lanes``
picks for them.

Example::

    python benchmarks/swipe_lanes.py --targets 100 400 3000
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ismtk.search.swipe import _KERNELS, LANE_CHOICES, PAD_SCORE, _lanes

ALPHABET = 20


def scoring(tracks: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A random ``(tracks * 20, 21)`` score table (padding column last) and its track offsets."""
    table = rng.integers(-6, 10, (tracks * ALPHABET, ALPHABET + 1)).astype(np.int16)
    table[:, ALPHABET] = 0
    table[:ALPHABET, ALPHABET] = PAD_SCORE
    return table, np.arange(tracks + 1, dtype=np.int64) * ALPHABET


def time_kernel(kernel, queries: list[np.ndarray], inputs: tuple) -> float:
    """Seconds of ``kernel`` over every query against the targets of ``inputs`` (table, track offsets, targets,
    offsets, ids, order), both passes (the query and the reversed query, as a search without an E-value cut-off)."""
    table, track_offsets, targets, offsets, ids, order = inputs
    start = time.perf_counter()
    for q in queries:
        kernel(q, np.zeros(q.shape[1], np.int16), table, track_offsets, targets, offsets, ids, order, 10, 1, 28000, 2)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, nargs="+", default=[100, 400, 3000])
    parser.add_argument("--queries", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    pool = rng.integers(60, 300, max(args.targets))
    offsets = np.concatenate([[0], np.cumsum(pool)]).astype(np.int64)
    lengths = rng.integers(80, 250, args.queries)
    for tracks in (1, 2):
        table, track_offsets = scoring(tracks, rng)
        targets = rng.integers(0, ALPHABET, (tracks, offsets[-1])).astype(np.uint8)
        queries = [rng.integers(0, ALPHABET, (tracks, int(n))).astype(np.uint8) for n in lengths]
        print(f"{tracks} track{'s' if tracks > 1 else ''}, {args.queries} queries, best of {args.repeats}, 1 thread")
        for n in args.targets:
            ids = rng.choice(len(pool), n, replace=False).astype(np.int64)
            order = np.argsort(-pool[ids], kind="stable")
            seconds = {}
            for lanes in LANE_CHOICES:
                inputs = table, track_offsets, targets, offsets, ids, order
                time_kernel(_KERNELS[lanes], queries, inputs)  # compile or load
                seconds[lanes] = min(time_kernel(_KERNELS[lanes], queries, inputs) for _ in range(args.repeats))
            steps = {lanes: max(pool[ids].sum() / lanes, pool[ids].max()) for lanes in LANE_CHOICES}
            per_step = {lanes: seconds[lanes] / steps[lanes] / (seconds[64] / steps[64]) for lanes in LANE_CHOICES}
            print(
                f"  {n:5d} targets: "
                + ", ".join(f"{lanes} lanes {seconds[lanes] * 1e3:7.1f} ms" for lanes in LANE_CHOICES)
                + "; per step relative to 64: "
                + ", ".join(f"{lanes}: {per_step[lanes]:.2f}" for lanes in LANE_CHOICES)
                + f"; picked: {_lanes(pool[ids], tracks)}"
            )


if __name__ == "__main__":
    main()
