"""Structure-tuning end to end on a tiny ESM2: learning, s* exclusion, exact resume, DDP equivalence, exports."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import fields, replace
from pathlib import Path

import esm
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_models import tiny_esm, write_pairs

from ismtk.errors import InputError
from ismtk.plm.esm import save_fair_esm
from ismtk.plm.forward import fused_layer_forward
from ismtk.plm.heads import StreamInfo, load_heads
from ismtk.plm.tune import TuneConfig, TuneRuntime, structure_tune
from ismtk.plm.tune_data import collate, load_tune_data, make_example, parse_stream
from ismtk.plm.tuner import StructureTuner, loss_sums
from ismtk.train.checkpoint import load_checkpoint
from ismtk.train.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def tiny_backbone(tmp_path):
    """Path of a tiny fair-esm checkpoint (with its contact-regression sibling)."""
    path, _ = save_fair_esm(tiny_esm(), tmp_path / "esm2_t2_tiny.pt")
    return path


def _config(tmp_path, backbone, **changes) -> tuple[TuneConfig, TuneRuntime]:
    """A tiny run: the recipe (changes to :class:`TuneConfig` fields) and its runtime (changes to the others)."""
    tmp_path.mkdir(exist_ok=True)
    aa, tok = write_pairs(tmp_path, n=24)
    config = TuneConfig(backbone=str(backbone), aa=str(aa), tokens=(f"{tok}:name=3di",), epochs=3,
                        warmup_epochs=0.5, lr=2e-3, batch_size=8, crop=32, val_fraction=0.25)
    runtime = TuneRuntime(out=str(tmp_path / "run"), micro_batch=4, threads=1)
    recipe = {f.name for f in fields(TuneConfig)}
    return (replace(config, **{k: v for k, v in changes.items() if k in recipe}),
            replace(runtime, **{k: v for k, v in changes.items() if k not in recipe}))


def test_disorder_token_positions_carry_no_gradient_from_their_stream(tmp_path):
    aa, tok = write_pairs(tmp_path, n=4)
    data = load_tune_data(aa, [parse_stream(f"{tok}:name=all:alphabet=3di"),
                               parse_stream(f"{tok}:name=sstar:alphabet=3di:ignore=A")])
    model = StructureTuner(tiny_esm(), data.streams)
    batch = collate([make_example(data, i, 64, np.random.default_rng(i)) for i in range(4)])
    hidden = model.esm(batch.tokens, repr_layers=[2])["representations"][2].detach().requires_grad_()
    logits = model.heads(hidden)
    sums = loss_sums(torch.zeros(*batch.tokens.shape, 33), [logits["all"], logits["sstar"]], batch)
    star = (batch.targets[0] == 1) & (batch.targets[1] == 0)  # residues whose token is s* ("A")
    assert star.sum() > 0
    for stream, expect_zero in ((1, True), (0, False)):
        (grad,) = torch.autograd.grad(sums.streams[stream], hidden)
        assert (grad[star].abs().sum() == 0) == expect_zero
    assert sums.counts[1] == sums.counts[0] - star.sum()


def test_tiny_run_learns_validates_and_exports_drop_in_checkpoints(tmp_path, tiny_backbone):
    config = _config(tmp_path, tiny_backbone, epochs=8)
    result = structure_tune(*config)
    train = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "train"]
    val = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if r["kind"] == "val"]
    assert len(train) == result.total_steps == 16 and len(val) == 8
    assert np.mean([r["loss"] for r in train[-4:]]) < np.mean([r["loss"] for r in train[:4]]) - 0.3
    assert val[-1]["acc_3di"] > val[0]["acc_3di"] and set(result.val) >= {"mlm_ppl", "acc_3di"}
    assert (tmp_path / "run" / "metrics.png").stat().st_size > 0

    state = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    fair = tmp_path / "run" / "export" / "esm2_t2_ismtk.pt"
    with torch.serialization.safe_globals([argparse.Namespace]):
        tuned, _ = esm.pretrained.load_model_and_alphabet_local(str(fair))
    assert all(torch.equal(v, state[f"esm.{k}"]) for k, v in tuned.state_dict().items())
    assert not any(k.startswith("heads") for k in torch.load(fair, weights_only=False)["model"])
    heads = load_heads(tmp_path / "run" / "export" / "heads.pt")
    assert heads.streams == [StreamInfo("3di", "ACDEFGHIKLMNPQRSTVWY", None, 1.0)]
    assert all(torch.equal(v, state[f"heads.heads.{k}"]) for k, v in heads.heads.state_dict().items())
    hidden = tuned(torch.tensor([[0, 5, 6, 7, 2]]), repr_layers=[2])["representations"][2]
    assert len(heads.decode("3di", heads.predict(hidden)["3di"][0])) == 5
    assert json.loads((tmp_path / "run" / "export" / "hf" / "config.json").read_text())["num_hidden_layers"] == 2


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_resume_equals_uninterrupted(tmp_path, tiny_backbone, precision):
    whole = structure_tune(*_config(tmp_path / "a", tiny_backbone, precision=precision))
    first = structure_tune(*_config(tmp_path / "b", tiny_backbone, stop_after=4, precision=precision))
    assert first.step == 4 and not first.exported
    second = structure_tune(*_config(tmp_path / "b", tiny_backbone, resume=True, precision=precision))
    assert second.step == whole.step == 6
    a = load_checkpoint(tmp_path / "a" / "run" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "run" / "checkpoint.pt")
    assert ("scaler" in a) == ("scaler" in b) == (precision == "fp16")  # fp16: the loss scale is resumed too
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    logs = [[{k: v for k, v in r.items() if k != "tokens_per_s"} for r in read_metrics(t / "run" / "metrics.jsonl")]
            for t in (tmp_path / "a", tmp_path / "b")]
    assert logs[0] == logs[1]


def _resume_finishes_as_uninterrupted(tmp_path, backbone) -> None:
    """``--resume`` of the stopped run in ``tmp_path/b`` ends with the weights of a run never stopped (in ``a``)."""
    second = structure_tune(*_config(tmp_path / "b", backbone, resume=True))
    whole = structure_tune(*_config(tmp_path / "a", backbone))
    assert second.step == whole.step == 6 and second.exported
    a = load_checkpoint(tmp_path / "a" / "run" / "checkpoint.pt")
    b = load_checkpoint(tmp_path / "b" / "run" / "checkpoint.pt")
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key


def test_sigterm_stops_with_a_checkpoint_and_resume_equals_uninterrupted(tmp_path, tiny_backbone):
    """A scheduler's SIGTERM (sent to this process after step 3) ends the run after that step with a checkpoint
    and no export, and --resume finishes it exactly as a run never stopped."""
    import signal

    def kill_after_three(progress) -> None:
        if progress.val is None and progress.step == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    notes: list[str] = []
    first = structure_tune(*_config(tmp_path / "b", tiny_backbone), on_progress=kill_after_three, on_note=notes.append)
    assert first.step == 3 and not first.exported
    assert any("stopped on SIGTERM after step 3" in note for note in notes)
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the trainer's handler is gone
    _resume_finishes_as_uninterrupted(tmp_path, tiny_backbone)


def test_max_minutes_stops_after_the_step_that_ends_late_and_resume_finishes(tmp_path, tiny_backbone):
    """A budget of 0 minutes is spent by the first step: the run stops there with a checkpoint and a note, exports
    nothing, and --resume (without the budget) finishes it as a run never stopped."""
    notes: list[str] = []
    first = structure_tune(*_config(tmp_path / "b", tiny_backbone, max_minutes=0.0), on_note=notes.append)
    assert first.step == 1 and not first.exported
    assert any("stopped at --max-minutes after step 1 of 6" in note for note in notes)
    _resume_finishes_as_uninterrupted(tmp_path, tiny_backbone)


def test_a_folder_holding_a_run_is_refused_unless_resumed_or_overwritten(tmp_path, tiny_backbone):
    """Without --resume or --overwrite a run never starts over in a folder that holds one; with --overwrite the
    old run's files go (no export of the old model beside the new checkpoint); the export always holds the weights
    of the checkpoint it is reported with."""
    config, runtime = _config(tmp_path, tiny_backbone, epochs=1)
    run = Path(runtime.out)
    structure_tune(config, runtime)
    before = {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}
    with pytest.raises(InputError, match="not empty; add --resume to continue its run or --overwrite"):
        structure_tune(replace(config, seed=1), replace(runtime, stop_after=1))
    assert {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()} == before
    stopped = structure_tune(replace(config, seed=1), replace(runtime, overwrite=True, stop_after=1))
    assert stopped.step == 1 and not (run / "export").exists()
    assert [r["step"] for r in read_metrics(run / "metrics.jsonl")] == [1]
    finished = structure_tune(replace(config, seed=1), replace(runtime, resume=True))
    state = load_checkpoint(run / "checkpoint.pt")
    assert finished.exported and state["step"] == finished.step == finished.total_steps
    heads = load_heads(run / "export" / "heads.pt")
    assert all(torch.equal(v, state["model"][f"heads.heads.{k}"]) for k, v in heads.heads.state_dict().items())


@pytest.mark.parametrize("sharding", [[], ["--fsdp"]], ids=["ddp", "fsdp"])
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(tmp_path, tiny_backbone, sharding):
    """Two processes, stopped after one step and resumed, end where one uninterrupted process does. They are
    started by bin/ismtk from another folder with a stale ismtk first on PYTHONPATH: the children must import
    this checkout."""
    config, runtime = _config(tmp_path, tiny_backbone, epochs=1)
    structure_tune(config, replace(runtime, out=str(tmp_path / "one")))
    stale = tmp_path / "stale" / "ismtk"
    stale.mkdir(parents=True)
    (stale / "__init__.py").write_text("raise SystemExit('a stale copy of ismtk was imported')\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    argv = [sys.executable, str(ROOT / "bin" / "ismtk"), "structure-tune", config.backbone, "--aa", config.aa,
            "--tokens", config.tokens[0], "-o", str(tmp_path / "two"), "--epochs", "1", "--warmup-epochs", "0.5",
            "--lr", "2e-3", "--batch-size", "8", "--micro-batch", "2", "--crop", "32", "--val-fraction", "0.25",
            "--threads", "1", "--nproc", "2", *sharding]
    env = {**os.environ, "PYTHONPATH": str(stale.parent)}
    for extra in (["--stop-after", "1"], ["--resume"]):
        done = subprocess.run(argv + extra, check=False, env=env, cwd=elsewhere, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
    assert "resumed from" in done.stderr and "stale" not in done.stderr
    one = load_checkpoint(tmp_path / "one" / "checkpoint.pt")
    two = load_checkpoint(tmp_path / "two" / "checkpoint.pt")
    assert one["step"] == two["step"] == 2
    val = [[r for r in read_metrics(tmp_path / run / "metrics.jsonl") if r["kind"] == "val"] for run in ("one", "two")]
    assert len(val[0]) == len(val[1]) == 1
    for key, value in val[0][0].items():
        assert val[1][0][key] == (pytest.approx(value, rel=1e-5) if isinstance(value, float) else value), key
    for key, value in one["model"].items():
        torch.testing.assert_close(two["model"][key], value, rtol=1e-4, atol=1e-5, msg=key)
    for key, value in one["optimizer"]["state"].items():  # the optimizer state crossed the resume too
        for name in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(two["optimizer"]["state"][key][name], value[name], rtol=1e-3, atol=1e-6)


def test_training_runs_fused_attention_with_fair_esm_s_outputs_and_gradients(tmp_path):
    aa, tok = write_pairs(tmp_path, n=4)
    data = load_tune_data(aa, [parse_stream(f"{tok}:name=3di")])
    batch = collate([make_example(data, i, 64, np.random.default_rng(i)) for i in range(4)])
    assert batch.tokens.eq(1).any()  # padded: the key mask is exercised
    naive, tuner = tiny_esm().train(), StructureTuner(tiny_esm(), data.streams).train()
    assert all(layer.forward.func is fused_layer_forward for layer in tuner.esm.layers)
    weights = torch.randn(*batch.tokens.shape, 32, generator=torch.Generator().manual_seed(0))
    grads = []
    for esm2 in (naive, tuner.esm):
        out = esm2(batch.tokens, repr_layers=[1, 2])
        loss = F.cross_entropy(out["logits"].flatten(0, 1), batch.mlm.flatten(), ignore_index=-100)
        (loss + (out["representations"][1] * weights).sum()).backward()
        grads.append({k: p.grad for k, p in esm2.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 20
    for key, grad in grads[0].items():  # float rounding, relative to each gradient's scale
        torch.testing.assert_close(grads[1][key], grad, rtol=0, atol=1e-5 * float(grad.abs().max()), msg=key)
    with torch.no_grad():  # asking for attention maps runs fair-esm's own layers
        contacts = [esm2(batch.tokens, return_contacts=True)["contacts"] for esm2 in (naive, tuner.esm)]
    torch.testing.assert_close(contacts[1], contacts[0])


def test_activation_checkpointing_gives_the_same_gradients(tmp_path):
    aa, tok = write_pairs(tmp_path, n=4)
    data = load_tune_data(aa, [parse_stream(f"{tok}:name=3di")])
    batch = collate([make_example(data, i, 64, np.random.default_rng(i)) for i in range(4)])
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        model = StructureTuner(tiny_esm(), data.streams, activation_checkpointing=checkpointing).train()
        mlm, heads = model(batch.tokens)
        sums = loss_sums(mlm, [heads["3di"]], batch)
        (sums.mlm + sums.streams[0]).backward()
        grads.append({k: p.grad for k, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for key, grad in grads[0].items():
        torch.testing.assert_close(grads[1][key], grad, msg=key)


def test_resume_refuses_records_edited_since_the_run_started(tmp_path, tiny_backbone):
    """The input paths are the same, their records are not: the data order and split would not be the run's."""
    config, runtime = _config(tmp_path, tiny_backbone, stop_after=1)
    assert structure_tune(config, runtime).step == 1
    aa = Path(config.aa)
    lines = aa.read_text().splitlines()
    lines[1] = ("A" if lines[1][0] != "A" else "C") + lines[1][1:]  # one residue of the first record
    aa.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match="trained on other records than the input files hold now"):
        structure_tune(config, replace(runtime, resume=True, stop_after=None))


