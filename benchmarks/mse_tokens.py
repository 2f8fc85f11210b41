"""How much selenomethionine's selenium changes ISM tokens: each chain encoded as read (MSE's SE atom, element Se)
and with the selenium written as Met's sulphur (SD, element S), side by side.

Prints, per file and in total, the MSE residues, how many of their tokens differ, and how many tokens of the other
residues differ (the selenium is in their microenvironments too).

    python benchmarks/mse_tokens.py /work/shared/data/structures/pdb/{2G77_r_u,4FZA_r_u,1KKL_r_u,3O39,3L15}.pdb.gz
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from ismtk.structure import read_structure
from ismtk.structure.chain import ProteinChain
from ismtk.tokenizers import load_tokenizer


def as_sulphur(chain: ProteinChain) -> ProteinChain:
    """``chain`` with every MSE selenium written as Met's SD sulphur."""
    residue = np.where(chain.atom_residue >= 0, chain.atom_residue, 0)
    selenium = (chain.residue_names[residue] == "MSE") & (chain.atom_names == "SE") & (chain.atom_residue >= 0)
    return replace(chain, atom_names=np.where(selenium, "SD", chain.atom_names),
                   elements=np.where(selenium, "S", chain.elements))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+")
    parser.add_argument("--tokenizer", default="ism")
    args = parser.parse_args()
    tokenizer = load_tokenizer(args.tokenizer)
    totals = np.zeros(4, np.int64)  # MSE residues, MSE tokens changed, other residues, other tokens changed
    for path in args.files:
        for chain in read_structure(path).chains:
            mse = chain.residue_names == "MSE"
            if not mse.any():
                continue
            as_read, sulphur = tokenizer.encode(chain), tokenizer.encode(as_sulphur(chain))
            changed = as_read != sulphur
            row = np.array([mse.sum(), (changed & mse).sum(), (~mse).sum(), (changed & ~mse).sum()])
            totals += row
            print(f"{chain.name}\tMSE {row[0]}\tchanged {row[1]}\tother {row[2]}\tchanged {row[3]}")
    print(f"total: {totals[1]} of {totals[0]} MSE tokens differ ({100 * totals[1] / max(totals[0], 1):.1f} %), "
          f"{totals[3]} of {totals[2]} other tokens ({100 * totals[3] / max(totals[2], 1):.2f} %)")


if __name__ == "__main__":
    main()
