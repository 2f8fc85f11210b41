"""Workflows behind the commands: files in, results on disk, built from the library's lower floors.

``encode`` (structures to token FASTA, in worker processes), ``search`` (queries and targets, given as
structures, token FASTA or databases, to ``.m8`` hits).
"""
