"""``embed``: ESM2 (or ISM) features from sequences alone, compatible with fair-esm's ``esm-extract``.

Sequences are batched by a token budget in order of length (esm-extract's rule). Sequences longer
than ``truncation_seq_length`` are truncated, as esm-extract does, or cut into overlapping windows
whose per-residue features are averaged. Results stream to disk one batch at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from esm.data import Alphabet
from esm.model.esm2 import ESM2

from ismtk.atomic import atomic_write, ensure_folder
from ismtk.errors import InputError
from ismtk.plm.forward import esm2_representations
from ismtk.sequence.protein import ESM_RESIDUES, read_protein_fasta
from ismtk.train.launch import DEFAULT_DEVICE, resolve_device

__all__ = [
    "INCLUDE",
    "LongMode",
    "EmbedOptions",
    "EmbedSummary",
    "embed_fasta",
    "H5Writer",
    "PtDirWriter",
    "embed_sequences",
    "length_batches",
    "normalise_layers",
    "windows",
]

#: What ``--include`` may ask for, as in esm-extract.
INCLUDE = ("mean", "per_tok", "bos", "contacts")
LongMode = Literal["truncate", "windows"]


@dataclass(frozen=True)
class EmbedOptions:
    """Options of :func:`embed_sequences`; defaults are esm-extract's."""

    repr_layers: tuple[int, ...] = (-1,)
    include: tuple[str, ...] = ("mean",)
    toks_per_batch: int = 4096
    truncation_seq_length: int = 1022
    long: LongMode = "truncate"
    window_overlap: int = 256

    def __post_init__(self) -> None:
        if self.long not in ("truncate", "windows"):
            raise InputError(f"long {self.long!r}: truncate or windows")
        if isinstance(self.repr_layers, int) or isinstance(self.include, str):
            raise InputError("repr_layers and include are sequences: (-1,), ('mean',)")
        if self.truncation_seq_length < 1 or self.toks_per_batch < 1 or not 0 <= self.window_overlap:
            raise InputError("truncation_seq_length and toks_per_batch are at least 1, window_overlap at least 0")


def normalise_layers(layers: Sequence[int], num_layers: int) -> list[int]:
    """Layer indices with negatives counted from the end (``-1`` = last), as esm-extract does."""
    out = []
    for layer in layers:
        if not -(num_layers + 1) <= layer <= num_layers:
            raise InputError(f"--repr-layers {layer}: the model has layers 0..{num_layers}")
        out.append((layer + num_layers + 1) % (num_layers + 1))
    return sorted(set(out))


def length_batches(lengths: Sequence[int], toks_per_batch: int) -> list[list[int]]:
    """Indices grouped so that ``(longest + 1) * count <= toks_per_batch``, shortest first
    (fair-esm's ``FastaBatchedDataset.get_batch_indices`` with one extra token per sequence)."""
    batches: list[list[int]] = []
    current: list[int] = []
    longest = 0
    for index in sorted(range(len(lengths)), key=lambda i: (lengths[i], i)):
        size = lengths[index] + 1
        if current and max(size, longest) * (len(current) + 1) > toks_per_batch:
            batches.append(current)
            current, longest = [], 0
        longest = max(longest, size)
        current.append(index)
    if current:
        batches.append(current)
    return batches


