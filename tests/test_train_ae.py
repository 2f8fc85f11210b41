"""Training the autoencoder: corpus filter, skips, exact resume, 2-process gloo == 1 process, CLI, curves."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from ismtk.autoencoder.corpus import CorpusFilter, SkipLog, epoch_entries, load_corpus, shard_stream
from ismtk.autoencoder.loader import EpochSpec, rank_batches
from ismtk.autoencoder.model import AtomicAutoencoder, AutoencoderConfig
from ismtk.autoencoder.train import TrainAEConfig, latest_checkpoint, resumed_configs, train_autoencoder
from ismtk.errors import InputError
from ismtk.train.metrics import MetricsLog, plot_metrics, read_metrics

DATA = Path(__file__).parent / "data" / "ae"
ROOT = Path(__file__).parents[1]
MODEL = AutoencoderConfig(width=16, heads=2, layers=1, decoder_layers=1, pair_atoms=8, pair_dim=8)
TRAIN = TrainAEConfig(
    batch_size=8, residues_per_chain=12, val_residues_per_chain=4, epochs_stage1=1, data_shards=2,
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


def test_several_inputs_each_with_its_own_index(tmp_path):
    """A TSV without cluster or split (CATH-like): every kept row is its own training cluster."""
    extra = tmp_path / "cath"
    (extra / "pdb").mkdir(parents=True)
    for name in ("1BVN_l_u.pdb.gz", "1ACB_l_u.pdb.gz", "1D6R_l_u.pdb.gz"):
        shutil.copy(DATA / "pdb" / name, extra / "pdb" / name.replace("_l_u", "_dom"))
    table = extra / "classification.tsv"
    table.write_text(
        "domain_id\tfile\tn_res\tscope40_dev_homolog\n"
        "a\tpdb/1BVN_dom.pdb.gz\t74\tmatrix_train\n"
        "b\tpdb/1ACB_dom.pdb.gz\t70\tbench\n"
    )
    corpus = load_corpus([DATA, extra], [table])
    by_name = {Path(e.path).name: e for e in corpus.train}
    assert "1BVN_dom.pdb.gz" in by_name and "1ACB_dom.pdb.gz" not in by_name  # the bench homolog is dropped
    assert by_name["1BVN_dom.pdb.gz"].chain is None and by_name["1BVN_dom.pdb.gz"].n_residues == 74
    # the data/structures-style index of the first input is still used
    assert "1AY7_l_u.pdb.gz" not in by_name and by_name["1ACB_l_u.pdb.gz"].cluster == "61"
    # a file in no table is its own cluster
    assert Path(by_name.get("1D6R_dom.pdb.gz", corpus.val[-1]).path).name == "1D6R_dom.pdb.gz"
    clusters = [e.cluster for e in corpus.train]
    assert len(clusters) == len(set(clusters)) == len(corpus.clusters)
    assert any("classification.tsv: 2 rows, 1 train chains in 1 clusters" in n for n in corpus.notes)
    assert not any(n.startswith("warning") for n in corpus.notes)
    with pytest.raises(InputError, match=f"{table} marks 1 of the input files as benchmark"):
        load_corpus([DATA, extra])  # the table not given: its bench homolog would be trained on
    kept = load_corpus([DATA, extra], corpus_filter=CorpusFilter(drop_bench_homologs=False))
    assert "1ACB_dom.pdb.gz" in {Path(e.path).name for e in kept.train + kept.val}
    assert any(n.startswith(f"{table} lists 2 of the input files") for n in kept.notes)


def test_a_blank_chain_cell_means_any_chain_and_a_table_without_rows_is_said_so(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(DATA / "pdb" / "1BVN_l_u.pdb.gz", folder)
    table = tmp_path / "chains.csv"
    table.write_text("file,chain,cluster40\nin/1BVN_l_u.pdb.gz, ,7\n")
    corpus = load_corpus([folder], [table])
    assert [(e.chain, e.cluster) for e in corpus.train + corpus.val] == [(None, "7")]  # not a chain named " "
    table.write_text("file,chain,cluster40\n")
    with pytest.raises(InputError, match="chains.csv: chain index has a header but no rows"):
        load_corpus([folder], [table])


def test_a_table_above_an_input_folder_filters_too_and_bench_domains_are_dropped(tmp_path):
    """``train-ae structures/pdb``: the index sits one folder up; a scope40_dev-style table marks bench domains by
    their role."""
    with pytest.raises(InputError, match="index.csv marks 1 of the input files as benchmark"):
        load_corpus([DATA / "pdb"])
    assert "1AY7_l_u.pdb.gz" not in {Path(e.path).name for e in load_corpus([DATA / "pdb"], [DATA / "index.csv"]).train}
    scop = tmp_path / "scop"
    (scop / "pdb").mkdir(parents=True)
    for name in ("1BVN_l_u.pdb.gz", "1ACB_l_u.pdb.gz"):
        shutil.copy(DATA / "pdb" / name, scop / "pdb" / name)
    table = scop / "classification.tsv"
    table.write_text("sid\tfile\trole\nx\tpdb/1BVN_l_u.pdb.gz\tmatrix_train\ny\tpdb/1ACB_l_u.pdb.gz\tbench\n")
    corpus = load_corpus([scop], [table])
    assert [Path(e.path).name for e in corpus.train + corpus.val] == ["1BVN_l_u.pdb.gz"]
    assert any("dropped 1 row(s): a scope40_dev bench domain" in n for n in corpus.notes)


def test_the_order_of_the_inputs_does_not_change_the_data(tmp_path):
    """Two tables clustered jointly share clusters: which chain of a shared cluster an epoch draws, and which
    residues validation reads, must not depend on which input came first (a resume with the inputs swapped)."""
    extra = tmp_path / "more"
    (extra / "pdb").mkdir(parents=True)
    for name in ("1BVN_l_u.pdb.gz", "1D6R_l_u.pdb.gz", "1ACB_l_u.pdb.gz"):
        shutil.copy(DATA / "pdb" / name, extra / "pdb" / name.replace("_l_u", "_x"))
    (extra / "index.csv").write_text(  # clusters 158 and 61 shared with the first table's
        "file,chain,cluster40,split\npdb/1BVN_x.pdb.gz,,158,train\npdb/1ACB_x.pdb.gz,,61,train\n"
        "pdb/1D6R_x.pdb.gz,A,160,val\n"
    )
    one, two = load_corpus([DATA, extra]), load_corpus([extra, DATA])
    assert one.train == two.train and one.val == two.val and one.fingerprint() == two.fingerprint()
    assert all(epoch_entries(one, epoch, 0) == epoch_entries(two, epoch, 0) for epoch in range(8))


def test_epoch_order_is_a_function_of_seed_and_epoch():
    corpus = load_corpus([DATA])
    assert epoch_entries(corpus, 3, 0) == epoch_entries(corpus, 3, 0)
    orders = {tuple(e.path for e in epoch_entries(corpus, epoch, 0)) for epoch in range(6)}
    assert len(orders) > 1


def test_bad_files_are_skipped_and_counted():
    corpus = load_corpus([DATA])
    skips = SkipLog()
    stream = shard_stream(corpus.train, 8, 12, 20, 2, np.random.default_rng(0), skips)
    batches = [next(stream) for _ in range(7)]  # 24 microenvironments a pass: the chains are read again
    assert skips.counts["unreadable files"] == 4  # corrupt.pdb.gz and broken.pdb.gz, twice
    assert all(len(b) == 8 for b in batches)
    bad = [e for e in corpus.train if "corrupt" in e.path or "broken" in e.path]
    assert len(next(shard_stream(bad, 8, 12, 20, 2, np.random.default_rng(0), SkipLog(), corpus.train))) == 8
    with pytest.raises(InputError, match="no usable training chain"):
        next(shard_stream(bad, 8, 12, 20, 2, np.random.default_rng(0), SkipLog()))


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
    more = [DATA, DATA.parent / "search" / "d1ycca_.pdb.gz"]  # another chain: another epoch order and schedule
    with pytest.raises(InputError, match="other chains than these inputs give"):
        train_autoencoder(more, tmp_path, MODEL, TRAIN, device="cpu", threads=1, resume=True)


def test_run_folder_is_not_overwritten_by_accident(tmp_path):
    train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, max_steps=2), device="cpu", threads=1)
    before = (tmp_path / "metrics.jsonl").read_text()
    with pytest.raises(InputError, match="not empty.*--resume.*--overwrite"):
        train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, max_steps=3), device="cpu", threads=1)
    assert (tmp_path / "metrics.jsonl").read_text() == before
    (tmp_path / "notes.txt").write_text("mine")
    train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, max_steps=1), device="cpu", threads=1, overwrite=True)
    assert latest_checkpoint(tmp_path).name == "step_0000001.pt"
    assert [c.name for c in (tmp_path / "checkpoints").iterdir()] == ["step_0000001.pt"]
    assert (tmp_path / "notes.txt").read_text() == "mine"  # only the run's own files are removed
    failed = tmp_path / "failed"  # a run that stopped before its first checkpoint: --resume has nothing to take
    failed.mkdir()
    (failed / "config.json").write_text("{}")
    with pytest.raises(InputError, match="holds no checkpoint to resume.*add --overwrite"):
        train_autoencoder([DATA], failed, MODEL, TRAIN, device="cpu", threads=1)


def test_a_corpus_without_validation_chains_is_warned_of(tmp_path):
    files = [DATA / "pdb" / "1BVN_l_u.pdb.gz", DATA / "pdb" / "1ACB_l_u.pdb.gz"]
    said: list[str] = []
    train_autoencoder(files, tmp_path, MODEL, replace(TRAIN, max_steps=1), device="cpu", threads=1, log=said.append)
    assert any(m.startswith("warning: no validation chains, so no validation metrics and no RUN/best/") for m in said)
    assert not (tmp_path / "best").exists()


def test_resumed_configs_take_the_runs_options_unless_given(tmp_path):
    train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, max_steps=1, best_metric="rmsd"), device="cpu",
                      threads=1)
    model, cfg, taken = resumed_configs(tmp_path, AutoencoderConfig(), TrainAEConfig(lr=0.5), given={"lr"})
    assert model == MODEL and cfg.batch_size == TRAIN.batch_size and cfg.lr == 0.5
    assert taken["width"] == MODEL.width and "lr" not in taken
    assert cfg.best_metric == "rmsd"  # what best/ means, and the validation, continue as they were
    assert cfg.max_steps == 1  # and where it stops: --resume alone does not train on past the run's --max-steps
    assert resumed_configs(tmp_path, MODEL, TrainAEConfig(max_steps=4), given={"max_steps"})[1].max_steps == 4
    # an explicit option that differs from the run is still refused by the checkpoint
    with pytest.raises(InputError, match="lr"):
        train_autoencoder([DATA], tmp_path, model, cfg, device="cpu", threads=1, resume=True)


def test_options_that_cannot_train_are_refused(tmp_path):
    bad_options = [({"lr": float("nan")}, "--lr"), ({"lr": -1e-3}, "--lr"), ({"warmup_epochs": -1.0}, "--warmup")]
    for bad, match in bad_options:
        with pytest.raises(InputError, match=match):
            TrainAEConfig(**bad)
    train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, max_steps=1), device="cpu", threads=1)
    with pytest.raises(InputError, match="--init starts a run, --resume continues one"):  # --init was ignored
        train_autoencoder([DATA], tmp_path, MODEL, TRAIN, device="cpu", threads=1, resume=True, init=tmp_path)


def test_resumed_configs_name_the_run_file_whose_setting_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model": {"radius": -1.0}, "train": {}}))
    with pytest.raises(InputError, match="config.json.*radius"):
        resumed_configs(tmp_path, AutoencoderConfig(), TrainAEConfig(), given=set())


def test_model_file_matches_the_checkpoint_resumed_from(tmp_path):
    train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, max_steps=2), device="cpu", threads=1)
    saved = params(tmp_path)
    # a run killed after its checkpoint but with a later model.pt: resume restores the pair
    torch.save({k: v + 1 for k, v in saved.items()}, tmp_path / "model.pt")
    train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, max_steps=2), device="cpu", threads=1, resume=True)
    assert all(torch.equal(saved[k], v) for k, v in params(tmp_path).items())


def test_best_model_and_time_budget(tmp_path):
    cfg = replace(TRAIN, max_minutes=0.0, best_metric="aa_recovery")
    train_autoencoder([DATA], tmp_path, MODEL, cfg, device="cpu", threads=1)
    steps = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert steps == [1]  # the budget is checked every log_every (1) steps: it stopped after the first
    best = json.loads((tmp_path / "best" / "best.json").read_text())
    assert best["step"] == 1 and best["metric"] == "aa_recovery"
    assert {"model.json", "model.pt"} <= {p.name for p in (tmp_path / "best").iterdir()}
    with pytest.raises(InputError, match="best-metric"):
        TrainAEConfig(best_metric="speed")


def test_init_takes_the_matching_tensors_of_another_decoder(tmp_path):
    old = replace(MODEL, decoder_input="embedding")
    train_autoencoder([DATA], tmp_path / "old", old, replace(TRAIN, max_steps=1), device="cpu", threads=1)
    messages: list[str] = []
    train_autoencoder(
        [DATA], tmp_path / "new", MODEL, replace(TRAIN, max_steps=1, lr=0.0), device="cpu", threads=1,
        init=tmp_path / "old", log=messages.append,
    )  # fmt: skip
    source, new = params(tmp_path / "old"), params(tmp_path / "new")
    assert torch.equal(source["blocks.0.local.qkv.weight"], new["blocks.0.local.qkv.weight"])
    assert not torch.equal(source["dec_in.weight"], new["dec_in.weight"])  # the decoder input changed: fresh
    note = next(m for m in messages if m.startswith("initialised"))
    assert "dec_element.weight" in note and "coord_head.weight" in note


def test_init_grows_a_narrower_model(tmp_path):
    """--init from a model of half the width and heads and one block fewer: grown, not refused; with lr 0 the
    new model's embeddings are two copies of the old one's."""
    from ismtk.autoencoder.io import embed_chains, load_autoencoder
    from ismtk.structure import read_structure

    train_autoencoder([DATA], tmp_path / "old", MODEL, replace(TRAIN, max_steps=1), device="cpu", threads=1)
    wide = replace(MODEL, width=32, heads=4, layers=2)
    messages: list[str] = []
    train_autoencoder(
        [DATA], tmp_path / "new", wide, replace(TRAIN, max_steps=1, lr=0.0), device="cpu", threads=1,
        init=tmp_path / "old", log=messages.append,
    )  # fmt: skip
    assert any(m.startswith("grew") and "width 32, 4 heads, 2 blocks" in m for m in messages)
    chain = read_structure(DATA / "pdb" / "1D6R_l_u.pdb.gz").chains[0]
    old, new = (embed_chains(load_autoencoder(tmp_path / run), [chain])[0] for run in ("old", "new"))
    np.testing.assert_allclose(new, np.concatenate([old, old], axis=1), atol=1e-5)


def cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "ismtk", "train-ae", str(DATA), "--width", "16", "--heads", "2", "--layers", "1"]
    cmd += ["--decoder-layers", "1", "--batch-size", "8", "--residues-per-chain", "12", "--epochs-stage1", "1"]
    cmd += ["--epochs-stage2", "1", "--max-steps", "3", "--device", "cpu", *args]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)


def test_a_corpus_without_a_usable_chain_ends_with_a_plain_error(tmp_path, bad_files):
    """A loader worker's error is said as it is (not as the worker's traceback), and the command ends: workers
    ignore SIGTERM, so a loader left alive by the error would hang the exit handler's join forever."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "ismtk", "train-ae", str(bad_files["ca_only"]), "-o", str(tmp_path / "run")]
    cmd += ["--width", "16", "--heads", "2", "--layers", "1", "--batch-size", "8", "--epochs-stage1", "1"]
    cmd += ["--epochs-stage2", "0", "--device", "cpu", "--loader-workers", "1"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert "error: no usable training chain" in done.stderr and "CA-only" in done.stderr
    assert "Traceback" not in done.stderr and "DataLoader worker" not in done.stderr


def test_gpu_command_on_a_cpu_budget(tmp_path):
    """docs/autoencoder.md's GPU command (paper-width model, --max-minutes), scaled down and on the CPU: it stops
    on its budget mid-schedule and leaves a usable model folder, which --resume continues."""
    from ismtk.autoencoder.io import load_autoencoder

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "ismtk", "train-ae", str(DATA), "-o", str(tmp_path), "--width", "16", "--heads", "2"]
    cmd += ["--layers", "1", "--stage", "both", "--epochs-stage1", "1", "--epochs-stage2", "400", "--batch-size", "8"]
    cmd += ["--residues-per-chain", "12", "--lr", "1e-3", "--coord-weight", "0.05", "--loader-workers", "2"]
    cmd += ["--max-minutes", "0.2", "--device", "cpu", "--checkpoint-every", "1000", "--micro-batch-pairs", "5000"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "config.json").read_text())["train"]["micro_batch_pairs"] == 5000
    records = read_metrics(tmp_path / "metrics.jsonl")
    last = max(r["step"] for r in records)
    assert 0 < last < 401 * 5 and records[-1]["kind"] == "val"  # stopped by the budget, validated
    model = load_autoencoder(tmp_path)
    assert model.cfg.width == 16 and model.cfg.decoder_input == "atoms"
    assert latest_checkpoint(tmp_path).name == f"step_{last:07d}.pt" and (tmp_path / "best" / "model.pt").is_file()
    # --resume takes the model and schedule from the run: no option needs repeating
    short = [sys.executable, "-m", "ismtk", "train-ae", str(DATA), "-o", str(tmp_path), "--resume"]
    short += ["--max-minutes", "0.2", "--device", "cpu"]
    again = subprocess.run(short, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert again.returncode == 0, again.stderr
    assert "resuming from" in again.stderr and "width=16" in again.stderr and "epochs_stage2=400" in again.stderr
    assert max(r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")) > last


@pytest.mark.parametrize("nproc", [1, 2])
def test_sigterm_stops_cleanly_and_resume_continues(tmp_path, nproc):
    """A scheduler's SIGTERM to the process group (the trainer and its loader processes; with --nproc, torchrun's
    agent too, which passes it on) mid-schedule: the step ends, the run is validated and saved, the command exits 0,
    and --resume continues from the step it stopped at (not from an older periodic checkpoint)."""
    import signal
    import time

    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "ismtk", "train-ae", str(DATA), "-o", str(tmp_path), "--width", "16", "--heads", "2"]
    cmd += ["--layers", "1", "--decoder-layers", "1", "--stage", "2", "--epochs-stage2", "400", "--batch-size", "8"]
    cmd += ["--residues-per-chain", "100", "--device", "cpu", "--checkpoint-every", "100000", "--nproc", str(nproc)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    metrics = tmp_path / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while not (metrics.is_file() and metrics.read_text().count("\n") >= 1) and time.monotonic() < deadline:
        time.sleep(0.2)
    if nproc == 1:
        os.killpg(proc.pid, signal.SIGTERM)  # as SLURM does: the trainer and its loader processes
    else:
        proc.send_signal(signal.SIGTERM)  # torchrun's agent passes it on to its processes' groups
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "SIGTERM: stopping at step" in err
    records = read_metrics(metrics)
    last = max(r["step"] for r in records)
    assert records[-1]["kind"] == "val" and latest_checkpoint(tmp_path).name == f"step_{last:07d}.pt"
    again = subprocess.run(
        [sys.executable, "-m", "ismtk", "train-ae", str(DATA), "-o", str(tmp_path), "--resume", "--max-steps",
         str(last + 2), "--device", "cpu"], env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert f"at step {last} " in again.stderr and max(r["step"] for r in read_metrics(metrics)) == last + 2


def test_three_gloo_processes_equal_one_process(tmp_path):
    """An odd process count: uneven batch shares, and ranks whose validation share is empty (one val chain)."""
    one, three = tmp_path / "one", tmp_path / "three"
    done = cli("-o", str(one))
    assert done.returncode == 0, done.stderr
    assert "homologous to scope40_dev bench" in done.stderr
    done = cli("-o", str(three), "--nproc", "3")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("final validation") == 1  # only rank 0 reports
    a, b = params(one), params(three)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    val = [[r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "val"] for run in (one, three)]
    assert val[0][-1]["aa_recovery"] == pytest.approx(val[1][-1]["aa_recovery"])
    # the logged training losses are the batch's, not rank 0's share (8 data shards over 3 ranks: 3 of 8 at rank 0)
    train = [[r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"] for run in (one, three)]
    for key in ("loss", "aa", "disto", "grad_norm"):
        assert train[0][-1][key] == pytest.approx(train[1][-1][key], rel=1e-4), key
    assert val[0][-1]["rmsd"] == pytest.approx(val[1][-1]["rmsd"], rel=1e-4)


def test_ranks_read_their_shards_and_together_make_the_batch():
    corpus = load_corpus([DATA])
    spec = EpochSpec(tuple(epoch_entries(corpus, 0, 0)), 8, 4, 12, 20, 2, 0, 0, steps=3)

    def batches(rank: int, world: int, workers: int) -> list:
        return list(rank_batches(replace(spec, rank=rank, world_size=world), workers, SkipLog()))

    whole = batches(0, 1, 0)
    assert [len(b) for b in whole] == [8, 8, 8]
    in_workers = batches(0, 1, 2)
    shares = [batches(r, 3, 0) for r in range(3)]
    for step, batch in enumerate(whole):
        key = sorted(batch.coords.sum((1, 2)).round(3).tolist())
        assert sorted(in_workers[step].coords.sum((1, 2)).round(3).tolist()) == key
        joined = np.concatenate([share[step].coords.sum((1, 2)) for share in shares])
        assert sorted(joined.round(3).tolist()) == key and [len(s[step]) for s in shares] == [4, 2, 2]
    resumed = list(rank_batches(replace(spec, start=2), 0, SkipLog()))
    np.testing.assert_array_equal(resumed[0].coords, whole[2].coords)
    wide = list(rank_batches(replace(spec, radius=10.0), 0, SkipLog()))  # a model of another radius reads its own
    np.testing.assert_array_equal(wide[0].aa, whole[0].aa)
    assert (wide[0].n_atoms >= whole[0].n_atoms).all() and wide[0].n_atoms.sum() > whole[0].n_atoms.sum()
    assert np.linalg.norm(wide[0].coords, axis=-1).max() > 8.0
    with pytest.raises(InputError, match="data-shards 4 must be at least the number of processes"):
        batches(0, 5, 0)


def test_resume_reads_the_checkpoint_on_the_cpu(tmp_path, monkeypatch):
    """A GPU run's checkpoint is read on the CPU (random states must stay CPU tensors); load_state_dict moves
    the model and optimizer state to the training device."""
    import ismtk.autoencoder.train as trainer

    train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, max_steps=1), device="cpu", threads=1)
    seen = []
    real = trainer.load_checkpoint
    monkeypatch.setattr(trainer, "load_checkpoint", lambda path, map_location: seen.append(map_location) or real(path))
    train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, max_steps=2), device="cpu", threads=1, resume=True)
    assert seen == ["cpu"]


def test_curves_have_a_panel_per_metric_and_none_for_positions(tmp_path):
    log = MetricsLog(tmp_path / "metrics.jsonl")
    log.write("train", 1, epoch=0, stage=2, loss=2.0, lr=1e-3)
    log.write("train", 2, epoch=0, stage=2, loss=1.5, lr=5e-4)
    log.write("val", 2, epoch=1, stage=2, loss=1.7, aa_recovery=0.3, rmsd=float("nan"), note="text")
    assert plot_metrics(log.path, tmp_path / "metrics.png") == ["aa_recovery", "loss", "lr"]
    assert (tmp_path / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.jsonl", "metrics.png"]  # no temporary left
    MetricsLog(tmp_path / "empty.jsonl")
    assert plot_metrics(tmp_path / "empty.jsonl", tmp_path / "empty.png") == []
    assert not (tmp_path / "empty.png").exists()


def test_a_diverged_validation_never_becomes_the_best_model(tmp_path):
    """NaN compares false both ways: kept as the best, it made every later value, however bad, the best too."""
    from types import SimpleNamespace

    from ismtk.autoencoder.train import AutoencoderTrainer, _Position

    model = AtomicAutoencoder(AutoencoderConfig(width=16, heads=2, layers=1, decoder_layers=1))
    for metric, values, best in (("aa", [2.5, float("nan"), 2.7], 2.5), ("aa_recovery", [0.3, float("inf"), 0.2], 0.3)):
        trainer = SimpleNamespace(cfg=TrainAEConfig(best_metric=metric), env=SimpleNamespace(is_main=True), best={},
                                  run=tmp_path / metric, model=model)
        for step, value in enumerate(values):
            AutoencoderTrainer.keep_best(trainer, _Position(step=step), {metric: value})
        assert (trainer.best["step"], trainer.best["value"]) == (0, best)


def test_skips_of_batches_passed_over_on_resume_are_not_counted_again():
    """The checkpoint holds the skips of the batches before it; reading them again to reach its position must not
    add them twice."""
    entries = tuple(epoch_entries(load_corpus([DATA]), 0, 0))

    def skipped(start: int, steps: int = 6) -> int:
        skips = SkipLog()
        list(rank_batches(EpochSpec(entries, 8, 2, 12, 20, 2, 0, 0, steps, start), 0, skips))
        return sum(skips.counts.values())

    assert skipped(0) > 0 and skipped(3) + skipped(0, steps=3) == skipped(0)


def test_ca_only_chains_are_left_out_of_the_corpus_as_the_tokenizers_leave_them_out(bad_files):
    """Training and clustering see the chains an ISM tokenizer encodes, not CA-only traces."""
    from ismtk.autoencoder.corpus import chain_residues

    corpus = load_corpus([bad_files["ca_only"], DATA / "pdb" / "1ACB_l_u.pdb.gz"])
    skips = SkipLog()
    got = list(chain_residues(corpus.train + corpus.val, 8, 1, np.random.default_rng(0), skips))
    assert [Path(chain.source).name for chain, _ in got] == ["1ACB_l_u.pdb.gz"]
    assert skips.counts["unusable chains"] == 1 and "CA-only" in skips.first["unusable chains"]


def test_learning_rate_warms_up_linearly_then_follows_a_cosine_to_its_floor():
    from ismtk.train.schedule import warmup_cosine

    assert warmup_cosine(0, 100, 10) == pytest.approx(0.1)  # the first step already learns
    assert warmup_cosine(9, 100, 10) == pytest.approx(1.0) == warmup_cosine(10, 100, 10)
    assert warmup_cosine(55, 100, 10, min_ratio=0.1) == pytest.approx(0.1 + 0.9 * 0.5)  # half-way down the cosine
    assert warmup_cosine(100, 100, 10, min_ratio=0.1) == pytest.approx(0.1)
    assert warmup_cosine(0, 100, 0) == pytest.approx(1.0)  # no warm-up


def test_a_stop_at_an_epochs_last_step_resumes_as_if_uninterrupted(tmp_path):
    """Stopped with the epoch's last step (here by the time budget, checked every 5 steps = one epoch), the epoch
    used to be validated again after --resume: a second val record, and best.json naming the wrong epoch."""
    base = replace(TRAIN, epochs_stage1=2, epochs_stage2=1, warmup_epochs=0.4, log_every=5, checkpoint_every=1000)
    whole, part = tmp_path / "whole", tmp_path / "part"
    train_autoencoder([DATA], whole, MODEL, base, device="cpu", threads=1)
    val = [r["step"] for r in read_metrics(whole / "metrics.jsonl") if r["kind"] == "val"]
    assert val == [5, 10, 15]  # 5-step epochs
    train_autoencoder([DATA], part, MODEL, replace(base, max_minutes=0.0), device="cpu", threads=1)
    train_autoencoder([DATA], part, MODEL, base, device="cpu", threads=1, resume=True)
    records = [[(r["kind"], r["step"], r["epoch"]) for r in read_metrics(run / "metrics.jsonl")]
               for run in (whole, part)]
    assert records[0] == records[1]
    best = [json.loads((run / "best" / "best.json").read_text()) for run in (whole, part)]
    assert (best[0]["step"], best[0]["epoch"]) == (best[1]["step"], best[1]["epoch"])


def test_the_last_steps_of_every_epoch_are_logged(tmp_path):
    """log_every 3 over 5-step epochs: steps 4-5 of the first epoch were never logged (the window was the epoch's)."""
    train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, epochs_stage1=2, log_every=3), device="cpu", threads=1)
    train = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl") if r["kind"] == "train"]
    assert train == [3, 5, 6, 9, 10, 12, 15]


