"""Deterministic, resumable data order: the permutation of an epoch depends only on (seed, epoch)."""

from __future__ import annotations

import numpy as np

__all__ = ["epoch_permutation", "shard"]


def epoch_permutation(n: int, epoch: int, seed: int) -> np.ndarray:
    """``(n,) int64`` order of the items of ``epoch``; the same on every rank and after a resume."""
    return np.random.default_rng([seed, epoch]).permutation(n)


def shard(items: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This rank's share of ``items`` (every ``world_size``-th item starting at ``rank``)."""
    return items[rank::world_size]
