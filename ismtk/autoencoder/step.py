"""One training step and one evaluation pass of the autoencoder over a batch of microenvironments.

A batch is cut into size-sorted parts (:func:`micro_batches`), each padded to its own largest environment, so
that the attention's work follows the real sizes (a batch padded to its largest environment wastes about 60 %
of the pair work on real data). Each part's losses are divided by the batch size, so the parts' gradients add
up to the batch's. On the CPU the parts can run on several threads at once, each with single-threaded torch
ops: the result is the same (gradients are summed in part order) and, unlike torch's intra-op threads, a busy
machine does not stall them at barriers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import torch

from ismtk.autoencoder.losses import LOSS_NAMES, autoencoder_losses, pair_accuracy, pair_contrastive_loss
from ismtk.autoencoder.model import AtomicAutoencoder, AutoencoderConfig
from ismtk.structure.microenv import Microenvironments

__all__ = [
    "PAIR_SUM_KEYS", "SUM_KEYS", "evaluate", "forward_backward", "micro_batch_index", "micro_batches",
    "pair_backward", "pair_evaluate", "summarise", "to_tensors",
]  # fmt: skip

#: What :func:`evaluate` sums: metric counts, losses times microenvironments, and ``n`` microenvironments.
SUM_KEYS = (
    "aa_correct", "aa_total", "msd", "rmsd", "envs", "disto_correct", "disto_total",
    *(f"loss_{k}" for k in LOSS_NAMES), "n",
)  # fmt: skip

#: What :func:`pair_evaluate` sums: loss and accuracy times pairs, and ``pairs``.
PAIR_SUM_KEYS = ("pair", "pair_acc", "pairs")

_T = TypeVar("_T")


def micro_batch_index(batch: Microenvironments, max_pairs: int) -> list[np.ndarray]:
    """Rows of each part of :func:`micro_batches`."""
    n = batch.n_atoms + 1
    order = np.argsort(n, kind="stable")
    parts, start = [], 0
    for end in range(1, len(order) + 1):
        if end == len(order) or (end - start + 1) * int(n[order[end]]) ** 2 > max_pairs:
            parts.append(order[start:end])
            start = end
    return parts


def micro_batches(batch: Microenvironments, max_pairs: int) -> list[Microenvironments]:
    """``batch`` in parts of similar size: sorted by atom count and cut where a part would exceed ``max_pairs``
    padded pairs (its size x (its largest environment + the mask node) squared); each part is padded to its own
    largest environment. A batch without microenvironments gives no part."""
    return [batch.take(index) for index in micro_batch_index(batch, max_pairs)]


def to_tensors(batch: Microenvironments, device: torch.device) -> dict[str, torch.Tensor]:
    """``coords``, ``elements``, ``mask``, ``aa`` of a batch as tensors on ``device``."""
    arrays = {"coords": batch.coords, "elements": batch.elements, "mask": batch.mask, "aa": batch.aa}
    pin = device.type == "cuda"
    out = {}
    for k, v in arrays.items():
        t = torch.from_numpy(np.ascontiguousarray(v))
        out[k] = (t.pin_memory() if pin else t).to(device, non_blocking=pin)
    return out


def _map(fn: Callable[[int], _T], parts: Sequence[Microenvironments], workers: int) -> list[_T]:
    """``[fn(i) for i in range(len(parts))]``, on ``workers`` threads (largest parts first) when above 1."""
    if workers <= 1 or len(parts) <= 1:
        return [fn(i) for i in range(len(parts))]
    with ThreadPoolExecutor(min(workers, len(parts))) as pool:
        by_size = sorted(range(len(parts)), key=lambda i: -len(parts[i]) * parts[i].mask.shape[1] ** 2)
        futures = {i: pool.submit(fn, i) for i in by_size}
        return [futures[i].result() for i in range(len(parts))]


def _add_grads(params: Sequence[torch.Tensor], found: Sequence[Sequence[torch.Tensor | None]]) -> None:
    """Add the parts' gradients (``found[part][parameter]``) to ``params``' ``.grad``, in part order."""
    for i, p in enumerate(params):
        grads = [g[i] for g in found if g[i] is not None]
        if grads:
            total = grads[0].clone()
            for g in grads[1:]:
                total += g
            p.grad = total if p.grad is None else p.grad + total


def forward_backward(
    module: torch.nn.Module,
    model_cfg: AutoencoderConfig,
    parts: Sequence[Microenvironments],
    weights: dict[str, float],
    denominator: float,
    device: torch.device,
    autocast: bool = False,
    workers: int = 1,
) -> dict[str, torch.Tensor]:
    """Forward and backward passes over the parts of one batch; gradients accumulate in the parameters.

    Each part's losses are divided by ``denominator`` (the batch's size on this rank), so the gradient is that
    of the whole batch. Under DDP only the last part's backward synchronises the gradients. Otherwise the parts'
    gradients are summed in part order, on ``workers`` threads when above 1 (a plain module on the CPU, torch set
    to one thread), so the update does not depend on the thread count. Returns the batch's losses and their
    weighted sum ``loss`` as detached 0-d tensors on ``device`` (no host sync).
    """
    params = [p for p in module.parameters() if p.requires_grad]

    def run(part: Microenvironments, sync: bool = True, grads: bool = False):
        x = to_tensors(part, device)
        with module.no_sync() if hasattr(module, "no_sync") and not sync else contextlib.nullcontext():
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
                out = module(x["coords"], x["elements"], x["mask"])
            losses, _ = autoencoder_losses(out, x["coords"], x["mask"], x["aa"], model_cfg, denominator, metrics=False)
            loss = sum(weights[k] * v for k, v in losses.items())
            if grads:
                return {k: v.detach() for k, v in losses.items()}, torch.autograd.grad(loss, params, allow_unused=True)
            loss.backward()
        return {k: v.detach() for k, v in losses.items()}, None

    if not hasattr(module, "no_sync"):  # summed in part order on any number of threads: the same update
        results = _map(lambda i: run(parts[i], grads=True), parts, workers)
        _add_grads(params, [g for _, g in results])
    else:
        results = [run(part, sync=i == len(parts) - 1) for i, part in enumerate(parts)]
    totals = {k: sum(losses[k] for losses, _ in results) for k in LOSS_NAMES}
    totals["loss"] = sum(weights[k] * totals[k] for k in LOSS_NAMES)
    return totals


def pair_backward(
    model: AtomicAutoencoder,
    pairs: Microenvironments,
    weight: float,
    temperature: float,
    max_pairs: int,
    device: torch.device,
    gather: Callable[[torch.Tensor], tuple[torch.Tensor, int]] | None = None,
    autocast: bool = False,
    workers: int = 1,
    rivals: bool = False,
    centroids: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward passes of ``weight`` x the pair loss over aligned residue pairs; gradients
    accumulate in the parameters.

    ``pairs`` holds the first residues of ``n`` pairs, then their partners, then (``rivals``) ``n`` hard
    rivals (:meth:`PairSet.batch`). The embeddings are computed in size-sorted parts (on ``workers`` threads,
    as in :func:`forward_backward`), the loss is taken over all of them, and its gradient flows back part by
    part. ``gather`` (under DDP): returns every rank's embeddings ``(ranks, 2 n, D)`` (``3 n`` with rivals; no
    gradient) and this rank's index; each rank then takes the loss over the global batch with its own rows
    differentiable, times the number of ranks, so that DDP's average of the gradients is the global batch's.
    ``centroids``: score the pairs by their soft tokens (:func:`~ismtk.autoencoder.losses.pair_contrastive_loss`).
    Returns the loss (unweighted) and the top-1 accuracy of picking the partner, detached.
    """
    n = len(pairs) // (3 if rivals else 2)
    parts, zs, local = _pair_embeddings(model, pairs, max_pairs, device, autocast, workers)
    params = [p for p in model.parameters() if p.requires_grad]
    rows, scale = [local], 1.0
    if gather is not None:
        every, rank = gather(local.detach())
        rows = [local if k == rank else every[k] for k in range(len(every))]
        scale = float(len(every))
    z1, z2 = torch.cat([r[:n] for r in rows]), torch.cat([r[n : 2 * n] for r in rows])
    loss = pair_contrastive_loss(
        z1, z2, temperature, torch.cat([r[2 * n :] for r in rows]) if rivals else None, centroids
    )
    grads = torch.autograd.grad(weight * scale * loss, zs)
    found = _map(lambda i: torch.autograd.grad(zs[i], params, grads[i], allow_unused=True), parts, workers)
    _add_grads(params, found)  # in part order, on any number of threads: the same update
    return loss.detach(), pair_accuracy(z1.detach(), z2.detach())


