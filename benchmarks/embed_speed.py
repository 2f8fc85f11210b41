"""Sequences/s and peak memory of ``ismtk embed`` against a loop that mirrors fair-esm's esm-extract.

The reference is what ``esm-extract MODEL FASTA OUT --include mean per_tok`` does: a
``FastaBatchedDataset``, its ``get_batch_indices(toks_per_batch, extra_toks_per_seq=1)``, a
``DataLoader`` with the alphabet's batch converter, ``torch.no_grad()`` and one ``torch.save`` per
sequence. Each side runs in a fresh process (peak RSS is per process), interleaved, ``--repeats``
times; the median time is reported and the saved tensors are compared.

Without ``--model`` the network is an ESM2-t6 shape (6 layers, 320 wide, 20 heads) with random
weights: speed does not depend on the values. ``--model`` takes a fair-esm ``.pt`` or hub name.

    python benchmarks/embed_speed.py [--n 400] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import esm
import torch

FASTA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scop40" / "scop40.fa"


def build_model(spec: str | None):
    if spec:
        return esm.pretrained.load_model_and_alphabet(spec)
    torch.manual_seed(0)
    alphabet = esm.Alphabet.from_architecture("ESM-1b")
    return esm.model.esm2.ESM2(num_layers=6, embed_dim=320, attention_heads=20, alphabet=alphabet), alphabet


def run_reference(model, alphabet, fasta: Path, out: Path, toks: int) -> None:
    dataset = esm.FastaBatchedDataset.from_file(fasta)
    batches = dataset.get_batch_indices(toks, extra_toks_per_seq=1)
    loader = torch.utils.data.DataLoader(
        dataset, collate_fn=alphabet.get_batch_converter(1022), batch_sampler=batches
    )
    layer = model.num_layers
    with torch.no_grad():
        for labels, strs, tokens in loader:
            reps = model(tokens, repr_layers=[layer], return_contacts=False)["representations"]
            for i, label in enumerate(labels):
                n = min(1022, len(strs[i]))
                t = reps[layer][i, 1 : n + 1]
                result = {
                    "label": label,
                    "representations": {layer: t.clone()},
                    "mean_representations": {layer: t.mean(0).clone()},
                }
                torch.save(result, out / f"{label}.pt")


def run_ismtk(model, alphabet, fasta: Path, out: Path, toks: int) -> None:
    from ismtk.plm.embed import EmbedOptions, PtDirWriter, embed_sequences
    from ismtk.sequence.protein import read_protein_fasta

    records, _ = read_protein_fasta(fasta)
    options = EmbedOptions(include=("mean", "per_tok"), toks_per_batch=toks)
    with PtDirWriter(out, [name for name, _ in records]) as writer:
        for result, length in embed_sequences(model, alphabet, records, options):
            writer.write(result, length)


def child(args) -> None:
    torch.set_num_threads(args.threads)
    model, alphabet = build_model(args.model)
    model.eval()
    out = Path(args.out)
    start = time.perf_counter()
    (run_reference if args.side == "reference" else run_ismtk)(model, alphabet, Path(args.fasta), out, args.toks)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mb": peak_mb}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=400, help="sequences taken from scop40.fa")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--toks", type=int, default=4096)
    ap.add_argument("--model", default=None)
    ap.add_argument("--side", choices=["reference", "ismtk"], help=argparse.SUPPRESS)
    ap.add_argument("--fasta", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.side:
        return child(args)

    work = Path(tempfile.mkdtemp(prefix="ismtk_embed_speed_"))
    fasta = work / "seqs.fa"
    lines, count = [], 0
    for line in FASTA.read_text().splitlines():
        if line.startswith(">"):
            count += 1
            if count > args.n:
                break
            line = ">" + line[1:].split()[0]
        lines.append(line)
    fasta.write_text("\n".join(lines) + "\n")
    results: dict[str, list[dict]] = {"reference": [], "ismtk": []}
    for _ in range(args.repeats):
        for side in results:
            out = work / side
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir()
            cmd = [sys.executable, __file__, "--side", side, "--fasta", str(fasta), "--out", str(out),
                   "--threads", str(args.threads), "--toks", str(args.toks)]
            if args.model:
                cmd += ["--model", args.model]
            results[side].append(json.loads(subprocess.check_output(cmd).decode().strip().splitlines()[-1]))
    worst = 0.0
    for ref_file in (work / "reference").iterdir():
        a = torch.load(ref_file, weights_only=True)
        b = torch.load(work / "ismtk" / ref_file.name, weights_only=True)
        for key in ("representations", "mean_representations"):
            for layer in a[key]:
                worst = max(worst, (a[key][layer] - b[key][layer]).abs().max().item())
    n_res = sum(len(line) for line in lines if not line.startswith(">"))
    print(f"{min(count, args.n)} sequences ({n_res} residues), threads={args.threads}, toks_per_batch={args.toks}")
    print(f"largest difference between the two outputs: {worst:.2e}")
    times = {side: statistics.median(r["seconds"] for r in runs) for side, runs in results.items()}
    for side, runs in results.items():
        peak = max(r["peak_mb"] for r in runs)
        print(f"{side:>10}: {times[side]:7.2f} s  {args.n / times[side]:7.1f} seq/s  peak RSS {peak:6.0f} MB")
    print(f"throughput ratio ismtk / reference: {times['reference'] / times['ismtk']:.2f}x")
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