def test_val_names_missing_from_the_data_are_said(tmp_path, tiny_backbone):
    """Names of --val-names that the data does not hold were left out in silence (a typo held out less)."""
    names = tmp_path / "val.txt"
    names.write_text("p0\np1\nnot_a_record\n")
    notes: list[str] = []
    structure_tune(*_config(tmp_path / "run", tiny_backbone, val_names=str(names), max_minutes=0.0),
                   on_note=notes.append)
    assert any("val.txt: 1 of its names are not in the training data" in note for note in notes)


def test_stop_after_counts_the_steps_of_each_call_and_moved_inputs_resume(tmp_path, tiny_backbone):
    """A chain of jobs given --resume --stop-after 2 advances two steps each; the run's files may have moved (the
    records are compared by digest), and the data being the same, the resume is refused nothing."""
    config, runtime = _config(tmp_path, tiny_backbone, stop_after=2)
    assert structure_tune(config, runtime).step == 2
    moved = tmp_path / "moved"
    moved.mkdir()
    aa, tokens = Path(config.aa), Path(config.tokens[0].split(":")[0])
    for path in (aa, tokens):
        path.rename(moved / path.name)
    elsewhere = replace(config, aa=str(moved / aa.name), tokens=(f"{moved / tokens.name}:name=3di",))
    assert structure_tune(elsewhere, replace(runtime, resume=True)).step == 4
    with pytest.raises(InputError, match="another configuration"):  # a stream option still counts
        structure_tune(replace(elsewhere, tokens=(f"{moved / tokens.name}:name=3di:weight=2",)),
                       replace(runtime, resume=True))


