"""The progress reports of both trainers (``train-ae`` and ``structure-tune``): one record, one callback type."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ProgressCallback", "TrainProgress", "ignore_progress"]


@dataclass(frozen=True)
class TrainProgress:
    """What a trainer reports on rank 0 after each logged training step and after each validation.

    ``step`` optimisation steps are done of ``total_steps``; ``epoch`` is the epoch the step belongs to
    (0-based; after a validation, the number of epochs done); ``stage`` the training stage (the autoencoder
    has two, structure-tuning one). ``losses`` holds the training figures averaged since the previous report
    (empty in a validation report), ``rate`` the items per second over that time (microenvironments for the
    autoencoder, tokens for structure-tuning), ``val`` the validation figures of a validation report.
    """

    step: int
    total_steps: int
    epoch: int
    stage: int
    losses: dict[str, float]
    rate: float
    val: dict[str, float] | None = None


#: What a trainer calls with each :class:`TrainProgress`.
ProgressCallback = Callable[[TrainProgress], None]


def ignore_progress(progress: TrainProgress) -> None:
    """The default :data:`ProgressCallback`: reports go nowhere."""
