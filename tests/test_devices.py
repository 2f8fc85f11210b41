"""Devices and processes on a machine without a GPU: CUDA is monkeypatched in where the logic does not run on it.

``--device`` resolution (shared by the trainers, ``embed`` and ``predict-tokens``), early ``--gpus`` checks, the
children's import path, autocast choices, and rank 0 reading once for every rank (two gloo processes).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from tiny_models import TINY

import ismtk
from ismtk.errors import InputError
from ismtk.plm.tune import autocast_dtype
from ismtk.train import launch
from ismtk.train.checkpoint import rng_state, set_rng_state
from ismtk.train.distributed import broadcast_object, materialise, on_main
from ismtk.train.launch import Processes, is_main_process, native_bf16, package_path, relaunch, resolve_device

ROOT = Path(ismtk.__file__).resolve().parent.parent


@pytest.fixture
def gpus(monkeypatch):
    """Pretend ``n`` CUDA GPUs are visible (and no torchrun variables are set)."""
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)

    def visible(n: int) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: n)

    return visible


def test_embed_and_predict_say_a_missing_gpu_before_loading_the_model(gpus, tmp_path, monkeypatch):
    from ismtk.plm import embed, predict

    gpus(0)
    fasta = tmp_path / "s.fa"
    fasta.write_text(">a\nACDE\n")

    def loading(*args, **kwargs):
        raise AssertionError("the model was loaded first")

    monkeypatch.setattr("ismtk.plm.esm.load_esm", loading)
    monkeypatch.setattr(predict, "load_predictor", loading)
    for call in (lambda: embed.embed_fasta("esm2_t6_8M_UR50D", fasta, tmp_path / "out", device="cuda"),
                 lambda: predict.predict_tokens("export", fasta, tmp_path / "t.fasta", device="cuda")):
        with pytest.raises(InputError, match="no CUDA GPU is visible"):
            call()


def test_auto_is_cuda_when_visible_and_cuda_is_the_local_rank_s_gpu(gpus, monkeypatch):
    gpus(0)
    assert resolve_device("auto") == torch.device("cpu") == resolve_device(torch.device("cpu"))
    with pytest.raises(InputError, match="no CUDA GPU is visible"):
        resolve_device("cuda")
    with pytest.raises(InputError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    for other in ("mps", "meta", "xpu"):  # devices torch knows and ismtk does not run on
        with pytest.raises(InputError, match="expected auto, cpu, cuda or cuda:N"):
            resolve_device(other)
    gpus(2)
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(InputError, match="needs GPU 2, but only 2"):
        resolve_device("cuda:2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    with pytest.raises(InputError, match="names one GPU, but this node runs 2 processes"):
        resolve_device("cuda:0")
    monkeypatch.setenv("LOCAL_RANK", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    with pytest.raises(InputError, match="local rank 2 needs GPU 2"):
        resolve_device("cuda")


def test_more_gpus_than_visible_fail_before_anything_starts(gpus, monkeypatch, tmp_path):
    def no_launch(*args, **kwargs):
        raise AssertionError("launched")

    monkeypatch.setattr(launch, "launch", no_launch)
    gpus(2)
    with pytest.raises(InputError, match="--gpus 4: 2 CUDA GPU"):
        relaunch(Processes(gpus=4), ["structure-tune"])
    gpus(0)
    with pytest.raises(InputError, match="--gpus 1: 0 CUDA GPU"):
        relaunch(Processes(gpus=1), ["structure-tune"])
    assert relaunch(Processes(device="cpu"), ["structure-tune"]) is None
    from typer.testing import CliRunner

    from ismtk.cli import app

    structures, out = ROOT / "tests" / "data" / "structures", tmp_path / "x.fasta"
    result = CliRunner().invoke(app, ["encode", str(structures), "-o", str(out), "--gpus", "2"])
    assert result.exit_code == 1 and "--gpus 2: 0 CUDA GPU(s) visible" in result.output, result.output


def test_a_checkpoint_s_cuda_random_state_resumes_where_fewer_gpus_are_visible(gpus, monkeypatch):
    """A run saved on a node with 8 GPUs resumes on one with 2: the saving process's own CUDA state is restored
    (older checkpoints held one per visible GPU; those still visible are restored)."""
    restored = []
    monkeypatch.setattr(torch.cuda, "get_rng_state", lambda: torch.full((4,), 7, dtype=torch.uint8))
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device="cuda": restored.append((device, state)))
    gpus(8)
    state = rng_state()
    gpus(2)
    set_rng_state(state)
    assert len(restored) == 1 and restored[0][1].tolist() == [7] * 4
    restored.clear()
    set_rng_state(dict(state, cuda=[torch.full((4,), i, dtype=torch.uint8) for i in range(8)]))
    assert [(device, int(s[0])) for device, s in restored] == [(0, 0), (1, 1)]


def test_collectives_wait_longer_than_nccl_s_ten_minutes(monkeypatch):
    """Rank 0 writes a large model's checkpoint while the others wait in a collective: the process group is made
    with a timeout of an hour, not NCCL's default of 10 minutes."""
    from ismtk.train import distributed

    made = {}
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda **kwargs: made.update(kwargs))
    monkeypatch.setenv("WORLD_SIZE", "2")
    distributed.setup("cpu")
    assert made == {"backend": "gloo", "timeout": distributed.COLLECTIVE_TIMEOUT}
    assert distributed.COLLECTIVE_TIMEOUT.total_seconds() == 3600


