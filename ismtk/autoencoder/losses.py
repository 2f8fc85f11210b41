"""Losses and metrics of the atomic autoencoder (ISM paper): L_AA, L_disto, L_MSE-aligned, L_distances.

Every loss is first averaged inside each microenvironment, then summed over the batch and divided by
the batch size, so a global batch split over ranks gives the same gradient as the whole batch in one
process (DDP averages the ranks' gradients). :func:`pair_contrastive_loss` is ismtk's optional addition: it
asks structurally aligned residues of related chains to be nearer each other than to other residues.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ismtk.autoencoder.geometry import kabsch_superpose, pairwise_distances
from ismtk.autoencoder.model import AutoencoderConfig
from ismtk.structure.microenv import IGNORE_AA

__all__ = [
    "LOSS_NAMES", "STAGE_LOSSES", "autoencoder_losses", "aligned_msd", "pair_accuracy", "pair_contrastive_loss",
]

LOSS_NAMES = ("aa", "disto", "aligned_mse", "distances")
#: The losses of each training stage of the paper: stage 1 learns identity and distances, stage 2 adds coordinates.
STAGE_LOSSES = {1: ("aa", "disto"), 2: LOSS_NAMES}


def aligned_msd(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` mean squared deviation per microenvironment after superposing ``target`` onto ``pred``.

    ``pred``/``target`` ``(B, N, 3)``, ``mask`` ``(B, N)``. The square root is the aligned RMSD in Å.
    """
    aligned = kabsch_superpose(target, pred.detach(), mask)
    sq = (pred.float() - aligned).square().sum(-1) * mask
    return sq.sum(1) / mask.sum(1).clamp_min(1)