def test_clip_zero_clips_nothing_and_nonsense_settings_are_refused(tmp_path, tiny_backbone):
    from ismtk.plm.tune_data import parse_stream

    config, runtime = _config(tmp_path, tiny_backbone, clip=0.0, stop_after=1)
    structure_tune(config, runtime)
    from ismtk.plm.esm import load_esm

    before = load_esm(tiny_backbone).model.state_dict()
    after = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    moved = [k for k, v in before.items() if f"esm.{k}" in after and not torch.equal(v, after[f"esm.{k}"])]
    assert len(moved) > len(before) // 2  # clip 0 turned the gradients off before
    inf = float("inf")
    for bad in ({"clip": -1.0}, {"lr": 0.0}, {"lr": -1e-3}, {"weight_decay": -1.0}, {"mlm_weight": -1.0},
                {"lr": inf}, {"mlm_weight": inf}, {"warmup_epochs": inf}, {"seed": -1}):  # (inf trained to NaN)
        with pytest.raises(InputError, match="must"):
            replace(config, **bad)
    for weight in ("-1", "inf"):
        with pytest.raises(InputError, match=f"weight {weight} must be a finite number, 0 or more"):
            parse_stream(f"x.fasta:weight={weight}")
    nothing = replace(config, mlm_weight=0.0, tokens=[f"{config.tokens[0].split(':')[0]}:weight=0"])
    with pytest.raises(InputError, match="every loss weight is 0"):  # it trained on nothing and exported
        structure_tune(nothing, replace(runtime, out=str(tmp_path / "nothing")))


