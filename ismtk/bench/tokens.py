"""A report card of structure tokens: the three checks AIDO.StructureTokenizer judges tokens by.

* **Homology**: SCOPe40 sensitivity up to the first false positive (noselfhit) of the ``scope40_dev`` bench
  queries against every ``scope40_dev`` and ``cath2738`` entry (setting A of ``docs/benchmarks.md``), with the
  tokenizer's own substitution matrix.
* **Reconstruction** (autoencoder tokens): aligned RMSD of validation microenvironments decoded from the
  continuous embedding ``z`` and from the centroid of its token, with the amino-acid recovery of both.
* **Predictability**: how well the local sequence tells the token: a linear softmax over a one-hot +-7
  amino-acid window, fitted on the matrix-training domains (``role=matrix_train`` and ``cath2738`` domains not
  homologous to a bench domain) and scored on the bench domains: accuracy (beside always predicting the most
  frequent token) and bits per residue over the frequency baseline (the cross-entropy of predicting the
  training token frequencies minus the model's).
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ismtk.atomic import atomic_write
from ismtk.bench.scope40 import LEVELS, rank_by_search, read_lookup, score_queries, summarize
from ismtk.errors import InputError

__all__ = ["WINDOW", "ProbeResult", "TokenReport", "fit_window_probe", "reconstruction", "token_report"]

#: Amino acids on each side of a residue that the predictability probe sees.
WINDOW = 7
_AMINO = "ACDEFGHIKLMNPQRSTVWY"


@dataclass(frozen=True)
class ProbeResult:
    """Predictability of tokens from the local sequence (accuracies are fractions, entropies bits/residue)."""

    accuracy: float
    majority_accuracy: float
    cross_entropy: float
    baseline_cross_entropy: float
    train_residues: int
    test_residues: int

    @property
    def bits_over_baseline(self) -> float:
        """Bits per residue the window explains beyond the training token frequencies."""
        return self.baseline_cross_entropy - self.cross_entropy


@dataclass(frozen=True)
class TokenReport:
    """One tokenizer's row of the report card (``None`` where a check does not apply)."""

    name: str
    k: int
    family: float
    superfamily: float
    fold: float
    queries: tuple[int, int, int]
    rmsd_z: float | None
    rmsd_centroid: float | None
    aa_recovery_z: float | None
    aa_recovery_centroid: float | None
    probe: ProbeResult


def _window_features(records: Sequence[tuple[np.ndarray, str]]) -> tuple[torch.Tensor, torch.Tensor]:
    """One-hot ``(2W+1) x 21`` window features (21 = unknown or outside the chain) and token labels."""
    index = {c: i for i, c in enumerate(_AMINO)}
    rows, labels = [], []
    for tokens, aa in records:
        a = np.array([index.get(c, 20) for c in aa], dtype=np.int64)
        padded = np.concatenate([np.full(WINDOW, 20), a, np.full(WINDOW, 20)])
        windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * WINDOW + 1)
        rows.append(windows + 21 * np.arange(2 * WINDOW + 1))
        labels.append(np.asarray(tokens, dtype=np.int64))
    idx = torch.from_numpy(np.concatenate(rows))
    x = torch.zeros(len(idx), 21 * (2 * WINDOW + 1))
    x.scatter_(1, idx, 1.0)
    return x, torch.from_numpy(np.concatenate(labels))


def fit_window_probe(
    train: Sequence[tuple[np.ndarray, str]], test: Sequence[tuple[np.ndarray, str]], k: int, l2: float = 1e-4
) -> ProbeResult:
    """Fit the linear window probe on ``train`` ``(tokens (L,) int, amino acids str)`` records (full-batch
    L-BFGS, seeded) and score it on ``test``."""
    x, y = _window_features(train)
    xt, yt = _window_features(test)
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], k)
    opt = torch.optim.LBFGS(model.parameters(), max_iter=200, history_size=20, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y) + l2 * model.weight.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    freq = (torch.bincount(y, minlength=k).double() + 1) / (len(y) + k)  # add-one: no infinite baseline
    with torch.no_grad():
        logits = model(xt)
        accuracy = (logits.argmax(1) == yt).double().mean().item()
        cross_entropy = torch.nn.functional.cross_entropy(logits, yt).item() / math.log(2)
    return ProbeResult(
        accuracy=accuracy,
        majority_accuracy=(yt == int(freq.argmax())).double().mean().item(),
        cross_entropy=cross_entropy,
        baseline_cross_entropy=-freq.log2()[yt].mean().item(),
        train_residues=len(y),
        test_residues=len(yt),
    )


