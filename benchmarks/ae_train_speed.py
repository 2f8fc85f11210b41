"""Autoencoder training throughput: today's trainer step against an older commit's, side by side.

One training step = forward + backward + gradient clipping + AdamW step on a batch of real microenvironments
(one chain per cluster of the corpus, as ``train-ae`` draws them). Both sides start from the same weights
(written by the old side) and see the same batches; the step-0 losses must agree (same maths). Each
measurement is a fresh process; old and new alternate (interleaved repeats) so that machine load hits both.

    python benchmarks/ae_train_speed.py --data ../shared/data/structures --old-rev 6aa9576 --widths 64 128

Prints envs/s of each side per width and the ratio (median of the repeats), and the step-0 losses. Both sides run
with ``OMP_WAIT_POLICY=PASSIVE`` unless the variable is set: on a busy machine torch's spinning OpenMP threads
would slow the old trainer's two intra-op threads several-fold.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
#: Model shapes measured per width (the shipped ae64 and the paper's width-128 model).
SHAPES = {64: {"heads": 4, "layers": 3}, 128: {"heads": 8, "layers": 4}}


def make_batches(data: str, n: int, batch_size: int, path: Path) -> None:
    from ismtk.autoencoder.corpus import SkipLog, epoch_entries, load_corpus, shard_stream

    corpus = load_corpus([data])
    stream = shard_stream(epoch_entries(corpus, 0, 0), batch_size, 128, 20, 16, np.random.default_rng(0), SkipLog())
    batches = [next(stream) for _ in range(n)]
    np.savez(
        path, **{f"{k}{i}": getattr(b, k) for i, b in enumerate(batches) for k in ("coords", "elements", "mask", "aa")}
    )


def worker(args: argparse.Namespace) -> None:
    """One side in its own process: ``old`` (the step of the older trainer) or ``new`` (today's)."""
    import torch

    from ismtk.autoencoder.losses import autoencoder_losses
    from ismtk.autoencoder.model import AtomicAutoencoder, AutoencoderConfig

    torch.set_num_threads(args.threads)
    saved = np.load(args.batches)
    n = len([k for k in saved.files if k.startswith("aa")])
    keys = ("coords", "elements", "mask", "aa")
    shape = dict(width=args.width, **SHAPES[args.width])
    if args.side == "old":
        cfg = AutoencoderConfig(**shape)
        torch.manual_seed(0)
        model = AtomicAutoencoder(cfg)
        if not Path(args.weights).exists():
            torch.save(model.state_dict(), args.weights)
        model.load_state_dict(torch.load(args.weights, weights_only=True))
    else:  # the old weights; a new decoder input keeps only the tensors that fit it
        cfg = AutoencoderConfig(**shape, decoder_input=args.decoder)
        torch.manual_seed(0)
        model = AtomicAutoencoder(cfg)
        mine = model.state_dict()
        state = torch.load(args.weights, weights_only=True)
        model.load_state_dict({k: v for k, v in state.items() if k in mine and mine[k].shape == v.shape}, strict=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    if args.side == "old":
        batches = [{k: torch.from_numpy(saved[f"{k}{i}"]) for k in keys} for i in range(n)]

        def step(x) -> float:  # the trainer's step at the old commit
            out = model(x["coords"], x["elements"], x["mask"])
            losses, _ = autoencoder_losses(out, x["coords"], x["mask"], x["aa"], cfg)
            loss = sum(losses.values())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return loss.item()
    else:
        from ismtk.autoencoder.losses import LOSS_NAMES
        from ismtk.autoencoder.step import forward_backward, micro_batches
        from ismtk.structure.microenv import Microenvironments

        batches = [Microenvironments(*(saved[f"{k}{i}"] for k in keys)) for i in range(n)]
        weights = dict.fromkeys(LOSS_NAMES, 1.0)
        torch.set_num_threads(1)  # as train-ae on the CPU: micro-batches on `threads` threads of 1-thread ops

        def step(batch) -> float:  # today's trainer step
            opt.zero_grad(set_to_none=True)
            parts = micro_batches(batch, args.micro_pairs)
            losses = forward_backward(model, cfg, parts, weights, len(batch), torch.device("cpu"), workers=args.threads)
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            return losses["loss"].item()

    first = step(batches[0])  # step 0: the loss of the initial weights on batch 0 (also the warm-up)
    sizes = [len(saved[f"aa{i}"]) for i in range(n)]
    start = time.perf_counter()
    envs = 0
    for i in range(1, args.steps + 1):
        step(batches[i % n])
        envs += sizes[i % n]
    print(json.dumps({"envs_per_s": envs / (time.perf_counter() - start), "step0_loss": first}))


def run_side(side: str, tree: Path, args: argparse.Namespace, width: int, weights: Path, decoder: str) -> dict:
    cmd = [sys.executable, __file__, "--worker", side, "--batches", str(args.batches_file), "--width", str(width)]
    cmd += ["--weights", str(weights), "--threads", str(args.threads), "--steps", str(args.steps)]
    cmd += ["--decoder", decoder, "--micro-pairs", str(args.micro_pairs)]
    # passive OpenMP waits on both sides: on a shared machine spinning threads would penalise the old trainer
    policy = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS=str(args.threads), OMP_WAIT_POLICY=policy)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{side} side failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="../shared/data/structures", help="training corpus folder (with index.csv)")
    parser.add_argument("--old-rev", default="6aa9576", help="git revision of the old trainer")
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 128], choices=sorted(SHAPES))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--n-batches", type=int, default=4, help="distinct batches, cycled")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per measurement (after one warm-up step)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--micro-pairs", type=int, default=None, help="new side's micro_batch_pairs (default: trainer's)"
    )
    parser.add_argument("--decoders", nargs="+", default=["embedding", "atoms"], help="new side's decoder inputs")
    parser.add_argument("--worker", choices=["old", "new"], help=argparse.SUPPRESS)
    parser.add_argument("--batches", help=argparse.SUPPRESS)
    parser.add_argument("--weights", help=argparse.SUPPRESS)
    parser.add_argument("--width", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--decoder", default="embedding", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.side = args.worker
        return worker(args)
    if args.micro_pairs is None:
        sys.path.insert(0, str(ROOT))
        from ismtk.autoencoder.train import MICRO_BATCH_PAIRS

        args.micro_pairs = MICRO_BATCH_PAIRS[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        old_tree = tmp / "old"
        old_tree.mkdir()
        archive = subprocess.run(
            ["git", "-C", str(ROOT), "archive", args.old_rev, "ismtk"], capture_output=True, check=True
        )
        with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
            tar.extractall(old_tree, filter="data")
        args.batches_file = tmp / "batches.npz"
        sys.path.insert(0, str(ROOT))
        make_batches(args.data, args.n_batches, args.batch_size, args.batches_file)
        print(f"load before: {os.getloadavg()[0]:.2f} (1-minute average, {os.cpu_count()} cores)")
        for width in args.widths:
            weights = tmp / f"w{width}.pt"
            rates: dict[str, list[float]] = {"old": [], **{f"new ({d})": [] for d in args.decoders}}
            losses: dict[str, float] = {}
            for _ in range(args.repeats):
                result = run_side("old", old_tree, args, width, weights, "embedding")
                rates["old"].append(result["envs_per_s"])
                losses["old"] = result["step0_loss"]
                for decoder in args.decoders:
                    result = run_side("new", ROOT, args, width, weights, decoder)
                    rates[f"new ({decoder})"].append(result["envs_per_s"])
                    losses[f"new ({decoder})"] = result["step0_loss"]
            base = statistics.median(rates["old"])
            print(f"width {width} ({SHAPES[width]}), batch {args.batch_size}, {args.threads} threads:")
            for side, values in rates.items():
                median = statistics.median(values)
                print(
                    f"  {side:<18} {median:8.1f} envs/s  (runs: {', '.join(f'{v:.1f}' for v in values)})  "
                    f"x{median / base:.2f}  step-0 loss {losses[side]:.6f}"
                )
        print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
