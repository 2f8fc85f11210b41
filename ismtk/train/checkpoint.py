"""Training checkpoints of plain tensors and values: written atomically, read with ``weights_only=True``."""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ismtk.atomic import atomic_write
from ismtk.errors import InputError

__all__ = ["save_checkpoint", "load_checkpoint", "check_compatible", "rng_state", "set_rng_state"]


def save_checkpoint(path: str | Path, state: Mapping[str, Any]) -> None:
    """Write ``state`` (state dicts, tensors, numbers, strings, lists, dicts) to ``path`` atomically."""
    with atomic_write(path, "wb") as handle:
        torch.save(dict(state), handle)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint without unpickling code (``torch.load(weights_only=True)``).

    Raises :class:`InputError` naming the file if it is missing, truncated or holds arbitrary objects.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise InputError(f"{path}: not a readable ismtk checkpoint ({type(exc).__name__}: {exc})") from exc


def check_compatible(saved: Mapping[str, Any], current: Mapping[str, Any], keys: tuple[str, ...], path: str) -> None:
    """Raise :class:`InputError` listing every key in ``keys`` whose value differs between two configs."""
    diffs = [
        f"{k}: checkpoint {saved.get(k)!r} vs now {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)
    ]
    if diffs:
        raise InputError(f"{path}: checkpoint was made with another configuration ({'; '.join(diffs)})")


def rng_state() -> dict[str, Any]:
    """The random states of Python, NumPy and torch (CPU and CUDA) as plain values and tensors."""
    py_version, py_state, py_gauss = random.getstate()
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    state = {
        "python": [py_version, list(py_state), py_gauss],
        "numpy": [np_name, torch.from_numpy(np_keys.astype(np.int64)), np_pos, np_has_gauss, np_gauss],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
