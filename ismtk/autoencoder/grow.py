"""Growing a trained autoencoder into a wider and deeper one that computes the same function (Net2Net).

Chen, Goodfellow & Shlens (2016), "Net2Net": a unit copied ``f`` times keeps every layer's output if the
weights that read its copies are split between them (``Net2WiderNet``), and a residual block whose output
projections are zero is the identity (``Net2DeeperNet`` for pre-norm transformers). Widening by an integer
factor ``f`` with ``f`` times the heads keeps the head width, so every new head is a copy of an old one; a
LayerNorm over ``f`` copies of a vector is ``f`` copies of its LayerNorm, and the residue embedding ``z`` of
the grown model is ``f`` copies of the old one. The splits are random (each copy's share drawn around
``1 / f``), so the copies receive different gradients and grow apart in training.
"""

from __future__ import annotations

from dataclasses import asdict

import torch
from torch import nn

from ismtk.autoencoder.model import AtomicAutoencoder, AutoencoderConfig, _Attention, _EncoderBlock
from ismtk.errors import InputError

__all__ = ["can_grow", "grow_autoencoder"]

#: Settings that may differ between a model and the one grown from it.
GROWN = ("width", "heads", "layers")


def can_grow(source: AutoencoderConfig, target: AutoencoderConfig) -> str | None:
    """None if ``target`` can be grown from ``source`` exactly, else why not."""
    rest = {k: v for k, v in asdict(source).items() if k not in GROWN}
    if rest != {k: v for k, v in asdict(target).items() if k not in GROWN}:
        changed = sorted(k for k, v in rest.items() if asdict(target)[k] != v)
        return f"settings other than {', '.join(GROWN)} differ ({', '.join(changed)})"
    factor, rem = divmod(target.width, source.width)
    if rem or factor < 1:
        return f"width {target.width} is not a multiple of {source.width}"
    if target.heads != factor * source.heads:
        return f"widening {factor}x needs {factor * source.heads} heads (the head width stays), not {target.heads}"
    if target.layers < source.layers:
        return f"{target.layers} blocks are fewer than the model's {source.layers}"
    return None


def _copies(new: int, old: int) -> torch.Tensor:
    """Index of the old unit of each new one: new unit ``i`` is a copy of ``i mod old``."""
    return torch.arange(new) % old


def _shares(weight: torch.Tensor, old: int, generator: torch.Generator) -> torch.Tensor:
    """Random shares, summing to 1 over the copies of each old input unit, for a weight ``(out, new)``."""
    factor = weight.shape[1] // old
    raw = 1.0 + torch.rand((weight.shape[0], factor, old), generator=generator) - 0.5
    return (raw / raw.sum(1, keepdim=True)).reshape(weight.shape[0], factor * old)


def _linear(
    new: nn.Linear,
    old: nn.Linear,
    out_map: torch.Tensor | None,
    in_old: int | None,
    generator: torch.Generator,
) -> None:
    """Copy ``old`` into ``new``: output unit ``i`` of ``new`` is ``old``'s unit ``out_map[i]`` (None: the same
    units), and if ``in_old`` is given the input is ``in_old`` units copied, whose weights are split."""
    weight, bias = old.weight.detach(), old.bias.detach()
    if out_map is not None:
        weight, bias = weight[out_map], bias[out_map]
    if in_old is not None:
        weight = weight[:, _copies(new.in_features, in_old)]
        weight = weight * _shares(weight, in_old, generator)
    new.weight.copy_(weight)
    new.bias.copy_(bias)


def _norm(new: nn.LayerNorm, old: nn.LayerNorm) -> None:
    index = _copies(new.normalized_shape[0], old.normalized_shape[0])
    new.weight.copy_(old.weight.detach()[index])
    new.bias.copy_(old.bias.detach()[index])


