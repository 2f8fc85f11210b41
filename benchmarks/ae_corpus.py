"""What the training data is worth: the same autoencoder trained for the same steps on the old corpus
(``structures`` only) and on the combined one (``structures`` + ``pdb_sample`` + ``cath2738``), from the same
start, then both judged on the same validation microenvironments.

Both runs: the same model (``--init``'s configuration and weights), seed, batch and a constant learning rate
after a short warm-up (so that neither run's schedule depends on its corpus's epoch length); only the chains
drawn differ (one per 40 % cluster per epoch: 252 clusters seen over and over against ~2,100). Every model
(the start and both results) is evaluated on the validation chains of ``structures`` (in both corpora) and on
those of the combined corpus, 32 residues per chain, seed 0. Prints one table.

    python benchmarks/ae_corpus.py --data ../shared/data --init ismtk/data/ism --steps 300 --out /tmp/ae_corpus
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from ismtk.autoencoder.corpus import SkipLog, load_corpus, validation_set
from ismtk.autoencoder.io import load_autoencoder
from ismtk.autoencoder.step import evaluate, summarise
from ismtk.autoencoder.train import TrainAEConfig, train_autoencoder

METRICS = ("aa_recovery", "rmsd", "disto_acc", "aa", "disto")


def corpora(data: Path) -> dict[str, tuple[list[Path], list[Path]]]:
    """Inputs and extra index tables of each corpus."""
    return {
        "old (structures)": ([data / "structures"], []),
        "new (+ pdb_sample + cath2738)": (
            [data / "structures", data / "pdb_sample", data / "cath2738"],
            [data / "cath2738" / "classification.tsv"],
        ),
    }


def judge(model_dir: Path, sets: dict[str, object]) -> dict[str, dict[str, float]]:
    model = load_autoencoder(model_dir)
    device = torch.device("cpu")
    return {name: summarise({k: float(v) for k, v in evaluate(model, envs, device, 250_000).items()})
            for name, envs in sets.items()}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    ap.add_argument("--init", type=Path, required=True, help="model folder both runs start from")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--coord-weight", type=float, default=0.05)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, required=True, help="folder of the two runs (must not hold them yet)")
    args = ap.parse_args()
    torch.manual_seed(0)
    model_cfg = load_autoencoder(args.init).cfg
    cfg = TrainAEConfig(
        stage="2", epochs_stage2=1000, batch_size=args.batch_size, lr=args.lr, warmup_epochs=0.02,
        min_lr_ratio=1.0, coord_weight=args.coord_weight, max_steps=args.steps, checkpoint_every=10**9,
    )  # fmt: skip

    sets = {}
    for name, (inputs, index) in corpora(args.data).items():
        corpus = load_corpus(inputs, index)
        sets[f"val of {name.split()[0]}"] = validation_set(
            corpus.val, 32, cfg.min_residues, 0, SkipLog(), radius=model_cfg.radius
        )
        print(f"{name}: {len(corpus.train)} training chains, validation {len(corpus.val)} chains")
    results = {"start": judge(args.init, sets)}
    for name, (inputs, index) in corpora(args.data).items():
        run = args.out / name.split()[0]
        start = time.perf_counter()
        train_autoencoder(inputs, run, model_cfg, cfg, index=index, device="cpu", init=args.init,
                          threads=args.threads)  # fmt: skip
        print(f"trained on {name}: {args.steps} steps x {args.batch_size} in {time.perf_counter() - start:.0f} s")
        results[name] = judge(run, sets)

    print(f"\n{args.steps} steps x {args.batch_size} microenvironments from {args.init}, lr {args.lr} constant")
    for set_name, envs in sets.items():
        print(f"\n{set_name} ({len(envs)} microenvironments)")
        print(f"  {'model':32s}" + "".join(f"{m:>12s}" for m in METRICS))
        for model_name, by_set in results.items():
            row = by_set[set_name]
            print(f"  {model_name:32s}" + "".join(f"{row[m]:12.4f}" for m in METRICS))


if __name__ == "__main__":
    main()