def _pairs(out: dict[str, torch.Tensor], coords: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """True and predicted distances ``(B, K, K)`` of the pair subset and the mask of pairs ``i != j``."""
    index, valid = out["pair_index"], out["pair_valid"]
    take = index[..., None].expand(-1, -1, 3)
    true_d = pairwise_distances(torch.gather(coords.float(), 1, take))
    pred_d = pairwise_distances(torch.gather(out["coords"].float(), 1, take))
    k = index.shape[1]
    pair_mask = valid[:, :, None] & valid[:, None, :] & ~torch.eye(k, dtype=torch.bool, device=index.device)
    return true_d, pred_d, pair_mask


def autoencoder_losses(
    out: dict[str, torch.Tensor],
    coords: torch.Tensor,
    mask: torch.Tensor,
    aa: torch.Tensor,
    cfg: AutoencoderConfig,
    denominator: float | None = None,
    metrics: bool = True,
) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Losses and metric sums of one batch.

    ``out`` is :meth:`AtomicAutoencoder.forward`'s result for ``coords`` ``(B, N, 3)``, ``mask`` ``(B, N)``,
    ``aa`` ``(B,)``. Returns ``(losses, sums)``: each loss a scalar (the sum of per-microenvironment means
    divided by ``denominator``, by default ``B``: the batch mean; a part of a batch passes the batch's
    size, so that the parts' losses add up to the batch's), and (if ``metrics``, else ``{}``) summed counts
    for metrics: ``aa_correct``/``aa_total`` (recovery of the masked residue),
    ``msd``/``rmsd``/``envs`` (aligned coordinate error), ``disto_correct``/``disto_total``.

    * L_AA: cross-entropy of the masked residue's amino acid from ``z``.
    * L_disto: cross-entropy of the binned true distance of each atom pair from the decoder pair features.
    * L_MSE-aligned: mean squared error of predicted coordinates after the optimal rigid superposition of
      the true ones (Kabsch), so the loss ignores the (unobservable) orientation.
    * L_distances: mean squared error between predicted and true pairwise distances.
    """
    b = coords.shape[0] if denominator is None else denominator
    has_atoms = mask.any(1)
    logits = out["aa_logits"].float()
    known = aa != IGNORE_AA
    aa_loss = F.cross_entropy(logits, aa.clamp_min(0), reduction="none") * known
    true_d, pred_d, pair_mask = _pairs(out, coords)
    edges = cfg.disto_edges.to(coords.device)
    bins = torch.bucketize(true_d, edges)
    disto_logits = out["disto_logits"].float()
    ce = F.cross_entropy(disto_logits.permute(0, 3, 1, 2), bins, reduction="none")
    n_pairs = pair_mask.sum((1, 2)).clamp_min(1)
    disto_loss = (ce * pair_mask).sum((1, 2)) / n_pairs
    dist_loss = ((pred_d - true_d).square() * pair_mask).sum((1, 2)) / n_pairs
    msd = aligned_msd(out["coords"], coords, mask) * has_atoms
    losses = {
        "aa": aa_loss.sum() / b,
        "disto": disto_loss.sum() / b,
        "aligned_mse": msd.sum() / b,
        "distances": dist_loss.sum() / b,
    }
    if not metrics:
        return losses, {}
    with torch.no_grad():
        sums = {
            "aa_correct": ((logits.argmax(-1) == aa) & known).sum().float(),
            "aa_total": known.sum().float(),
            "msd": msd.sum(),
            "rmsd": msd.clamp_min(0).sqrt().sum(),
            "envs": has_atoms.sum().float(),
            "disto_correct": ((disto_logits.argmax(-1) == bins) & pair_mask).sum().float(),
            "disto_total": pair_mask.sum().float(),
        }
    return losses, sums


def pair_contrastive_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    temperature: float,
    rivals: torch.Tensor | None = None,
    centroids: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric InfoNCE over ``P`` aligned residue pairs (rows of ``z1``, ``z2`` ``(P, D)``): with logits
    ``-|z1_i - z2_j|^2 / temperature``, each residue has to pick its own partner among the other side's ``P``
    residues, in both directions (mean cross-entropy). Squared Euclidean distances, not cosines, because
    k-means cuts the embeddings into tokens by Euclidean distance. ``rivals`` ``(R, D)`` join the candidates
    of both directions (hard negatives that are nobody's partner). With ``centroids`` ``(K, D)`` (a codebook)
    the logits are :func:`shared_token_logits` instead: residues have to pick their partner by its token."""

    def logits(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if centroids is not None:
            return shared_token_logits(a.float(), b.float(), centroids, temperature)
        return -torch.cdist(a.float(), b.float()).pow(2) / temperature

    first = logits(z1, z2)
    second = first.T
    if rivals is not None:
        first = torch.cat([first, logits(z1, rivals)], 1)
        second = torch.cat([second, logits(z2, rivals)], 1)
    target = torch.arange(len(z1), device=z1.device)
    return 0.5 * (F.cross_entropy(first, target) + F.cross_entropy(second, target))


def shared_token_logits(
    a: torch.Tensor, b: torch.Tensor, centroids: torch.Tensor, temperature: float
) -> torch.Tensor:
    """``(len(a), len(b))`` log-probability that two residues get the same token when each draws its token
    from the soft assignment ``p_k(z) = softmax_k(-|z - c_k|^2 / temperature)`` to the ``centroids``:
    ``log sum_k p_k(a_i) p_k(b_j)``, which tends to log 1 or -inf as their nearest centroids agree or
    differ while the temperature goes to 0."""
    log_a = F.log_softmax(-torch.cdist(a, centroids).pow(2) / temperature, 1)
    log_b = F.log_softmax(-torch.cdist(b, centroids).pow(2) / temperature, 1)
    return torch.logsumexp(log_a[:, None, :] + log_b[None, :, :], -1)


def pair_accuracy(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Share of rows of ``z1`` whose nearest row of ``z2`` (squared Euclidean, as in
    :func:`pair_contrastive_loss`) is their own partner."""
    target = torch.arange(len(z1), device=z1.device)
    return (torch.cdist(z1.float(), z2.float()).argmin(1) == target).float().mean()
