"""``python -m ismtk``: the command line."""

from ismtk.cli import main

main()
