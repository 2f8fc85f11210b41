"""Structure-tuning of ESM2 on structure-token streams (ISM) and export of the tuned backbone."""

from ismtk.tune.data import StreamSpec, TuneData, load_tune_data, parse_stream
from ismtk.tune.model import StructureTuner, loss_sums
from ismtk.tune.trainer import TuneConfig, TuneResult, evaluate, export, structure_tune

__all__ = [
    "StreamSpec",
    "StructureTuner",
    "TuneConfig",
    "TuneData",
    "TuneResult",
    "evaluate",
    "export",
    "load_tune_data",
    "loss_sums",
    "parse_stream",
    "structure_tune",
]
