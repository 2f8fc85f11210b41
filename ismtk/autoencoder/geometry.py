"""Differentiable geometry on padded batches of point sets: pairwise distances and Kabsch superposition."""

from __future__ import annotations

import torch

__all__ = ["pairwise_distances", "kabsch_superpose"]


def pairwise_distances(x: torch.Tensor) -> torch.Tensor:
    """``(B, N, N)`` Euclidean distances between the points of ``x`` ``(B, N, 3)``.

    Computed from coordinate differences (not the Gram-matrix identity) so that identical points give
    exactly 0 and the result is exactly invariant to translation.
    """
    diff = x[:, :, None, :] - x[:, None, :, :]
    return diff.square().sum(-1).clamp_min(1e-12).sqrt() * (diff.abs().sum(-1) > 0)


def kabsch_superpose(mobile: torch.Tensor, target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``mobile`` ``(B, N, 3)`` moved by the rotation + translation that best fits it onto ``target``.

    Minimises ``sum_i w_i |R m_i + t - x_i|^2`` (Kabsch 1976): centre both sets on their weighted
    centroids, ``H = M^T W X``, ``H = U S V^T``, ``R = V diag(1, 1, sign det(V U^T)) U^T``, which excludes
    reflections. ``weights`` ``(B, N)`` are 0 at padding. Computed in float32; the rotation is treated as
    a constant (no gradient flows through the SVD).
    """
    mobile, target = mobile.float(), target.float()
    w = weights.float()
    w = w / w.sum(1, keepdim=True).clamp_min(1e-8)
    mc = (w[..., None] * mobile).sum(1, keepdim=True)
    tc = (w[..., None] * target).sum(1, keepdim=True)
    m, t = mobile - mc, target - tc
    with torch.no_grad():
        h = (m * w[..., None]).transpose(1, 2) @ t
        u, _, vt = torch.linalg.svd(h)
        d = torch.sign(torch.linalg.det(vt.transpose(1, 2) @ u.transpose(1, 2)))
        d = torch.where(d == 0, torch.ones_like(d), d)
        diag = torch.ones_like(h[:, 0])
        diag[:, 2] = d
        rot = vt.transpose(1, 2) @ (diag[:, :, None] * u.transpose(1, 2))
    return m @ rot.transpose(1, 2) + tc
