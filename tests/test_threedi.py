"""The 3Di tokenizer equals mini3di (the exact port of Foldseek's encoder) and refuses unusable chains."""

from __future__ import annotations

import io

import pytest
from Bio.PDB import PDBParser
from helpers import STRUCTURES, pdb_text
from mini3di import Encoder

from ismtk.errors import StructureError
from ismtk.structure import read_structure
from ismtk.tokenizers import ThreeDiTokenizer


@pytest.mark.parametrize("name", ["1FQJ_l_u", "2G77_r_u", "3SGQ_r_u", "1HZ6", "1APS", "d1a32a_", "d1a1xa_"])
def test_3di_equals_mini3di(name):
    reference = Encoder()
    model = PDBParser(QUIET=True).get_structure(name, io.StringIO(pdb_text(name)))[0]
    expected = [reference.build_sequence(reference.encode_chain(chain)) for chain in model]
    tokenizer = ThreeDiTokenizer()
    assert [tokenizer.to_string(c) for c in read_structure(STRUCTURES / f"{name}.pdb.gz").chains] == expected


def test_ca_only_chain_is_refused(bad_files):
    chain = read_structure(bad_files["ca_only"]).chains[0]
    with pytest.raises(StructureError, match="CA-only chain") as info:
        ThreeDiTokenizer().encode(chain)
    assert "ca_only.pdb" in str(info.value) and "chain 'A'" in str(info.value)