def reconstruction(tokenizer, data: Path, max_pairs: int = 250_000) -> dict[str, float]:
    """Aligned RMSD and amino-acid recovery of validation microenvironments decoded from ``z`` and from its
    token's centroid. ``tokenizer``: an :class:`ismtk.tokenizers.ism.IsmTokenizer`. The microenvironments:
    32 seeded residues of every ``val`` chain of ``data/structures`` (and ``data/pdb_sample`` if present),
    as ``train-ae`` validates."""
    from ismtk.autoencoder.corpus import SkipLog, load_corpus, validation_set
    from ismtk.autoencoder.step import evaluate, summarise
    from ismtk.autoencoder.train import TrainAEConfig

    cfg = TrainAEConfig()
    inputs = [data / name for name in ("structures", "pdb_sample") if (data / name).is_dir()]
    corpus = load_corpus(inputs)
    model, device = tokenizer.model, torch.device("cpu")
    envs = validation_set(
        corpus.val, cfg.val_residues_per_chain, cfg.min_residues, cfg.seed, SkipLog(), radius=model.cfg.radius
    )
    codebook = tokenizer.codebook

    def to_centroid(z: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(codebook.quantised(z.detach().float().numpy())).to(z.dtype)

    out = {}
    for label, z_map in (("z", None), ("centroid", to_centroid)):
        sums = evaluate(model, envs, device, max_pairs, z_map=z_map)
        metrics = summarise({k: v.item() for k, v in sums.items()})
        out[f"rmsd_{label}"], out[f"aa_recovery_{label}"] = metrics["rmsd"], metrics["aa_recovery"]
    return out | {"microenvironments": float(len(envs))}


def _split(data: Path) -> tuple[list[str], set[str]]:
    """Bench query names, and the names of the matrix-training domains (probe training set)."""
    rows = _table(data / "scope40_dev" / "classification.tsv", ("sid", "role"))
    bench = [r["sid"] for r in rows if r["role"] == "bench"]
    train = {r["sid"] for r in rows if r["role"] == "matrix_train"}
    cath = _table(data / "cath2738" / "classification.tsv", ("domain_id",))
    train |= {r["domain_id"] for r in cath if "bench" not in (r.get("scope40_dev_homolog") or "")}
    return bench, train


def _table(path: Path, columns: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a tab-separated table of the shared data; :class:`InputError` naming it when it lacks ``columns``."""
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        rows = list(reader)
    missing = [c for c in columns if c not in (reader.fieldnames or [])]
    if missing:
        raise InputError(f"{path}: no column {', '.join(missing)}; expected the shared data folder's "
                         "classification.tsv")
    return rows


def _database_key(folders: Sequence[Path], identity: str) -> str:
    """What an encoded database depends on: the tokenizer and every structure file (path, size, time)."""
    from ismtk.structure import find_structure_files

    digest = hashlib.sha256(identity.encode())
    for path in find_structure_files(folders):
        info = path.stat()
        digest.update(f"\n{path.resolve()}\t{info.st_size}\t{info.st_mtime_ns}".encode())
    return digest.hexdigest()


def token_report(
    tokenizers: Sequence[str],
    data: str | Path,
    out_dir: str | Path,
    threads: int = 1,
    log: Callable[[str], None] = lambda message: None,
) -> list[TokenReport]:
    """Run the three checks for every tokenizer (``3di``, ``ism`` or an ISM tokenizer folder) on the shared
    data folder ``data`` (``scope40_dev``, ``cath2738``, ``structures``); write ``report.tsv`` and
    ``report.png`` (and each tokenizer's encoded database and SCOPe40 tables) into ``out_dir``."""
    from ismtk.search.search import SearchOptions
    from ismtk.tokenizers import TOKENIZERS, load_tokenizer
    from ismtk.tokenizers.ism import IsmTokenizer
    from ismtk.workflows.search import load_search_db

    data, out_dir = Path(data), Path(out_dir)
    loaded = [load_tokenizer(spec) for spec in tokenizers]
    decoded = any(isinstance(t, IsmTokenizer) for t in loaded)  # reconstruction reads validation chains of structures
    for needed in ("scope40_dev", "cath2738", *(["structures"] if decoded else [])):
        if not (data / needed).is_dir():
            raise InputError(f"{data}: no {needed}/ folder; point to the shared data folder")
    lookup = read_lookup(data / "scope40_dev" / "lookup.tsv")
    bench, train_names = _split(data)
    reports = []
    for i, (spec, tokenizer) in enumerate(zip(tokenizers, loaded, strict=True)):
        name = str(spec) if str(spec) in TOKENIZERS else Path(spec).name
        folder = out_dir / f"{i}_{name}"
        db_path = folder / "db"
        sources = [data / "scope40_dev" / "pdb", data / "cath2738" / "pdb"]
        key, stamp = _database_key(sources, tokenizer.identity), folder / "db.key"
        if db_path.is_dir() and stamp.is_file() and stamp.read_text() == key:
            log(f"{name}: reusing {db_path} (the same tokenizer and files)")
        else:  # (a database of another data folder or tokenizer left by an earlier run is replaced)
            log(f"{name}: encoding scope40_dev and cath2738")
            stamp.unlink(missing_ok=True)
            load_search_db(sources, spec, threads=threads).save(db_path)
            with atomic_write(stamp) as handle:
                handle.write(key)
        db = load_search_db([db_path], spec)
        log(f"{name}: searching {len(bench)} bench queries against {len(db.names)} entries")
        options = SearchOptions(threads=threads, aa_weight=0.0)  # the tokens alone: the card judges tokens
        ranked, names = rank_by_search([db_path], bench, None, spec, options=options)
        summary = summarize(score_queries(ranked, lookup, names, "noselfhit"))
        log(f"{name}: fitting the window probe")
        records = {n: (db.token_seq(j), db.aa_seq(j)) for j, n in enumerate(db.names)}
        probe = fit_window_probe(
            [records[n] for n in names if n in train_names], [records[n] for n in bench], len(db.alphabet)
        )
        recon: dict[str, float] = {}
        if isinstance(tokenizer, IsmTokenizer):
            log(f"{name}: decoding validation microenvironments from z and from token centroids")
            recon = reconstruction(tokenizer, data)
        reports.append(
            TokenReport(
                name,
                len(db.alphabet),
                *summary.per_level,
                tuple(summary.per_level_queries),
                recon.get("rmsd_z"),
                recon.get("rmsd_centroid"),
                recon.get("aa_recovery_z"),
                recon.get("aa_recovery_centroid"),
                probe,
            )
        )
    _write_table(out_dir / "report.tsv", reports)
    _plot(out_dir / "report.png", reports)
    return reports


def _row(r: TokenReport) -> dict[str, object]:
    row = {k: v for k, v in asdict(r).items() if k not in ("probe", "queries")}
    row |= {f"n_{level}": n for level, n in zip(LEVELS, r.queries, strict=True)}
    p = r.probe
    return row | {
        "probe_accuracy": p.accuracy, "majority_accuracy": p.majority_accuracy, "probe_bits": p.bits_over_baseline,
        "probe_cross_entropy": p.cross_entropy, "baseline_cross_entropy": p.baseline_cross_entropy,
    }  # fmt: skip


def _write_table(path: Path, reports: Sequence[TokenReport]) -> None:
    rows = [_row(r) for r in reports]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write("\t".join(rows[0]) + "\n")
        for row in rows:
            handle.write(
                "\t".join("" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v) for v in row.values())
                + "\n"
            )


def _plot(path: Path, reports: Sequence[TokenReport]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    width = 0.8 / len(reports)
    for i, r in enumerate(reports):
        axes[0].bar(np.arange(3) + i * width, [r.family, r.superfamily, r.fold], width, label=r.name)
    axes[0].set_xticks(np.arange(3) + width * (len(reports) - 1) / 2, LEVELS)
    axes[0].set_ylabel("sensitivity to 1st FP (noselfhit)")
    axes[0].set_title("homology (scope40_dev bench, setting A)")
    axes[0].legend(fontsize=8)
    recon = [r for r in reports if r.rmsd_z is not None]
    for i, r in enumerate(recon):
        axes[1].bar([i - 0.2, i + 0.2], [r.rmsd_z, r.rmsd_centroid], 0.4, color=["tab:blue", "tab:orange"])
    axes[1].set_xticks(range(len(recon)), [r.name for r in recon])
    axes[1].set_ylabel("aligned RMSD (Å)")
    axes[1].set_title("reconstruction: from z (blue) / token centroid (orange)")
    for i, r in enumerate(reports):
        axes[2].bar([i - 0.2, i + 0.2], [r.probe.accuracy, r.probe.majority_accuracy], 0.4, color=["tab:green", "grey"])
        axes[2].annotate(f"{r.probe.bits_over_baseline:.2f} bits", (i, r.probe.accuracy), ha="center", va="bottom")
    axes[2].set_xticks(range(len(reports)), [f"{r.name}\n(K={r.k})" for r in reports])
    axes[2].set_ylabel("token accuracy")
    axes[2].set_title("predictability from a ±7 AA window (green) / majority (grey)")
    fig.tight_layout()
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, dpi=110, format="png")
    plt.close(fig)