def _attention(new: _Attention, old: _Attention, width: int, generator: torch.Generator) -> None:
    wide = new.out.in_features
    qkv = torch.arange(3 * wide)
    _linear(new.qkv, old.qkv, (qkv // wide) * width + (qkv % wide) % width, width, generator)
    _linear(new.out, old.out, _copies(wide, width), width, generator)


def _mlp(new: nn.Sequential, old: nn.Sequential, width: int, generator: torch.Generator) -> None:
    hidden = old[1].out_features
    _norm(new[0], old[0])
    _linear(new[1], old[1], _copies(new[1].out_features, hidden), width, generator)
    _linear(new[3], old[3], _copies(new[3].out_features, width), hidden, generator)


def _identity_block(block: _EncoderBlock) -> None:
    """Zero the output projections of a pre-norm block: its residual branches add nothing."""
    for layer in (block.local.out, block.glob.out, block.mlp[3]):
        nn.init.zeros_(layer.weight)
        nn.init.zeros_(layer.bias)


@torch.no_grad()
def grow_autoencoder(source: AtomicAutoencoder, target: AutoencoderConfig, seed: int = 0) -> AtomicAutoencoder:
    """A model of config ``target`` computing what ``source`` computes: units copied ``target.width /
    source.width`` times (heads too), blocks beyond the source's appended as identities (fresh attention
    biases, zero output projections). Its ``z`` is that many copies of the source's; the amino-acid logits,
    coordinates and distogram equal the source's up to float rounding."""
    why = can_grow(source.cfg, target)
    if why:
        raise InputError(f"cannot grow a model of width {source.cfg.width} x {source.cfg.layers} blocks: {why}")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        grown = AtomicAutoencoder(target)
    w, heads, layers = source.cfg.width, source.cfg.heads, source.cfg.layers
    wide = _copies(target.width, w)

    grown.token_embed.weight.copy_(source.token_embed.weight.detach()[:, wide])
    bias_old, bias_new = source.bias, grown.bias
    # the distance features do not depend on the width; only the projection to per-head biases does
    features = {k: v for k, v in bias_old.state_dict().items() if not k.startswith("proj.1.")}
    bias_new.load_state_dict(features, strict=False)
    # bias columns: attention a, head h -> the old head h mod heads of attention a; new blocks keep theirs
    cols = torch.arange(2 * layers * target.heads)
    old_cols = (cols // target.heads) * heads + (cols % target.heads) % heads
    proj_new, proj_old = bias_new.proj[1], bias_old.proj[1]
    proj_new.weight[: len(cols)] = proj_old.weight.detach()[old_cols]
    proj_new.bias[: len(cols)] = proj_old.bias.detach()[old_cols]

    for i, block in enumerate(grown.blocks):
        if i >= layers:
            _identity_block(block)
            continue
        old = source.blocks[i]
        _norm(block.norm_local, old.norm_local)
        _norm(block.norm_global, old.norm_global)
        _attention(block.local, old.local, w, generator)
        _attention(block.glob, old.glob, w, generator)
        _mlp(block.mlp, old.mlp, w, generator)
    _norm(grown.final_norm, source.final_norm)
    _linear(grown.aa_head, source.aa_head, None, w, generator)

    if target.decoder_input == "embedding":
        grown.dec_element.weight.copy_(source.dec_element.weight.detach()[:, wide])
        grown.dec_rank.weight.copy_(source.dec_rank.weight.detach()[:, wide])
    _linear(grown.dec_in, source.dec_in, wide, w, generator)
    for block, old in zip(grown.dec_blocks, source.dec_blocks, strict=True):
        _norm(block.norm, old.norm)
        _attention(block.attn, old.attn, w, generator)
        _mlp(block.mlp, old.mlp, w, generator)
    _norm(grown.dec_norm, source.dec_norm)
    _linear(grown.coord_head, source.coord_head, None, w, generator)
    _linear(grown.pair_proj, source.pair_proj, None, w, generator)
    grown.disto_head.load_state_dict(source.disto_head.state_dict())
    return grown.train(source.training)