def windows(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """``[start, end)`` windows of ``size`` residues stepping ``size - overlap``; the last one ends at
    ``length``. One window when the sequence fits."""
    if length <= size:
        return [(0, length)]
    if not 0 <= overlap < size:
        raise InputError(f"window overlap must be in [0, {size}), got {overlap}")
    starts = list(range(0, length - size, size - overlap)) + [length - size]
    return [(s, s + size) for s in starts]


@dataclass
class _Partial:
    """Running sums of the windows of one sequence."""

    per_tok: dict[int, torch.Tensor]
    counts: torch.Tensor
    bos: dict[int, torch.Tensor] | None
    contacts: torch.Tensor | None
    contact_counts: torch.Tensor | None
    missing: int


def embed_sequences(
    model: ESM2,
    alphabet: Alphabet,
    records: Sequence[tuple[str, str]],
    options: EmbedOptions = EmbedOptions(),
    device: str | torch.device = DEFAULT_DEVICE,
    on_batch: Callable[[int], None] | None = None,
) -> Iterator[tuple[dict, int]]:
    """Yield ``(result, n_residues)`` per record, in batch order (by length).

    ``result`` is esm-extract's dict: it has ``label`` and, as asked by ``options.include``, ``representations`` /
    ``mean_representations`` / ``bos_representations`` (``{layer: tensor}``, float32, CPU) and
    ``contacts`` ``(L, L)``. ``on_batch(n)`` is called after each batch with its number of records. ``device``:
    ``auto`` (CUDA when visible), ``cpu``, ``cuda`` or ``cuda:N`` (:func:`ismtk.train.launch.resolve_device`).
    """
    unknown = set(options.include) - set(INCLUDE)
    if unknown or not options.include:
        raise InputError(f"--include takes {', '.join(INCLUDE)}; got {', '.join(sorted(unknown)) or 'nothing'}")
    bad = [name for name, seq in records if not seq or not set(seq) <= ESM_RESIDUES]
    if bad:
        raise InputError(f"sequences empty or with letters that are not upper-case amino acids: {', '.join(bad[:10])} "
                         "(read_protein_fasta cleans a FASTA file's)")
    layers = normalise_layers(options.repr_layers, model.num_layers)
    contacts = "contacts" in options.include
    limit = options.truncation_seq_length
    pieces: list[tuple[int, int, int]] = []  # (record, start, end)
    for index, (_, seq) in enumerate(records):
        if options.long == "windows":
            pieces.extend((index, s, e) for s, e in windows(len(seq), limit, options.window_overlap))
        else:
            pieces.append((index, 0, min(len(seq), limit)))
    n_pieces = np.bincount([p[0] for p in pieces], minlength=len(records))
    partial: dict[int, _Partial] = {}
    converter = alphabet.get_batch_converter()
    device = resolve_device(device)
    model = model.to(device)
    was_training = model.training  # the caller's model is left in the mode it came in
    model.eval()
    try:
        for batch in length_batches([e - s for _, s, e in pieces], options.toks_per_batch):
            data = [(str(k), records[pieces[k][0]][1][pieces[k][1] : pieces[k][2]]) for k in batch]
            _, _, tokens = converter(data)
            with torch.inference_mode():
                tokens = tokens.to(device)
                if contacts:
                    out = model(tokens, repr_layers=layers, return_contacts=True)
                    reps, maps = out["representations"], out["contacts"].float().cpu()
                else:
                    reps, maps = esm2_representations(model, tokens, layers), None
                reps = {layer: t.float().cpu() for layer, t in reps.items()}
            finished = []
            for row, k in enumerate(batch):
                index, start, end = pieces[k]
                n = end - start
                acc = partial.get(index)
                if acc is None:
                    total = len(records[index][1]) if options.long == "windows" else n
                    acc = partial[index] = _Partial(
                        per_tok={layer: torch.zeros(total, reps[layer].shape[-1]) for layer in layers},
                        counts=torch.zeros(total, 1),
                        bos=None,
                        contacts=torch.zeros(total, total) if contacts else None,
                        contact_counts=torch.zeros(total, total) if contacts else None,
                        missing=int(n_pieces[index]),
                    )
                for layer in layers:
                    acc.per_tok[layer][start:end] += reps[layer][row, 1 : n + 1]
                acc.counts[start:end] += 1
                if start == 0:
                    acc.bos = {layer: reps[layer][row, 0].clone() for layer in layers}
                if maps is not None:
                    acc.contacts[start:end, start:end] += maps[row, :n, :n]
                    acc.contact_counts[start:end, start:end] += 1
                acc.missing -= 1
                if acc.missing == 0:
                    finished.append(index)
            for index in finished:
                acc = partial.pop(index)
                yield _result(records[index][0], acc, options.include), len(acc.counts)
            if on_batch is not None:
                on_batch(len(finished))
    finally:
        model.train(was_training)


def _result(label: str, acc: _Partial, include: Sequence[str]) -> dict:
    per_tok = {layer: (t / acc.counts) for layer, t in acc.per_tok.items()}
    out: dict = {"label": label}
    if "per_tok" in include:
        out["representations"] = per_tok
    if "mean" in include:
        out["mean_representations"] = {layer: t.mean(0) for layer, t in per_tok.items()}
    if "bos" in include:
        out["bos_representations"] = acc.bos
    if "contacts" in include:
        out["contacts"] = acc.contacts / acc.contact_counts.clamp_min(1)
    return out


class PtDirWriter:
    """esm-extract's output: ``OUT/<label>.pt`` per sequence, each written atomically. A context manager: a run
    that fails keeps the files already written (each is complete) and removes a folder it made and left empty."""

    def __init__(self, outdir: str | Path, labels: Sequence[str]) -> None:
        # (255 bytes: the longest file name of common file systems)
        bad = [name for name in labels if "/" in name or name.startswith(".") or len(f"{name}.pt".encode()) > 255]
        if bad:
            shown = ", ".join(name if len(name) <= 40 else name[:37] + "..." for name in bad[:10])
            raise InputError(f"names unusable as file names (a '/', a leading '.', or over 252 bytes): {shown}; write "
                             "one HDF5 file instead (an output name ending in .h5)")
        self.outdir = Path(outdir)
        if self.outdir.exists() and not self.outdir.is_dir():
            raise InputError(f"{outdir} is a file; give a folder for the .pt files (or an output name ending in .h5 "
                             "for one HDF5 file)")

    def __enter__(self) -> PtDirWriter:
        self._made = not self.outdir.exists()
        ensure_folder(self.outdir)
        return self

    def __exit__(self, kind, error, trace) -> None:
        if kind is not None and self._made and not any(self.outdir.iterdir()):
            self.outdir.rmdir()

    def write(self, result: dict, length: int) -> None:
        with atomic_write(self.outdir / f"{result['label']}.pt", "wb") as handle:
            torch.save(result, handle)


class H5Writer:
    """All results in one HDF5 file, appended batch by batch (memory stays flat).

    Layout: ``labels`` (N,) strings and ``lengths`` (N,) in write order; ``offsets`` (N,) into the
    residue axis of ``per_tok/<layer>`` (total residues, D); ``mean/<layer>`` and ``bos/<layer>``
    (N, D); ``contacts`` the flattened (L, L) maps one after another, ``contact_offsets`` (N,).
    A context manager: the file appears at its path only when the block succeeds
    (:func:`ismtk.atomic.atomic_write`; two runs writing the same path do not disturb each other).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(f"{path} is a folder; give a file name ending in .h5 for one HDF5 file (or a folder name "
                             "without .h5 for .pt files)")

    def __enter__(self) -> H5Writer:
        import h5py

        with ExitStack() as stack:
            handle = stack.enter_context(atomic_write(self.path, "w+b"))
            # a file object: HDF5's own lock on a path would clash with the temporary's
            self._file = stack.enter_context(h5py.File(handle, "w"))
            self._open = stack.pop_all()
        self._str = h5py.string_dtype()
        return self

    def __exit__(self, kind, error, trace) -> bool | None:
        return self._open.__exit__(kind, error, trace)  # HDF5 closed first, then the file renamed (or dropped)

    def _append(self, name: str, value: np.ndarray) -> int:
        """Append rows to dataset ``name`` (created on first use); return the old length."""
        if name not in self._file:
            self._file.create_dataset(
                name, shape=(0, *value.shape[1:]), maxshape=(None, *value.shape[1:]), dtype=value.dtype,
                chunks=True,
            )
        ds = self._file[name]
        start = ds.shape[0]
        ds.resize(start + value.shape[0], axis=0)
        ds[start:] = value
        return start

    def write(self, result: dict, length: int) -> None:
        groups = (("representations", "per_tok"), ("mean_representations", "mean"), ("bos_representations", "bos"))
        for key, group in groups:
            for layer, tensor in result.get(key, {}).items():
                if group == "per_tok":
                    offset = self._append(f"per_tok/{layer}", tensor.numpy())
                else:
                    self._append(f"{group}/{layer}", tensor.numpy()[None])
        if "representations" in result:
            self._append("offsets", np.array([offset], dtype=np.int64))
        if "contacts" in result:
            start = self._append("contacts", result["contacts"].numpy().reshape(-1))
            self._append("contact_offsets", np.array([start], dtype=np.int64))
        self._append("labels", np.array([result["label"]], dtype=object).astype(self._str))
        self._append("lengths", np.array([length], dtype=np.int64))


@dataclass(frozen=True)
class EmbedSummary:
    """Counts of one :func:`embed_fasta` run and what was noticed on the way."""

    sequences: int
    residues: int
    truncated: int
    notes: list[str]


def embed_fasta(
    model_spec: str | Path,
    fasta: str | Path,
    out: str | Path,
    options: EmbedOptions = EmbedOptions(),
    device: str = DEFAULT_DEVICE,
    on_batch: Callable[[int], None] | None = None,
    on_start: Callable[[int, list[str]], None] | None = None,
) -> EmbedSummary:
    """Embed every sequence of ``fasta`` with the model ``model_spec`` (see :func:`ismtk.plm.esm.load_esm`).

    ``out`` ending in ``.h5``/``.hdf5`` is one HDF5 file (:class:`H5Writer`), otherwise a folder of
    esm-extract ``.pt`` files. ``on_start(n_sequences, notes)`` is called once the input is checked.
    """
    from ismtk.plm.esm import load_esm

    records, notes = read_protein_fasta(fasta)
    is_h5 = Path(out).suffix.lower() in (".h5", ".hdf5")
    writer = H5Writer(out) if is_h5 else PtDirWriter(out, [name for name, _ in records])  # (checked before loading)
    device = resolve_device(device)  # and the device too
    loaded = load_esm(model_spec)
    notes = notes + list(loaded.notes)
    truncated = sum(len(seq) > options.truncation_seq_length for _, seq in records) if options.long == "truncate" else 0
    if truncated:
        notes.append(
            f"{truncated} sequence(s) longer than {options.truncation_seq_length} residues were truncated "
            "(--long windows keeps them whole)"
        )
    if not is_h5 and Path(out).is_dir():  # esm-extract's way: files of an earlier run stay beside the new ones
        names = {name for name, _ in records}
        stale = sorted(p.stem for p in Path(out).glob("*.pt") if p.stem not in names)
        if stale:
            notes.append(f"{out} already holds {len(stale):,} .pt file(s) of sequences not in {fasta} (e.g. "
                         f"{stale[0]}.pt); they are left as they are")
    if on_start is not None:
        on_start(len(records), notes)
    residues = 0
    with writer:
        for result, length in embed_sequences(loaded.model, loaded.alphabet, records, options, device, on_batch):
            writer.write(result, length)
            residues += length
    return EmbedSummary(len(records), residues, truncated, notes)
