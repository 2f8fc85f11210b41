"""CPU kernels of the encoder's distance bias: the per-pair lookup and its gradient in one pass each (numba).

The encoder's attention biases depend on pairwise distances only through a table ``T`` of biases on a
grid of step ``s`` Å (:class:`ismtk.autoencoder.model.DistanceBias`): the bias of a pair at distance ``d``
in column ``c`` is the linear interpolation ``T[k, c] + f (T[k+1, c] - T[k, c])`` with ``k = floor(d / s)``,
``f = d / s - k``. In torch this is a gather per attention and, in the backward, a scatter-add of every
pair's gradient into the table, plus a pair tensor of distances and two of masks. Here one pass over the
pairs computes the distances, the interpolated biases of all attentions and the masks (``-inf`` for padding
and, in local attentions, for pairs at least ``radius`` apart), written straight into the ``(B, H, N, N)``
layout attention wants; one pass computes the table gradient, accumulated in float64 in a fixed number of
partial tables (so it does not depend on the thread count).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
import torch

from ismtk.compiled import jit

__all__ = ["fused_attention_biases"]

#: Fixed slices of the batch, each with its own partial gradient table, summed in order at the end: the
#: gradient is the same for any thread count.
_PARTS = 8


@numba.njit(inline="always")
def _distance(pos, b, i, j):  # pragma: no cover - numba
    """``|x_i - x_j|`` as :func:`ismtk.autoencoder.geometry.pairwise_distances`: exactly 0 for equal points."""
    dx = pos[b, i, 0] - pos[b, j, 0]
    dy = pos[b, i, 1] - pos[b, j, 1]
    dz = pos[b, i, 2] - pos[b, j, 2]
    if dx == 0 and dy == 0 and dz == 0:
        return np.float32(0.0)
    return np.float32(np.sqrt(max(dx * dx + dy * dy + dz * dz, np.float32(1e-12))))


@jit
def _pair_cells(pos, valid, b, step, radius, blocked, local, glob, frac):  # pragma: no cover - numba
    """Table rows of every pair of batch row ``b`` in the local (``local``) and the global (``glob``)
    attentions, and the interpolation weight ``frac``; a blocked pair (padding, or at least ``radius`` apart
    in a local attention) gets row ``blocked`` (one past the table's rows), whose bias is ``-inf`` and whose
    slope is 0, so that the loops over pairs need no branch."""
    n = valid.shape[1]
    last = blocked - 2  # the last row with a row after it to interpolate towards
    for i in range(n):
        for j in range(n):
            if not valid[b, j]:
                local[i, j] = glob[i, j] = blocked
                frac[i, j] = 0
                continue
            d = _distance(pos, b, i, j)
            p = d / step
            k = min(int(np.floor(p)), last)
            glob[i, j] = k
            local[i, j] = blocked if d >= radius else k
            frac[i, j] = np.float32(p - k)


@jit
def _forward(pos, valid, table, slope, step, radius, heads, out, first, stop):  # pragma: no cover - numba
    """Masked biases of batch rows ``first:stop`` into ``out`` ``(A, B, heads, N, N)``; ``table`` and ``slope``
    ``(columns, R + 1)``: one table column per row (its last entry the blocked row: ``-inf``, slope 0), small
    enough to stay in L1 while its head's pairs are written."""
    n = valid.shape[1]
    local = np.empty((n, n), np.int32)
    glob = np.empty((n, n), np.int32)
    frac = np.empty((n, n), np.float32)
    blocked = table.shape[1] - 1
    for b in range(first, stop):
        _pair_cells(pos, valid, b, step, radius, blocked, local, glob, frac)
        for a in range(out.shape[0]):
            cell = local if a % 2 == 0 else glob
            for h in range(heads):
                row, rise, o = table[a * heads + h], slope[a * heads + h], out[a, b, h]
                for i in range(n):
                    for j in range(n):
                        k = cell[i, j]
                        o[i, j] = row[k] + frac[i, j] * rise[k]


@jit
def _backward(pos, valid, grads, step, radius, heads, acc, first, stop):  # pragma: no cover - numba
    """Add the table gradient of batch rows ``first:stop`` to ``acc`` ``(columns, R + 2) float64`` (one table
    column per row, small enough to stay in L1; blocked pairs add into its last two entries, which the caller
    drops), from ``grads``, a tuple of one ``(B, heads, N, N)`` gradient per attention."""
    n = valid.shape[1]
    local = np.empty((n, n), np.int32)
    glob = np.empty((n, n), np.int32)
    frac = np.empty((n, n), np.float32)
    blocked = acc.shape[1] - 2
    for b in range(first, stop):
        _pair_cells(pos, valid, b, step, radius, blocked, local, glob, frac)
        for a in range(len(grads)):
            cell = local if a % 2 == 0 else glob
            grad = grads[a]
            for h in range(heads):
                column = acc[a * heads + h]
                for i in range(n):
                    for j in range(n):
                        g = np.float64(grad[b, h, i, j])
                        f = np.float64(frac[i, j])
                        k = cell[i, j]
                        column[k] += g - f * g
                        column[k + 1] += f * g


def _in_parts(run: Callable[[int, int, int], None], n_rows: int) -> None:
    """Call ``run(part, first, stop)`` for :data:`_PARTS` fixed slices of ``n_rows`` batch rows, on up to
    ``torch.get_num_threads()`` threads (the kernels release the GIL). Plain threads rather than numba's
    parallel loops: an OpenMP pool of numba's spinning beside torch's slows every torch op that follows."""
    bounds = np.linspace(0, n_rows, _PARTS + 1).astype(np.int64)
    jobs = [(i, int(bounds[i]), int(bounds[i + 1])) for i in range(_PARTS) if bounds[i + 1] > bounds[i]]
    workers = min(torch.get_num_threads(), len(jobs))
    if workers <= 1:
        for job in jobs:
            run(*job)
        return
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda job: run(*job), jobs))


