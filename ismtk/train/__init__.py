"""Training building blocks shared by ``train-ae`` and ``structure-tune``."""

from ismtk.train.checkpoint import check_compatible, load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ismtk.train.distributed import DistEnv, Rendezvous, all_reduce_sum, launch, setup, teardown, under_launcher
from ismtk.train.metrics import MetricsLog, plot_metrics, read_metrics
from ismtk.train.order import epoch_permutation, shard
from ismtk.train.schedule import warmup_cosine

__all__ = [
    "DistEnv",
    "MetricsLog",
    "Rendezvous",
    "all_reduce_sum",
    "check_compatible",
    "epoch_permutation",
    "launch",
    "load_checkpoint",
    "plot_metrics",
    "read_metrics",
    "rng_state",
    "save_checkpoint",
    "set_rng_state",
    "setup",
    "shard",
    "teardown",
    "under_launcher",
    "warmup_cosine",
]
