"""The structure-tuning trainer: one file that runs alone, under ``torchrun`` (DDP) or on gloo CPU ranks.

Recipe of ISM's public code (DESIGN.md section 2): AdamW (lr 1e-4, weight decay 5e-3), linear warm-up then
cosine decay counted in epochs (20 epochs, 4 warm-up), gradient clipping at 5, a global batch of 1536
sequences reached by gradient accumulation, random crops of 512 residues, bf16 autocast on GPU.

The global batch of step ``t`` is a fixed slice of the permutation of its epoch; each rank takes every
``world``-th example of it, and every loss is normalised by the global count of its targets, so N
processes compute the same update as one (up to float summation order). The learning rate is a pure
function of the step and data randomness a function of ``(seed, epoch, example)``, so a run resumed
from a checkpoint continues exactly as if it had not stopped.

Run folder: ``checkpoint.pt`` (latest), ``metrics.jsonl`` + ``metrics.png``, ``config.json`` and, when
training ends, ``export/``: ``esm2_t<L>_ismtk.pt`` (+ ``-contact-regression.pt``) for fair-esm, ``hf/``
for transformers and ``heads.pt`` for ``predict-tokens``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)
from torch.distributed.fsdp import fully_shard
from torch.nn.parallel import DistributedDataParallel

from ismtk.atomic import atomic_write
from ismtk.errors import InputError
from ismtk.names import read_names, read_rows
from ismtk.plm.esm import load_esm, save_fair_esm, save_hf
from ismtk.plm.heads import save_heads
from ismtk.plm.tune_data import TuneData, collate, load_tune_data, make_example, parse_stream
from ismtk.plm.tuner import StructureTuner, loss_sums
from ismtk.train import (
    DistEnv,
    MetricsLog,
    all_reduce_sum,
    check_compatible,
    epoch_permutation,
    load_checkpoint,
    plot_metrics,
    save_checkpoint,
    setup,
    shard,
    teardown,
    warmup_cosine,
)

__all__ = ["TuneConfig", "TuneResult", "epoch_items", "evaluate", "export", "read_groups", "split_validation",
           "structure_tune"]

Precision = Literal["auto", "bf16", "fp32"]
#: Configuration entries a resumed run must share with its checkpoint (they shape the trajectory).
_TRAJECTORY = ("backbone", "aa", "tokens", "epochs", "warmup_epochs", "lr", "weight_decay", "clip",
               "batch_size", "crop", "mlm_weight", "seed", "val_fraction", "val_names", "groups")


@dataclass(frozen=True)
class TuneConfig:
    """Everything a structure-tuning run depends on; defaults follow ISM's recipe."""

    backbone: str
    aa: str
    tokens: tuple[str, ...]
    out: str
    epochs: int = 20
    warmup_epochs: float = 4.0
    lr: float = 1e-4
    weight_decay: float = 5e-3
    clip: float = 5.0
    batch_size: int = 1536
    micro_batch: int = 8
    crop: int = 512
    mlm_weight: float = 1.0
    val_fraction: float = 0.05
    val_names: str | None = None
    groups: str | None = None
    seed: int = 0
    precision: Precision = "auto"
    activation_checkpointing: bool = False
    fsdp: bool = False
    device: str = "auto"
    resume: bool = False
    stop_after: int | None = None
    checkpoint_every: int = 0
    log_every: int = 1
    threads: int | None = None


@dataclass
class TuneResult:
    """Where a run left its files, how far it got, and its last validation figures."""

    out: Path
    step: int
    total_steps: int
    exported: list[Path] = field(default_factory=list)
    val: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def split_validation(data: TuneData, fraction: float, names_file: str | None, seed: int) -> tuple[TuneData, TuneData]:
    """Train and held-out parts: the records listed in ``names_file``, else a seeded ``fraction``."""
    if names_file is not None:
        wanted = set(read_names(names_file, "record names"))
        held = [i for i, name in enumerate(data.names) if name in wanted]
        if not held:
            raise InputError(f"{names_file}: none of its names is in the training data")
    else:
        count = round(fraction * len(data))
        held = sorted(np.random.default_rng([seed, 0]).permutation(len(data))[:count].tolist())
    rest = sorted(set(range(len(data))) - set(held))
    return data.subset(rest), data.subset(held)


