"""Torch models of ismtk: the atomic autoencoder, its geometry and losses."""

from ismtk.models.autoencoder import AtomicAutoencoder, AutoencoderConfig
from ismtk.models.losses import autoencoder_losses

__all__ = ["AtomicAutoencoder", "AutoencoderConfig", "autoencoder_losses"]
