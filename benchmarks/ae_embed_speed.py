"""Speed of residue embeddings from the autoencoder (:func:`ismtk.autoencoder.io.embed_chains`).

Goal for the shipped model (issue 4): >= 300 residues/s on 2 CPU cores. Uses a trained model folder if
given (``--model RUN``), else a randomly initialised model of the default size (same cost).

    PYTHONPATH=. python benchmarks/ae_embed_speed.py /work/shared/data/structures/pdb --files 10 --threads 2
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ismtk.autoencoder.io import embed_chains, load_autoencoder
from ismtk.autoencoder.model import AtomicAutoencoder, AutoencoderConfig
from ismtk.structure import find_structure_files, read_structure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path)
    parser.add_argument("--model", type=Path, help="Model or run folder (default: random default-size model).")
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_autoencoder(args.model) if args.model else AtomicAutoencoder(AutoencoderConfig()).eval()
    files = find_structure_files(args.inputs)
    files = files[:: max(1, len(files) // args.files)][: args.files]
    chains = [c for f in files for c in read_structure(f).chains]
    residues = sum(len(c) for c in chains)
    embed_chains(model, chains[:1])
    start = time.perf_counter()
    embed_chains(model, chains, batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    cfg = model.cfg
    print(
        f"width {cfg.width}, {cfg.layers} layers, {cfg.heads} heads, {args.threads} threads: {len(chains)} chains, "
        f"{residues:,} residues in {seconds:.1f} s = {residues / seconds:,.0f} residues/s"
    )


if __name__ == "__main__":
    main()