def read_groups(path: str, names: list[str]) -> list[np.ndarray]:
    """Groups of record indices from a file of ``name group`` lines (tab, comma or space separated).

    Records the file does not name form a group of their own. Groups are ordered by first member.
    """
    rows = read_rows(path, "groups", 2, "a record name and a group", commas=True)
    group_of = {row.fields[0]: row.fields[1] for row in rows}
    if not set(group_of) & set(names):
        raise InputError(f"{path}: none of its names is a training record")
    members: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        members.setdefault(group_of.get(name, f"\0{name}"), []).append(i)
    return [np.array(m) for m in members.values()]


def epoch_items(groups: list[np.ndarray], epoch: int, seed: int) -> np.ndarray:
    """``(n_groups,)`` record indices of ``epoch``: one random member per group, groups in random order."""
    pick = np.random.default_rng([seed, epoch + 1, 0, 1])
    chosen = np.array([g[pick.integers(len(g))] if len(g) > 1 else g[0] for g in groups])
    return chosen[epoch_permutation(len(groups), epoch, seed)]


def _rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """Generator of example ``index`` in ``epoch`` (``epoch = -1``: validation, fixed)."""
    return np.random.default_rng([seed, epoch + 1, index])


def _summarise(stats: torch.Tensor, names: list[str], weights: list[float], mlm_weight: float) -> dict[str, float]:
    """Averages from all-reduced :meth:`LossSums.stats`."""
    values = stats.tolist()
    mlm = values[0] / max(values[1], 1.0)
    out = {"mlm_loss": mlm, "mlm_ppl": math.exp(min(mlm, 50.0))}
    total = mlm_weight * mlm
    for s, name in enumerate(names):
        loss_sum, count, correct = values[2 + 3 * s : 5 + 3 * s]
        out[f"loss_{name}"] = loss_sum / max(count, 1.0)
        out[f"acc_{name}"] = correct / max(count, 1.0)
        total += weights[s] * out[f"loss_{name}"]
    out["loss"] = total
    return out


@torch.no_grad()
def evaluate(model: StructureTuner, data: TuneData, crop: int, micro_batch: int, seed: int,
             rank: int = 0, world: int = 1, device: torch.device | str = "cpu",
             autocast=nullcontext) -> dict[str, float]:
    """Validation figures of ``data``: MLM loss/perplexity on 15% masked residues, and per stream the
    token accuracy and CE from the *unmasked* sequence (as ``predict-tokens`` sees it), s* excluded."""
    was_training = model.training
    model.eval()
    names = [s.name for s in model.heads.streams]
    stats = torch.zeros(2 + 3 * len(names), dtype=torch.float64)
    mine = shard(np.arange(len(data)), rank, world)
    for start in range(0, len(mine), micro_batch):
        idx = mine[start : start + micro_batch]
        masked = collate([make_example(data, i, crop, _rng(seed, -1, i)) for i in idx]).to(device)
        plain = collate([make_example(data, i, crop, _rng(seed, -1, i), mask=False) for i in idx]).to(device)
        with autocast():
            mlm_logits, _ = model(masked.tokens)
            _, heads = model(plain.tokens)
        mlm_part = loss_sums(mlm_logits, [], masked)
        stream_part = loss_sums(mlm_logits, [heads[n] for n in names], plain)
        stats += torch.cat([mlm_part.stats(), stream_part.stats()[2:]]).cpu()
    model.train(was_training)
    stats = all_reduce_sum(stats.to(device)).cpu()
    weights = [s.weight for s in model.heads.streams]
    return {k: v for k, v in _summarise(stats, names, weights, 1.0).items() if k != "loss"}


def _optimizer(model: StructureTuner, config: TuneConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (biases, norms and embeddings' padding rows excluded)."""
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.98), eps=1e-8)


