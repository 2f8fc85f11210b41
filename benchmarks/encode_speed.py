"""Residues/s of ``ismtk encode``: 3Di against a plain Biopython + mini3di loop, and the ISM tokenizer.

3Di: both sides read the same files and their strings must be identical. Runs are interleaved
(reference, ismtk with 1 worker, ismtk with N workers, repeated) and the median of each is reported, so
load from other processes hits every side alike. Also prints where ismtk's time goes (parsing vs 3Di).

ISM (``--ism``): residues/s of ``encode --tokenizer ism`` with N workers, the encoder's FLOPs per residue
(``torch.utils.flop_counter`` on real microenvironments) and the achieved FLOP/s as a share of this
machine's large-matmul FLOP/s (2048^3 float32 ``torch.mm`` on N threads), measured in the same run.

    python benchmarks/encode_speed.py [--data ../shared/data/scope40_dev/pdb] [--repeats 3] [--ism] [--limit N]
"""

from __future__ import annotations

import argparse
import gzip
import io
import statistics
import time
from pathlib import Path

from Bio.PDB import PDBParser
from mini3di import Encoder

from ismtk.structure import find_structure_files, read_structure
from ismtk.tokenizers import ThreeDiTokenizer, read_fasta
from ismtk.workflows.encode import default_threads, encode_files, write_fasta

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scope40_dev" / "pdb"


def reference_loop(paths: list[Path]) -> list[str]:
    """What a user writes without ismtk: Biopython parse, mini3di per chain of the first model."""
    parser, encoder, out = PDBParser(QUIET=True), Encoder(), []
    for path in paths:
        structure = parser.get_structure(path.name, io.StringIO(gzip.open(path, "rt").read()))
        out.extend(encoder.build_sequence(encoder.encode_chain(chain)) for chain in structure[0])
    return out


def ismtk_encode(paths: list[Path], threads: int, out: Path) -> list[str]:
    tokenizer = ThreeDiTokenizer()
    write_fasta(encode_files(paths, tokenizer, threads=threads), tokenizer, out)
    return [seq for _, seq in read_fasta(out)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=default_threads())
    ap.add_argument("--ism", action="store_true", help="measure the ISM tokenizer instead of 3Di")
    ap.add_argument("--limit", type=int, default=None, help="use the first N files")
    args = ap.parse_args()
    paths = find_structure_files([args.data])[: args.limit]
    if args.ism:
        return ism_speed(paths, args.threads)
    out = Path("/tmp/ismtk_encode_speed.fasta")

    times: dict[str, list[float]] = {"reference": [], "ismtk-1": [], f"ismtk-{args.threads}": []}
    outputs: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for label in times:
            start = time.perf_counter()
            if label == "reference":
                outputs[label] = reference_loop(paths)
            else:
                outputs[label] = ismtk_encode(paths, int(label.split("-")[1]), out)
            times[label].append(time.perf_counter() - start)
    residues = sum(len(s) for s in outputs["reference"])
    identical = all(o == outputs["reference"] for o in outputs.values())

    print(f"files: {len(paths)}  chains: {len(outputs['reference'])}  residues: {residues}")
    print(f"3Di strings identical to mini3di on every chain: {identical}")
    ref = statistics.median(times["reference"])
    for label, ts in times.items():
        t = statistics.median(ts)
        print(f"{label:>12}: {t:7.2f} s  {residues / t:9,.0f} residues/s  ratio vs reference {ref / t:5.2f}x")

    tokenizer, parse_s, token_s = ThreeDiTokenizer(), 0.0, 0.0
    for path in paths:
        t0 = time.perf_counter()
        chains = read_structure(path).chains
        t1 = time.perf_counter()
        for chain in chains:
            tokenizer.encode(chain)
        parse_s += t1 - t0
        token_s += time.perf_counter() - t1
    total = parse_s + token_s
    print(f"where one worker's time goes: reading/parsing {parse_s / total:.0%}, 3Di {token_s / total:.0%}")
    if not identical:
        raise SystemExit("outputs differ")


def matmul_flops(threads: int, n: int = 2048, repeats: int = 5) -> float:
    """FLOP/s of a large float32 matrix product on ``threads`` threads (the machine's practical peak)."""
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n**3 / best


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ism_speed(paths: list[Path], threads: int) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ismtk.autoencoder.io import embed_microenvironments
    from ismtk.structure.microenv import collate, microenvironments
    from ismtk.tokenizers import load_tokenizer

    tokenizer = load_tokenizer("ism")
    sample = [c for p in paths[:20] for c in read_structure(p).chains]
    envs = collate([microenvironments(c) for c in sample])
    with FlopCounterMode(display=False) as counter:
        embed_microenvironments(tokenizer.model, envs)
    flops_per_residue = counter.get_total_flops() / len(envs)
    peak_before = matmul_flops(threads)
    out = Path("/tmp/ismtk_encode_speed_ism.fasta")
    start = time.perf_counter()
    write_fasta(encode_files(paths, tokenizer, threads=threads), tokenizer, out)
    seconds = time.perf_counter() - start
    residues = sum(len(seq) for _, seq in read_fasta(out))
    peak = max(peak_before, matmul_flops(threads))
    rate = residues / seconds
    cfg = tokenizer.model.cfg
    print(f"ISM tokenizer ({cfg.width} wide, {cfg.layers} layers, K={len(tokenizer.alphabet)})")
    print(f"files: {len(paths)}  residues: {residues}  workers: {threads}  time: {seconds:.1f} s  "
          f"-> {rate:,.0f} residues/s")
    print(f"encoder FLOPs per residue: {flops_per_residue / 1e6:.1f} MFLOP (mean {envs.n_atoms.mean():.0f} atoms)")
    print(f"achieved {rate * flops_per_residue / 1e9:.2f} GFLOP/s of {peak / 1e9:.1f} GFLOP/s large-matmul peak "
          f"({threads} threads): {rate * flops_per_residue / peak:.1%}")
    torch.set_num_threads(threads)


if __name__ == "__main__":
    main()
