"""C-alpha coordinates of database entries, stored as 16-bit integers on a per-entry grid.

Each entry keeps a centre (the middle of its bounding box) and a grid step; a coordinate is stored as
``rint((x - centre) / step)`` in ``int16``, so decoding is off by at most ``step / 2`` per axis. The step is
:data:`CA_STEP` (0.01 A: at most 0.005 A per axis, 0.009 A per atom) unless the entry spans more than
``2 * 32767 * CA_STEP`` = 655 A, when it grows to fit. That is 6 bytes per residue instead of float32's 12, and,
unlike float16, the error does not grow with the distance from the origin (float16 spacing is 0.25 A at 300 A).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ismtk.errors import InputError

__all__ = ["CA_STEP", "CaCoords"]

#: Grid step (A) of stored coordinates; larger only for entries wider than 655 A.
CA_STEP = 0.01
_LIMIT = 32767


@dataclass(frozen=True)
class CaCoords:
    """Coordinates of N entries: ``values`` ``(R, 3) int16`` grid points of all entries concatenated (in the order
    of the database's residues), ``frames`` ``(N, 4) float32`` each entry's centre ``x, y, z`` and grid step."""

    values: np.ndarray
    frames: np.ndarray

    @classmethod
    def encode(cls, chains: Sequence[np.ndarray]) -> CaCoords:
        """Store ``(L_i, 3)`` coordinates (A) of each entry; non-finite coordinates raise :class:`InputError`."""
        values, frames = [], np.zeros((len(chains), 4), dtype=np.float32)
        for i, ca in enumerate(chains):
            ca = np.asarray(ca, dtype=np.float64).reshape(-1, 3)
            if not np.isfinite(ca).all():
                raise InputError(f"entry {i}: C-alpha coordinates are not all finite")
            centre = (ca.min(axis=0) + ca.max(axis=0)) / 2 if len(ca) else np.zeros(3)
            centre = centre.astype(np.float32).astype(np.float64)  # the stored centre, so rounding sees it
            span = float(np.abs(ca - centre).max()) if len(ca) else 0.0
            step = np.float32(max(CA_STEP, span / (_LIMIT - 1)))  # one unit of margin for float32 rounding
            frames[i, :3], frames[i, 3] = centre, step
            values.append(np.rint((ca - centre) / float(step)).astype(np.int16))
        stacked = np.concatenate(values) if values else np.zeros((0, 3), np.int16)
        return cls(stacked, frames)

    def entry(self, i: int, start: int, end: int) -> np.ndarray:
        """``(end - start, 3) float64`` coordinates (A) of entry ``i``, whose residues are ``start:end``."""
        frame = self.frames[i].astype(np.float64)
        return np.asarray(self.values[start:end], dtype=np.float64) * frame[3] + frame[:3]

    def select(self, entries: np.ndarray, offsets: np.ndarray) -> CaCoords:
        """The coordinates of ``entries`` (indices) only, in that order; ``offsets`` are the database's."""
        parts = [self.values[offsets[i] : offsets[i + 1]] for i in entries]
        values = np.concatenate(parts) if parts else np.zeros((0, 3), np.int16)
        return CaCoords(np.asarray(values, dtype=np.int16), np.asarray(self.frames[entries], dtype=np.float32))
