"""ISM structure tokens: autoencoder embeddings z of each residue's masked microenvironment, assigned to
the nearest centroid of a k-means codebook (ISM paper, Ouyang-Zhang et al. 2024; K = 64 by the elbow method).

An ISM tokenizer is a folder: the encoder (``model.json`` + ``model.pt``) and ``codebook.json`` (made by
``ismtk cluster``), optionally its substitution matrix ``matrix.out``. Its identity is ``ism:`` and the
first 12 hex digits of the SHA-256 of the codebook's content (alphabet, disorder token, centroids and the
SHA-256 of the encoder weights it was fitted on), so that it names the same tokens wherever the folder lies.

A residual ISM tokenizer (``ismtk cluster --residual``) tokenizes what the tokens of another leave: its codebook
holds the one it refines, and its folder may sit inside that tokenizer's folder and use the encoder there. The
shipped one, ``ism-residual``, refines the shipped ``ism``; the two are the tracks ``ism`` and ``ism-residual`` of
a database, and embedding a chain once serves both.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path

import numpy as np
import torch

from ismtk.autoencoder.codebook import CODEBOOK_FILE, Codebook, file_sha256
from ismtk.errors import InputError
from ismtk.search.matrix import TOKENIZER_MATRIX
from ismtk.structure.chain import ProteinChain
from ismtk.tokenizers.base import Tokenizer, check_chains, require_backbone

__all__ = [
    "DEFAULT_ISM_MODEL",
    "DEFAULT_ISM_RESIDUAL",
    "IsmTokenizer",
    "codebook_identity",
    "default_identity",
    "default_residual_identity",
]

#: The shipped default: encoder (``model.json`` + ``model.pt``) and ``codebook.json`` in one folder.
DEFAULT_ISM_MODEL = Path(str(files("ismtk") / "data" / "ism"))
#: The shipped residual tokenizer of the default (``codebook.json`` and ``matrix.out``; the encoder is its parent's).
DEFAULT_ISM_RESIDUAL = DEFAULT_ISM_MODEL / "residual"
#: Hex digits of the codebook's SHA-256 in an ISM identity (48 bits: collisions need ~10^7 codebooks).
IDENTITY_DIGITS = 12


def codebook_identity(codebook: Codebook) -> str:
    """``ism:<12 hex digits>``: the SHA-256 of the codebook's content (not of its file, so re-saving or
    line endings do not change it); it covers the encoder through the SHA-256 the codebook records."""
    header = {
        "alphabet": codebook.alphabet.symbols,
        "disorder_token": codebook.disorder_token,
        "encoder_sha256": codebook.encoder_sha256,
        "shape": list(codebook.centroids.shape),
    }
    if codebook.base is not None:
        header["base"] = codebook_identity(codebook.base)
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(codebook.centroids, dtype="<f4").tobytes())
    if codebook.metric is not None:
        digest.update(np.ascontiguousarray(codebook.metric, dtype="<f8").tobytes())
    return f"ism:{digest.hexdigest()[:IDENTITY_DIGITS]}"


@functools.cache
def default_identity() -> str:
    """The identity of the shipped default ISM tokenizer."""
    return codebook_identity(Codebook.load(DEFAULT_ISM_MODEL / CODEBOOK_FILE))


@functools.cache
def default_residual_identity() -> str:
    """The identity of the shipped residual ISM tokenizer."""
    return codebook_identity(Codebook.load(DEFAULT_ISM_RESIDUAL / CODEBOOK_FILE))


def encoder_folder(folder: Path, codebook: Codebook) -> Path:
    """Where the encoder of an ISM tokenizer folder lies: in it, or, for a residual codebook without one of its own,
    in the folder above (the tokenizer it refines)."""
    from ismtk.autoencoder.io import MODEL_WEIGHTS

    if codebook.base is not None and not (folder / MODEL_WEIGHTS).is_file():
        return folder.parent
    return folder


#: The embeddings of the chains embedded last, and by which encoder on which device (see :func:`_embeddings`).
_last_embedded: tuple[tuple[str, str, bytes], tuple[ProteinChain, ...], list[np.ndarray]] | None = None


def _embeddings(encoder: str, model: torch.nn.Module, chains: Sequence[ProteinChain]) -> list[np.ndarray]:
    """Embeddings of ``chains`` by ``model`` (whose weights have SHA-256 ``encoder``). A tokenizer and its residual
    tokenizer, asked for tokens of the same chain objects one after the other (the tracks of a database), share one
    embedding: the last call's is kept while it holds those very chains with the same atoms (a digest of their
    arrays, so coordinates changed in place are embedded again)."""
    from ismtk.autoencoder.io import embed_chains

    global _last_embedded
    key = (encoder, str(next(model.parameters()).device), _atoms_digest(chains))
    if _last_embedded is not None and _last_embedded[0] == key and len(_last_embedded[1]) == len(chains) and all(
        a is b for a, b in zip(_last_embedded[1], chains, strict=True)
    ):
        return _last_embedded[2]
    z = embed_chains(model, chains)
    _last_embedded = key, tuple(chains), z
    return z


def _model_width(folder: Path) -> int | None:
    """The embedding width ``model.json`` in ``folder`` names (``None`` if it names none; loading it says why)."""
    from ismtk.autoencoder.io import MODEL_CONFIG

    try:
        width = json.loads((folder / MODEL_CONFIG).read_text()).get("width")
    except (OSError, ValueError, AttributeError):
        return None
    return width if isinstance(width, int) else None


def _atoms_digest(chains: Sequence[ProteinChain]) -> bytes:
    """A digest of what a microenvironment reads of ``chains``: coordinates, elements, residues, C-alphas."""
    digest = hashlib.blake2b(digest_size=16)
    for chain in chains:
        for array in (chain.coords, chain.elements, chain.atom_residue, chain.ca_index):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(chain.sequence.encode())
    return digest.digest()


class IsmTokenizer(Tokenizer):
    """Tokens of a trained autoencoder + codebook folder (``model.json``, ``model.pt``, ``codebook.json``).

    The codebook records the SHA-256 of the encoder weights it was fitted on; a mismatch is an error. A residual
    codebook makes the tokenizer's :attr:`name` ``ism-residual``.
    Embeddings are assigned to centroids in float64, so tokens do not change with the thread count. The
    encoder is loaded when tokens are first made: reading a token FASTA or a database needs only the
    codebook (:attr:`alphabet`, :attr:`identity`).

    >>> tokenizer = IsmTokenizer()  # the shipped default
    >>> tokenizer.identity == default_identity(), len(tokenizer.alphabet), tokenizer.matrix
    (True, 64, 'ism')
    """

    name = "ism"
    uses_torch = True

    def __init__(self, folder: str | Path = DEFAULT_ISM_MODEL, device: str = "cpu") -> None:
        from ismtk.autoencoder.io import MODEL_WEIGHTS

        folder = Path(folder)
        codebook_path = folder / CODEBOOK_FILE
        if not codebook_path.is_file():
            raise InputError(f"{folder}: no {CODEBOOK_FILE}; make one with 'ismtk cluster {folder} STRUCTS -o ...'")
        self.codebook = Codebook.load(codebook_path)
        self.encoder = encoder_folder(folder, self.codebook)
        if not (self.encoder / MODEL_WEIGHTS).is_file():
            raise InputError(f"{folder}: no encoder ({MODEL_WEIGHTS}) beside {CODEBOOK_FILE}"
                             + (" nor in the folder above" if self.encoder != folder else ""))
        width = _model_width(self.encoder)
        if width is not None and self.codebook.centroids.shape[1] != width:
            raise InputError(f"{codebook_path}: centroids of width {self.codebook.centroids.shape[1]}, but the encoder "
                             f"embeds in {width} dimensions; make the tokenizer again with 'ismtk cluster'")
        if self.codebook.encoder_sha256 != file_sha256(self.encoder / MODEL_WEIGHTS):
            raise InputError(
                f"{codebook_path}: codebook was fitted on another encoder than {self.encoder / MODEL_WEIGHTS} (the "
                f"weights were replaced or damaged since); make the tokenizer again with 'ismtk cluster'"
            )
        if self.codebook.base is not None:
            self.name = "ism-residual"
            above = self.encoder / CODEBOOK_FILE
            base = codebook_identity(self.codebook.base)
            if self.encoder != folder and above.is_file() and codebook_identity(Codebook.load(above)) != base:
                raise InputError(f"{codebook_path}: a residual codebook of another codebook than {above}; make it "
                                 f"again with 'ismtk cluster {self.encoder} STRUCTS -o {folder} --residual'")
        self.alphabet = self.codebook.alphabet
        self.folder = folder
        self.device = device
        self._identity = codebook_identity(self.codebook)
        shipped = self._identity == default_identity() and not (folder / TOKENIZER_MATRIX).is_file()
        self.matrix = "ism" if shipped else str(folder.resolve())

    @property
    def identity(self) -> str:
        return self._identity

    @functools.cached_property
    def model(self) -> torch.nn.Module:
        """The encoder, loaded on first use."""
        from ismtk.autoencoder.io import load_autoencoder

        return load_autoencoder(self.encoder, self.device)

    def to(self, device: str) -> IsmTokenizer:
        self.model = self.model.to(device)
        return self

    @torch.inference_mode()
    def encode_many(self, chains: Sequence[ProteinChain]) -> list[np.ndarray]:
        for chain in check_chains(chains):
            require_backbone(chain, "ISM tokens are made from all-atom microenvironments")
        return [self.codebook.assign(z) for z in _embeddings(self.codebook.encoder_sha256, self.model, chains)]

    def encode(self, chain: ProteinChain) -> np.ndarray:
        return self.encode_many([chain])[0]
