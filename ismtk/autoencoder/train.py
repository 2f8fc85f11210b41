"""Training the atomic autoencoder (``ismtk train-ae``): one process, or many under torchrun.

Two stages as in the ISM paper: stage 1 optimises L_AA + L_disto, stage 2 all four losses; each stage has
its own linear warm-up and cosine decay (a pure function of the step). A global batch is made of the parts
of ``data_shards`` data shards (:mod:`ismtk.autoencoder.loader`); each rank reads only its shards, in
DataLoader workers, and DDP averages gradients, so N processes equal one process with the same global
batch. Losses stay on the device between log lines. Rank 0 writes ``metrics.jsonl``, ``metrics.png``, checkpoints
(``checkpoints/step_NNNNNNN.pt``: model, optimizer, position in the data, random states) and the model
(``model.json`` + ``model.pt``). A resumed run restarts at the exact batch where its checkpoint was taken.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel

from ismtk.atomic import atomic_folder, atomic_write
from ismtk.autoencoder.codebook import Codebook
from ismtk.autoencoder.corpus import (
    Corpus,
    CorpusFilter,
    SkipLog,
    epoch_entries,
    expected_envs,
    load_corpus,
    validation_set,
)
from ismtk.autoencoder.grow import can_grow, grow_autoencoder
from ismtk.autoencoder.io import load_autoencoder, save_autoencoder
from ismtk.autoencoder.loader import EpochSpec, rank_batches, rank_shards
from ismtk.autoencoder.losses import LOSS_NAMES, STAGE_LOSSES
from ismtk.autoencoder.model import AtomicAutoencoder, AutoencoderConfig
from ismtk.autoencoder.pairs import PairSet, load_pair_set
from ismtk.autoencoder.step import (
    PAIR_SUM_KEYS,
    SUM_KEYS,
    evaluate,
    forward_backward,
    micro_batches,
    pair_backward,
    pair_evaluate,
    summarise,
)
from ismtk.errors import InputError
from ismtk.structure.microenv import Microenvironments
from ismtk.train.checkpoint import check_compatible, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ismtk.train.distributed import DistEnv, all_reduce_sum, any_rank, process_group
from ismtk.train.launch import gpu_pairs, native_bf16
from ismtk.train.metrics import MetricsLog, plot_metrics
from ismtk.train.progress import TrainProgress
from ismtk.train.schedule import warmup_cosine
from ismtk.train.stop import StopRequest

__all__ = [
    "BEST_METRICS",
    "MICRO_BATCH_PAIRS",
    "PAIR_VAL_PAIRS",
    "AutoencoderTrainer",
    "TrainAEConfig",
    "TrainProgress",
    "default_micro_batch_pairs",
    "latest_checkpoint",
    "resumed_configs",
    "train_autoencoder",
    "validation_pair_batches",
]

Stage = Literal["1", "2", "both"]
#: Validation metrics that can pick the best model.
BEST_METRICS = ("aa", "aa_recovery", "rmsd", "disto_acc", "disto", "aligned_mse", "distances", "pair", "pair_acc")
#: Held-out aligned pairs scored at each validation (``pair_val_alignments``), in batches of ``pair_batch``.
PAIR_VAL_PAIRS = 2048
#: Default ``micro_batch_pairs`` on the CPU and on a large GPU (a part of 16M pairs of ~150-atom environments
#: holds ~700 of them and took ~25 GB in training on an H200); a smaller GPU gets :func:`default_micro_batch_pairs`.
MICRO_BATCH_PAIRS = (250_000, 16_000_000)
#: Files and folders a run writes into its folder (removed by ``overwrite``).
RUN_OUTPUTS = ("config.json", "metrics.jsonl", "metrics.png", "model.json", "model.pt", "checkpoints", "best")
#: Share of a GPU's memory the default parts may fill.
_GPU_MEMORY_SHARE = 0.4


def default_micro_batch_pairs(device: torch.device) -> int:
    """The default ``micro_batch_pairs`` on ``device``: :data:`MICRO_BATCH_PAIRS`, on a GPU at most as many as
    fill :data:`_GPU_MEMORY_SHARE` of its memory (24 GB: about 6M pairs; 16 GB: 4M)."""
    if device.type != "cuda":
        return MICRO_BATCH_PAIRS[0]
    return gpu_pairs(device, _GPU_MEMORY_SHARE, MICRO_BATCH_PAIRS[1])


@dataclass(frozen=True)
class TrainAEConfig:
    """Options of an autoencoder training run (defaults: the ISM paper, except the per-chain residue cap).

    Attributes
    ----------
    stage
        ``1`` (L_AA + L_disto), ``2`` (all four losses; start it from a stage-1 model with ``init``) or
        ``both`` (stage 1 then stage 2).
    epochs_stage1, epochs_stage2
        Epochs of each stage; an epoch is one random chain of every training cluster.
    batch_size
        Microenvironments per optimisation step, over all ranks together.
    lr, weight_decay, warmup_epochs, min_lr_ratio, clip
        AdamW learning rate and weight decay; linear warm-up then cosine decay to ``min_lr_ratio * lr``, per
        stage; gradient-norm clipping.
    coord_weight
        Weight of the two coordinate losses (L_MSE-aligned, L_distances) against L_AA and L_disto (weight 1).
    residues_per_chain, val_residues_per_chain
        Random residues taken from each chain per epoch (training) and once (validation).
    min_residues
        Shorter chains are skipped.
    shuffle_chains
        Chains read together and shuffled into one pool before batching.
    data_shards
        Streams of chains a batch is drawn from (each adds ``batch_size / data_shards`` microenvironments);
        at least the number of processes, which each read their own shards.
    loader_workers
        DataLoader processes per rank that read and featurise chains ahead of the training step (0: none).
    micro_batch_pairs
        A batch is cut into size-sorted parts of at most this many padded atom pairs (part size x its
        largest environment squared), each padded to its own largest size; their gradients add up to the
        batch's (:func:`ismtk.autoencoder.step.micro_batches`). Changes speed and memory, the result only by float
        rounding (other parts, other sums).
        ``None``: :func:`default_micro_batch_pairs` of the device (parts that fit a core's caches on the CPU; a
        GPU needs parts of hundreds of environments to be busy, as many as its memory holds).
    checkpoint_every
        Steps between checkpoints (one is also written at every epoch end); ``keep_checkpoints`` are kept.
    log_every
        Steps between training records in ``metrics.jsonl``.
    max_steps
        Stop after this many steps in total (``None``: run all epochs).
    max_minutes
        Stop after this many minutes of training (wall clock; validated and saved, resumable).
    best_metric
        Validation metric that picks the best model (``RUN/best/``): ``aa`` (amino-acid cross-entropy),
        ``aa_recovery``, ``rmsd``, ``disto_acc``, another validation loss, or ``pair`` / ``pair_acc`` (the pair
        loss / partner-picking accuracy of the held-out ``pair_val_alignments``).
    seed
        Seed of the data order and of the initial weights.
    pair_alignments, pair_structures
        Structural alignments (``ismtk align-pairs``) and the structures of their chains (a file, folder or
        list): adds the pair loss over their close residue pairs (:mod:`ismtk.autoencoder.pairs`).
    pair_weight, pair_batch, pair_temperature, pair_min_tm
        Weight of the pair loss (:func:`ismtk.autoencoder.losses.pair_contrastive_loss`), aligned pairs per
        step (over all ranks; a multiple of their number), its temperature (in squared units of the
        embedding, whose scale the final layer norm learns), and the alignments' minimum TM-score.
    pair_group
        Pairs drawn from each alignment drawn (:meth:`ismtk.autoencoder.pairs.PairSet.draw`; 1: pairs drawn
        one by one, mostly from different alignments); a divisor of ``pair_batch``.
    pair_rivals
        Add a hard rival per pair to the pair loss's candidates (:meth:`ismtk.autoencoder.pairs.PairSet.rivals`:
        a residue in the first residue's 3Di state, of a chain no alignment relates to it).
    pair_codebook
        A codebook (``codebook.json`` of an ISM tokenizer, no metric): the pair loss then scores residue pairs by
        their soft tokens, ``pair_temperature`` being the soft assignment's
        (:func:`ismtk.autoencoder.losses.shared_token_logits`), so that aligned residues learn to share a token
        of these fixed centroids rather than only to lie close.
    pair_val_alignments
        Held-out alignments of chains of ``pair_structures``: each validation also scores up to
        :data:`PAIR_VAL_PAIRS` of their close pairs (fixed by the seed) as the pair loss does, in batches of
        ``pair_batch`` (metrics ``pair`` and ``pair_acc``). Needs no pair loss: a plain run can be scored too.
    drop_bench_homologs, drop_ts50_homologs
        See :class:`ismtk.autoencoder.corpus.CorpusFilter`.
    """

    stage: Stage = "both"
    epochs_stage1: int = 5
    epochs_stage2: int = 5
    batch_size: int = 2048
    lr: float = 1e-3
    weight_decay: float = 1e-5
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    clip: float = 1.0
    coord_weight: float = 1.0
    residues_per_chain: int = 128
    val_residues_per_chain: int = 32
    min_residues: int = 20
    shuffle_chains: int = 16
    data_shards: int = 8
    loader_workers: int = 1
    micro_batch_pairs: int | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 10
    max_steps: int | None = None
    max_minutes: float | None = None
    best_metric: str = "aa"
    seed: int = 0
    drop_bench_homologs: bool = True
    drop_ts50_homologs: bool = True
    pair_alignments: str | None = None
    pair_structures: str | None = None
    pair_weight: float = 1.0
    pair_batch: int = 128
    pair_temperature: float = 8.0
    pair_min_tm: float = 0.45
    pair_group: int = 1
    pair_rivals: bool = False
    pair_codebook: str | None = None
    pair_val_alignments: str | None = None

    @property
    def stages(self) -> list[tuple[int, int]]:
        """``[(stage, epochs), ...]`` in the order they run."""
        plan = {"1": [(1, self.epochs_stage1)], "2": [(2, self.epochs_stage2)]}
        plan["both"] = plan["1"] + plan["2"]
        if self.stage not in plan:
            raise InputError(f"--stage must be 1, 2 or both, got {self.stage!r}")
        return [(s, e) for s, e in plan[self.stage] if e > 0]

    def __post_init__(self) -> None:
        if not (math.isfinite(self.lr) and self.lr >= 0):  # (0: a run that only validates its --init model)
            raise InputError(f"--lr must be a learning rate of 0 or more, got {self.lr}")
        if not self.warmup_epochs >= 0:
            raise InputError(f"--warmup-epochs must be 0 or more, got {self.warmup_epochs}")
        if self.best_metric not in BEST_METRICS:
            raise InputError(f"--best-metric must be one of {', '.join(BEST_METRICS)}, got {self.best_metric!r}")
        if self.best_metric.startswith("pair") and self.pair_val_alignments is None:
            raise InputError(f"--best-metric {self.best_metric} needs --pair-val-alignments: held-out alignments")

    @property
    def best_sign(self) -> float:
        """+1 when a larger ``best_metric`` is better, -1 when a smaller one is."""
        return 1.0 if self.best_metric in ("aa_recovery", "disto_acc", "pair_acc") else -1.0


def codebook_centroids(path: str | Path, model_cfg: AutoencoderConfig, env: DistEnv) -> torch.Tensor:
    """The centroids ``(K, D)`` of the codebook file ``path`` on ``env``'s device, for the pair loss."""
    book = Codebook.load(path)
    if book.metric is not None:
        raise InputError(f"--pair-codebook {path}: a codebook with a metric is not supported; use a plain one")
    if book.centroids.shape[1] != model_cfg.width:
        raise InputError(
            f"--pair-codebook {path}: centroids of {book.centroids.shape[1]} dimensions, the model's embeddings "
            f"have {model_cfg.width}"
        )
    return torch.from_numpy(book.centroids).to(env.device)


