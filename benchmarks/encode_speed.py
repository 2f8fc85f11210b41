"""Speed of ``ismtk encode``: 3Di against a plain Biopython + mini3di loop and against Foldseek's createdb;
worker scaling for 3Di and ISM; peak memory per ISM worker.

3Di (default): the sides run interleaved (reference loop, ismtk with 1 worker, ismtk with N workers,
repeated) and the median of each is reported with the load average taken just before it, so load from
other processes hits every side alike. Strings must be identical on every chain. Also prints where one
worker's time goes (reading vs 3Di). With ``--foldseek PATH``, ``foldseek createdb`` and ``ismtk createdb
--tokenizer 3di`` (the command line, start-up included) run side by side on the same folder and cores.

ISM (``--ism``): ``encode --tokenizer ism`` with 1 worker and N workers side by side (identical output
required; both sides warm: the model and kernels loaded in this process, the workers' server started; its
start-up, once per command, printed apart), the peak resident memory of each worker, the encoder's FLOPs per residue
(``torch.utils.flop_counter`` on real microenvironments) and the achieved FLOP/s as a share of this
machine's large-matmul FLOP/s (2048^3 float32 ``torch.mm``) on as many cores: each worker runs one torch thread,
so one core's rate is measured on one thread (best of the runs before and after the encoding), N cores' as N times
that; the N-thread rate is printed beside it.

    python benchmarks/encode_speed.py [--data ../shared/data/scope40_dev/pdb] [--repeats 3] [--threads 2]
        [--foldseek ../shared/tools/foldseek/foldseek] [--ism --limit 200]
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ismtk.errors import StructureError
from ismtk.structure import find_structure_files, read_structure
from ismtk.tokenizers import ThreeDiTokenizer, Tokenizer, load_tokenizer, read_fasta
from ismtk.workflows.encode import (
    MIN_FILES_PER_WORKER,
    EncodeSummary,
    _workers,
    default_threads,
    encode_to_fasta,
)

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scope40_dev" / "pdb"


def load() -> str:
    """The 1-minute load average, for the record next to each timing."""
    return f"{os.getloadavg()[0]:.2f}"


def reference_loop(paths: list[Path]) -> list[str]:
    """What a user writes without ismtk: Biopython parse, mini3di per chain of the first model."""
    from Bio.PDB import PDBParser
    from mini3di import Encoder

    parser, encoder, out = PDBParser(QUIET=True), Encoder(), []
    for path in paths:
        structure = parser.get_structure(path.name, io.StringIO(gzip.open(path, "rt").read()))
        out.extend(encoder.build_sequence(encoder.encode_chain(chain)) for chain in structure[0])
    return out


def reference_one_blas_thread(paths: list[Path]) -> list[str]:
    """:func:`reference_loop` with one BLAS thread, as ismtk encodes in one process (NumPy's BLAS threads spin over
    3Di's small matrix products)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return reference_loop(paths)


def ismtk_encode(paths: list[Path], tokenizer: Tokenizer, threads: int, out: Path) -> tuple[list[str], EncodeSummary]:
    summary = encode_to_fasta(paths, tokenizer, out, threads=threads)
    return [seq for _, seq in read_fasta(out)], summary


def timed_runs(sides: dict, repeats: int) -> tuple[dict[str, list[float]], dict[str, list[str]], dict[str, list[str]]]:
    """Run every side ``repeats`` times, interleaved; wall times, load averages and the last outputs."""
    times: dict[str, list[float]] = {label: [] for label in sides}
    loads: dict[str, list[str]] = {label: [] for label in sides}
    outputs: dict = {}
    for _ in range(repeats):
        for label, run in sides.items():
            loads[label].append(load())
            start = time.perf_counter()
            outputs[label] = run()
            times[label].append(time.perf_counter() - start)
    return times, loads, outputs


def threedi_speed(paths: list[Path], threads: int, repeats: int, foldseek: Path | None, data: Path) -> None:
    tokenizer = ThreeDiTokenizer()
    out = Path(tempfile.mkdtemp()) / "tokens.fasta"
    # the workers' server starts once per process (a start-up cost, not a rate): started before timing, as the ISM
    # side does, so that it does not fall in the first timed run with workers only
    ismtk_encode(paths[: MIN_FILES_PER_WORKER * threads], tokenizer, threads, Path(tempfile.mkdtemp()) / "warm.fasta")
    sides = {
        "reference": lambda: reference_loop(paths),
        "reference-1": lambda: reference_one_blas_thread(paths),
        "ismtk-1": lambda: ismtk_encode(paths, tokenizer, 1, out)[0],
        f"ismtk-{threads}": lambda: ismtk_encode(paths, tokenizer, threads, out)[0],
    }
    times, loads, outputs = timed_runs(sides, repeats)
    residues = sum(len(s) for s in outputs["reference"])
    identical = all(o == outputs["reference"] for o in outputs.values())
    print(f"files: {len(paths)}  chains: {len(outputs['reference'])}  residues: {residues}  repeats: {repeats}")
    print(f"3Di strings identical to mini3di on every chain: {identical}")
    median = {label: statistics.median(ts) for label, ts in times.items()}
    for label, t in median.items():
        print(
            f"{label:>12}: {t:7.2f} s  {residues / t:9,.0f} residues/s  vs reference {median['reference'] / t:5.2f}x"
            f"  (load {', '.join(loads[label])})"
        )
    print(
        f"scaling: {threads} workers = {median['ismtk-1'] / median[f'ismtk-{threads}']:.2f}x one worker "
        "(goal >= 1.8x); "
        f"one worker = {median['reference'] / median['ismtk-1']:.2f}x the reference loop (goal >= 3x), "
        f"{median['reference-1'] / median['ismtk-1']:.2f}x the reference loop with one BLAS thread as ismtk-1 has"
    )
    where_time_goes(paths, tokenizer)
    if foldseek is not None:
        createdb_side_by_side(foldseek, data, threads, repeats)
    if not identical:
        raise SystemExit("outputs differ")


def where_time_goes(paths: list[Path], tokenizer: Tokenizer) -> None:
    read_s = token_s = 0.0
    for path in paths:
        t0 = time.perf_counter()
        chains = read_structure(path).chains
        t1 = time.perf_counter()
        for chain in chains:
            with contextlib.suppress(StructureError):  # chains the tokenizer refuses still cost their time
                tokenizer.encode(chain)
        read_s += t1 - t0
        token_s += time.perf_counter() - t1
    total = read_s + token_s
    print(
        f"where one worker's time goes: reading {read_s:.2f} s ({read_s / total:.0%}), 3Di {token_s:.2f} s "
        f"({token_s / total:.0%}); per file {1000 * read_s / len(paths):.2f} ms reading"
    )


def createdb_side_by_side(foldseek: Path, data: Path, threads: int, repeats: int) -> None:
    """Wall time of ``foldseek createdb`` and ``ismtk createdb --tokenizer 3di`` on the same folder (all of ``data``,
    whatever ``--limit`` says) and cores."""
    work = Path(tempfile.mkdtemp())
    ismtk = [sys.executable, "-m", "ismtk"]
    commands = {
        "foldseek createdb": [
            str(foldseek),
            "createdb",
            str(data),
            str(work / "fs"),
            "--threads",
            str(threads),
            "-v",
            "1",
        ],
        "ismtk createdb": [*ismtk, "createdb", str(data), str(work / "ism"), "--tokenizer", "3di", "-t", str(threads)],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    loads: dict[str, list[str]] = {k: [] for k in commands}
    for _ in range(repeats):
        for label, command in commands.items():
            for leftover in work.glob("*"):
                shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
            loads[label].append(load())
            start = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[label].append(time.perf_counter() - start)
    start = time.perf_counter()
    subprocess.run([*ismtk, "--version"], check=True, stdout=subprocess.DEVNULL)
    startup = time.perf_counter() - start
    fs, ism = (statistics.median(times[k]) for k in commands)
    print(
        f"createdb on the {len(find_structure_files([data])):,} files of {data}, {threads} threads: "
        f"foldseek {fs:.2f} s (load {', '.join(loads['foldseek createdb'])}), "
        f"ismtk {ism:.2f} s (load {', '.join(loads['ismtk createdb'])}): ismtk takes {ism / fs:.1f}x Foldseek's time "
        f"(goal <= 10x); of it, 'ismtk --version' (start-up alone) {startup:.2f} s"
    )
    shutil.rmtree(work)


def matmul_flops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matrix product on ``threads`` threads (the machine's practical peak)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    torch.set_num_threads(before)
    return 2 * n**3 / best


def ism_speed(paths: list[Path], threads: int, repeats: int) -> None:
    from torch.utils.flop_counter import FlopCounterMode

    from ismtk.autoencoder.io import embed_microenvironments
    from ismtk.structure.microenv import collate, microenvironments

    tokenizer = load_tokenizer("ism")
    sample = [c for p in paths[:20] for c in read_structure(p).chains]
    envs = collate([microenvironments(c, radius=tokenizer.model.cfg.radius) for c in sample])
    with FlopCounterMode(display=False) as counter:
        embed_microenvironments(tokenizer.model, envs)
    flops_per_residue = counter.get_total_flops() / len(envs)
    ismtk_encode(paths[:2], tokenizer, 1, Path(tempfile.mkdtemp()) / "warm.fasta")  # compile and warm up once
    # and start the workers' server once, as warm as the one-worker side: it imports torch and the encoding modules
    # once per process, a start-up cost of a command rather than a rate (printed below); each timed run with workers
    # still starts its own workers, which load the model and the kernels
    few = paths[: MIN_FILES_PER_WORKER * threads]
    starts = []
    for _ in range(2):
        start = time.perf_counter()
        ismtk_encode(few, tokenizer, threads, Path(tempfile.mkdtemp()) / "warm.fasta")
        starts.append(time.perf_counter() - start)
    core, peak = matmul_flops(1), matmul_flops(threads)
    outs = {n: Path(tempfile.mkdtemp()) / f"ism{n}.fasta" for n in (1, threads)}
    summaries: dict[str, EncodeSummary] = {}

    def run(n: int):
        seqs, summaries[f"ismtk-{n}"] = ismtk_encode(paths, tokenizer, n, outs[n])
        return seqs

    times, loads, outputs = timed_runs({f"ismtk-{n}": (lambda n=n: run(n)) for n in (1, threads)}, repeats)
    core, peak = max(core, matmul_flops(1)), max(peak, matmul_flops(threads))
    residues = sum(len(s) for s in outputs["ismtk-1"])
    identical = outputs["ismtk-1"] == outputs[f"ismtk-{threads}"]
    median = {label: statistics.median(ts) for label, ts in times.items()}
    cfg = tokenizer.model.cfg
    print(
        f"ISM tokenizer ({cfg.width} wide, {cfg.layers} layers, K={len(tokenizer.alphabet)}); files: {len(paths)}  "
        f"residues: {residues}  repeats: {repeats}; output identical with 1 and {threads} workers: {identical}"
    )
    for label, t in median.items():
        rate = residues / t
        n = int(label.split("-")[1])
        print(
            f"{label:>9}: {t:7.1f} s  {rate:8,.0f} residues/s  {rate * flops_per_residue / 1e9:6.2f} GFLOP/s = "
            f"{rate * flops_per_residue / (core * n):.1%} of {n} core(s)' matmul rate  "
            f"(load {', '.join(loads[label])})"
        )
    print(
        f"scaling: {threads} workers = {median['ismtk-1'] / median[f'ismtk-{threads}']:.2f}x one worker (goal >= 1.8x)"
    )
    print(
        f"encoder FLOPs per residue: {flops_per_residue / 1e6:.1f} MFLOP (mean {envs.n_atoms.mean():.0f} atoms); "
        f"large-matmul rate {core / 1e9:.1f} GFLOP/s on 1 thread, {peak / 1e9:.1f} on {threads} threads"
    )
    print(
        f"start-up of the worker server (once per process, not in the times above): {starts[0] - starts[1]:.1f} s "
        f"({len(few)} files with {threads} workers: {starts[0]:.1f} s in a fresh process, then {starts[1]:.1f} s)"
    )
    workers = _workers(len(paths), threads)  # the processes encode_files starts for these files
    if workers < threads:
        print(f"note: {len(paths)} files start {workers} worker(s), not {threads} (a worker needs "
              f"{MIN_FILES_PER_WORKER} files): the ismtk-{threads} side is not {threads} workers; give more files")
    peak_rss = summaries[f"ismtk-{threads}"].peak_rss
    print(
        f"peak resident memory per ISM worker ({workers} workers): "
        + (f"{peak_rss / 2**20:,.0f} MiB (goal <= 700 MiB)" if peak_rss else "not measured (no worker process ran)")
    )
    if not identical:
        raise SystemExit("outputs differ")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=default_threads(), help="workers of the parallel side")
    ap.add_argument("--foldseek", type=Path, default=None, help="Foldseek binary: time its createdb side by side")
    ap.add_argument("--ism", action="store_true", help="measure the ISM tokenizer instead of 3Di")
    ap.add_argument("--limit", type=int, default=None, help="use the first N files")
    args = ap.parse_args()
    paths = find_structure_files([args.data])[: args.limit]
    print(f"machine: {default_threads()} cores; load before: {load()}")
    if args.ism:
        ism_speed(paths, args.threads, args.repeats)
    else:
        threedi_speed(paths, args.threads, args.repeats, args.foldseek, args.data)


if __name__ == "__main__":
    main()
