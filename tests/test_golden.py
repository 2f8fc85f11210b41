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


def test_the_token_fasta_shown_in_the_encode_docs_is_what_the_shipped_models_write():
    docs = (Path(__file__).parent.parent / "docs" / "encode.md").read_text()
    for tokenizer, golden in (("ism", "ism_default.fasta"), ("3di", "3di.fasta")):
        identity = load_tokenizer(tokenizer).identity
        shown = docs.split(f">1FQJ_l_u tokenizer={identity} ", 1)[1].split("\n", 2)[1].strip().removesuffix("...")
        assert dict(read_fasta(GOLDEN / golden))["1FQJ_l_u"].startswith(shown) and len(shown) >= 60
