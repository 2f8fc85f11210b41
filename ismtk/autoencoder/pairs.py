"""Structurally aligned residue pairs of related chains, as training signal for ISM embeddings.

Foldseek trained its 3Di states to agree across the residues that TM-align superposes in homologous domains;
ISM's losses only see one microenvironment at a time. The close pairs (within 5 A after superposition) of
``ismtk align-pairs`` alignments give both uses here: the codebook's metric
(:func:`ismtk.autoencoder.codebook.aligned_pair_metric`) and the autoencoder's optional pair loss
(:func:`ismtk.autoencoder.losses.pair_contrastive_loss`), for which :class:`PairSet` holds every aligned
residue's microenvironment, and, as the loss's optional hard rivals, residues that look alike locally (one 3Di
state) in chains that no alignment relates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from ismtk.errors import InputError, StructureError
from ismtk.search.pairs import DEFAULT_MIN_TM, StructuralAlignment, read_alignments
from ismtk.structure.chain import ProteinChain
from ismtk.structure.microenv import RADIUS, Microenvironments, collate, microenvironments
from ismtk.structure.read import find_structure_files, read_structure
from ismtk.tokenizers.threedi import ThreeDiTokenizer

__all__ = ["AlignedChains", "PairSet", "aligned_chains", "load_pair_set"]


@dataclass(frozen=True)
class AlignedChains:
    """The usable alignments of a file and their chains; ``skipped``: unreadable structure files (one line
    each)."""

    chains: dict[str, ProteinChain]
    alignments: tuple[StructuralAlignment, ...]
    skipped: tuple[str, ...] = ()


def aligned_chains(
    structures: Sequence[str | Path], alignments: str | Path, min_tm: float | None = None
) -> AlignedChains:
    """Alignments of ``alignments`` with TM >= ``min_tm`` (default: the learn-matrix threshold) whose two
    chains are in ``structures`` (files, folders or lists; chains named as in the alignments) with the aligned
    lengths. Unreadable files are skipped and reported; no usable alignment is an :class:`InputError`."""
    chains, skipped = {}, []
    for path in find_structure_files(structures, keep_missing=True):
        try:
            chains.update((chain.name, chain) for chain in read_structure(path).chains)
        except StructureError as exc:
            skipped.append(str(exc))

    def usable(a: StructuralAlignment) -> bool:
        lengths = (len(chains[a.name1]), len(chains[a.name2])) if a.name1 in chains and a.name2 in chains else None
        return lengths == (a.len1, a.len2)

    wanted = tuple(a for a in read_alignments(alignments, DEFAULT_MIN_TM if min_tm is None else min_tm) if usable(a))
    if not wanted:
        raise InputError(f"{alignments}: no alignment names two chains of {', '.join(map(str, structures))}")
    names = {n for a in wanted for n in (a.name1, a.name2)}
    return AlignedChains({n: c for n, c in chains.items() if n in names}, wanted, tuple(skipped))


@dataclass(frozen=True)
class PairSet:
    """Every close aligned pair ``p``: residue ``res1[p]`` of chain ``chain1[p]`` and ``res2[p]`` of
    ``chain2[p]`` (indices into ``envs``, the microenvironments of all residues of each chain). The pairs of
    alignment ``a`` are rows ``bounds[a]:bounds[a + 1]``. For hard rivals (:meth:`rivals`): ``states``, the 3Di
    state of every residue of each chain, and ``related`` ``(chains, chains)``, True where an alignment (or
    identity) joins two chains. ``skipped``: unreadable files, and chains without 3Di states (one line each)."""

    envs: tuple[Microenvironments, ...]
    chain1: np.ndarray
    res1: np.ndarray
    chain2: np.ndarray
    res2: np.ndarray
    bounds: np.ndarray
    skipped: tuple[str, ...] = ()
    states: tuple[np.ndarray, ...] = ()
    related: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.res1)

    @property
    def alignments(self) -> int:
        """Alignments the pairs come from."""
        return len(self.bounds) - 1

    def draw(self, rng: np.random.Generator, n: int, group: int = 1) -> np.ndarray:
        """``n`` pairs at random; with ``group > 1``, ``n // group`` alignments (each as likely as its share of
        the pairs) and ``group`` pairs of each, so that a residue's rivals include residues of its own chains
        (harder negatives for :func:`ismtk.autoencoder.losses.pair_contrastive_loss` than other proteins')."""
        if group <= 1:
            return rng.choice(len(self), n, replace=len(self) < n)
        anchors = rng.choice(len(self), n // group, replace=len(self) < n // group)
        which = np.searchsorted(self.bounds, anchors, side="right") - 1
        rows = []
        for lo, hi in zip(self.bounds[which], self.bounds[which + 1], strict=True):
            rows.append(lo + rng.choice(hi - lo, group, replace=hi - lo < group))
        return np.concatenate(rows)

    def rivals(self, rng: np.random.Generator, index: np.ndarray, tries: int = 16) -> np.ndarray:
        """A hard rival for the first residue of each pair ``index``: ``(n, 2)`` rows of (chain, residue), a
        residue in the same 3Di state of a chain that no alignment relates to the residue's chain (a local
        look-alike that is presumably no homolog); after ``tries`` draws without one, any residue of such a
        chain. Needs ``states`` and ``related`` (:func:`load_pair_set` with ``rivals=True``)."""
        if self.related is None:
            raise InputError("these pairs were loaded without hard rivals (load_pair_set(..., rivals=True))")
        chain_of, residue_of, by_state, bounds = self._residues_by_state
        out = np.empty((len(index), 2), np.int64)
        for k, p in enumerate(index):
            chain = self.chain1[p]
            state = self.states[chain][self.res1[p]]
            same = by_state[bounds[state] : bounds[state + 1]]
            drawn = rng.choice(same, min(tries, len(same)), replace=False)
            found = [j for j in drawn if not self.related[chain, chain_of[j]]]
            if not found:
                found = [rng.choice(np.flatnonzero(~self.related[chain, chain_of]))]
            out[k] = chain_of[found[0]], residue_of[found[0]]
        return out

    @cached_property
    def _residues_by_state(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Chain and residue of every residue of ``states`` (flattened), the flat indices sorted by state
        (ascending within a state), and where each state's run starts (``bounds[s]:bounds[s + 1]``)."""
        chain_of = np.concatenate([np.full(len(s), c) for c, s in enumerate(self.states)])
        residue_of = np.concatenate([np.arange(len(s)) for s in self.states])
        state_of = np.concatenate(self.states)
        by_state = np.argsort(state_of, kind="stable")
        bounds = np.searchsorted(state_of[by_state], np.arange(int(state_of.max()) + 2))
        return chain_of, residue_of, by_state, bounds

    def batch(self, index: np.ndarray, rivals: np.ndarray | None = None) -> Microenvironments:
        """The first residues of pairs ``index``, then their partners, in that order (``2 n``
        microenvironments, padded to the largest), then the ``rivals`` rows (chain, residue), if given."""
        rows = [(self.chain1[p], self.res1[p]) for p in index] + [(self.chain2[p], self.res2[p]) for p in index]
        rows += [] if rivals is None else [(c, r) for c, r in rivals]
        return collate([self.envs[c].take(np.array([r])) for c, r in rows])


def load_pair_set(
    structures: Sequence[str | Path],
    alignments: str | Path,
    min_tm: float | None = None,
    rivals: bool = False,
    radius: float = RADIUS,
) -> PairSet:
    """The close pairs of :func:`aligned_chains` with every aligned chain's microenvironments; with ``rivals``,
    also the 3Di states and relations :meth:`PairSet.rivals` draws from (an :class:`InputError` when a pair's first
    chain is related to every other, which leaves its residues no rival). A chain 3Di cannot encode (no backbone)
    gets a state of its own and a line in ``skipped``."""
    found = aligned_chains(structures, alignments, min_tm)
    names = sorted(found.chains)
    where = {n: k for k, n in enumerate(names)}
    rows = []
    for a in found.alignments:
        i, j = a.close_pairs()
        rows.append(np.stack([np.full(len(i), where[a.name1]), i, np.full(len(j), where[a.name2]), j]))
    rows = [r for r in rows if r.shape[1]]
    if not rows:
        raise InputError(f"{alignments}: its alignments have no close residue pair")
    chain1, res1, chain2, res2 = np.concatenate(rows, axis=1).astype(np.int64)
    bounds = np.cumsum([0] + [r.shape[1] for r in rows])
    envs = tuple(microenvironments(found.chains[n], radius=radius) for n in names)
    if not rivals:
        return PairSet(envs, chain1, res1, chain2, res2, bounds, found.skipped)
    related = np.eye(len(names), dtype=bool)
    for a in found.alignments:
        related[where[a.name1], where[a.name2]] = related[where[a.name2], where[a.name1]] = True
    hubs = [names[c] for c in np.unique(chain1) if related[c].all()]
    if hubs:
        raise InputError(f"{alignments}: {len(hubs)} chain(s) aligned to every other chain, so their residues can have "
                         f"no hard rival (e.g. {', '.join(hubs[:3])}); add chains of other families to the structures")
    tokenizer, states, stateless = ThreeDiTokenizer(), [], []
    for n in names:
        try:
            states.append(tokenizer.encode(found.chains[n]))
        except StructureError as exc:  # no backbone (CA-only): a state of its own, shared by no 3Di residue
            states.append(np.full(len(found.chains[n]), len(tokenizer.alphabet), np.uint8))
            stateless.append(f"{exc} (its residues have rivals of no particular 3Di state)")
    skipped = found.skipped + tuple(stateless)
    return PairSet(envs, chain1, res1, chain2, res2, bounds, skipped, tuple(states), related)