def test_a_device_that_contradicts_the_process_count_is_refused():
    """--gpus 1 --device cuda:1 trained on GPU 0 and --nproc 2 --device cuda on the CPU, in silence."""
    for processes, message in ((Processes(device="cuda:1", gpus=1), "GPUs 0 to 0"),
                               (Processes(device="cuda", nproc=2), "--nproc runs CPU processes")):
        with pytest.raises(InputError, match=message):
            relaunch(processes, ["train-ae"])


def test_autoencoder_parts_are_sized_by_the_gpu_s_memory(monkeypatch):
    """16M padded pairs took ~25 GB on an H200: a 24 GB or 16 GB GPU gets smaller parts by default."""
    from types import SimpleNamespace

    from ismtk.autoencoder.train import MICRO_BATCH_PAIRS, default_micro_batch_pairs

    def gpu(gib: int) -> int:
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=gib << 30))
        return default_micro_batch_pairs(torch.device("cuda", 0))

    assert default_micro_batch_pairs(torch.device("cpu")) == MICRO_BATCH_PAIRS[0]
    assert gpu(141) == gpu(80) == MICRO_BATCH_PAIRS[1]
    assert 6_000_000 < gpu(24) < 7_000_000 and 4_000_000 < gpu(16) < 4_500_000


def test_encode_batches_are_sized_for_the_device(monkeypatch):
    """A GPU embeds thousands of environments per forward pass (a CPU-sized batch is ~50), within a fifth of its
    memory; the CPU keeps the sizes its tokens were made with."""
    from types import SimpleNamespace

    from ismtk.autoencoder.io import EMBED_BATCH, EMBED_PAIRS, GPU_EMBED_BATCH, GPU_EMBED_PAIRS, embed_budget

    def gpu(gib: int) -> tuple[int, int]:
        monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: SimpleNamespace(total_memory=gib << 30))
        return embed_budget(torch.device("cuda", 0))

    assert embed_budget(torch.device("cpu")) == (EMBED_BATCH, EMBED_PAIRS)
    assert gpu(141) == (GPU_EMBED_BATCH, GPU_EMBED_PAIRS)
    assert gpu(16)[0] == GPU_EMBED_BATCH and 2_000_000 < gpu(16)[1] < 2_200_000


def test_children_import_this_copy(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(["/elsewhere", str(ROOT)]))
    assert package_path().split(os.pathsep) == [str(ROOT), "/elsewhere"]
    monkeypatch.delenv("PYTHONPATH")
    assert package_path() == str(ROOT)


def test_only_rank_zero_is_the_main_process(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert is_main_process()
    monkeypatch.setenv("RANK", "1")
    assert not is_main_process()


def test_autocast_follows_the_device_and_its_bf16_support(monkeypatch):
    """structure-tune's --precision auto, and train-ae's bf16 (on GPUs with native bf16 only: V100 and T4 train
    the autoencoder in float32)."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert not native_bf16(cpu)
    assert autocast_dtype("auto", cpu) is None and autocast_dtype("fp16", cpu) == torch.float16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert autocast_dtype("auto", cuda) == torch.bfloat16 == autocast_dtype("auto", cuda, fsdp=True)
    assert native_bf16(cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: including_emulation)
    assert not native_bf16(cuda)
    assert autocast_dtype("auto", cuda) == torch.float16  # V100, T4: fp16 with loss scaling
    assert autocast_dtype("auto", cuda, fsdp=True) is None
    with pytest.raises(InputError, match="fp16 .* cannot be combined with --fsdp"):
        autocast_dtype("fp16", cuda, fsdp=True)


def test_materialising_a_meta_model_keeps_tied_weights_tied():
    with torch.device("meta"):
        model = TINY.build()
    assert model.lm_head.weight is model.embed_tokens.weight
    materialise(model, torch.device("cpu"))
    assert model.lm_head.weight is model.embed_tokens.weight and model.lm_head.weight.device.type == "cpu"


def _unreadable() -> None:
    raise InputError("backbone.pt: not a readable weights file")


def _rank_main(rank: int, init_file: str, out: str) -> None:
    """Rank ``rank`` of two: rank 0 reads a "file" once, every rank gets it, and rank 0's error reaches rank 1."""
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=2)
    calls = []

    def read() -> dict:
        calls.append(rank)
        return {"read by": rank}

    try:
        value = on_main(read)
        shared = broadcast_object(value)
        try:
            on_main(_unreadable)
            failure = None
        except InputError as exc:
            failure = str(exc)
        Path(out, f"{rank}.json").write_text(json.dumps([calls, value, shared, failure]))
    finally:
        dist.destroy_process_group()


def test_rank_zero_reads_once_and_its_errors_reach_every_rank(tmp_path):
    init = Path(tempfile.mkdtemp(dir=tmp_path)) / "init"
    mp.start_processes(_rank_main, args=(str(init), str(tmp_path)), nprocs=2, start_method="spawn")
    results = [json.loads((tmp_path / f"{rank}.json").read_text()) for rank in (0, 1)]
    error = "backbone.pt: not a readable weights file"
    assert results[0] == [[0], {"read by": 0}, {"read by": 0}, error]
    assert results[1] == [[], None, {"read by": 0}, error]
