"""Residues/s of ``ismtk encode --tokenizer 3di`` against a plain Biopython + mini3di loop.

Both read the same files; their 3Di strings must be identical. Runs are interleaved (reference,
ismtk with 1 worker, ismtk with N workers, repeated) and the median of each is reported, so load
from other processes hits every side alike. Also prints where ismtk's time goes (parsing vs 3Di).

    python benchmarks/encode_speed.py [--data ../shared/data/scope40_dev/pdb] [--repeats 3]
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

from ismtk.encode import default_threads, encode_files, write_fasta
from ismtk.structure import find_structure_files, read_structure
from ismtk.tokenizers import ThreeDiTokenizer, read_fasta

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
    args = ap.parse_args()
    paths = find_structure_files([args.data])
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


if __name__ == "__main__":
    main()
