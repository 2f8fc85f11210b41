"""fair-esm's ESM2 with fused attention (``scaled_dot_product_attention``), for inference and training.

fair-esm computes attention by hand and always materialises (and averages) the attention maps, which
only contact prediction needs. Without contacts, these forwards reuse the model's own modules and
weights and replace that by one SDPA call; their outputs and gradients equal fair-esm's to float rounding.
:func:`esm2_representations` is the inference forward (``embed``, ``predict-tokens``);
:func:`fused_layer_forward` replaces a layer's forward inside ``ESM2.forward`` (``structure-tune``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from esm.model.esm2 import ESM2
from esm.modules import TransformerLayer

__all__ = ["esm2_representations", "fused_layer_forward"]

_MASK_RATIO_TRAIN = 0.15 * 0.8  # ESM2 token-dropout rescaling (Lin et al. 2023; fair-esm esm2.py)


def _attention_block(layer, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    """Pre-norm self-attention of one ESM2 layer on ``x`` ``(B, T, E)``, residual included."""
    attn = layer.self_attn
    b, t, e = x.shape
    h = layer.self_attn_layer_norm(x)
    shape = (b, t, attn.num_heads, attn.head_dim)
    q = (attn.q_proj(h) * attn.scaling).view(shape).transpose(1, 2)
    k = attn.k_proj(h).view(shape).transpose(1, 2)
    v = attn.v_proj(h).view(shape).transpose(1, 2)
    if attn.rot_emb is not None:
        q, k = attn.rot_emb(q, k)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, scale=1.0)
    return x + attn.out_proj(out.transpose(1, 2).reshape(b, t, e))


def _layer(layer, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
    """One ESM2 layer on ``x`` ``(B, T, E)``: attention block, then the pre-norm GELU feed-forward block."""
    x = _attention_block(layer, x, key_mask)
    return x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))


def fused_layer_forward(layer: TransformerLayer, x: torch.Tensor, self_attn_mask: torch.Tensor | None = None,
                        self_attn_padding_mask: torch.Tensor | None = None,
                        need_head_weights: bool = False) -> tuple[torch.Tensor, None]:
    """``TransformerLayer.forward`` of fair-esm (``x`` ``(T, B, E)``, padding mask ``(B, T)``, True = pad) with
    fused attention; returns ``(x, None)``. Install it with ``layer.forward = functools.partial(
    fused_layer_forward, layer)``; calls that ask for attention maps (contacts) or pass an attention mask
    run fair-esm's own forward."""
    if need_head_weights or self_attn_mask is not None:
        return type(layer).forward(layer, x, self_attn_mask, self_attn_padding_mask, need_head_weights)
    key_mask = None if self_attn_padding_mask is None else (~self_attn_padding_mask)[:, None, None, :]
    return _layer(layer, x.transpose(0, 1), key_mask).transpose(0, 1), None


def esm2_representations(model: ESM2, tokens: torch.Tensor, repr_layers: Iterable[int]) -> dict[int, torch.Tensor]:
    """``{layer: (B, T, E)}`` hidden states of ``model`` for ``tokens`` ``(B, T) int64``.

    Same conventions as ``ESM2.forward(...)["representations"]``: layer 0 is the scaled embedding,
    the last layer is taken after the final LayerNorm. Call under ``torch.inference_mode()``.
    """
    wanted = set(repr_layers)
    padding = tokens.eq(model.padding_idx)
    x = model.embed_scale * model.embed_tokens(tokens)
    if model.token_dropout:
        x = x.masked_fill((tokens == model.mask_idx).unsqueeze(-1), 0.0)
        observed = (tokens == model.mask_idx).sum(-1).to(x.dtype) / (~padding).sum(-1)
        x = x * (1 - _MASK_RATIO_TRAIN) / (1 - observed)[:, None, None]
    x = x * (1 - padding.unsqueeze(-1).type_as(x))
    key_mask = (~padding)[:, None, None, :] if padding.any() else None
    out = {0: x} if 0 in wanted else {}
    for index, layer in enumerate(model.layers, start=1):
        x = _layer(layer, x, key_mask)
        if index in wanted and index != model.num_layers:
            out[index] = x
    if model.num_layers in wanted:
        out[model.num_layers] = model.emb_layer_norm_after(x)
    return out
