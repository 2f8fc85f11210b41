"""Learning-rate schedule as a pure function of the optimisation step (resume needs no state)."""

from __future__ import annotations

import math

__all__ = ["warmup_cosine"]


def warmup_cosine(step: int, total_steps: int, warmup_steps: int, min_ratio: float = 0.0) -> float:
    """Multiplier of the base learning rate at ``step``: linear warm-up, then cosine decay.

    ``lr(step) = base * (step + 1)/warmup`` for ``step < warmup`` (the first step already learns), then
    ``base * (min_ratio + (1 - min_ratio) * (1 + cos(pi * t)) / 2)`` with ``t`` the fraction of the
    remaining steps done (Loshchilov & Hutter 2017, SGDR without restarts).
    """
    if warmup_steps > 0 and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay = max(1, total_steps - warmup_steps)
    t = min(1.0, (step - warmup_steps) / decay)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * t))
