"""The training batches of one rank: the epoch's chains dealt to data shards, read in DataLoader workers.

A global batch of ``batch_size`` microenvironments is the concatenation of one part from each of ``shards``
data shards (part sizes differ by at most one). Shard ``s`` streams the chains ``entries[s::shards]`` of the
epoch (:func:`ismtk.autoencoder.corpus.shard_stream`, random state seeded by ``(seed, epoch, s)``) and reads
them again if the epoch needs more (a shard without a usable chain reads the whole epoch's list instead).
Rank ``r`` of ``W`` owns shards ``r, r + W, ...`` and reads only those, so reading and featurising scale with
the ranks, and the global batches, hence the result, are the same for
any number of processes (at most ``shards``). Inside a rank the shards are split among DataLoader worker
processes, which prepare batches ahead of the training step; skips seen by a worker travel with its parts.
"""

from __future__ import annotations

import signal
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ismtk.autoencoder.corpus import CorpusEntry, SkipLog, shard_stream
from ismtk.errors import InputError
from ismtk.structure.microenv import RADIUS, Microenvironments, collate

__all__ = ["EpochSpec", "part_sizes", "rank_batches", "rank_shards"]


@dataclass(frozen=True)
class EpochSpec:
    """What a rank needs to produce its share of the batches ``start <= b < steps`` of one epoch."""

    entries: tuple[CorpusEntry, ...]
    batch_size: int
    shards: int
    residues_per_chain: int
    min_residues: int
    shuffle_chains: int
    seed: int
    epoch: int
    steps: int
    start: int = 0
    rank: int = 0
    world_size: int = 1
    radius: float = RADIUS


def part_sizes(batch_size: int, shards: int) -> list[int]:
    """Microenvironments each shard adds to a batch (``batch_size`` split as evenly as possible)."""
    return [batch_size // shards + (s < batch_size % shards) for s in range(shards)]


def rank_shards(shards: int, rank: int, world_size: int) -> list[int]:
    """The data shards read by ``rank``; every rank needs at least one."""
    if shards < world_size:
        raise InputError(f"--data-shards {shards} must be at least the number of processes ({world_size})")
    return list(range(rank, shards, world_size))


class _EpochParts(IterableDataset):
    """Yields, for every step, ``(this worker's parts concatenated, skips since the last item)``."""

    def __init__(self, spec: EpochSpec) -> None:
        self.spec = spec

    def __iter__(self) -> Iterator[tuple[Microenvironments, dict]]:
        spec = self.spec
        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        sizes = part_sizes(spec.batch_size, spec.shards)
        skips = SkipLog()
        streams = [
            shard_stream(
                spec.entries[s :: spec.shards],
                sizes[s],
                spec.residues_per_chain,
                spec.min_residues,
                spec.shuffle_chains,
                np.random.default_rng([spec.seed, spec.epoch, 2, s]),
                skips,
                spec.entries,
                radius=spec.radius,
            )
            for s in rank_shards(spec.shards, spec.rank, spec.world_size)[worker::workers]
            if sizes[s] > 0
        ]
        for step in range(spec.steps):
            try:
                parts = [next(stream) for stream in streams]
            except InputError as error:  # said by the trainer as it is, not as a worker's traceback
                yield None, {"error": str(error)}
                return
            if step < spec.start:  # a resumed run: these batches were used (and their skips counted) before
                skips.counts.clear()
                continue
            yield collate(parts), {"counts": dict(skips.counts), "first": dict(skips.first)}
            skips.counts.clear()


def _worker_init(_: int) -> None:
    """One thread per loader process; a scheduler's SIGTERM (SLURM and torchrun signal the whole process group) is
    left to the trainer, which finishes its step and saves: a worker killed by it would crash the step instead.
    Workers still end with the loader, or when the trainer exits."""
    torch.set_num_threads(1)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def rank_batches(spec: EpochSpec, workers: int, skips: SkipLog) -> Iterator[Microenvironments]:
    """This rank's microenvironments of every batch from ``spec.start`` on (in order), read by ``workers``
    DataLoader processes (0: in this process); skips are added to ``skips``."""
    dataset = _EpochParts(spec)
    if workers == 0:
        items: Iterator = iter(dataset)
        group = 1
    else:
        loader = DataLoader(
            dataset, batch_size=None, num_workers=workers, worker_init_fn=_worker_init, prefetch_factor=2,
            collate_fn=_identity,
        )  # fmt: skip
        items, group = iter(loader), workers
    try:
        for _ in range(spec.start, spec.steps):
            parts = []
            for _ in range(group):  # DataLoader hands out the workers' items in turn
                part, seen = next(items)
                if part is None:
                    raise InputError(seen["error"])
                parts.append(part)
                skips.counts.update(Counter(seen["counts"]))
                for kind, message in seen["first"].items():
                    skips.first.setdefault(kind, message)
            yield collate(parts)
    finally:
        # Workers ignore SIGTERM (see _worker_init), so the terminate-and-join of multiprocessing's exit handler
        # would wait for them forever: they are told to stop here, also when an error leaves the loader alive in
        # its traceback.
        if workers:
            items._shutdown_workers()


def _identity(item):
    return item