def validation_pair_batches(pairs: PairSet, seed: int, size: int) -> list[np.ndarray]:
    """The held-out pairs each validation scores: up to :data:`PAIR_VAL_PAIRS` in an order fixed by ``seed``, in
    batches of ``size`` (a last batch of one pair, which has no rival, is left out)."""
    chosen = np.random.default_rng([seed, 4]).permutation(len(pairs))[:PAIR_VAL_PAIRS]
    return [b for b in (chosen[i : i + size] for i in range(0, len(chosen), size)) if len(b) > 1]


#: Options that fix the data order, the schedule or the model: a resumed run must use the same values.
RESUME_KEYS = (
    "stage", "epochs_stage1", "epochs_stage2", "batch_size", "lr", "weight_decay", "warmup_epochs", "coord_weight",
    "min_lr_ratio", "residues_per_chain", "min_residues", "shuffle_chains", "data_shards", "seed",
    "drop_bench_homologs", "drop_ts50_homologs", "pair_alignments", "pair_structures", "pair_weight", "pair_batch",
    "pair_temperature", "pair_min_tm", "pair_group", "pair_rivals", "pair_codebook", "pair_val_alignments",
    "val_residues_per_chain", "best_metric",
)  # fmt: skip


def resumed_configs(
    run: str | Path, model_cfg: AutoencoderConfig, cfg: TrainAEConfig, given: Collection[str]
) -> tuple[AutoencoderConfig, TrainAEConfig, dict[str, Any]]:
    """The configurations to resume the run in folder ``run`` with: every model option and every option of
    :data:`RESUME_KEYS` not named in ``given`` (the options the caller set itself) comes from the run's
    ``config.json``, so ``--resume`` needs no option repeated. Returns them and the values taken from the run
    that differ from ``model_cfg``/``cfg``. A run without ``config.json`` leaves both as they are; options in
    ``given`` that differ from the run's are still refused when the checkpoint is loaded."""
    path = Path(run, "config.json")
    if not path.is_file():
        return model_cfg, cfg, {}
    try:
        saved = json.loads(path.read_text())
        saved_model, saved_train = saved["model"], saved["train"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise InputError(f"{path}: not a train-ae run configuration ({exc})") from None
    model_keys = [f.name for f in fields(AutoencoderConfig)]
    model_values = {k: saved_model[k] for k in model_keys if k in saved_model and k not in given}
    keys = (*RESUME_KEYS, "max_steps")  # the run's stop too; a larger --max-steps goes on past it
    train_values = {k: saved_train[k] for k in keys if k in saved_train and k not in given}
    try:
        new_model = AutoencoderConfig.from_dict({**asdict(model_cfg), **model_values})
        new_cfg = replace(cfg, **train_values)
    except (InputError, TypeError, ValueError) as exc:  # a hand-edited setting the configurations refuse
        raise InputError(f"{path}: {exc}") from None
    taken = {k: v for k, v in {**asdict(new_model), **asdict(new_cfg)}.items()
             if k in {**model_values, **train_values} and v != {**asdict(model_cfg), **asdict(cfg)}[k]}
    return new_model, new_cfg, taken


def checkpoints(run: str | Path) -> list[Path]:
    """The checkpoints of ``run/checkpoints``, by step number (not by name: past step 9,999,999 the names grow)."""
    found = [p for p in Path(run, "checkpoints").glob("step_*.pt") if p.stem[5:].isdigit()]
    return sorted(found, key=lambda p: int(p.stem[5:]))


def latest_checkpoint(run: str | Path) -> Path | None:
    """The checkpoint with the highest step number in ``run/checkpoints``, if any."""
    found = checkpoints(run)
    return found[-1] if found else None


@dataclass
class _Position:
    """Where the run stands: ``step`` done, and the next batch to use (``epoch``, ``batch``)."""

    step: int = 0
    epoch: int = 0
    batch: int = 0
    stage_start: int = 0


def train_autoencoder(
    inputs: Sequence[str | Path],
    run: str | Path,
    model_cfg: AutoencoderConfig = AutoencoderConfig(),
    cfg: TrainAEConfig = TrainAEConfig(),
    index: str | Path | Sequence[str | Path] | None = None,
    device: str = "auto",
    resume: bool = False,
    init: str | Path | None = None,
    overwrite: bool = False,
    threads: int | None = None,
    log: Callable[[str], None] = lambda message: None,
    on_progress: Callable[[TrainProgress], None] = lambda progress: None,
) -> dict[str, float]:
    """Train an autoencoder on the chains of ``inputs``; write everything into the folder ``run``.

    ``index``: chain index tables besides the ``index.csv`` of each input folder
    (:func:`ismtk.autoencoder.corpus.load_corpus`). ``resume``: continue from the newest checkpoint in
    ``run`` (the options must be the same). ``overwrite``: start afresh in a folder that holds a run (refused
    otherwise). ``init``: start from the matching weights of a saved model (a stage-1 run for ``stage="2"``,
    or an older model). ``log`` receives one-line messages (rank 0 only),
    ``on_progress`` a :class:`TrainProgress` after each step (rank 0 only). Returns the last validation
    metrics. ``threads``: torch threads of this process (default: torch's choice). Works alone or under
    torchrun (each rank calls this function).
    """
    if resume and init is not None:
        raise InputError("--init starts a run, --resume continues one from its checkpoint: give one of them")
    if threads is not None:
        torch.set_num_threads(threads)
    with process_group(device) as env:
        trainer = AutoencoderTrainer(inputs, Path(run), model_cfg, cfg, index, env, log, resume, overwrite)
        try:
            return trainer.fit(resume, init, on_progress)
        finally:
            # drop DDP's reducer while the process group is still registered: a reducer that destroys a gloo
            # group joins its threads holding the GIL, which a thread freeing a finished work's tensor needs
            trainer.ddp = trainer.model


class AutoencoderTrainer:
    """One process's share of an autoencoder run: fit (the loop), validate, save and restore."""

    def __init__(
        self,
        inputs: Sequence[str | Path],
        run: Path,
        model_cfg: AutoencoderConfig,
        cfg: TrainAEConfig,
        index: str | Path | Sequence[str | Path] | None,
        env: DistEnv,
        log: Callable[[str], None],
        resume: bool = False,
        overwrite: bool = False,
    ) -> None:
        rank_shards(cfg.data_shards, env.rank, env.world_size)  # at least one shard per rank
        if cfg.batch_size < cfg.data_shards:
            raise InputError(f"--batch-size {cfg.batch_size} must be at least --data-shards {cfg.data_shards}")
        self.run, self.model_cfg, self.cfg, self.env = run, model_cfg, cfg, env
        self.log = log if env.is_main else (lambda message: None)
        self.prepare_folder(resume, overwrite)
        corpus_filter = CorpusFilter(cfg.drop_bench_homologs, cfg.drop_ts50_homologs)
        self.corpus: Corpus = load_corpus(inputs, index, corpus_filter, seed=cfg.seed)
        for note in self.corpus.notes:
            self.log(note)
        if not self.corpus.val:
            self.log("warning: no validation chains, so no validation metrics and no RUN/best/: give a chain index "
                     "with val rows in its 'split' column, or more files (a seeded 5 % of files in no index are "
                     "held out)")
        self.skips = SkipLog()
        self.stages = cfg.stages
        if not self.stages:
            raise InputError("nothing to train: every selected stage has 0 epochs")
        for stage, epochs in self.stages:
            if cfg.warmup_epochs >= epochs:
                self.log(f"warning: --warmup-epochs {cfg.warmup_epochs:g} lasts all of stage {stage}'s {epochs} "
                         "epoch(s): its learning rate rises to the end and never decays; give fewer (e.g. 0.05)")
        clusters = len(self.corpus.clusters)
        self.steps_per_epoch = max(1, math.floor(expected_envs(self.corpus, cfg.residues_per_chain) / cfg.batch_size))
        self.log(
            f"{len(self.corpus.train)} training chains in {clusters} clusters (one chain per cluster per epoch), "
            f"about {self.steps_per_epoch} steps of {cfg.batch_size} microenvironments per epoch"
        )
        torch.manual_seed(cfg.seed)
        self.model = AtomicAutoencoder(model_cfg).to(env.device)
        self.ddp = DistributedDataParallel(self.model) if env.distributed else self.model
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.autocast = native_bf16(env.device)  # bf16 autocast there; float32 elsewhere (V100, T4, CPU)
        self.max_pairs = cfg.micro_batch_pairs or default_micro_batch_pairs(env.device)
        # one process on the CPU: micro-batches on threads of single-threaded torch ops (see step.py)
        self.workers = torch.get_num_threads() if env.device.type == "cpu" and not env.distributed else 1
        if self.workers > 1:
            torch.set_num_threads(1)
        self.val_set: Microenvironments | None = None
        self.centroids = None if cfg.pair_codebook is None else codebook_centroids(cfg.pair_codebook, model_cfg, env)
        self.pairs: PairSet | None = None
        if cfg.pair_alignments is not None:
            self.load_pairs()
        self.val_pairs: list[Microenvironments] | None = None
        if cfg.pair_val_alignments is not None:
            self.load_val_pairs()
        self.best: dict[str, Any] = {}
        self.started = time.perf_counter()

    def load_pairs(self) -> None:
        """Read the aligned residue pairs of the pair loss."""
        cfg, ranks = self.cfg, self.env.world_size
        if cfg.pair_structures is None:
            raise InputError("--pair-alignments needs --pair-structures: the files of the aligned chains")
        if cfg.pair_batch % ranks:
            raise InputError(f"--pair-batch {cfg.pair_batch} must be a multiple of the number of processes ({ranks})")
        if cfg.pair_batch % cfg.pair_group:
            raise InputError(f"--pair-batch {cfg.pair_batch} must be a multiple of --pair-group {cfg.pair_group}")
        self.pairs = load_pair_set(
            [cfg.pair_structures], cfg.pair_alignments, cfg.pair_min_tm, cfg.pair_rivals, self.model_cfg.radius
        )
        self.log(
            f"pair loss: {len(self.pairs):,} close residue pairs of {self.pairs.alignments:,} alignments with TM >= "
            f"{cfg.pair_min_tm}, {cfg.pair_batch} pairs per step"
            + (f" ({cfg.pair_group} from each alignment drawn)" if cfg.pair_group > 1 else "")
            + (" and as many hard rivals" if cfg.pair_rivals else "")
            + f", weight {cfg.pair_weight}"
            + (f"; {len(self.pairs.skipped)} unreadable files or chains without 3Di states (first: "
               f"{self.pairs.skipped[0]})"
               if self.pairs.skipped else "")
        )  # fmt: skip

    def load_val_pairs(self) -> None:
        """Read the held-out aligned pairs and fix this rank's share of their validation batches."""
        cfg, env = self.cfg, self.env
        if cfg.pair_structures is None:
            raise InputError("--pair-val-alignments needs --pair-structures: the files of the aligned chains")
        held_out = load_pair_set(
            [cfg.pair_structures], cfg.pair_val_alignments, cfg.pair_min_tm, radius=self.model_cfg.radius
        )
        batches = validation_pair_batches(held_out, cfg.seed, cfg.pair_batch)
        self.val_pairs = [held_out.batch(b) for b in batches[env.rank :: env.world_size]]
        self.log(
            f"pair validation: {sum(map(len, batches)):,} of {len(held_out):,} close pairs of {held_out.alignments:,} "
            f"held-out alignments, in batches of {cfg.pair_batch}"
        )

    def pair_step(self, pos: _Position) -> dict[str, torch.Tensor]:
        """Forward and backward passes of the pair loss on this step's pairs (drawn from the seed and the
        step, so resumed and multi-process runs see the same ones); gradients accumulate, unsynchronised."""
        cfg, env = self.cfg, self.env
        assert self.pairs is not None
        rng = np.random.default_rng([cfg.seed, 3, pos.step])
        chosen = self.pairs.draw(rng, cfg.pair_batch, cfg.pair_group)
        rivals = self.pairs.rivals(rng, chosen) if cfg.pair_rivals else None
        mine = np.array_split(np.arange(len(chosen)), env.world_size)[env.rank]

        def gather(local: torch.Tensor) -> tuple[torch.Tensor, int]:
            every = [torch.empty_like(local) for _ in range(env.world_size)]
            torch.distributed.all_gather(every, local)
            return torch.stack(every), env.rank

        with self.ddp.no_sync() if env.distributed else contextlib.nullcontext():
            loss, accuracy = pair_backward(
                self.model, self.pairs.batch(chosen[mine], None if rivals is None else rivals[mine]),
                cfg.pair_weight, cfg.pair_temperature, self.max_pairs, env.device,
                gather if env.distributed else None, self.autocast, self.workers, cfg.pair_rivals, self.centroids,
            )  # fmt: skip
        return {"pair": loss, "pair_acc": accuracy}

    # -- schedule --------------------------------------------------------------------------------------
    def stage_at(self, epoch: int) -> tuple[int, int]:
        """``(stage, epochs of that stage)`` of a global epoch index."""
        for stage, epochs in self.stages:
            if epoch < epochs:
                return stage, epochs
            epoch -= epochs
        return self.stages[-1]

    @property
    def total_epochs(self) -> int:
        return sum(e for _, e in self.stages)

    @property
    def total_steps(self) -> int:
        total = self.total_epochs * self.steps_per_epoch
        return min(total, self.cfg.max_steps) if self.cfg.max_steps is not None else total

    def lr_at(self, pos: _Position) -> float:
        _, epochs = self.stage_at(pos.epoch)
        warmup = round(self.cfg.warmup_epochs * self.steps_per_epoch)
        factor = warmup_cosine(pos.step - pos.stage_start, epochs * self.steps_per_epoch, warmup, self.cfg.min_lr_ratio)
        return self.cfg.lr * factor

    # -- state -----------------------------------------------------------------------------------------
    def save(self, pos: _Position) -> None:
        if not self.env.is_main:
            return
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "position": asdict(pos),
            "model_config": json.loads(self.model_cfg.to_json()),
            "train_config": asdict(self.cfg),
            "rng": rng_state(),
            "skips": dict(self.skips.counts),
            "skips_first": dict(self.skips.first),
            "best": self.best,
            "corpus": self.corpus.fingerprint(),
        }
        path = self.run / "checkpoints" / f"step_{pos.step:07d}.pt"
        save_checkpoint(path, state)
        for old in checkpoints(self.run)[: -self.cfg.keep_checkpoints]:
            old.unlink()
        save_autoencoder(self.model, self.run)

    def restore(self) -> _Position:
        path = latest_checkpoint(self.run)
        if path is None:
            raise InputError(f"{self.run}: nothing to resume (no checkpoints/step_*.pt)")
        # on the CPU: random states stay CPU tensors, load_state_dict puts the rest where it belongs
        state = load_checkpoint(path, map_location="cpu")
        saved_model = state.get("model_config", {})
        current_model = json.loads(self.model_cfg.to_json())
        check_compatible(saved_model, current_model, tuple(current_model), str(path))
        check_compatible(state.get("train_config", {}), asdict(self.cfg), RESUME_KEYS, str(path))
        corpus = self.corpus.fingerprint()
        if state.get("corpus", corpus) != corpus:
            raise InputError(f"{path}: the run trained on other chains than these inputs give "
                             f"({len(self.corpus.train)} training chains now); resume with the inputs and --index "
                             "tables it started with")
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        self.skips.counts.update(state.get("skips", {}))
        self.skips.first.update(state.get("skips_first", {}))
        self.best = state.get("best") or {}
        pos = _Position(**state["position"])
        self.log(f"resuming from {path} at step {pos.step} (epoch {pos.epoch + 1}, batch {pos.batch})")
        return pos

    def initialise(self, init: str | Path) -> None:
        """Copy every tensor of a saved model whose name and shape match this model's; log what was not taken.

        The encoder of an older model thus warm-starts a model with another decoder; a decoder whose input
        changed (``decoder_input``) starts afresh even where its shapes match. A model that differs only in
        width, heads and depth, by whole factors, is first grown into this one (:func:`grow_autoencoder`).
        """
        source = load_autoencoder(init)
        if source.cfg != self.model_cfg and can_grow(source.cfg, self.model_cfg) is None:
            grown = grow_autoencoder(source, self.model_cfg, seed=self.cfg.seed)
            self.log(
                f"grew {init} (width {source.cfg.width}, {source.cfg.heads} heads, {source.cfg.layers} blocks) into "
                f"width {self.model_cfg.width}, {self.model_cfg.heads} heads, {self.model_cfg.layers} blocks: "
                "units copied, new blocks identities (the same function)"
            )
            source = grown
        mine = self.model.state_dict()
        decoder = ("dec_", "coord_head.", "pair_proj.", "disto_head.")
        fresh_decoder = source.cfg.decoder_input != self.model_cfg.decoder_input
        taken, skipped = {}, []
        for name, tensor in source.state_dict().items():
            if name not in mine or mine[name].shape != tensor.shape or (fresh_decoder and name.startswith(decoder)):
                skipped.append(name)
            else:
                taken[name] = tensor
        if not taken:
            raise InputError(f"{init}: none of its tensors fits this model (other width or layers?)")
        self.model.load_state_dict(taken, strict=False)
        untouched = sorted(set(mine) - set(taken))
        self.log(
            f"initialised {len(taken)} of {len(mine)} tensors from {init}"
            + (f"; not in it or not matching (newly initialised): {_names(untouched)}" if untouched else "")
            + (f"; of its tensors not taken: {_names(skipped)}" if skipped else "")
        )

    # -- loop ------------------------------------------------------------------------------------------
    def prepare_folder(self, resume: bool, overwrite: bool) -> None:
        """Refuse to train into a folder that holds a run unless resuming, or overwriting it (its files removed)."""
        if resume or not self.run.exists():
            return
        if not self.run.is_dir():
            raise InputError(f"{self.run}: exists and is not a folder")
        if any(self.run.iterdir()):
            if not overwrite and latest_checkpoint(self.run) is None:
                raise InputError(f"{self.run}: folder is not empty but holds no checkpoint to resume (a run that "
                                 "stopped before its first?); add --overwrite to start afresh")
            if not overwrite:
                raise InputError(f"{self.run}: folder is not empty; add --resume to continue its run or --overwrite")
            if self.env.is_main:
                for name in RUN_OUTPUTS:
                    path = self.run / name
                    shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

    def keep_best(self, pos: _Position, val: dict[str, float]) -> None:
        """Save the model into ``RUN/best/`` when ``val`` beats the best validation so far."""
        value = val.get(self.cfg.best_metric)
        if value is None or not math.isfinite(value) or not self.env.is_main:  # a diverged run is never the best
            return
        if self.best and self.cfg.best_sign * (value - self.best["value"]) <= 0:
            return
        self.best = {"step": pos.step, "epoch": pos.epoch, "metric": self.cfg.best_metric, "value": value, "val": val}
        with atomic_folder(self.run / "best") as folder:  # model and best.json together, or the old pair
            save_autoencoder(self.model, folder)
            (folder / "best.json").write_text(json.dumps(self.best, indent=2) + "\n")

    def fit(
        self, resume: bool, init: str | Path | None, on_progress: Callable[[TrainProgress], None]
    ) -> dict[str, float]:
        with StopRequest() as self.stop:
            return self._fit(resume, init, on_progress)

    def _fit(
        self, resume: bool, init: str | Path | None, on_progress: Callable[[TrainProgress], None]
    ) -> dict[str, float]:
        self.started = time.perf_counter()
        pos = _Position()
        if resume:
            pos = self.restore()
            if pos.step >= self.total_steps:
                self.log(f"the run has done all {self.total_steps} steps of its schedule; give a larger --max-steps "
                         "or more epochs to train on")
        elif init is not None:
            self.initialise(init)
        if self.env.is_main:
            self.run.mkdir(parents=True, exist_ok=True)
            config = {"model": json.loads(self.model_cfg.to_json()), "train": asdict(self.cfg)}
            with atomic_write(self.run / "config.json", "w") as handle:
                handle.write(json.dumps(config, indent=2) + "\n")
            if resume:  # model.pt of the checkpoint resumed from, whatever a killed run left
                save_autoencoder(self.model, self.run)
        metrics = MetricsLog(self.run / "metrics.jsonl", pos.step if resume else None) if self.env.is_main else None
        val: dict[str, float] = {}
        while pos.epoch < self.total_epochs and pos.step < self.total_steps:
            stage, _ = self.stage_at(pos.epoch)
            if pos.batch == 0 and pos.epoch > 0 and self.stage_at(pos.epoch - 1)[0] != stage:
                pos.stage_start = pos.step
            finished = self.train_epoch(pos, stage, metrics, on_progress)
            if finished or pos.batch == self.steps_per_epoch:  # (a stop that came with the epoch's last step too)
                val = self.validate()
                pos.epoch, pos.batch = pos.epoch + 1, 0
                self.record_val(pos, stage, val, metrics, on_progress)
            if not finished:
                break
        if pos.batch > 0:  # stopped inside an epoch by max_steps, max_minutes or SIGTERM
            val = self.validate()
            self.record_val(pos, self.stage_at(pos.epoch)[0], val, metrics, on_progress)
        if self.stop.requested:
            self.log(f"SIGTERM: stopping at step {pos.step}, validated and saved (--resume continues)")
        if self.env.is_main and self.skips.counts:
            self.log(f"skipped while streaming: {self.skips.summary()}")
        return val

    def record_val(self, pos: _Position, stage: int, val: dict[str, float], metrics, on_progress) -> None:
        """Log a validation, keep the best model, checkpoint and plot."""
        if metrics is not None:
            metrics.write("val", pos.step, epoch=pos.epoch, stage=stage, **val)
            epoch = pos.epoch if pos.batch == 0 else pos.epoch + 1  # 1-based; at an epoch's end, the epoch just done
            self.log(f"epoch {epoch} (stage {stage}) step {pos.step}: " + _fmt(val))
            on_progress(TrainProgress(pos.step, self.total_steps, pos.epoch, stage, {}, 0.0, val))
        self.keep_best(pos, val)
        self.save(pos)
        if self.env.is_main:
            plot_metrics(self.run / "metrics.jsonl", self.run / "metrics.png")

    def out_of_time(self) -> bool:
        """True once ``max_minutes`` have passed or a rank got SIGTERM (on any rank: every rank stops)."""
        late = self.cfg.max_minutes is not None and time.perf_counter() - self.started > 60 * self.cfg.max_minutes
        return any_rank(late or self.stop.requested, self.env.device)

    def train_epoch(self, pos: _Position, stage: int, metrics: MetricsLog | None, on_progress) -> bool:
        """Train on the batches of ``pos.epoch`` from ``pos.batch`` on; False if ``max_steps``, ``max_minutes``
        or SIGTERM stopped it (the time and the signal are checked every ``log_every`` steps)."""
        cfg = self.cfg
        coords = {"aligned_mse": cfg.coord_weight, "distances": cfg.coord_weight}
        weights = {name: float(name in STAGE_LOSSES[stage]) * coords.get(name, 1.0) for name in LOSS_NAMES}
        spec = EpochSpec(
            tuple(epoch_entries(self.corpus, pos.epoch, cfg.seed)), cfg.batch_size, cfg.data_shards,
            cfg.residues_per_chain, cfg.min_residues, cfg.shuffle_chains, cfg.seed, pos.epoch, self.steps_per_epoch,
            pos.batch, self.env.rank, self.env.world_size, self.model_cfg.radius,
        )  # fmt: skip
        self.ddp.train()
        window: list[dict[str, torch.Tensor]] = []
        tick = time.perf_counter()
        for b, batch in enumerate(rank_batches(spec, cfg.loader_workers, self.skips), start=pos.batch):
            if pos.step >= self.total_steps:
                return False
            lr = self.lr_at(pos)
            for group in self.opt.param_groups:
                group["lr"] = lr
            self.opt.zero_grad(set_to_none=True)
            # pairs first: their gradients wait, unsynchronised, for the batch's last part (DDP's no_sync)
            paired = self.pair_step(pos) if self.pairs is not None else {}
            losses = forward_backward(
                self.ddp, self.model_cfg, micro_batches(batch, self.max_pairs), weights,
                cfg.batch_size / self.env.world_size, self.env.device, self.autocast, self.workers,
            )  # fmt: skip
            if paired:
                losses |= paired | {"loss": losses["loss"] + cfg.pair_weight * paired["pair"]}
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip)
            self.opt.step()
            pos.step, pos.batch = pos.step + 1, b + 1
            window.append(losses | {"grad_norm": grad_norm.detach()})
            if pos.step % cfg.log_every == 0 or pos.step == self.total_steps or pos.batch == self.steps_per_epoch:
                # (the epoch's last steps too: the next epoch's first record would not hold them)
                self.log_train(window, time.perf_counter() - tick, pos, stage, lr, metrics, on_progress)
                window, tick = [], time.perf_counter()
            if pos.step % cfg.checkpoint_every == 0:
                self.save(pos)
            if pos.step % cfg.log_every == 0 and self.out_of_time():
                return False
        return True

    def log_train(
        self, window: list[dict[str, torch.Tensor]], seconds: float, pos: _Position, stage: int, lr: float,
        metrics: MetricsLog | None, on_progress,
    ) -> None:
        """Write the mean losses of the steps of ``window`` (one record, at ``pos.step``)."""
        rate = len(window) * self.cfg.batch_size / max(seconds, 1e-9)
        stacked = torch.stack([torch.stack(list(w.values())) for w in window]).mean(0)
        # each rank's losses are its share's sums over batch_size / world_size: their mean over ranks is the
        # batch's (grad_norm and the pair figures are the same on every rank)
        stacked = (all_reduce_sum(stacked) / self.env.world_size).tolist()  # one sync
        mean = dict(zip(window[0], stacked, strict=True))
        if metrics is not None:
            metrics.write("train", pos.step, epoch=pos.epoch, stage=stage, lr=lr, envs_per_s=rate, **mean)
            on_progress(TrainProgress(pos.step, self.total_steps, pos.epoch, stage, mean, rate))

    def validate(self) -> dict[str, float]:
        """Amino-acid recovery, aligned RMSD (Å), distogram accuracy and losses on the validation chains;
        each rank evaluates its share of the chains (possibly none)."""
        cfg, env = self.cfg, self.env
        if self.val_set is None:
            skips = SkipLog()
            self.val_set = validation_set(
                self.corpus.val, cfg.val_residues_per_chain, cfg.min_residues, cfg.seed, skips, env.rank,
                env.world_size, radius=self.model_cfg.radius,
            )  # fmt: skip
            n = int(all_reduce_sum(torch.tensor(float(len(self.val_set)), device=env.device)).item())
            self.log(
                f"validation set: {n} microenvironments of {len(self.corpus.val)} chains (skipped {skips.summary()})"
            )
        sums = evaluate(self.model, self.val_set, env.device, self.max_pairs, self.autocast, self.workers)
        totals = all_reduce_sum(torch.stack([sums[k] for k in SUM_KEYS]).to(env.device)).tolist()
        metrics = summarise(dict(zip(SUM_KEYS, totals, strict=True)))
        if self.val_pairs is not None:
            sums = pair_evaluate(self.model, self.val_pairs, cfg.pair_temperature, self.max_pairs, env.device,
                                 self.autocast, self.workers, self.centroids)  # fmt: skip
            pair, accuracy, n = all_reduce_sum(torch.stack([sums[k] for k in PAIR_SUM_KEYS]).to(env.device)).tolist()
            metrics |= {"pair": pair / max(n, 1), "pair_acc": accuracy / max(n, 1)}
        return metrics


def _names(names: Sequence[str], shown: int = 6) -> str:
    """``a, b, c ... (+N more)``: a short list of tensor names for the log."""
    more = f" (+{len(names) - shown} more)" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def _fmt(values: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v:.4g}" for k, v in values.items())
