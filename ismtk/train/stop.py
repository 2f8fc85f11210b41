"""A clean stop on SIGTERM: what batch schedulers send before they kill a job at its time limit.

SLURM sends SIGTERM (at the limit, or ``--signal=TERM@SECONDS`` before it) and SIGKILL some seconds later;
Kubernetes and most job runners do the same. A trainer that sees the request finishes its step, validates,
saves and returns, so ``--resume`` continues from where it stopped instead of from the last periodic checkpoint.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType, TracebackType
from typing import Any

__all__ = ["StopRequest"]


class StopRequest:
    """Context manager that turns SIGTERM into a flag (:attr:`requested`) for its duration.

    Only the main thread can handle signals: elsewhere (a trainer run from a worker thread) the flag stays
    down and SIGTERM keeps its usual effect. The previous handler is restored on exit.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)
            self._installed = True
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGTERM, self._previous)
            self._installed = False
