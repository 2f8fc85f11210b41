"""Torch models: ESM2 forward passes and heads (the autoencoder joins here)."""
