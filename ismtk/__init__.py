"""ismtk: implicit structure models -- structure tokens, structure-tuned ESM2, token search."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ismtk")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
