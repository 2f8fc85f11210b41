"""Held-out pair accuracy of autoencoders: how often a residue's embedding is nearest its structurally aligned
partner's among a batch of other partners.

Scores the close pairs (within 5 A after superposition) of alignments no encoder trained on, with the
pair loss's batches (the same 2,048 pairs for every model, drawn as ``train-ae --pair-val-alignments`` does
with ``--seed 0``; batches of 128), and prints each model's partner-picking accuracy and mean pair loss:

    python benchmarks/pair_accuracy.py --alignments hom_odd.aln --structures train_files.txt \\
        --model ismtk/data/ism weights/candidate
"""

from __future__ import annotations

import argparse
import functools

import torch

from ismtk.autoencoder.io import load_autoencoder
from ismtk.autoencoder.pairs import load_pair_set
from ismtk.autoencoder.step import pair_evaluate
from ismtk.autoencoder.train import MICRO_BATCH_PAIRS, TrainAEConfig, validation_pair_batches


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--alignments", required=True, help="held-out alignments (ismtk align-pairs)")
    ap.add_argument("--structures", required=True, help="file, folder or .txt list of the aligned chains")
    ap.add_argument("--model", required=True, nargs="+", help="autoencoder folders (model.json + model.pt)")
    ap.add_argument("--min-tm", type=float, default=TrainAEConfig.pair_min_tm)
    ap.add_argument("--batch", type=int, default=TrainAEConfig.pair_batch)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)

    @functools.cache
    def batches_at(radius: float) -> list:
        """The pairs' batches as microenvironments of ``radius`` A (each model is judged at its own radius)."""
        pairs = load_pair_set([args.structures], args.alignments, args.min_tm, radius=radius)
        chosen = validation_pair_batches(pairs, 0, args.batch)
        print(f"{sum(map(len, chosen)):,} of {len(pairs):,} close pairs of {pairs.alignments:,} alignments, "
              f"batches of {args.batch}, {radius:g} A microenvironments")
        return [pairs.batch(b) for b in chosen]

    models = [(folder, load_autoencoder(folder)) for folder in args.model]
    for _, model in models:
        batches_at(model.cfg.radius)
    print("| model | pair accuracy | pair loss |\n| --- | --- | --- |")
    for folder, model in models:
        sums = pair_evaluate(model, batches_at(model.cfg.radius), TrainAEConfig.pair_temperature,
                             MICRO_BATCH_PAIRS[0], torch.device("cpu"), workers=args.threads)  # fmt: skip
        n = float(sums["pairs"])
        print(f"| {folder} | {float(sums['pair_acc']) / n:.3f} | {float(sums['pair']) / n:.3f} |", flush=True)


if __name__ == "__main__":
    main()
