"""``python -m ismtk``: the same as the ``ismtk`` command (used by torchrun launches)."""

from ismtk.cli import main

main()
