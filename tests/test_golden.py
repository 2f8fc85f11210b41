"""Golden outputs of the shipped default models: a change of tokens is a change users will see."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import STRUCTURES

from ismtk.structure import read_structure
from ismtk.tokenizers import load_tokenizer, read_fasta
from ismtk.tokenizers.ism import DEFAULT_ISM_MODEL

GOLDEN = Path(__file__).parent / "data" / "golden"


@pytest.mark.parametrize(("tokenizer", "golden"), [("ism", "ism_default.fasta"), ("3di", "3di.fasta")])
def test_shipped_tokenizers_reproduce_their_golden_tokens(tokenizer, golden):
    if tokenizer == "ism" and not (DEFAULT_ISM_MODEL / "codebook.json").is_file():
        pytest.fail("the default ISM model is not in the package (ismtk/data/ism)")
    expected = dict(read_fasta(GOLDEN / golden))
    tok = load_tokenizer(tokenizer)
    chains = [c for name in ("1FQJ_l_u", "d1a32a_") for c in read_structure(STRUCTURES / f"{name}.pdb.gz").chains]
    got = {c.name: tok.to_string(c) for c in chains}
    assert got == expected