def test_a_metrics_line_cut_short_by_a_kill_is_dropped_on_resume(tmp_path):
    train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, max_steps=2), device="cpu", threads=1)
    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"kind": "train", "step": 3, "epo')
    train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, max_steps=3), device="cpu", threads=1, resume=True)
    assert [r["step"] for r in read_metrics(metrics) if r["kind"] == "train"] == [1, 2, 3]
    metrics.write_text('{"kind": "tr\n' + metrics.read_text())
    with pytest.raises(InputError, match="metrics.jsonl: line 1 is not a JSON record"):
        read_metrics(metrics)


def test_best_model_and_best_json_are_replaced_together(tmp_path, monkeypatch):
    """A crash between writing the best model and its best.json left a model that no best.json describes."""
    import ismtk.autoencoder.train as trainer

    saved = trainer.save_autoencoder

    def crash_after_saving(model, folder):
        saved(model, folder)
        if Path(folder).name == "best" or Path(folder).name.startswith(".best."):  # RUN/best, or its temporary
            raise OSError("disk full")

    monkeypatch.setattr(trainer, "save_autoencoder", crash_after_saving)
    with pytest.raises(OSError, match="disk full"):
        train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, max_steps=3), device="cpu", threads=1)
    assert not (tmp_path / "best").exists()


def test_a_warm_up_as_long_as_a_stage_is_warned_of(tmp_path):
    """--epochs-stage2 1 with the default one-epoch warm-up: the rate rises for the whole stage, never decays."""
    messages = []
    train_autoencoder([DATA], tmp_path, MODEL, replace(TRAIN, stage="2", max_steps=1), device="cpu", threads=1,
                      log=messages.append)
    assert any("--warmup-epochs 1 lasts all of stage 2's 1 epoch(s)" in m for m in messages)
    messages.clear()
    train_autoencoder([DATA], tmp_path / "short", MODEL, replace(TRAIN, stage="2", max_steps=1, warmup_epochs=0.5),
                      device="cpu", threads=1, log=messages.append)
    assert not any("--warmup-epochs" in m for m in messages)


def test_the_latest_checkpoint_is_the_highest_step_past_seven_digits(tmp_path):
    """Names sorted as text put step_9999999.pt after step_10000000.pt: resume took the older, pruning deleted the
    newest."""
    folder = tmp_path / "checkpoints"
    folder.mkdir()
    for step in (9_999_998, 9_999_999, 10_000_000):
        (folder / f"step_{step:07d}.pt").write_bytes(b"")
    assert latest_checkpoint(tmp_path).name == "step_10000000.pt"
