"""The structure-tuning trainer: one file that runs alone, under ``torchrun`` (DDP) or on gloo CPU ranks.

Recipe of ISM's public structure-tuning code (Ouyang-Zhang et al. 2024): AdamW (lr 1e-4, weight decay
5e-3), linear warm-up then cosine decay counted in epochs (20 epochs, 4 warm-up), gradient clipping at 5, a
global batch of 1536 sequences reached by gradient accumulation, random crops of 512 residues, bf16 autocast
on GPU. :class:`TuneConfig` holds what fixes the result, :class:`TuneRuntime` where and how it is computed.

Under torchrun, rank 0 alone reads the backbone and the checkpoint and broadcasts them; the other ranks build
the model on the ``meta`` device and, with FSDP, shard it before any weight is allocated, so no process but
rank 0 ever holds the whole model in host memory, and none holds it on its GPU under FSDP.

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

import functools
import gc
import hashlib
import json
import math
import time
from collections.abc import Callable, Collection
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ismtk.atomic import atomic_folder, atomic_write
from ismtk.errors import InputError
from ismtk.names import read_names, read_rows
from ismtk.plm.esm import LoadedEsm, load_esm, save_fair_esm, save_hf
from ismtk.plm.heads import backbone_digest, save_heads
from ismtk.plm.tune_data import TuneData, collate, load_tune_data, make_example, parse_stream
from ismtk.plm.tuner import StructureTuner, loss_sums
from ismtk.train.checkpoint import check_compatible, load_checkpoint, prepare_run_folder, save_checkpoint
from ismtk.train.distributed import (
    DistEnv,
    all_reduce_sum,
    any_rank,
    broadcast_object,
    materialise,
    on_main,
    process_group,
)
from ismtk.train.launch import DEFAULT_DEVICE, native_bf16
from ismtk.train.metrics import MetricsLog, plot_metrics
from ismtk.train.order import epoch_permutation, shard
from ismtk.train.progress import ProgressCallback, TrainProgress, ignore_progress
from ismtk.train.schedule import warmup_cosine
from ismtk.train.stop import StopRequest

__all__ = [
    "CHECKPOINT_FILE",
    "Precision",
    "RUN_OUTPUTS",
    "StructureTuneTrainer",
    "TuneConfig",
    "TuneResult",
    "TuneRuntime",
    "autocast_dtype",
    "epoch_items",
    "evaluate",
    "export",
    "read_groups",
    "split_validation",
    "structure_tune",
]

Precision = Literal["auto", "bf16", "fp16", "fp32"]
#: Name of the checkpoint in the run folder (the latest one).
CHECKPOINT_FILE = "checkpoint.pt"
#: What a run writes into its folder (removed when a run overwrites the folder).
RUN_OUTPUTS = (CHECKPOINT_FILE, "config.json", "metrics.jsonl", "metrics.png", "export")


@dataclass(frozen=True)
class TuneConfig:
    """What fixes the mathematics and the data order of a run: its inputs and ISM's recipe (the defaults).

    A resumed run must have the same values as its checkpoint.
    """

    backbone: str
    aa: str
    tokens: tuple[str, ...]
    epochs: int = 20
    warmup_epochs: float = 4.0
    lr: float = 1e-4
    weight_decay: float = 5e-3
    clip: float = 5.0
    batch_size: int = 1536
    crop: int = 512
    mlm_weight: float = 1.0
    val_fraction: float = 0.05
    val_names: str | None = None
    groups: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.lr > 0 and self.weight_decay >= 0 and self.clip >= 0 and self.mlm_weight >= 0):
            raise InputError(f"lr {self.lr:g} must be positive; weight decay {self.weight_decay:g}, clip {self.clip:g} "
                             f"(0: none) and the MLM weight {self.mlm_weight:g} must not be negative")
        numbers = {"lr": self.lr, "weight decay": self.weight_decay, "clip": self.clip,
                   "MLM weight": self.mlm_weight, "warm-up epochs": self.warmup_epochs}
        endless = [f"{name} {value:g}" for name, value in numbers.items() if not math.isfinite(value)]
        if endless:
            raise InputError(f"{', '.join(endless)}: must be finite")
        if self.seed < 0:
            raise InputError(f"seed {self.seed} must be 0 or more")


@dataclass(frozen=True)
class TuneRuntime:
    """Where and how a run computes; none of it changes the result beyond rounding.

    ``out``: the run folder. ``micro_batch``: sequences per forward pass per process (the global batch is
    reached by accumulation). ``precision``: autocast dtype (:func:`autocast_dtype`); ``fp16`` also scales the
    loss (``GradScaler``).
    ``activation_checkpointing`` recomputes activations in the backward pass; ``fsdp`` shards weights,
    gradients and optimizer state over the processes. ``resume`` continues from the run folder's checkpoint;
    without it a folder that holds files is refused, unless ``overwrite`` (its run's files are removed).
    ``stop_after`` stops (with a checkpoint) after that many steps of this call (a resumed run: that many more),
    ``max_minutes`` after the first step that ends past that wall-clock budget from the call's start (a scheduler's
    time limit less a margin); ``checkpoint_every`` also checkpoints
    every N steps (0: only at epoch ends); ``log_every``: steps between training records. ``device`` and
    ``threads`` (torch threads per process, ``None``: torch's choice) place the process.
    """

    out: str
    micro_batch: int = 8
    precision: Precision = "auto"
    activation_checkpointing: bool = False
    fsdp: bool = False
    resume: bool = False
    overwrite: bool = False
    stop_after: int | None = None
    max_minutes: float | None = None
    checkpoint_every: int = 0
    log_every: int = 1
    device: str = DEFAULT_DEVICE
    threads: int | None = None


#: Options of :class:`TuneRuntime` that ``--resume`` takes from the run unless given (not where it runs).
RESUMED_RUNTIME = ("micro_batch", "precision", "activation_checkpointing", "fsdp", "checkpoint_every")


def resumed_config(
    run: str | Path, config: TuneConfig, runtime: TuneRuntime, given: Collection[str]
) -> tuple[TuneConfig, TuneRuntime, dict[str, Any]]:
    """The configuration to resume the run in folder ``run`` with: every :class:`TuneConfig` field and every
    :data:`RESUMED_RUNTIME` option not named in ``given`` (the options the caller set itself) comes from the run's
    ``config.json``, so ``--resume`` needs neither the backbone, the inputs nor any option repeated. Returns them
    and the values taken from the run that differ. A folder without ``config.json`` leaves both as they are; a
    given value that differs from the run's is still refused when the checkpoint is read."""
    path = Path(run, "config.json")
    if not path.is_file():
        return config, runtime, {}
    try:
        saved = json.loads(path.read_text())
        values = {f.name: saved[f.name] for f in fields(TuneConfig) if f.name in saved and f.name not in given}
        options = {k: saved["runtime"][k] for k in RESUMED_RUNTIME if k in saved["runtime"] and k not in given}
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise InputError(f"{path}: not a structure-tune run configuration ({exc!r})") from None
    if "tokens" in values:
        values["tokens"] = tuple(values["tokens"])
    taken = {k: v for k, v in values.items() if getattr(config, k) != v}
    taken |= {k: v for k, v in options.items() if getattr(runtime, k) != v}
    return replace(config, **values), replace(runtime, **options), taken


@dataclass
class TuneResult:
    """Where a run left its files, how far it got, and its last validation figures."""

    out: Path
    step: int
    total_steps: int
    exported: list[Path] = field(default_factory=list)
    val: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def split_validation(
    data: TuneData, fraction: float, names_file: str | None, seed: int, groups: list[np.ndarray] | None = None,
    note: Callable[[str], None] | None = None,
) -> tuple[TuneData, TuneData]:
    """Train and held-out parts: the records listed in ``names_file``, else a seeded ``fraction`` of them, drawn as
    whole ``groups`` (:func:`read_groups` of ``data``) when given, so that no held-out record has a relative (same
    entry or cluster) in training. ``note`` hears of names of ``names_file`` that ``data`` does not hold."""
    if names_file is not None:
        wanted = set(read_names(names_file, "record names"))
        held = [i for i, name in enumerate(data.names) if name in wanted]
        if not held:
            raise InputError(f"{names_file}: none of its names is in the training data")
        if len(held) < len(wanted) and note is not None:
            note(f"--val-names {names_file}: {len(wanted) - len(held)} of its names are not in the training data "
                 "(left out)")
    else:
        count = round(fraction * len(data))
        groups = groups if groups is not None else [np.array([i]) for i in range(len(data))]
        held = []
        for g in np.random.default_rng([seed, 0]).permutation(len(groups)):
            if len(held) >= count:
                break
            held += groups[g].tolist()
        held.sort()
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


def autocast_dtype(precision: Precision, device: torch.device, fsdp: bool = False) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device`` (``None``: fp32, no autocast).

    ``auto``: bf16 on GPUs with native bf16 (Ampere and later), fp16 with loss scaling on older ones (V100,
    T4; fp32 under FSDP, whose shards would each decide alone whether to skip a step), fp32 on the CPU.

    >>> autocast_dtype("auto", torch.device("cpu")), autocast_dtype("bf16", torch.device("cpu"))
    (None, torch.bfloat16)
    """
    if precision == "fp16" and fsdp:
        raise InputError("--precision fp16 (with loss scaling) cannot be combined with --fsdp; use bf16 or fp32")
    if precision == "auto":
        if device.type != "cuda":
            return None
        if native_bf16(device):
            return torch.bfloat16
        return None if fsdp else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}[precision]


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


def _plain(values: object) -> dict:
    """A config dataclass as JSON-ready values (tuples as lists)."""
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(values).items()}


#: :class:`TuneConfig` fields that name files: a resume compares their names, not their folders (data may move;
#: the records themselves are compared by a digest).
_FILE_FIELDS = ("backbone", "aa", "val_names", "groups")


def _portable(config: dict) -> dict:
    """``config`` (as :func:`_plain` gives it) with its files named without their folders (the token streams'
    leading paths too, their options kept)."""
    out = dict(config)
    for key in _FILE_FIELDS:
        if out.get(key) is not None:
            out[key] = Path(out[key]).name
    out["tokens"] = [Path(path).name + (":" + rest if rest else "")
                     for path, _, rest in (spec.partition(":") for spec in out.get("tokens", []))]
    return out


def structure_tune(
    config: TuneConfig,
    runtime: TuneRuntime,
    on_progress: ProgressCallback = ignore_progress,
    on_note: Callable[[str], None] | None = None,
) -> TuneResult:
    """Structure-tune an ESM2 backbone on token streams; see the module docstring for the recipe.

    ``on_progress`` receives a :class:`TrainProgress` after every logged step and every validation,
    ``on_note`` one-line messages; both are called on rank 0 only. Works alone or under torchrun (each
    rank calls this function).
    """
    started = time.perf_counter()  # --max-minutes counts loading the backbone and the data too
    if runtime.threads:
        torch.set_num_threads(runtime.threads)
    with process_group(runtime.device) as env:
        trainer = StructureTuneTrainer(config, runtime, env, on_note)
        try:
            return trainer.fit(on_progress, started)
        finally:
            # free the model while the process group is still registered: a DDP reducer or an FSDP mesh that
            # destroys a gloo group (here, or at interpreter exit) joins its threads holding the GIL, which a
            # thread freeing a finished work's tensor needs, and the process aborts
            trainer.net = trainer.model = trainer.optimizer = None
            del trainer
            gc.collect()


class StructureTuneTrainer:
    """One process's share of a structure-tuning run.

    :meth:`fit` is the recipe; :meth:`train_step`, :meth:`validate`, :meth:`save` and :meth:`restore` are
    its steps. Building the trainer loads the backbone and the data and creates the model and optimizer
    (seeded, so every rank starts the same).
    """

    def __init__(
        self, config: TuneConfig, runtime: TuneRuntime, env: DistEnv, on_note: Callable[[str], None] | None = None
    ) -> None:
        self.config, self.runtime, self.env = config, runtime, env
        self.note = on_note if env.is_main and on_note else (lambda text: None)
        self.out = Path(runtime.out)
        self.checkpoint_path = self.out / CHECKPOINT_FILE
        # rank 0 decides (and clears an overwritten run) before any rank writes
        on_main(lambda: prepare_run_folder(self.out, runtime.resume, runtime.overwrite, RUN_OUTPUTS))
        per_step = runtime.micro_batch * env.world_size
        if config.batch_size % per_step:
            raise InputError(
                f"--batch-size {config.batch_size} is not a multiple of --micro-batch {runtime.micro_batch} x "
                f"{env.world_size} processes; pick sizes that divide it"
            )
        dtype = autocast_dtype(runtime.precision, env.device, runtime.fsdp)
        torch.manual_seed(config.seed)  # new heads (and a created MLM head) start from the seed
        specs = [parse_stream(s) for s in config.tokens]
        if config.mlm_weight == 0 and not any(spec.weight > 0 for spec in specs):
            raise InputError("every loss weight is 0 (--mlm-weight and each stream's :weight=): nothing to train")
        backbone = on_main(lambda: load_esm(config.backbone))  # rank 0 reads (or downloads) it, once
        self.esm_config, backbone_notes = broadcast_object(
            (backbone.config, backbone.notes) if backbone is not None else None)
        for text in backbone_notes:
            self.note(f"backbone: {text}")
        data = load_tune_data(config.aa, specs)
        for text in data.notes:
            self.note(text)
        self.streams, self.notes = data.streams, backbone_notes + data.notes
        self.train_data, self.val_data = split_validation(
            data, config.val_fraction, config.val_names, config.seed,
            read_groups(config.groups, data.names) if config.groups else None, self.note,
        )  # fmt: skip
        self.groups = (read_groups(config.groups, self.train_data.names) if config.groups
                       else [np.array([i]) for i in range(len(self.train_data))])
        self.steps_per_epoch = len(self.groups) // config.batch_size
        if self.steps_per_epoch == 0:
            raise InputError(f"{len(self.groups)} training groups/sequences are fewer than one batch of "
                             f"{config.batch_size}")
        self.total_steps = config.epochs * self.steps_per_epoch
        self.warmup_steps = round(config.warmup_epochs * self.steps_per_epoch)
        self.note(f"{len(self.train_data):,} training sequences in {len(self.groups):,} groups, "
                  f"{len(self.val_data):,} validation; {self.steps_per_epoch} steps per epoch of "
                  f"{config.batch_size} sequences ({config.batch_size // per_step} micro-batches of "
                  f"{runtime.micro_batch} x {env.world_size} processes); {self.total_steps} steps")
        if config.warmup_epochs >= config.epochs:
            self.note(f"warning: --warmup-epochs {config.warmup_epochs:g} lasts all {config.epochs} epoch(s): the "
                      "learning rate rises to the end and never decays; give fewer (ISM: 4 of 20)")
        self.model = self._build_model(backbone)
        del backbone  # rank 0's host copy: the model holds the weights now
        self.optimizer = _optimizer(self.model, config)
        self.net: nn.Module = self.model  # DistributedDataParallel once fit has restored the weights
        self.autocast = (lambda: torch.autocast(env.device.type, dtype=dtype)) if dtype else nullcontext
        self.scaler = torch.amp.GradScaler(env.device.type) if dtype == torch.float16 else None
        self.log: MetricsLog | None = None

    def _build_model(self, backbone: LoadedEsm | None) -> StructureTuner:
        """The model on this rank's device. One process: the loaded backbone moved there. Several: a ``meta``
        skeleton, sharded under FSDP, allocated on the device and filled from rank 0's weights (``backbone``,
        ``None`` on the other ranks) one tensor at a time."""
        checkpointing = self.runtime.activation_checkpointing
        if not self.env.distributed:
            if self.runtime.fsdp:
                raise InputError("--fsdp shards the model over processes; use it with --gpus N or --nproc N (N > 1)")
            assert backbone is not None
            return StructureTuner(backbone.model, self.streams, checkpointing).to(self.env.device).train()
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        full = StructureTuner(backbone.model, self.streams).state_dict() if backbone is not None else {}
        with torch.device("meta"):
            model = StructureTuner(self.esm_config.build(), self.streams, checkpointing)
        if self.runtime.fsdp:
            _shard(model)
        materialise(model, self.env.device)
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
        set_model_state_dict(model, full, options=options)
        return model.train()

    # -- the recipe ---------------------------------------------------------------------------------------
    def fit(self, on_progress: ProgressCallback = ignore_progress, started: float | None = None) -> TuneResult:
        """Train from the start (or, with ``resume``, from the checkpoint) to the last step, ``stop_after`` steps of
        this call, ``max_minutes`` after ``started`` (a :func:`time.perf_counter` reading; by default now) or a
        SIGTERM (:class:`StopRequest`; on any rank): a validation at every epoch end, checkpoints at epoch ends,
        every ``checkpoint_every`` steps and when stopping early; at the end the final checkpoint and the export."""
        with StopRequest() as self.stop:
            return self._fit(on_progress, time.perf_counter() if started is None else started)

    def _fit(self, on_progress: ProgressCallback, started: float) -> TuneResult:
        step = self.restore() if self.runtime.resume else 0
        first = step
        self.start_run(step)
        result = TuneResult(self.out, step, self.total_steps, notes=list(self.notes))
        while step < self.total_steps:
            metrics = self.train_step(step)
            step += 1
            if self.env.is_main and (step % self.runtime.log_every == 0 or step == self.total_steps):
                self.report("train", step, metrics, on_progress)
            epoch_end = step % self.steps_per_epoch == 0
            if epoch_end and len(self.val_data):
                result.val = self.validate()
                if self.env.is_main:
                    self.report("val", step, result.val, on_progress)
            # whether any rank got SIGTERM or ran out of time: a collective, so every rank asks at every step
            budget = self.runtime.max_minutes
            late = budget is not None and time.perf_counter() - started > 60 * budget
            signalled = self.stop.requested
            halted = any_rank(signalled or late, self.env.device) and step < self.total_steps
            limit = self.runtime.stop_after
            stopping = halted or (limit is not None and limit <= step - first and step < self.total_steps)
            periodic = epoch_end or (self.runtime.checkpoint_every and step % self.runtime.checkpoint_every == 0)
            if stopping or (periodic and step < self.total_steps):  # the last one is written by finish()
                self.save(step)
            if stopping:
                why = (" on SIGTERM" if signalled else " at --max-minutes" if late
                       else " as another process did" if halted else "")
                self.note(f"stopped{why} after step {step} of {self.total_steps}; continue with --resume")
                break
        result.step = step
        if step >= self.total_steps:
            result.exported = self.finish(step)
        if self.env.is_main:
            plot_metrics(self.out / "metrics.jsonl", self.out / "metrics.png")
        return result

    # -- its steps ---------------------------------------------------------------------------------------
    def start_run(self, step: int) -> None:
        """Write ``config.json``, open the metrics log (kept up to ``step`` on resume), wrap the model for DDP."""
        if self.env.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            settings = {**_plain(self.config), "runtime": _plain(self.runtime),
                        "streams": [asdict(s) for s in self.streams]}
            with atomic_write(self.out / "config.json", "w") as handle:
                json.dump(settings, handle, indent=2)
            self.log = MetricsLog(self.out / "metrics.jsonl", resume_step=step if self.runtime.resume else None)
        if self.env.distributed and not self.runtime.fsdp:
            self.net = DistributedDataParallel(self.model)

    def train_step(self, step: int) -> dict[str, float]:
        """Optimisation step ``step`` (0-based) on its global batch, a fixed slice of its epoch's order; every
        rank takes every ``world``-th example. Returns the step's training figures (all ranks together)."""
        config, env, names = self.config, self.env, [s.name for s in self.streams]
        weights = [s.weight for s in self.streams]
        epoch, k = divmod(step, self.steps_per_epoch)
        tic = time.perf_counter()
        items = epoch_items(self.groups, epoch, config.seed)[k * config.batch_size : (k + 1) * config.batch_size]
        mine = shard(items, env.rank, env.world_size)
        size = self.runtime.micro_batch
        micro = [collate([make_example(self.train_data, i, config.crop, _rng(config.seed, epoch, i))
                          for i in mine[j : j + size]])
                 for j in range(0, len(mine), size)]
        counts = torch.tensor([[float((b.mlm != -100).sum())] + [float((t != 0).sum()) for t in b.targets]
                               for b in micro]).sum(0)
        counts = all_reduce_sum(counts.to(env.device)).clamp(min=1.0)
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr * warmup_cosine(step, self.total_steps, self.warmup_steps)
        stats = torch.zeros(2 + 3 * len(names), dtype=torch.float64, device=env.device)
        ddp = isinstance(self.net, DistributedDataParallel)
        for j, batch in enumerate(micro):
            batch = batch.to(env.device)
            last = j == len(micro) - 1
            if self.runtime.fsdp:
                self.model.set_requires_gradient_sync(last)
            with self.net.no_sync() if ddp and not last else nullcontext():
                with self.autocast():
                    mlm_logits, heads = self.net(batch.tokens)
                sums = loss_sums(mlm_logits, [heads[n] for n in names], batch)
                loss = config.mlm_weight * sums.mlm / counts[0]
                for s in range(len(names)):
                    loss = loss + weights[s] * sums.streams[s] / counts[1 + s]
                loss = loss * env.world_size
                (self.scaler.scale(loss) if self.scaler else loss).backward()
            stats += sums.stats()
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        # clip 0: no clipping (the norm is still logged)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), config.clip or math.inf)
        grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
        if self.scaler is None and not math.isfinite(float(grad_norm)):  # (fp16's scaler skips such steps itself)
            # the same norm on every rank: all stop, before the step, with the last checkpoint as it was
            raise InputError(f"step {step + 1}: the loss's gradient is not finite (NaN or inf): the learning rate or "
                             "a loss weight is too large; --resume continues from the last checkpoint, e.g. with a "
                             "smaller --lr")
        if self.scaler:
            self.scaler.step(self.optimizer)  # skipped when a gradient overflowed; the scale then shrinks
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        reduced = all_reduce_sum(stats).cpu()  # every rank, every step: collectives stay matched
        seconds = time.perf_counter() - tic
        metrics = _summarise(reduced, names, weights, config.mlm_weight)
        tokens = float(sum(b.tokens.ne(1).sum() for b in micro)) * env.world_size
        metrics.update(epoch=epoch + (k + 1) / self.steps_per_epoch, lr=self.optimizer.param_groups[0]["lr"],
                       grad_norm=float(grad_norm), tokens_per_s=tokens / seconds)
        return metrics

    def validate(self) -> dict[str, float]:
        """Held-out figures (see :func:`evaluate`); a sharded model needs every rank in every forward, so under
        FSDP each rank evaluates all of the validation records."""
        rank, world = (0, 1) if self.runtime.fsdp else (self.env.rank, self.env.world_size)
        return evaluate(self.model, self.val_data, self.config.crop, self.runtime.micro_batch, self.config.seed,
                        rank, world, self.env.device, self.autocast)

    def report(self, kind: str, step: int, figures: dict[str, float], on_progress: ProgressCallback) -> None:
        """Rank 0: one ``train`` or ``val`` record in the metrics log, a progress report, a note per epoch."""
        assert self.log is not None
        if kind == "train":
            self.log.write("train", step, **figures)
            epoch = (step - 1) // self.steps_per_epoch
            on_progress(TrainProgress(step, self.total_steps, epoch, 1, figures, figures["tokens_per_s"]))
        else:
            self.log.write("val", step, epoch=step / self.steps_per_epoch, **figures)
            epoch = step // self.steps_per_epoch
            self.note(f"epoch {epoch}: " + ", ".join(f"{k} {v:.4g}" for k, v in figures.items()))
            on_progress(TrainProgress(step, self.total_steps, epoch, 1, {}, 0.0, figures))

    def save(self, step: int) -> dict[str, torch.Tensor]:
        """Checkpoint after ``step`` steps (collective under FSDP: every rank gathers, rank 0 writes); returns
        the full weights on rank 0 (and nothing elsewhere)."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            get_model_state_dict,
            get_optimizer_state_dict,
        )

        if not (self.env.is_main or self.runtime.fsdp):
            return {}  # replicas: rank 0 has the same weights, and no collective needs this rank
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        state = get_model_state_dict(self.model, options=options)
        optim = get_optimizer_state_dict(self.model, self.optimizer, options=options)
        if self.env.is_main:
            checkpoint = {"model": state, "optimizer": optim, "step": step, "config": _plain(self.config),
                          "data": self._data_fingerprint}
            if self.scaler:
                checkpoint["scaler"] = self.scaler.state_dict()
            save_checkpoint(self.checkpoint_path, checkpoint)
        return state

    def restore(self) -> int:
        """Load the checkpoint of the run folder, if any (its :class:`TuneConfig` must be this run's); returns
        the steps it had done (0 without a checkpoint). Rank 0 reads it and decides, the other ranks receive the
        weights and optimizer state from it: only rank 0 needs to see the run folder."""
        from torch.distributed.checkpoint.state_dict import (
            StateDictOptions,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        saved = on_main(self._read_checkpoint)
        step = broadcast_object(saved["step"] if saved is not None else None)
        if step is None:
            self.note(f"--resume: no checkpoint in {self.out}; starting from the backbone")
            return 0
        saved = saved or {}
        options = StateDictOptions(full_state_dict=True, broadcast_from_rank0=self.env.distributed)
        set_model_state_dict(self.model, saved.get("model", {}), options=options)
        set_optimizer_state_dict(self.model, self.optimizer, saved.get("optimizer", {}), options=options)
        scale = broadcast_object(saved.get("scaler"))
        if self.scaler and scale:
            self.scaler.load_state_dict(scale)
        self.note(f"resumed from {self.checkpoint_path} at step {step}")
        return step

    def _read_checkpoint(self) -> dict | None:
        """The run folder's checkpoint, checked against this run's :class:`TuneConfig` (``None`` if absent)."""
        if not self.checkpoint_path.is_file():
            return None
        saved = load_checkpoint(self.checkpoint_path, map_location="cpu")
        current = _portable(_plain(self.config))
        check_compatible(_portable(saved["config"]), current, tuple(current), str(self.checkpoint_path))
        if saved.get("data", self._data_fingerprint) != self._data_fingerprint:
            raise InputError(f"{self.checkpoint_path}: the run trained on other records than the input files hold now "
                             "(edited or replaced since); resume with the files it started with, or start afresh")
        return saved

    @functools.cached_property
    def _data_fingerprint(self) -> str:
        """Of the training and validation records together (their split is part of the configuration)."""
        return hashlib.sha256((self.train_data.fingerprint() + self.val_data.fingerprint()).encode()).hexdigest()

    def finish(self, step: int) -> list[Path]:
        """The last checkpoint, then (rank 0) the export of the tuned model; returns the exported files."""
        state = self.save(step)
        if not self.env.is_main:
            return []
        plain = self.model
        if self.runtime.fsdp:
            with torch.device("meta"):
                plain = StructureTuner(self.esm_config.build(), self.streams)
            plain.load_state_dict(state, assign=True)  # the gathered tensors themselves, not a copy
            plain.esm.lm_head.weight = plain.esm.embed_tokens.weight
        with atomic_folder(self.out / "export") as folder:  # never half of one model and half of another
            files = export(plain, folder)
        return [self.out / "export" / f.relative_to(folder) for f in files]


def _shard(model: StructureTuner) -> None:
    """FSDP2: one unit per transformer layer, one for the rest (embeddings, heads)."""
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError as exc:
        raise InputError(f"--fsdp needs torch >= 2.6 (FSDP2's fully_shard); this is torch {torch.__version__}") from exc
    for layer in model.esm.layers:
        fully_shard(layer)
    fully_shard(model)


def export(model: StructureTuner, folder: Path) -> list[Path]:
    """Write the tuned backbone for fair-esm and transformers (heads removed) and the heads file."""
    esm = model.esm
    fair, regression = save_fair_esm(esm, folder / f"esm2_t{esm.num_layers}_ismtk.pt")
    model.heads.backbone = backbone_digest(esm)
    return [fair, regression, save_hf(esm, folder / "hf"), save_heads(model.heads, folder / "heads.pt")]