def structure_tune(config: TuneConfig, on_step: Callable[[int, int, dict], None] | None = None,
                   on_note: Callable[[str], None] | None = None) -> TuneResult:
    """Structure-tune an ESM2 backbone on token streams; see the module docstring for the recipe.

    ``on_step(step, total, metrics)`` and ``on_note(text)`` are called on rank 0 for progress reports.
    """
    env = setup(config.device)
    try:
        return _train(config, env, on_step, on_note)
    finally:
        teardown()


def _train(config: TuneConfig, env: DistEnv, on_step, on_note) -> TuneResult:
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)  # new heads (and a created MLM head) start the same on every rank
    note = (on_note if env.is_main and on_note else lambda text: None)
    out = Path(config.out)
    ckpt_path = out / "checkpoint.pt"
    plain_config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}

    per_step = config.micro_batch * env.world_size
    if config.batch_size % per_step:
        raise InputError(
            f"--batch-size {config.batch_size} is not a multiple of --micro-batch {config.micro_batch} x "
            f"{env.world_size} processes; pick sizes that divide it"
        )
    accum = config.batch_size // per_step

    loaded = load_esm(config.backbone)
    for text in loaded.notes:
        note(f"backbone: {text}")
    data = load_tune_data(config.aa, [parse_stream(s) for s in config.tokens])
    for text in data.notes:
        note(text)
    train, val = split_validation(data, config.val_fraction, config.val_names, config.seed)
    groups = (read_groups(config.groups, train.names) if config.groups
              else [np.array([i]) for i in range(len(train))])
    steps_per_epoch = len(groups) // config.batch_size
    if steps_per_epoch == 0:
        raise InputError(f"{len(groups)} training groups/sequences are fewer than one batch of {config.batch_size}")
    total = config.epochs * steps_per_epoch
    warmup = round(config.warmup_epochs * steps_per_epoch)
    note(f"{len(train):,} training sequences in {len(groups):,} groups, {len(val):,} validation; "
         f"{steps_per_epoch} steps per epoch of {config.batch_size} sequences ({accum} micro-batches of "
         f"{config.micro_batch} x {env.world_size} processes); {total} steps")

    model = StructureTuner(loaded.model, data.streams, config.activation_checkpointing).to(env.device)
    model.train()
    if config.fsdp:
        if not env.distributed:
            raise InputError("--fsdp shards the model over processes; use it with --gpus N or --nproc N (N > 1)")
        for layer in model.esm.layers:
            fully_shard(layer)
        fully_shard(model)
    optimizer = _optimizer(model, config)
    step = 0
    if config.resume and ckpt_path.is_file():
        saved = load_checkpoint(ckpt_path, map_location="cpu")
        check_compatible(saved["config"], plain_config, _TRAJECTORY, str(ckpt_path))
        options = StateDictOptions(full_state_dict=True)
        set_model_state_dict(model, saved["model"], options=options)
        set_optimizer_state_dict(model, optimizer, saved["optimizer"], options=options)
        step = saved["step"]
        note(f"resumed from {ckpt_path} at step {step}")
    elif config.resume:
        note(f"--resume: no checkpoint in {out}; starting from the backbone")
    if env.is_main:
        out.mkdir(parents=True, exist_ok=True)
        with atomic_write(out / "config.json", "w") as handle:
            json.dump({**plain_config, "streams": [asdict(s) for s in data.streams]}, handle, indent=2)
    log = MetricsLog(out / "metrics.jsonl", resume_step=step if config.resume else None) if env.is_main else None
    net = DistributedDataParallel(model) if env.distributed and not config.fsdp else model
    on_gpu = env.device.type == "cuda"
    bf16 = config.precision == "bf16" or (config.precision == "auto" and on_gpu)
    autocast = (lambda: torch.autocast(env.device.type, dtype=torch.bfloat16)) if bf16 else nullcontext
    names = [s.name for s in data.streams]
    weights = [s.weight for s in data.streams]

    def save(step_done: int) -> dict:
        """Checkpoint (collective under FSDP: every rank gathers, rank 0 writes); returns the full weights."""
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(model, options=options)
        optim = get_optimizer_state_dict(model, optimizer, options=options)
        if env.is_main:
            save_checkpoint(ckpt_path, {"model": state, "optimizer": optim, "step": step_done, "config": plain_config})
        return state

    result = TuneResult(out, step, total, notes=loaded.notes + data.notes)
    while step < total:
        epoch, k = divmod(step, steps_per_epoch)
        tic = time.perf_counter()
        items = epoch_items(groups, epoch, config.seed)[k * config.batch_size : (k + 1) * config.batch_size]
        mine = shard(items, env.rank, env.world_size)
        micro = [collate([make_example(train, i, config.crop, _rng(config.seed, epoch, i))
                          for i in mine[j : j + config.micro_batch]])
                 for j in range(0, len(mine), config.micro_batch)]
        counts = torch.tensor([[float((b.mlm != -100).sum())] + [float((t != 0).sum()) for t in b.targets]
                               for b in micro]).sum(0)
        counts = all_reduce_sum(counts.to(env.device)).clamp(min=1.0)
        for group in optimizer.param_groups:
            group["lr"] = config.lr * warmup_cosine(step, total, warmup)
        stats = torch.zeros(2 + 3 * len(names), dtype=torch.float64, device=env.device)
        for j, batch in enumerate(micro):
            batch = batch.to(env.device)
            last = j == len(micro) - 1
            if config.fsdp:
                model.set_requires_gradient_sync(last)
            sync = net.no_sync() if isinstance(net, DistributedDataParallel) and not last else nullcontext()
            with sync:
                with autocast():
                    mlm_logits, heads = net(batch.tokens)
                sums = loss_sums(mlm_logits, [heads[n] for n in names], batch)
                loss = config.mlm_weight * sums.mlm / counts[0]
                for s in range(len(names)):
                    loss = loss + weights[s] * sums.streams[s] / counts[1 + s]
                (loss * env.world_size).backward()
            stats += sums.stats()
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        reduced = all_reduce_sum(stats).cpu()  # every rank, every step: collectives stay matched
        if env.is_main and (step % config.log_every == 0 or step == total):
            seconds = time.perf_counter() - tic
            metrics = _summarise(reduced, names, weights, config.mlm_weight)
            tokens = float(sum(b.tokens.ne(1).sum() for b in micro)) * env.world_size
            metrics.update(epoch=epoch + (k + 1) / steps_per_epoch, lr=optimizer.param_groups[0]["lr"],
                           grad_norm=float(grad_norm), tokens_per_s=tokens / seconds)
            log.write("train", step, **metrics)
            if on_step:
                on_step(step, total, metrics)
        epoch_end = step % steps_per_epoch == 0
        if epoch_end and len(val):
            # a sharded model needs every rank in every forward: each then evaluates all of val
            rank, world = (0, 1) if config.fsdp else (env.rank, env.world_size)
            result.val = evaluate(model, val, config.crop, config.micro_batch, config.seed, rank, world,
                                  env.device, autocast)
            if env.is_main:
                log.write("val", step, epoch=step / steps_per_epoch, **result.val)
                note(f"epoch {step // steps_per_epoch}: " + ", ".join(f"{k} {v:.4g}" for k, v in result.val.items()))
        stopping = config.stop_after is not None and step >= config.stop_after and step < total
        periodic = epoch_end or (config.checkpoint_every and step % config.checkpoint_every == 0)
        if stopping or (periodic and step < total):  # the last one is written below, before the export
            save(step)
        if stopping:
            note(f"stopped after step {step} of {total}; continue with --resume")
            break
    result.step = step
    if step >= total:
        state = save(step)
        if env.is_main:
            plain = model
            if config.fsdp:
                plain = StructureTuner(loaded.config.build(), data.streams)
                plain.load_state_dict(state)
            result.exported = export(plain, out / "export")
    if env.is_main:
        plot_metrics(out / "metrics.jsonl", out / "metrics.png")
    return result


def export(model: StructureTuner, folder: Path) -> list[Path]:
    """Write the tuned backbone for fair-esm and transformers (heads removed) and the heads file."""
    esm = model.esm
    fair, regression = save_fair_esm(esm, folder / f"esm2_t{esm.num_layers}_ismtk.pt")
    return [fair, regression, save_hf(esm, folder / "hf"), save_heads(model.heads, folder / "heads.pt")]
