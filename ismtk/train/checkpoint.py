"""Training checkpoints of plain tensors and values: written atomically, read with ``weights_only=True``."""

from __future__ import annotations

import pickle
import random
import re
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ismtk.atomic import atomic_write
from ismtk.errors import InputError

__all__ = [
    "check_compatible",
    "load_checkpoint",
    "prepare_run_folder",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "unreadable",
]


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
        raise unreadable(path, "ismtk checkpoint", exc) from exc


#: The object torch's weights-only unpickler refused (``Unsupported global: GLOBAL builtins.print ...``, or for a
#: blocked module ``... unsupported GLOBAL posix.system whose module posix is blocked``).
_REFUSED = re.compile(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) (\S+)")
_UNPICKLER = re.compile(r"WeightsUnpickler error:\s*(.+)")


def unreadable(path: str | Path, what: str, exc: BaseException) -> InputError:
    """The error for a torch file (checkpoint, weights) that ``torch.load(weights_only=True)`` could not read:
    one line naming the file and what is wrong with it, in ismtk's words (torch's own message advises loading
    the file without ``weights_only``, which would run any code the file holds)."""
    text = str(exc)
    refused = _REFUSED.search(text) if isinstance(exc, pickle.UnpicklingError) else None
    if refused:
        why = (f"holds Python objects ({refused.group(1)}) besides tensors and plain values; ismtk loads weights "
               "only and does not run code from files (a file of your own: save it as a plain state dict, "
               "torch.save(model.state_dict()))")
    else:  # torch's words for a cut or foreign file vary (EOFError, 'pop from empty list', '[Errno 22] ...')
        unpickler = _UNPICKLER.search(text)  # the weights-only unpickler's own reason, past torch's advice
        detail = (unpickler.group(1) if unpickler else text.strip().splitlines()[0].split(". ")[0] if text.strip()
                  else type(exc).__name__)
        why = f"truncated, damaged or not a torch file ({detail})"
    return InputError(f"{path}: not a readable {what}: {why}")


def prepare_run_folder(folder: str | Path, resume: bool, overwrite: bool, outputs: tuple[str, ...],
                       remove: bool = True) -> None:
    """Refuse to start a run in a folder that holds files, unless the run resumes (the folder's run goes on) or
    overwrites it: then the files and folders of ``outputs`` (what a run writes there) are removed, by the process
    with ``remove`` (rank 0), so that nothing of the old run is taken for the new one's."""
    folder = Path(folder)
    if resume or not folder.exists():
        return
    if not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    if not any(folder.iterdir()):
        return
    if not overwrite:
        raise InputError(f"{folder}: folder is not empty; add --resume to continue its run or --overwrite")
    if remove:
        for name in outputs:
            path = folder / name
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


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
        state["cuda"] = torch.cuda.get_rng_state()  # this process's device: a resume may see fewer GPUs
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    py_version, py_state, py_gauss = state["python"]
    random.setstate((py_version, tuple(py_state), py_gauss))
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = state["numpy"]
    np.random.set_state((np_name, np_keys.numpy().astype(np.uint32), np_pos, np_has_gauss, np_gauss))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is not None and torch.cuda.is_available():
        if isinstance(cuda, torch.Tensor):
            torch.cuda.set_rng_state(cuda)
        else:  # older checkpoints: one state per GPU the saving process saw, restored to those still visible
            for device, device_state in enumerate(cuda[: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(device_state, device)
