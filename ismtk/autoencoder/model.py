"""The atomic autoencoder of ISM: a distance-biased graph transformer over a masked microenvironment.

Encoder (Stability Oracle's design, Diaz et al. 2024): atoms are tokens embedded by element; a learned
mask node sits at the C-alpha of the masked residue; the only geometry is an additive per-head attention
bias computed from pairwise distances, so the encoder is exactly invariant to rotations and
translations. Each block has one attention restricted to pairs closer than ``local_radius`` and one
global attention, then an MLP, all pre-norm. The residue embedding ``z`` is the mean of the final node
features. The decoder is a plain transformer whose input for atom ``i`` is the encoder's final feature of
that atom plus ``z`` (the paper's ``z_i + z^l``); it predicts coordinates and a distogram. The older
decoder input, ``z`` plus element and nearest-first rank embeddings (``decoder_input="embedding"``), is
kept for models trained with it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ismtk.autoencoder.geometry import pairwise_distances
from ismtk.autoencoder.kernels import fused_attention_biases
from ismtk.errors import InputError
from ismtk.structure.microenv import MAX_ATOMS, RADIUS
from ismtk.structure.residues import AMINO_ACIDS, ELEMENTS

__all__ = ["AutoencoderConfig", "DistanceBias", "AtomicAutoencoder", "pair_subset"]

#: Token of the mask node (after the element tokens).
MASK_TOKEN = len(ELEMENTS)
#: Resolution (Å) of the distance grid on which the fixed-kernel biases are tabulated.
TABLE_STEP = 0.02


@dataclass(frozen=True)
class AutoencoderConfig:
    """Size and geometry settings of :class:`AtomicAutoencoder` (stored as ``model.json``).

    Attributes
    ----------
    width, heads, layers, mlp_ratio
        Encoder width, attention heads, blocks (each: local + global attention + MLP) and MLP ratio.
    decoder_layers
        Blocks of the decoder transformer.
    decoder_input
        ``atoms``: atom ``i`` enters the decoder as ``h_i + z`` (``h_i``: the encoder's final feature of atom
        ``i``; ISM paper); ``embedding``: as ``z`` + element and rank embeddings, so that ``z`` is its only
        geometric input (the first models; configs without this key mean ``embedding``).
    radius
        Radius (Å) of a microenvironment around its C-alpha (ISM: 8); every embedding of this model reads
        microenvironments of this radius.
    local_radius
        Pairs at least this far apart (Å) are masked out of the local attention.
    kernel
        ``fixed``: Gaussian radial basis (``rbf_centres`` centres over 0 to ``rbf_max`` Å, width ``rbf_width``)
        joined with an embedding of the distance bins ``bin_edges``; ``learned``: ``learned_kernels``
        Gaussians with learned means and widths on an affine, element-pair-specific transform of the
        distance (Graphormer-3D, Uni-Mol).
    bin_dim
        Width of the distance-bin embedding of the fixed kernel.
    disto_bins, disto_min, disto_max
        Distogram classes: ``disto_bins - 1`` equally spaced edges from ``disto_min`` to ``disto_max`` Å.
    pair_atoms, pair_dim
        Atoms per microenvironment (evenly strided over the nearest-first order) in the pair losses, and
        the width of the decoder's pair features.
    max_atoms
        Largest microenvironment (size of the rank embedding of the decoder).
    """

    width: int = 128
    heads: int = 8
    layers: int = 4
    mlp_ratio: float = 2.0
    decoder_layers: int = 2
    decoder_input: Literal["atoms", "embedding"] = "atoms"
    radius: float = RADIUS
    local_radius: float = RADIUS
    kernel: Literal["fixed", "learned"] = "fixed"
    rbf_centres: int = 4
    rbf_max: float = 20.0
    rbf_width: float = 5.0
    bin_edges: tuple[float, ...] = (2.2, 4.5, 8.0)
    bin_dim: int = 16
    learned_kernels: int = 32
    disto_bins: int = 16
    disto_min: float = 2.0
    disto_max: float = 16.0
    pair_atoms: int = 48
    pair_dim: int = 32
    max_atoms: int = MAX_ATOMS

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise InputError(f"model width {self.width} is not a multiple of the number of heads {self.heads}")
        if not self.radius > 0:
            raise InputError(f"microenvironment radius {self.radius} must be positive")
        if self.decoder_input not in ("atoms", "embedding"):
            raise InputError(f"unknown decoder input {self.decoder_input!r}: use 'atoms' or 'embedding'")
        object.__setattr__(self, "bin_edges", tuple(float(e) for e in self.bin_edges))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: dict) -> AutoencoderConfig:
        """Build from a dict, ignoring unknown keys (configs written by newer versions); a config without
        ``decoder_input`` predates it and means ``embedding``."""
        names = {f.name for f in fields(cls)}
        values = {"decoder_input": "embedding"} | dict(values)
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items() if k in names})

    @property
    def disto_edges(self) -> torch.Tensor:
        """``(disto_bins - 1,) float32`` distogram bin edges in Å."""
        return torch.linspace(self.disto_min, self.disto_max, self.disto_bins - 1)


class DistanceBias(nn.Module):
    """Per-head attention biases of every encoder block from pairwise distances.

    ``features(d)`` -> LayerNorm -> Linear -> GELU gives ``layers * 2 * heads`` values per pair: one bias
    per head for the local and one for the global attention of each block.
    """

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        if cfg.kernel == "fixed":
            self.register_buffer("centres", torch.linspace(0.0, cfg.rbf_max, cfg.rbf_centres), persistent=False)
            self.register_buffer("edges", torch.tensor(cfg.bin_edges), persistent=False)
            self.bin_embed = nn.Embedding(len(cfg.bin_edges) + 1, cfg.bin_dim)
            n_features = cfg.rbf_centres + cfg.bin_dim
        elif cfg.kernel == "learned":
            n_types = (len(ELEMENTS) + 1) ** 2
            self.means = nn.Parameter(torch.linspace(0.0, cfg.rbf_max, cfg.learned_kernels))
            self.log_stds = nn.Parameter(
                torch.full((cfg.learned_kernels,), math.log(cfg.rbf_max / cfg.learned_kernels))
            )
            self.pair_mul = nn.Embedding(n_types, 1)
            self.pair_add = nn.Embedding(n_types, 1)
            nn.init.ones_(self.pair_mul.weight)
            nn.init.zeros_(self.pair_add.weight)
            n_features = cfg.learned_kernels
        else:
            raise InputError(f"unknown kernel {cfg.kernel!r}: use 'fixed' or 'learned'")
        self.proj = nn.Sequential(
            nn.LayerNorm(n_features), nn.Linear(n_features, cfg.layers * 2 * cfg.heads), nn.GELU()
        )

    def features(self, dist: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """``(..., F)`` distance features of ``dist`` (``(B, N, N)``; any shape for the fixed kernel) for
        node tokens ``(B, N)`` (used by the learned kernel only)."""
        if self.cfg.kernel == "fixed":
            rbf = torch.exp(-(((dist[..., None] - self.centres) / self.cfg.rbf_width) ** 2))
            bins = torch.bucketize(dist, self.edges)
            return torch.cat([rbf, self.bin_embed(bins)], dim=-1)
        pair = tokens[:, :, None] * (len(ELEMENTS) + 1) + tokens[:, None, :]
        x = self.pair_mul(pair)[..., 0] * dist + self.pair_add(pair)[..., 0]
        std = self.log_stds.exp()
        return torch.exp(-0.5 * ((x[..., None] - self.means) / std) ** 2) / (math.sqrt(2 * math.pi) * std)

    def forward(self, dist: torch.Tensor, tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per block, the ``(B, heads, N, N)`` biases of its local and its global attention.

        The fixed kernel depends on the distance alone, so its biases are computed on a grid of
        :data:`TABLE_STEP` Å and linearly interpolated (the bin embedding's steps become 0.02 Å ramps);
        this is several times faster than evaluating every pair and just as invariant.
        """
        b, n = dist.shape[:2]
        h = self.cfg.heads

        def per_head(values: torch.Tensor) -> torch.Tensor:  # (B*N*N, H) -> (B, H, N, N), rows contiguous
            # CUDA's fused attention kernels take a bias only with unit stride along keys (else SDPA falls back
            # to its math kernel, which holds every (B, H, N, N) probability in memory)
            return values.view(b, n, n, h).permute(0, 3, 1, 2).contiguous()

        if self.cfg.kernel == "fixed":
            # float32 even under autocast: the backward of the gathers sums millions of pair gradients into a
            # few hundred table rows, which bf16 would round after every addition
            with torch.autocast(dist.device.type, enabled=False):
                size = int(dist.max().item() / TABLE_STEP) + 2 if dist.numel() else 2
                grid = torch.arange(size, device=dist.device, dtype=torch.float32) * TABLE_STEP
                table = self.proj(self.features(grid, tokens))
                slope = table[1:] - table[:-1]
                pos = dist.reshape(-1).float() / TABLE_STEP
                low = pos.floor().long().clamp_max(size - 2)
                frac = (pos - low)[:, None]
                # one gather per attention: the backward then adds into small tables, not a full pair tensor
                biases = [
                    per_head(
                        torch.addcmul(table[:-1, cols].index_select(0, low), slope[:, cols].index_select(0, low), frac)
                    )
                    for cols in (slice(i, i + h) for i in range(0, table.shape[1], h))
                ]
        else:
            out = self.proj(self.features(dist, tokens)).view(-1, self.cfg.layers * 2 * h)
            biases = [per_head(out[:, i : i + h]) for i in range(0, out.shape[1], h)]
        return list(zip(biases[0::2], biases[1::2], strict=True))

    def attention_biases(
        self, pos: torch.Tensor, tokens: torch.Tensor, valid: torch.Tensor, fused: bool | None = None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per block, the ``(B, heads, N, N)`` biases of its local and its global attention with the masks
        added: ``-inf`` at padding (``valid`` ``(B, N)`` False) and, for the local one, at pairs at least
        ``local_radius`` apart. ``pos`` ``(B, N, 3)`` node positions, ``tokens`` ``(B, N)``.

        On the CPU the fixed kernel runs as one fused pass (:mod:`ismtk.autoencoder.kernels`) over the same
        table, without pair tensors of distances, indices or masks (``fused``: None = there, False = never).
        """
        if fused is None:
            fused = self.cfg.kernel == "fixed" and pos.device.type == "cpu"
        if fused:
            with torch.autocast("cpu", enabled=False):
                reach = 2 * float(pos.detach().norm(dim=-1).max()) if pos.numel() else 0.0
                grid = torch.arange(int(reach / TABLE_STEP) + 2, dtype=torch.float32) * TABLE_STEP
                table = self.proj(self.features(grid, tokens))
                out = fused_attention_biases(table, pos, valid, TABLE_STEP, self.cfg.local_radius, self.cfg.heads)
            return list(zip(out[0::2], out[1::2], strict=True))
        dist = pairwise_distances(pos.float())
        blocked = torch.zeros_like(dist).masked_fill(~valid[:, None, :], float("-inf"))[:, None]
        local_block = blocked.masked_fill((dist >= self.cfg.local_radius)[:, None], float("-inf"))
        return [(local + local_block, glob + blocked) for local, glob in self(dist, tokens)]


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        """``softmax(q k^T / sqrt(d) + attn_mask) v`` per head; ``x`` ``(B, N, W)``, ``attn_mask`` broadcastable
        to ``(B, heads, N, N)``."""
        b, n, w = x.shape
        d = w // self.heads
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d).permute(2, 0, 3, 1, 4)
        if attn_mask.requires_grad and x.device.type == "cpu" and attn_mask.shape == (b, self.heads, n, n):
            # a bias that needs a gradient sends CPU SDPA to its reference path, which also scans every row
            # for -inf: the same maths in three calls is faster
            scores = torch.baddbmm(
                attn_mask.reshape(b * self.heads, n, n),
                q.reshape(b * self.heads, n, d),
                k.reshape(b * self.heads, n, d).transpose(1, 2),
                alpha=d**-0.5,
            )
            y = torch.bmm(scores.softmax(-1), v.reshape(b * self.heads, n, d)).view(b, self.heads, n, d)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask.to(q.dtype))
        return self.out(y.transpose(1, 2).reshape(b, n, w))


def _mlp(width: int, ratio: float) -> nn.Sequential:
    hidden = int(width * ratio)
    return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))


class _EncoderBlock(nn.Module):
    """Pre-norm block: local attention, global attention, MLP, each with a residual connection."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm_local, self.norm_global = nn.LayerNorm(width), nn.LayerNorm(width)
        self.local, self.glob = _Attention(width, heads), _Attention(width, heads)
        self.mlp = _mlp(width, mlp_ratio)

    def forward(self, h: torch.Tensor, local_mask: torch.Tensor, global_mask: torch.Tensor) -> torch.Tensor:
        h = h + self.local(self.norm_local(h), local_mask)
        h = h + self.glob(self.norm_global(h), global_mask)
        return h + self.mlp(h)


class _DecoderBlock(nn.Module):
    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.attn = _Attention(width, heads)
        self.mlp = _mlp(width, mlp_ratio)

    def forward(self, h: torch.Tensor, attn_mask: torch.Tensor) -> torch.Tensor:
        h = h + self.attn(self.norm(h), attn_mask)
        return h + self.mlp(h)


def pair_subset(mask: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices ``(B, k)`` of up to ``k`` atoms per row, evenly strided over each row's real atoms.

    ``mask`` ``(B, N)`` marks real atoms (a prefix of each row). Returns ``(index, valid)``; rows with
    fewer than ``k`` atoms use all of them and mark the rest invalid.
    """
    n = mask.sum(1, keepdim=True)
    ks = torch.arange(k, device=mask.device)[None, :]
    index = torch.where(n >= k, torch.div(ks * n, k, rounding_mode="floor"), ks)
    valid = ks < n
    return index.clamp_max(max(mask.shape[1] - 1, 0)) * valid, valid


class AtomicAutoencoder(nn.Module):
    """Encoder + decoder + heads; :meth:`encode` gives residue embeddings, :meth:`forward` everything."""

    def __init__(self, cfg: AutoencoderConfig = AutoencoderConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.token_embed = nn.Embedding(len(ELEMENTS) + 1, w)
        self.bias = DistanceBias(cfg)
        self.blocks = nn.ModuleList(_EncoderBlock(w, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.layers))
        self.final_norm = nn.LayerNorm(w)
        self.aa_head = nn.Linear(w, len(AMINO_ACIDS))
        if cfg.decoder_input == "embedding":
            self.dec_element = nn.Embedding(len(ELEMENTS), w)
            self.dec_rank = nn.Embedding(cfg.max_atoms, w)
        self.dec_in = nn.Linear(w, w)
        self.dec_blocks = nn.ModuleList(_DecoderBlock(w, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.decoder_layers))
        self.dec_norm = nn.LayerNorm(w)
        self.coord_head = nn.Linear(w, 3)
        self.pair_proj = nn.Linear(w, cfg.pair_dim)
        self.disto_head = nn.Linear(cfg.pair_dim, cfg.disto_bins)

    def encode_atoms(
        self, coords: torch.Tensor, elements: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Final node features ``(B, N + 1, width)`` (node 0: the mask node) and residue embeddings ``z``
        ``(B, width)`` of microenvironments.

        ``coords`` ``(B, N, 3)`` relative to the C-alpha, ``elements`` ``(B, N)`` int64, ``mask`` ``(B, N)`` bool.
        ``z`` is the mean over the mask node and the atoms. Padded slots are moved to the origin, whatever they hold
        (a padded query row far from every atom would see only masked keys in the local attention: NaN).
        """
        b = coords.shape[0]
        coords = coords.masked_fill(~mask[..., None], 0.0)
        # node 0 is the mask node at the C-alpha (the origin)
        pos = torch.cat([coords.new_zeros(b, 1, 3), coords], dim=1)
        tokens = torch.cat([elements.new_full((b, 1), MASK_TOKEN), elements], dim=1)
        valid = torch.cat([mask.new_ones(b, 1), mask], dim=1)
        h = self.token_embed(tokens)
        for block, (local_bias, global_bias) in zip(
            self.blocks, self.bias.attention_biases(pos, tokens, valid), strict=True
        ):
            h = block(h, local_bias, global_bias)
        h = self.final_norm(h)
        weights = valid.to(h.dtype)[..., None]
        return h, (h * weights).sum(1) / weights.sum(1)

    def encode(self, coords: torch.Tensor, elements: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Residue embeddings ``z`` ``(B, width)`` of microenvironments (inputs as in :meth:`encode_atoms`)."""
        return self.encode_atoms(coords, elements, mask)[1]

    def forward(
        self,
        coords: torch.Tensor,
        elements: torch.Tensor,
        mask: torch.Tensor,
        z_map: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """All outputs for a batch of microenvironments (inputs as in :meth:`encode`); ``z_map``, if given,
        replaces ``z`` before the amino-acid head and the decoder (e.g. by its token's centroid).

        Returns ``z`` ``(B, W)``, ``aa_logits`` ``(B, 20)``, ``coords`` ``(B, N, 3)`` (decoded atom
        positions), ``pair_index``/``pair_valid`` ``(B, K)`` (atoms of the pair losses, :func:`pair_subset`)
        and ``disto_logits`` ``(B, K, K, disto_bins)`` over those atoms.
        """
        atoms, z = self.encode_atoms(coords, elements, mask)
        if z_map is not None:
            z = z_map(z)
        if self.cfg.decoder_input == "atoms":
            h = self.dec_in(atoms[:, 1:] + z[:, None, :])
        else:
            rank = torch.arange(coords.shape[1], device=coords.device).clamp_max(self.cfg.max_atoms - 1)
            h = self.dec_in(z)[:, None, :] + self.dec_element(elements) + self.dec_rank(rank)[None]
        blocked = torch.zeros(mask.shape, dtype=h.dtype, device=h.device).masked_fill(~mask, float("-inf"))
        blocked = blocked[:, None, None, :]
        # a row of padding only sees padding: let it see everything instead (its output is ignored)
        blocked = torch.where(mask.any(1)[:, None, None, None], blocked, torch.zeros_like(blocked))
        for block in self.dec_blocks:
            h = block(h, blocked)
        h = self.dec_norm(h)
        index, valid = pair_subset(mask, self.cfg.pair_atoms)
        hp = self.pair_proj(torch.gather(h, 1, index[..., None].expand(-1, -1, h.shape[-1])))
        pair = F.gelu(hp[:, :, None, :] + hp[:, None, :, :])
        return {
            "z": z,
            "aa_logits": self.aa_head(z),
            "coords": self.coord_head(h),
            "pair_index": index,
            "pair_valid": valid,
            "disto_logits": self.disto_head(pair),
        }
