"""Paths and text of the real structures in tests/data (imported by tests; conftest names collide)."""

from __future__ import annotations

import gzip
from pathlib import Path

STRUCTURES = Path(__file__).parent / "data" / "structures"


def pdb_text(name: str) -> str:
    """Text of a fixture PDB file."""
    return gzip.open(STRUCTURES / f"{name}.pdb.gz", "rt").read()

#: ``shared/data`` beside the checkout (CI places ``shared/`` next to the clone).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