def _pair_embeddings(
    model: AtomicAutoencoder, pairs: Microenvironments, max_pairs: int, device: torch.device, autocast: bool,
    workers: int,
) -> tuple[list[Microenvironments], list[torch.Tensor], torch.Tensor]:
    """The size-sorted parts of ``pairs``, their embeddings, and all embeddings back in ``pairs``' order."""
    index = micro_batch_index(pairs, max_pairs)

    def encode(part: Microenvironments) -> torch.Tensor:
        x = to_tensors(part, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            return model.encode(x["coords"], x["elements"], x["mask"]).float()

    parts = [pairs.take(i) for i in index]
    zs = _map(lambda i: encode(parts[i]), parts, workers)
    order = torch.from_numpy(np.concatenate(index)).to(device)
    by_size = torch.cat(zs)
    return parts, zs, torch.empty_like(by_size).index_copy(0, order, by_size)


@torch.no_grad()
def pair_evaluate(
    model: AtomicAutoencoder,
    batches: Sequence[Microenvironments],
    temperature: float,
    max_pairs: int,
    device: torch.device,
    autocast: bool = False,
    workers: int = 1,
    centroids: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Summed pair loss and partner-picking accuracy (each times its batch's pairs) and ``pairs`` over batches of
    aligned pairs (:meth:`PairSet.batch`), each scored on its own as in training (float64, on the CPU)."""
    was_training = model.training
    model.eval()
    totals = {k: torch.zeros((), dtype=torch.float64) for k in PAIR_SUM_KEYS}
    for batch in batches:
        n = len(batch) // 2
        z = _pair_embeddings(model, batch, max_pairs, device, autocast, workers)[2]
        totals["pair"] += n * float(pair_contrastive_loss(z[:n], z[n:], temperature, centroids=centroids))
        totals["pair_acc"] += n * float(pair_accuracy(z[:n], z[n:]))
        totals["pairs"] += n
    model.train(was_training)
    return totals


@torch.no_grad()
def evaluate(
    model: AtomicAutoencoder,
    envs: Microenvironments,
    device: torch.device,
    max_pairs: int,
    autocast: bool = False,
    workers: int = 1,
    z_map: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Summed losses (times the part size) and metric counts of ``envs`` (float64, on the CPU; see
    :func:`ismtk.autoencoder.losses.autoencoder_losses`), plus ``n``. ``z_map`` replaces the residue
    embeddings before the amino-acid head and the decoder (e.g. by their token's centroid). Every key of
    :data:`SUM_KEYS` is present, zero for an empty ``envs``."""
    was_training = model.training
    model.eval()

    def run(part: Microenvironments) -> dict[str, torch.Tensor]:
        x = to_tensors(part, device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            out = model(x["coords"], x["elements"], x["mask"], z_map=z_map)
        losses, sums = autoencoder_losses(out, x["coords"], x["mask"], x["aa"], model.cfg)
        sums |= {f"loss_{k}": v * len(part) for k, v in losses.items()}
        return {k: v.detach().double().cpu() for k, v in sums.items()} | {"n": torch.tensor(float(len(part)))}

    totals = {k: torch.zeros((), dtype=torch.float64) for k in SUM_KEYS}
    parts = micro_batches(envs, max_pairs)
    for sums in _map(lambda i: run(parts[i]), parts, workers):
        for k in SUM_KEYS:
            totals[k] += sums[k]
    model.train(was_training)
    return totals


def summarise(totals: dict[str, float]) -> dict[str, float]:
    """Validation metrics from :func:`evaluate`'s sums (over all ranks): ``aa_recovery``, ``rmsd`` (Å, mean
    over microenvironments), ``disto_acc`` and the mean of every loss."""
    if not totals or not totals.get("n"):
        return {}
    result = {
        "aa_recovery": totals["aa_correct"] / max(totals["aa_total"], 1),
        "rmsd": totals["rmsd"] / max(totals["envs"], 1),
        "disto_acc": totals["disto_correct"] / max(totals["disto_total"], 1),
    }
    return result | {k: totals[f"loss_{k}"] / totals["n"] for k in LOSS_NAMES}
