"""Training the autoencoder: corpus filter, skips, exact resume, 2-process gloo == 1 process, CLI."""

import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from ismtk.autoencoder.corpus import CorpusFilter, SkipLog, epoch_entries, load_corpus, stream_batches
from ismtk.autoencoder.model import AutoencoderConfig
from ismtk.autoencoder.train import TrainAEConfig, latest_checkpoint, train_autoencoder
from ismtk.errors import InputError
from ismtk.train.metrics import read_metrics

DATA = Path(__file__).parent / "data" / "ae"
ROOT = Path(__file__).parents[1]
MODEL = AutoencoderConfig(width=16, heads=2, layers=1, decoder_layers=1, pair_atoms=8, pair_dim=8)
TRAIN = TrainAEConfig(
    batch_size=8, residues_per_chain=12, val_residues_per_chain=4, val_batch_size=8, epochs_stage1=1,
    epochs_stage2=1, shuffle_chains=2, checkpoint_every=2, log_every=1,
)  # fmt: skip


def params(run: Path) -> dict[str, torch.Tensor]:
    return torch.load(run / "model.pt", weights_only=True)


def test_corpus_drops_benchmark_homologs_and_logs_it():
    corpus = load_corpus([DATA])
    names = {Path(e.path).name for e in corpus.train}
    assert "1AY7_l_u.pdb.gz" not in names  # scope40_dev bench homolog
    assert {Path(e.path).name for e in corpus.val} == {"1D6R_l_u.pdb.gz"}
    assert any("dropped 1 row(s): homologous to scope40_dev bench" in n for n in corpus.notes)
    kept = load_corpus([DATA], corpus_filter=CorpusFilter(drop_bench_homologs=False))
    assert "1AY7_l_u.pdb.gz" in {Path(e.path).name for e in kept.train}


def test_epoch_order_is_a_function_of_seed_and_epoch():
    corpus = load_corpus([DATA])
    assert epoch_entries(corpus, 3, 0) == epoch_entries(corpus, 3, 0)
    orders = {tuple(e.path for e in epoch_entries(corpus, epoch, 0)) for epoch in range(6)}
    assert len(orders) > 1


def test_bad_files_are_skipped_and_counted():
    corpus = load_corpus([DATA])
    skips = SkipLog()
    batches = list(stream_batches(corpus.train, 8, 12, 20, 2, 0, 0, skips))
    assert skips.counts["unreadable files"] == 2  # corrupt.pdb.gz and broken.pdb.gz
    assert len(batches) == (2 * 12) // 8
    assert all(len(b) == 8 for b in batches)


def test_resume_equals_uninterrupted_run(tmp_path):
    whole, part = tmp_path / "whole", tmp_path / "part"
    train_autoencoder([DATA], whole, MODEL, replace(TRAIN, max_steps=5), device="cpu", threads=1)
    train_autoencoder([DATA], part, MODEL, replace(TRAIN, max_steps=2), device="cpu", threads=1)
    assert latest_checkpoint(part).name == "step_0000002.pt"
    train_autoencoder([DATA], part, MODEL, replace(TRAIN, max_steps=5), device="cpu", threads=1, resume=True)
    a, b = params(whole), params(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in read_metrics(part / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == [1, 2, 3, 4, 5]
    assert (part / "metrics.png").is_file()
    # stage 2 (epoch 2) was reached with the same data: val records exist at both epoch ends
    assert {r["epoch"] for r in read_metrics(part / "metrics.jsonl") if r["kind"] == "val"} >= {1}


def test_incompatible_checkpoint_is_a_clear_error(tmp_path):
    train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, max_steps=2), device="cpu", threads=1)
    with pytest.raises(InputError, match="width: checkpoint 16 vs now 32"):
        train_autoencoder([DATA], tmp_path, replace(MODEL, width=32), TRAIN, device="cpu", threads=1, resume=True)
    with pytest.raises(InputError, match="batch_size"):
        train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, batch_size=4), device="cpu", threads=1, resume=True)
    with pytest.raises(InputError, match="nothing to resume"):
        train_autoencoder([DATA], tmp_path / "empty", MODEL, TRAIN, device="cpu", threads=1, resume=True)


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "ismtk", "train-ae", str(DATA), "--width", "16", "--heads", "2", "--layers", "1"]
    cmd += ["--decoder-layers", "1", "--batch-size", "8", "--residues-per-chain", "12", "--epochs-stage1", "1"]
    cmd += ["--epochs-stage2", "1", "--max-steps", "3", "--device", "cpu", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_two_gloo_processes_equal_one_process(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    done = cli("-o", str(one))
    assert done.returncode == 0, done.stderr
    assert "homologous to scope40_dev bench" in done.stderr
    done = cli("-o", str(two), "--nproc", "2")
    assert done.returncode == 0, done.stderr
    a, b = params(one), params(two)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
