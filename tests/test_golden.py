"""Golden outputs of the shipped default models: a change of tokens is a change users will see."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import STRUCTURES

from ismtk.structure import read_structure
from ismtk.tokenizers import load_tokenizer, read_fasta
from ismtk.tokenizers.ism import DEFAULT_ISM_MODEL, DEFAULT_ISM_RESIDUAL

GOLDEN = Path(__file__).parent / "data" / "golden"


@pytest.mark.parametrize(
    ("tokenizer", "golden"),
    [("ism", "ism_default.fasta"), ("ism-residual", "ism_residual.fasta"), ("3di", "3di.fasta")],
)
def test_shipped_tokenizers_reproduce_their_golden_tokens(tokenizer, golden):
    for folder in (DEFAULT_ISM_MODEL, DEFAULT_ISM_RESIDUAL):
        if tokenizer.startswith("ism") and not (folder / "codebook.json").is_file():
            pytest.fail(f"a shipped ISM tokenizer is not in the package ({folder})")
    expected = dict(read_fasta(GOLDEN / golden))
    tok = load_tokenizer(tokenizer)
    chains = [c for name in ("1FQJ_l_u", "d1a32a_") for c in read_structure(STRUCTURES / f"{name}.pdb.gz").chains]
    got = {c.name: tok.to_string(c) for c in chains}
    assert got == expected
