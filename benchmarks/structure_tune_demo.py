"""Base vs structure-tuned ESM2 on data neither saw in training (the demonstration of docs/structure-tune.md).

Three figures per model, all from frozen representations or attention maps:

1. 3Di token accuracy on the held-out ``val`` split of ``data/structures``: a linear probe (multinomial
   logistic regression on the last-layer representation) fitted on training chains; for the tuned model
   also the accuracy of its own trained head.
2. Long-range contact precision P@L (|i - j| >= 24, C-beta < 8 A, C-alpha for glycine) on ``data/ts50``:
   fair-esm's contact head refitted for each model as in Rao et al. 2021 (symmetrised, APC-corrected
   attention maps of every layer and head, L1 logistic regression, C = 0.15) on training chains of
   ``data/structures`` (one per 40% cluster, no ts50 homolog).
3. 3-state secondary structure (FLIP NetSurfP split): a linear probe on the last-layer representation,
   trained on a seeded subsample of FLIP's train set, tested on its 364-chain test set (resolved residues).

    python benchmarks/structure_tune_demo.py --base HF_FOLDER --tuned RUN/export/esm2_t6_ismtk.pt \
        --heads RUN/export/heads.pt --train-aa train.aa.fasta --train-tokens train.3di.fasta \
        --val-aa val.aa.fasta --val-tokens val.3di.fasta --json out.json

Either model may be left out (to evaluate the two in separate processes).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import time
import zipfile
from pathlib import Path

import numpy as np
import torch
from esm.modules import apc, symmetrize
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from ismtk.plm.esm import load_esm
from ismtk.plm.heads import load_heads
from ismtk.structure.read import ReadOptions, read_structure
from ismtk.tokenizers import read_fasta

DATA = str(Path(__file__).resolve().parents[2] / "shared" / "data")
MAX_LEN = 1022


@torch.no_grad()
def forward(model, seq: str, attentions: bool = False):
    """Last-layer representation ``(L, D)`` and, if asked, contact features ``(L, L, layers*heads)``."""
    converter = model.alphabet.get_batch_converter()
    _, _, tokens = converter([("x", seq[:MAX_LEN])])
    out = model(tokens, repr_layers=[model.num_layers], need_head_weights=attentions)
    rep = out["representations"][model.num_layers][0, 1:-1]
    if not attentions:
        return rep, None
    att = out["attentions"][0, ..., 1:-1, 1:-1]
    feats = apc(symmetrize(att.reshape(1, -1, *att.shape[-2:])))[0]
    return rep, feats.permute(1, 2, 0).numpy()


def chain_coords(path: str, chain_id: str):
    """Sequence and C-beta (C-alpha for glycine/missing) coordinates of one chain."""
    chain = next(c for c in read_structure(path, ReadOptions()).chains if c.chain_id == chain_id)
    cb = chain.atom_coords("CB")
    cb = np.where(np.isnan(cb), chain.ca, cb)
    return chain.sequence, cb


def contact_pairs(feats: np.ndarray, cb: np.ndarray, min_sep: int):
    n = min(len(cb), feats.shape[0])
    i, j = np.triu_indices(n, k=min_sep)
    dist = np.linalg.norm(cb[i] - cb[j], axis=-1)
    return feats[i, j], dist < 8.0, j - i


def contact_precision(model, train_chains, test_chains) -> list[float]:
    """Long-range P@L of every test chain after refitting the contact regression on ``train_chains``."""
    xs, ys = [], []
    for seq, cb in train_chains:
        _, feats = forward(model, seq, attentions=True)
        x, y, _ = contact_pairs(feats, cb, 6)
        xs.append(x)
        ys.append(y)
    reg = LogisticRegression(l1_ratio=1.0, C=0.15, solver="liblinear", max_iter=1000)
    reg.fit(np.concatenate(xs), np.concatenate(ys))
    precisions = []
    for seq, cb in test_chains:
        _, feats = forward(model, seq, attentions=True)
        x, y, _ = contact_pairs(feats, cb, 24)
        top = np.argsort(-reg.decision_function(x))[: min(len(cb), MAX_LEN)]
        precisions.append(y[top].mean())
    return [float(p) for p in precisions]


def probe_accuracy(model, train, test, rng_seed: int = 0) -> float:
    """Per-residue linear probe: ``train``/``test`` are lists of (sequence, labels (L,), mask (L,) bool)."""

    def stack(records):
        xs, ys = [], []
        for seq, labels, mask in records:
            rep, _ = forward(model, seq)
            keep = mask[: len(rep)]
            xs.append(rep.numpy()[keep])
            ys.append(labels[: len(rep)][keep])
        return np.concatenate(xs), np.concatenate(ys)

    x_train, y_train = stack(train)
    x_test, y_test = stack(test)
    scaler = StandardScaler().fit(x_train)
    clf = LogisticRegression(max_iter=300, random_state=rng_seed)
    clf.fit(scaler.transform(x_train), y_train)
    return float((clf.predict(scaler.transform(x_test)) == y_test).mean())


@torch.no_grad()
def head_accuracy(model, heads, records) -> float:
    correct = total = 0
    for seq, labels, mask in records:
        rep, _ = forward(model, seq)
        pred = heads.predict(rep[None])[heads.streams[0].name][0].numpy()
        correct += int((pred == labels[: len(pred)])[mask[: len(pred)]].sum())
        total += int(mask[: len(pred)].sum())
    return correct / total


def token_records(aa_path, tok_path, alphabet: str, limit: int | None, seed: int):
    tokens = dict(read_fasta(tok_path))
    records = [(seq, np.array([alphabet.index(c) for c in tokens[name]]), np.ones(len(seq), bool))
               for name, seq in read_fasta(aa_path)]
    if limit and len(records) > limit:
        keep = np.random.default_rng(seed).choice(len(records), limit, replace=False)
        records = [records[i] for i in sorted(keep)]
    return records


def ss3_records(train_limit: int, seed: int):
    with zipfile.ZipFile(f"{DATA}/seq_tasks/flip/secondary_structure/splits.zip") as z:

        def read(name):
            return io.StringIO(z.read(name).decode())

        seqs, masks, labels, sets = {}, {}, {}, {}
        for target, name in ((seqs, "splits/sequences.fasta"), (masks, "splits/mask.fasta")):
            key = None
            for line in read(name):
                if line.startswith(">"):
                    key = line[1:].split()[0]
                    target[key] = ""
                else:
                    target[key] += line.strip()
        key = None
        for line in read("splits/sampled.fasta"):
            if line.startswith(">"):
                words = line[1:].split()
                key, sets[words[0]] = words[0], (words[1], words[2])
                labels[key] = ""
            else:
                labels[key] += line.strip()
    code = {"H": 0, "E": 1, "C": 2}

    def record(k):
        return seqs[k], np.array([code[c] for c in labels[k]]), np.array([c == "1" for c in masks[k]])

    train = [k for k, s in sets.items() if s == ("SET=train", "VALIDATION=False")]
    test = [k for k, s in sets.items() if s[0] == "SET=test"]
    train = sorted(np.random.default_rng(seed).choice(train, train_limit, replace=False).tolist())
    return [record(k) for k in train], [record(k) for k in test]


def contact_sets(n_train: int, seed: int):
    with open(f"{DATA}/structures/index.csv") as handle:
        rows = list(csv.DictReader(handle))
    pool = [r for r in rows if r["split"] == "train" and r["ts50_homolog"] == "0" and r["method"] != "NMR"
            and 80 <= int(r["n_residues"]) <= 300]
    by_cluster = {}
    for r in np.random.default_rng(seed).permutation(len(pool)):
        by_cluster.setdefault(pool[r]["cluster40"], pool[r])
    train = [chain_coords(f"{DATA}/structures/{r['file']}", r["chain"]) for r in list(by_cluster.values())[:n_train]]
    with open(f"{DATA}/ts50/manifest.csv") as handle:
        test = [chain_coords(f"{DATA}/ts50/{r['file']}", r["chain"]) for r in csv.DictReader(handle)]
    return train, test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", help="backbone before tuning (any form load_esm reads)")
    parser.add_argument("--tuned", help="backbone after tuning")
    parser.add_argument("--heads")
    parser.add_argument("--train-aa", required=True)
    parser.add_argument("--train-tokens", required=True)
    parser.add_argument("--val-aa", required=True)
    parser.add_argument("--val-tokens", required=True)
    parser.add_argument("--token-train-chains", type=int, default=200)
    parser.add_argument("--contact-train-chains", type=int, default=20)
    parser.add_argument("--ss3-train-chains", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tasks", nargs="+", default=["tokens", "contacts", "ss3"])
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    alphabet = "ACDEFGHIKLMNPQRSTVWY"
    tok_train = token_records(args.train_aa, args.train_tokens, alphabet, args.token_train_chains, args.seed)
    tok_val = token_records(args.val_aa, args.val_tokens, alphabet, None, args.seed)
    contact_train, contact_test = contact_sets(args.contact_train_chains, args.seed)
    ss_train, ss_test = ss3_records(args.ss3_train_chains, args.seed)
    majority = np.bincount(np.concatenate([r[1] for r in tok_val])).max() / sum(len(r[1]) for r in tok_val)
    results = {"setup": {"token_probe_train_chains": len(tok_train), "val_chains": len(tok_val),
                         "val_majority_3di": float(majority), "contact_fit_chains": len(contact_train),
                         "ts50_chains": len(contact_test), "ss3_train_chains": len(ss_train),
                         "ss3_test_chains": len(ss_test)}}
    for label, spec in (("base", args.base), ("tuned", args.tuned)):
        if spec is None:
            continue
        model = load_esm(spec).model.eval()
        tic = time.perf_counter()
        row = {}
        if "tokens" in args.tasks:
            row["3di_probe_acc"] = probe_accuracy(model, tok_train, tok_val, args.seed)
            if label == "tuned" and args.heads:
                row["3di_head_acc"] = head_accuracy(model, load_heads(args.heads), tok_val)
        if "contacts" in args.tasks:
            row["contact_p_at_l_per_chain"] = contact_precision(model, contact_train, contact_test)
            row["contact_p_at_l_long"] = float(np.mean(row["contact_p_at_l_per_chain"]))
        if "ss3" in args.tasks:
            row["ss3_probe_acc"] = probe_accuracy(model, ss_train, ss_test, args.seed)
        row["seconds"] = time.perf_counter() - tic
        results[label] = row
        print(label, json.dumps(row), flush=True)
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
