"""The structure-tuning model (ESM2 + token heads) and its loss (ISM, Ouyang-Zhang et al. 2024).

loss = w_mlm * CE_mlm (15% masked residues) + sum_s w_s * CE_s (stream s at every residue, masked ones
included, s* excluded), each CE averaged over the positions it covers in the whole global batch.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from esm.model.esm2 import ESM2
from torch import nn
from torch.utils.checkpoint import checkpoint

from ismtk.plm.forward import fused_layer_forward
from ismtk.plm.heads import StreamInfo, TokenHeads
from ismtk.plm.tune_data import Batch

__all__ = ["LossSums", "StructureTuner", "loss_sums"]


class StructureTuner(nn.Module):
    """ESM2 with one token head per stream on its last (layer-normed) representation.

    ``forward(tokens)`` takes ``(B, T)`` ESM token ids and returns the MLM logits ``(B, T, 33)`` and
    ``{stream: (B, T, K+1)}``. The contact head is frozen: it is not trained by this objective. The layers
    of ``esm`` compute attention fused (:func:`ismtk.plm.forward.fused_layer_forward`), as inference does.
    """

    def __init__(self, esm: ESM2, streams: list[StreamInfo], activation_checkpointing: bool = False) -> None:
        super().__init__()
        self.esm = esm
        self.heads = TokenHeads(esm.embed_dim, streams, esm.num_layers)
        self.esm.contact_head.requires_grad_(False)
        for layer in self.esm.layers:
            layer.forward = functools.partial(fused_layer_forward, layer)
            if activation_checkpointing:
                layer.forward = functools.partial(checkpoint, layer.forward, use_reentrant=False)

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        out = self.esm(tokens, repr_layers=[self.esm.num_layers])
        return out["logits"], self.heads(out["representations"][self.esm.num_layers])


@dataclass
class LossSums:
    """Summed (not averaged) losses of a micro-batch and the counts to average them by.

    ``mlm``/``streams`` are differentiable sums; ``mlm_count``, ``counts`` and ``correct`` plain tensors.
    """

    mlm: torch.Tensor
    mlm_count: torch.Tensor
    streams: list[torch.Tensor]
    counts: list[torch.Tensor]
    correct: list[torch.Tensor]

    def stats(self) -> torch.Tensor:
        """``(2 + 3S,) float64`` detached [mlm, mlm_count, (sum, count, correct) per stream] for all-reduce."""
        values = [self.mlm, self.mlm_count]
        for s in range(len(self.streams)):
            values += [self.streams[s], self.counts[s], self.correct[s]]
        return torch.stack([v.detach().double() for v in values])


def loss_sums(mlm_logits: torch.Tensor, stream_logits: list[torch.Tensor], batch: Batch) -> LossSums:
    """Cross-entropy sums: MLM over positions with ``batch.mlm != -100``, streams over targets ``!= 0``."""
    mlm = F.cross_entropy(mlm_logits.flatten(0, 1).float(), batch.mlm.flatten(), ignore_index=-100, reduction="sum")
    sums, counts, correct = [], [], []
    for logits, target in zip(stream_logits, batch.targets, strict=False):  # evaluate() passes no streams for MLM
        valid = target != 0
        sums.append(F.cross_entropy(logits.flatten(0, 1).float(), target.flatten(), ignore_index=0, reduction="sum"))
        counts.append(valid.sum())
        correct.append(((logits[..., 1:].argmax(-1) + 1 == target) & valid).sum())
    return LossSums(mlm, (batch.mlm != -100).sum(), sums, counts, correct)