class _FusedBiases(torch.autograd.Function):
    @staticmethod
    def forward(ctx, table, pos, valid, step: float, radius: float, heads: int):
        t = table.detach().float()
        # tables by column (attention head), each a contiguous row, with the blocked row (-inf, slope 0) last
        slope = torch.cat([t[1:] - t[:-1], t.new_zeros(2, t.shape[1])]).T.contiguous()
        t = torch.cat([t, t.new_full((1, t.shape[1]), float("-inf"))]).T.contiguous()
        pos_np = pos.detach().float().contiguous().numpy()
        valid_np = valid.contiguous().numpy()
        b, n = valid.shape
        out = torch.empty((t.shape[0] // heads, b, heads, n, n), dtype=torch.float32)
        args = (pos_np, valid_np, t.numpy(), slope.numpy(), np.float32(step), np.float32(radius), heads, out.numpy())
        _in_parts(lambda part, first, stop: _forward(*args, first, stop), b)
        ctx.save_for_backward(pos, valid)
        ctx.settings = (step, radius, heads, len(table))
        return out.unbind(0)  # one tensor per attention: the backward then needs no full-size zero grads

    @staticmethod
    def backward(ctx, *grads):
        pos, valid = ctx.saved_tensors
        step, radius, heads, rows = ctx.settings
        shape = (len(valid), heads, valid.shape[1], valid.shape[1])
        g = tuple(np.zeros(shape, np.float32) if x is None else x.float().contiguous().numpy() for x in grads)
        pos_np = pos.detach().float().contiguous().numpy()
        valid_np = valid.contiguous().numpy()
        acc = np.zeros((_PARTS, len(g) * heads, rows + 2), np.float64)
        settings = (np.float32(step), np.float32(radius), heads)
        _in_parts(
            lambda part, first, stop: _backward(pos_np, valid_np, g, *settings, acc[part], first, stop), len(valid)
        )
        return torch.from_numpy(acc.sum(0)[:, :rows].T).float(), None, None, None, None, None


def fused_attention_biases(
    table: torch.Tensor, pos: torch.Tensor, valid: torch.Tensor, step: float, radius: float, heads: int
) -> tuple[torch.Tensor, ...]:
    """``A`` tensors ``(B, heads, N, N) float32``: the masked biases of ``A = table.shape[1] / heads`` attentions.

    ``table`` ``(R, A * heads)``: biases at distances ``0, step, ..., (R - 1) step`` (R must exceed the
    largest pair distance / step + 1); ``pos`` ``(B, N, 3)`` node positions; ``valid`` ``(B, N)`` bool.
    Attentions ``0, 2, 4...`` are local (pairs at least ``radius`` apart get ``-inf``), the others global;
    columns of invalid nodes get ``-inf`` everywhere. Differentiable with respect to ``table`` only.
    CPU tensors only.
    """
    return _FusedBiases.apply(table, pos, valid, step, radius, heads)
