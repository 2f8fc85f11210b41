"""GPU smoke test: every GPU path of ismtk on tiny inputs, in a few minutes, with throughput figures.

Runs the command line from this checkout (``bin/ismtk``) on the structures in ``tests/data``:

1. ``train-ae``: a tiny autoencoder, killed (SIGKILL) once its first checkpoint is written, then ``--resume``d,
   and the attention kernels its encoder runs (a fused one on a GPU, not the math fallback);
2. ``cluster``: an ISM tokenizer (K = 8) from it;
3. ``encode``: the structures with that ISM tokenizer (on ``--device`` when ``encode`` has the option);
4. ``structure-tune``: a random 6-layer ESM2 on the ISM tokens, stopped, ``--resume``d, exported;
5. ``embed`` and ``predict-tokens`` with the exported model.

    python benchmarks/gpu_smoke.py                  # auto: the GPU when one is visible
    python benchmarks/gpu_smoke.py --device cpu     # the same on the CPU

Each step prints its wall time and throughput; the script stops at the first failure with the command's
stderr. Nothing is compared with expected numbers: it proves the paths run, resume and export on a device.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ISMTK = [sys.executable, str(ROOT / "bin" / "ismtk")]
AE_DATA = ROOT / "tests" / "data" / "ae"
#: The PDB files of the test data (1HZ6.cif.gz repeats 1HZ6.pdb.gz), with two deliberately broken ones.
STRUCTURES = [*sorted((ROOT / "tests" / "data" / "structures").glob("*.pdb.gz")), AE_DATA / "pdb"]


def ismtk(*args: object, ok: tuple[int, ...] = (0,)) -> tuple[str, float]:
    """Run one command; returns its stderr and wall seconds. Exits with its stderr when its status is not ``ok``."""
    tic = time.perf_counter()
    done = subprocess.run([*ISMTK, *map(str, args)], capture_output=True, text=True, check=False)
    if done.returncode not in ok:
        sys.exit(f"FAILED ({done.returncode}): ismtk {' '.join(map(str, args))}\n{done.stderr[-4000:]}")
    return done.stderr, time.perf_counter() - tic


def rates(metrics: Path) -> float:
    """Median throughput of the training records of a ``metrics.jsonl`` (its ``*_per_s`` field)."""
    values = []
    for line in metrics.read_text().splitlines():
        record = json.loads(line)
        if record.get("kind") == "train":
            values += [v for k, v in record.items() if k.endswith("_per_s")]
    return statistics.median(values) if values else float("nan")


def report(step: str, seconds: float, figure: str) -> None:
    print(f"{step:<42} {seconds:6.1f} s   {figure}", flush=True)


def train_ae(run: Path, device: str) -> None:
    """Train, kill at the first checkpoint, resume to the end."""
    args = ["train-ae", AE_DATA / "pdb", "--index", AE_DATA / "index.csv", "-o", run, "--keep-bench-homologs",
            "--width", "32", "--heads", "2", "--layers", "1", "--decoder-layers", "1", "--batch-size", "32",
            "--residues-per-chain", "24", "--epochs-stage1", "3", "--epochs-stage2", "2", "--checkpoint-every", "2",
            "--device", device]
    tic = time.perf_counter()
    child = subprocess.Popen([*ISMTK, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
    while child.poll() is None and not list((run / "checkpoints").glob("step_*.pt")):
        time.sleep(0.1)
    killed = child.poll() is None
    if killed:
        time.sleep(0.5)  # a little more training past the checkpoint, lost by the kill
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    if not killed and child.returncode:
        sys.exit(f"FAILED: train-ae\n{child.stderr.read()[-4000:]}")
    done = sorted((run / "checkpoints").glob("step_*.pt"))
    report("train-ae (killed)" if killed else "train-ae (ended before the kill)", time.perf_counter() - tic,
           f"checkpoints {', '.join(p.stem for p in done)}")
    err, seconds = ismtk(*args, "--resume")
    final = [line for line in err.splitlines() if "final validation" in line]
    report("train-ae --resume", seconds, f"{rates(run / 'metrics.jsonl'):,.0f} microenvironments/s (median); "
           + (final[-1].split(" -> ")[0] if final else "no final validation line"))


def attention_kernels(model_folder: Path, device: str) -> None:
    """The SDPA kernels the ISM encoder's attention runs on ``device`` (profiled on one chain, as ``encode`` runs
    it): a fused one on a GPU, not the math fallback that holds every (B, H, N, N) probability."""
    sys.path.insert(0, str(ROOT))
    import torch
    from torch.profiler import ProfilerActivity, profile

    from ismtk.autoencoder.io import embed_chains, load_autoencoder
    from ismtk.structure import read_structure

    model = load_autoencoder(model_folder, device)
    chain = read_structure(STRUCTURES[0]).chains[0]
    embed_chains(model, [chain])  # warm-up
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.startswith("cuda") else [])
    tic = time.perf_counter()
    with profile(activities=activities) as prof:
        embed_chains(model, [chain])
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    kernels = sorted({e.key for e in prof.key_averages() if "scaled_dot_product" in e.key})
    fallback = any("math" in k for k in kernels)
    report("ISM attention kernels" + (" (MATH FALLBACK)" if fallback else ""), time.perf_counter() - tic,
           ", ".join(kernels) or "none seen")


def structure_tune(work: Path, tokens: Path, aa: Path, device: str) -> Path:
    """A random 6 x 320 ESM2 (the shape of esm2_t6_8M) tuned on the ISM tokens: stop, resume, export."""
    sys.path.insert(0, str(ROOT))
    import torch

    from ismtk.plm.esm import EsmConfig, save_fair_esm

    torch.manual_seed(0)
    backbone, _ = save_fair_esm(EsmConfig(6, 320, 20).build(), work / "esm2_t6_random.pt")
    run = work / "tune"
    args = ["structure-tune", backbone, "--aa", aa, "--tokens", f"{tokens}:name=ism", "-o", run, "--epochs", "2",
            "--batch-size", "4", "--micro-batch", "2", "--crop", "128", "--val-fraction", "0.2", "--device", device]
    _, seconds = ismtk(*args, "--stop-after", "2")
    report("structure-tune --stop-after 2", seconds, f"{rates(run / 'metrics.jsonl'):,.0f} tokens/s (median)")
    err, seconds = ismtk(*args, "--resume")
    epochs = [line for line in err.splitlines() if line.startswith("epoch ")]
    report("structure-tune --resume + export", seconds, epochs[-1] if epochs else "no validation line")
    return run / "export"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="auto (the GPU when visible), cpu, cuda or cuda:N")
    parser.add_argument("--work", type=Path, help="folder for the runs (default: a new temporary folder)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from ismtk.train.launch import resolve_device

    device = str(resolve_device(args.device))
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else "CPU"
    work = args.work or Path(tempfile.mkdtemp(prefix="ismtk_gpu_smoke_"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"ismtk GPU smoke test on {device} ({name}), torch {torch.__version__}; load {os.getloadavg()[0]:.1f}; "
          f"runs in {work}", flush=True)
    start = time.perf_counter()

    train_ae(work / "ae", device)
    attention_kernels(work / "ae", device)

    err, seconds = ismtk("cluster", work / "ae", *STRUCTURES, "-o", work / "ism", "-k", "8", ok=(0, 3))
    report("cluster -k 8", seconds, next((line for line in err.splitlines() if line.startswith("K=")), ""))

    encode_help = subprocess.run([*ISMTK, "encode", "--help"], capture_output=True, text=True, check=False).stdout
    on_device = ["--device", device] if "--device" in encode_help else []
    tokens, aa = work / "ism.fasta", work / "aa.fasta"
    err, seconds = ismtk("encode", *STRUCTURES, "--tokenizer", work / "ism", "-o", tokens, "--aa-output", aa,
                         *on_device, ok=(0, 3))
    speed = re.search(r"\(([\d,]+) residues/s\)", err)
    report(f"encode --tokenizer ISM{'' if on_device else ' (CPU: no --device)'}", seconds,
           f"{speed.group(1) if speed else '?'} residues/s")

    export = structure_tune(work, tokens, aa, device)

    residues = sum(len(line) for line in aa.read_text().splitlines() if not line.startswith(">"))
    _, seconds = ismtk("embed", next(export.glob("esm2_*_ismtk.pt")), aa, work / "emb.h5", "--include", "per_tok",
                       "--device", device)
    report("embed (exported model)", seconds, f"{residues / seconds:,.0f} residues/s with start-up")
    _, seconds = ismtk("predict-tokens", export, aa, "-o", work / "predicted.fasta", "--device", device)
    report("predict-tokens (exported heads)", seconds, f"{residues / seconds:,.0f} residues/s with start-up")
    print(f"all steps passed in {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