def test_a_loss_that_turns_nan_stops_the_run_before_its_step(tmp_path, tiny_backbone):
    """A run whose loss had turned to NaN went on to the end, exited 0 and exported a NaN model."""
    config, runtime = _config(tmp_path, tiny_backbone, lr=1e30, stop_after=3)
    with pytest.raises(InputError, match="gradient is not finite"):
        structure_tune(config, runtime)
    assert not (tmp_path / "run" / "export").exists()


def test_max_minutes_counts_from_the_call_not_from_the_first_step(tmp_path, tiny_backbone, monkeypatch):
    """Loading a large backbone takes minutes, which a scheduler's time limit counts too."""
    import time as clock

    from ismtk.plm import tune as tune_module

    real = tune_module.StructureTuneTrainer.__init__

    def slow(self, *args, **kwargs):
        real(self, *args, **kwargs)
        clock.sleep(1.5)  # as if loading took that long

    monkeypatch.setattr(tune_module.StructureTuneTrainer, "__init__", slow)
    notes: list[str] = []
    config, runtime = _config(tmp_path, tiny_backbone, max_minutes=1 / 60, warmup_epochs=3)
    result = structure_tune(config, runtime, on_note=notes.append)
    assert result.step == 1 and not result.exported
    assert any("--warmup-epochs 3 lasts all 3 epoch(s)" in note for note in notes)
