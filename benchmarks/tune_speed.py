"""Throughput of one structure-tuning step (forward + backward + AdamW) for ESM2 shapes.

Prints tokens/s per shape (and on CPU the CPU seconds per step, which shared cores inflate less), measured side by side
in one run on random weights and sequences:
t6 (8M) and t12 (35M) on CPU; on a CUDA device also t33 (650M) with bf16 autocast, with the model
FLOPs utilisation (MFU = 6 * parameters * tokens + attention FLOPs, over ``--peak-tflops``).

    python benchmarks/tune_speed.py --threads 1 --batch 8 --crop 512 --steps 2
"""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext

import numpy as np
import torch

from ismtk.plm.esm import EsmConfig
from ismtk.plm.heads import StreamInfo
from ismtk.plm.tune_data import TuneData, collate, make_example
from ismtk.plm.tuner import StructureTuner, loss_sums

SHAPES = {"t6": EsmConfig(6, 320, 20), "t12": EsmConfig(12, 480, 20), "t33": EsmConfig(33, 1280, 20)}
THREEDI = "ACDEFGHIKLMNPQRSTVWY"


def batch_of(n: int, crop: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    aa = [rng.integers(4, 24, size=crop) for _ in range(n)]
    tokens = [[rng.integers(1, 21, size=crop) for _ in range(n)]]
    data = TuneData([str(i) for i in range(n)], aa, tokens, [StreamInfo("3di", THREEDI)], [])
    return collate([make_example(data, i, crop, np.random.default_rng(i)) for i in range(n)])


def step_seconds(config: EsmConfig, batch, device: torch.device, steps: int, bf16: bool,
                 checkpointing: bool) -> tuple[float, float]:
    """Median wall-clock and CPU (process) seconds of a step, after one warm-up step."""
    torch.manual_seed(0)
    model = StructureTuner(config.build(), [StreamInfo("3di", THREEDI)], checkpointing).to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = batch.to(device)
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
    times, cpu = [], []
    for _ in range(steps + 1):  # the first step warms up allocators and kernels
        if device.type == "cuda":
            torch.cuda.synchronize()
        tic, cpu_tic = time.perf_counter(), time.process_time()
        with autocast():
            mlm, heads = model(batch.tokens)
        sums = loss_sums(mlm, [heads["3di"]], batch)
        (sums.mlm / sums.mlm_count + sums.streams[0] / sums.counts[0]).backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - tic)
        cpu.append(time.process_time() - cpu_tic)
    return float(np.median(times[1:])), float(np.median(cpu[1:]))


def model_flops(config: EsmConfig, batch: int, length: int) -> float:
    """Training FLOPs of one step: 6 * N * tokens for the weights plus 3 * 4 * L * T^2 * D for attention."""
    params = 12 * config.num_layers * config.embed_dim**2
    tokens = batch * length
    return 6 * params * tokens + 12 * config.num_layers * batch * length**2 * config.embed_dim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--shapes", nargs="+", default=None)
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="GPU bf16 dense peak (H100 SXM: 989)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    shapes = args.shapes or (["t6", "t12", "t33"] if cuda else ["t6", "t12"])
    batch = batch_of(args.batch, args.crop)
    tokens = int(batch.tokens.ne(1).sum())
    where = torch.cuda.get_device_name() if cuda else f"CPU, {args.threads} thread(s), fp32 (no GPU here)"
    print(f"device: {where}; batch {args.batch} x {args.crop} residues ({tokens} tokens); median of {args.steps}")
    for name in shapes:
        seconds, cpu = step_seconds(SHAPES[name], batch, device, args.steps, cuda, args.activation_checkpointing)
        line = f"{name}: {seconds:.2f} s/step, {tokens / seconds:,.0f} tokens/s"
        if not cuda:  # CPU time is what a step costs without other jobs on the cores
            line += f" (CPU {cpu:.2f} s/step, {tokens / cpu:,.0f} tokens per CPU-second)"
        if cuda:
            mfu = model_flops(SHAPES[name], args.batch, args.crop + 2) / seconds / (args.peak_tflops * 1e12)
            line += f", MFU {mfu:.1%}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
