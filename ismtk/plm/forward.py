"""Hidden states of fair-esm's ESM2 with fused attention (``scaled_dot_product_attention``).

fair-esm computes attention by hand and always materialises (and averages) the attention maps, which
only contact prediction needs. Without contacts, this forward reuses the model's own modules and
weights and replaces that by one SDPA call; its outputs equal ``ESM2.forward`` to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F
from esm.model.esm2 import ESM2

__all__ = ["esm2_representations"]

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
        x = _attention_block(layer, x, key_mask)
        x = x + layer.fc2(F.gelu(layer.fc1(layer.final_layer_norm(x))))
        if index in wanted and index != model.num_layers:
            out[index] = x
    if model.num_layers in wanted:
        out[model.num_layers] = model.emb_layer_norm_after(x)
    return out
