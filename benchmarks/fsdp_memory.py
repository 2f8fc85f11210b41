"""Peak host memory per rank of ``structure-tune --fsdp`` in two gloo processes: this checkout against another.

Each source tree (``--old``, e.g. a checkout of an earlier commit, and this one) runs the same two commands on a
random ESM2 of ``--layers`` x ``--width``: a fresh run stopped after one step (with a checkpoint), then
``--resume`` for one more step. Every rank records its peak resident set size (``VmHWM``) twice: when the model
is built and restored, just before training starts (what loading costs; on a GPU node this is the host memory
every rank needs), and at the end (on gloo the shards, gradients and optimizer state live in host memory too).
The final weights of the two trees are compared. The runs alternate old/new ``--repeats`` times.

    python benchmarks/fsdp_memory.py --old /path/to/old/checkout --layers 12 --width 640

The memory that matters on a GPU node is the same: the old code made every rank load the whole backbone (and on
resume the whole checkpoint) into host memory before sharding; this one has rank 0 read and broadcast.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parents[1]
AMINO = "ACDEFGHIKLMNPQRSTVWY"


def peak_mib() -> float:
    """This process's peak resident set size so far (``VmHWM``), MiB."""
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return int(status["VmHWM"].split()[0]) / 1024


def as_rank(source: str, rss_dir: str, argv: list[str]) -> None:
    """Inside torchrun: run ``ismtk argv`` from ``source``; write this rank's peak RSS (MiB) before training
    starts and at the end."""
    sys.path.insert(0, source)
    from ismtk.cli import main
    from ismtk.plm.tune import StructureTuneTrainer

    loading = []
    start_run = StructureTuneTrainer.start_run

    def record_then_start(self, step: int) -> None:
        loading.append(peak_mib())
        start_run(self, step)

    StructureTuneTrainer.start_run = record_then_start
    sys.argv = ["ismtk", *argv]
    try:
        main()
    except SystemExit as exc:
        if exc.code:
            raise
    Path(rss_dir, f"rank{os.environ['RANK']}.txt").write_text(f"{loading[0]:.0f} {peak_mib():.0f}")


def write_inputs(folder: Path, layers: int, width: int) -> tuple[Path, Path, Path]:
    """A random fair-esm backbone and 16 random records with a learnable 3Di-alphabet stream."""
    sys.path.insert(0, str(HERE))
    import torch

    from ismtk.plm.esm import EsmConfig, save_fair_esm

    torch.manual_seed(0)
    backbone, _ = save_fair_esm(EsmConfig(layers, width, 20).build(), folder / f"esm2_t{layers}_bench.pt")
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list(AMINO), size=int(rng.integers(30, 60)))) for _ in range(16)]
    aa, tok = folder / "aa.fasta", folder / "tok.fasta"
    aa.write_text("".join(f">p{i}\n{s}\n" for i, s in enumerate(seqs)))
    tok.write_text("".join(f">p{i}\n{''.join(AMINO[(AMINO.index(c) * 7) % 20] for c in s)}\n"
                           for i, s in enumerate(seqs)))
    return backbone, aa, tok


def run(source: Path, out: Path, backbone: Path, aa: Path, tok: Path, extra: list[str]) -> list[list[float]]:
    """One two-process command; returns the peak RSS (MiB) of rank 0 and rank 1: ``[[loading, end] per rank]``."""
    rss = Path(tempfile.mkdtemp(dir=out.parent))
    args = ["structure-tune", str(backbone), "--aa", str(aa), "--tokens", f"{tok}:name=3di", "-o", str(out),
            "--epochs", "1", "--batch-size", "4", "--micro-batch", "2", "--crop", "32", "--val-fraction", "0.2",
            "--threads", "1", "--nproc", "2", "--fsdp", "--device", "cpu", *extra]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           str(Path(__file__).resolve()), "--as-rank", str(source), str(rss), "--", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(source)}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{source}: failed\n{done.stderr[-3000:]}")
    return [[float(v) for v in (rss / f"rank{r}.txt").read_text().split()] for r in (0, 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="source tree of the code to compare against")
    parser.add_argument("--layers", type=int, default=12)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    import torch

    work = Path(tempfile.mkdtemp(prefix="fsdp_memory_"))
    backbone, aa, tok = write_inputs(work, args.layers, args.width)
    params = sum(v.numel() for v in torch.load(backbone, weights_only=False)["model"].values())
    print(f"backbone {args.layers} layers x {args.width}: {params / 1e6:.1f}M parameters "
          f"({params * 4 / 2**20:.0f} MiB fp32); 2 gloo processes, --fsdp")
    trees = {"old": args.old.resolve(), "new": HERE}
    peaks: dict[tuple[str, str], list[list[list[float]]]] = {}
    for repeat in range(args.repeats):
        for name, source in trees.items():
            out = work / f"{name}{repeat}"
            for phase, extra in (("fresh", ["--stop-after", "1"]), ("resume", ["--resume", "--stop-after", "2"])):
                load = os.getloadavg()[0]
                tic = time.perf_counter()
                peak = run(source, out, backbone, aa, tok, extra)
                peaks.setdefault((name, phase), []).append(peak)
                print(f"{name:3} {phase:6} peak RSS MiB: loaded rank0 {peak[0][0]:5.0f} rank1 {peak[1][0]:5.0f}; "
                      f"end rank0 {peak[0][1]:5.0f} rank1 {peak[1][1]:5.0f}  "
                      f"({time.perf_counter() - tic:.0f} s, load {load:.1f})", flush=True)
    for phase in ("fresh", "resume"):
        old, new = (np.median(peaks[(name, phase)], axis=0) for name in ("old", "new"))
        ratio = new / old
        print(f"{phase:6}: median peak RSS new/old: loaded rank0 {ratio[0][0]:.2f} rank1 {ratio[1][0]:.2f}; "
              f"end rank0 {ratio[0][1]:.2f} rank1 {ratio[1][1]:.2f}")
    states = [torch.load(work / f"{name}0" / "checkpoint.pt", weights_only=True)["model"] for name in trees]
    worst = max(float((states[0][k] - states[1][k]).abs().max()) for k in states[0])
    print(f"weights after 2 steps, old vs new: max |difference| {worst:.2e}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--as-rank":
        as_rank(sys.argv[2], sys.argv[3], sys.argv[5:])
    else:
        main()
