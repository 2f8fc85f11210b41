"""How much of the 3Di state of each residue an ISM embedding carries (docs/autoencoder.md, "3Di as a second target").

For chains drawn from ``--files`` (the first chain of each file), every residue's embedding ``z`` (the autoencoder of
``--tokenizer``), its ISM token and its 3Di state. Chains are split by index (every fourth held out) and the
held-out accuracy of predicting the 3Di state is printed for: the most frequent state; the ISM token (its most
frequent training state); a linear softmax on the standardised ``z`` (L-BFGS, small L2 penalty). 3Di tokens are what
finds remote homologs best in ismtk's benchmarks; an embedding that predicts them poorly has room to carry more
backbone geometry.

    python benchmarks/threedi_probe.py --tokenizer ism --files train_files.txt --sample 240
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from ismtk.autoencoder.io import embed_chains
from ismtk.errors import IsmtkError
from ismtk.names import read_names
from ismtk.structure.read import read_structure
from ismtk.tokenizers import load_tokenizer
from ismtk.tokenizers.threedi import ThreeDiTokenizer


def linear_probe(x: np.ndarray, y: np.ndarray, train: np.ndarray, classes: int) -> float:
    """Held-out accuracy of a multinomial logistic regression of ``y`` on ``x`` fitted on rows ``train``."""
    xt = torch.from_numpy(x).double()
    mean, std = xt[train].mean(0), xt[train].std(0) + 1e-6
    xt = (xt - mean) / std
    yt = torch.from_numpy(y)
    fit, held = torch.from_numpy(train), torch.from_numpy(~train)
    model = torch.nn.Linear(x.shape[1], classes).double()
    opt = torch.optim.LBFGS(model.parameters(), max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(model(xt[fit]), yt[fit]) + 1e-4 * model.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float((model(xt[held]).argmax(1) == yt[held]).double().mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", default="ism", help="ISM tokenizer: ism or a folder")
    ap.add_argument("--files", required=True, help="structure paths, one per line")
    ap.add_argument("--sample", type=int, default=240, help="files drawn (seeded)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    files = read_names(args.files)
    files = [files[i] for i in np.random.default_rng(args.seed).permutation(len(files))[: args.sample]]
    ism, threedi = load_tokenizer(args.tokenizer), ThreeDiTokenizer()
    chains, states = [], []
    for path in files:
        try:
            chain = read_structure(path).chains[0]
            states.append(threedi.encode(chain).astype(np.int64))
        except (IsmtkError, IndexError):
            continue
        chains.append(chain)
    z = np.concatenate(embed_chains(ism.model, chains))
    tokens = ism.codebook.assign(z).astype(np.int64)
    state = np.concatenate(states)
    train = np.concatenate([np.full(len(c), i % 4 != 0) for i, c in enumerate(chains)])
    classes = int(state.max()) + 1
    majority = np.bincount(state[train], minlength=classes).argmax()
    table = np.zeros((int(tokens.max()) + 1, classes))
    np.add.at(table, (tokens[train], state[train]), 1)
    print(f"{args.tokenizer}: {len(chains)} chains, {len(state):,} residues ({(~train).sum():,} held out), "
          f"{classes} 3Di states")
    print(f"  most frequent state     {np.mean(state[~train] == majority):.3f}")
    print(f"  ISM token -> 3Di        {np.mean(table.argmax(1)[tokens[~train]] == state[~train]):.3f}")
    print(f"  linear probe z -> 3Di   {linear_probe(z, state, train, classes):.3f}")


if __name__ == "__main__":
    main()
