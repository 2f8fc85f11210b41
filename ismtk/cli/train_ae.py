"""``ismtk train-ae``: train the atomic autoencoder on structure files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from ismtk.autoencoder.model import AutoencoderConfig
from ismtk.autoencoder.train import BEST_METRICS, MICRO_BATCH_PAIRS, TrainAEConfig, resumed_configs
from ismtk.cli import console
from ismtk.cli.options import (
    INPUT,
    MODEL,
    RUN,
    TRAINING,
    Index,
    Inputs,
    KeepBenchHomologs,
    KeepTs50Homologs,
    TrainingProcesses,
    given_options,
    output_option,
    with_option_groups,
)
from ismtk.train.launch import is_main_process

__all__ = ["train_ae"]

_M = AutoencoderConfig()
_T = TrainAEConfig()


@with_option_groups
def train_ae(
    ctx: typer.Context,
    inputs: Inputs,
    *,
    index: Index = None,
    keep_bench_homologs: KeepBenchHomologs = not _T.drop_bench_homologs,
    keep_ts50_homologs: KeepTs50Homologs = not _T.drop_ts50_homologs,
    data_shards: Annotated[
        int, typer.Option("--data-shards", min=1, rich_help_panel=INPUT,
                          help="Chain streams per batch; at least the number of processes.")
    ] = _T.data_shards,
    loader_workers: Annotated[
        int, typer.Option("--loader-workers", min=0, rich_help_panel=INPUT,
                          help="Processes per rank reading chains ahead (0: none).")
    ] = _T.loader_workers,
    micro_batch_pairs: Annotated[
        int | None, typer.Option("--micro-batch-pairs", min=1, rich_help_panel=INPUT,
                                 help="Padded atom pairs per micro-batch: speed and memory (results by rounding) "
                                      f"(default {MICRO_BATCH_PAIRS[0]:,} on a CPU, "
                                      f"{MICRO_BATCH_PAIRS[1]:,} on a GPU, less where 40 % of its memory "
                                      "holds fewer).",
                                 show_default=False)
    ] = _T.micro_batch_pairs,
    stage: Annotated[
        Literal["1", "2", "both"],
        typer.Option("--stage", rich_help_panel=TRAINING,
                     help="1: L_AA + L_disto; 2: all four losses; both: 1 then 2."),
    ] = _T.stage,
    epochs_stage1: Annotated[int, typer.Option("--epochs-stage1", min=0, rich_help_panel=TRAINING,
                                               help="Epochs of stage 1.")] = _T.epochs_stage1,
    epochs_stage2: Annotated[int, typer.Option("--epochs-stage2", min=0, rich_help_panel=TRAINING,
                                               help="Epochs of stage 2.")] = _T.epochs_stage2,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, rich_help_panel=TRAINING,
                          help="Microenvironments per step, all processes together.")
    ] = _T.batch_size,
    lr: Annotated[float, typer.Option("--lr", min=0.0, rich_help_panel=TRAINING,
                                      help="Peak AdamW learning rate.")] = _T.lr,
    warmup_epochs: Annotated[
        float, typer.Option("--warmup-epochs", min=0.0, rich_help_panel=TRAINING,
                            help="Warm-up of each stage, in epochs.")
    ] = _T.warmup_epochs,
    coord_weight: Annotated[
        float, typer.Option("--coord-weight", min=0.0, rich_help_panel=TRAINING,
                            help="Weight of the two coordinate losses (stage 2).")
    ] = _T.coord_weight,
    residues_per_chain: Annotated[
        int, typer.Option("--residues-per-chain", min=1, rich_help_panel=TRAINING,
                          help="Random residues per chain per epoch.")
    ] = _T.residues_per_chain,
    pair_alignments: Annotated[
        Path | None, typer.Option("--pair-alignments", rich_help_panel=TRAINING,
                                  help="Structural alignments (ismtk align-pairs) of related chains: adds a loss "
                                       "that pulls the embeddings of their close residue pairs together.")
    ] = None,
    pair_structures: Annotated[
        Path | None, typer.Option("--pair-structures", rich_help_panel=TRAINING,
                                  help="File, folder or list of the aligned chains' structures.")
    ] = None,
    pair_weight: Annotated[
        float, typer.Option("--pair-weight", min=0.0, rich_help_panel=TRAINING, help="Weight of the pair loss.")
    ] = _T.pair_weight,
    pair_batch: Annotated[
        int, typer.Option("--pair-batch", min=2, rich_help_panel=TRAINING,
                          help="Aligned pairs per step (each one's partner is told apart from the others').")
    ] = _T.pair_batch,
    pair_temperature: Annotated[
        float, typer.Option("--pair-temperature", min=1e-3, rich_help_panel=TRAINING,
                            help="Temperature of the pair loss, in squared units of the embedding.")
    ] = _T.pair_temperature,
    pair_min_tm: Annotated[
        float, typer.Option("--pair-min-tm", rich_help_panel=TRAINING, help="Alignments used: TM-score at least.")
    ] = _T.pair_min_tm,
    pair_group: Annotated[
        int, typer.Option("--pair-group", min=1, rich_help_panel=TRAINING,
                          help="Pairs drawn from each alignment drawn: a residue's rivals then include other residues "
                               "of its own chains (a divisor of --pair-batch; 1: pairs drawn one by one).")
    ] = _T.pair_group,
    pair_rivals: Annotated[
        bool, typer.Option("--pair-rivals", rich_help_panel=TRAINING,
                           help="Add a hard rival per pair: a residue in the same 3Di state of a chain that no "
                                "alignment relates to the first residue's chain (a local look-alike, no homolog).")
    ] = _T.pair_rivals,
    pair_codebook: Annotated[
        Path | None, typer.Option("--pair-codebook", rich_help_panel=TRAINING,
                                  help="A codebook.json (e.g. of the tokenizer the run starts from): the pair loss "
                                       "then asks aligned residues to share a token of its centroids, with "
                                       "--pair-temperature as the soft assignment's temperature (about the gap "
                                       "between a residue's nearest and second-nearest centroid; 4 for the "
                                       "shipped model).")
    ] = None,
    pair_val_alignments: Annotated[
        Path | None, typer.Option("--pair-val-alignments", rich_help_panel=TRAINING,
                                  help="Held-out alignments of chains of --pair-structures: each validation scores "
                                       "the pair loss and accuracy on them (metrics pair, pair_acc; e.g. "
                                       "--best-metric pair_acc).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", rich_help_panel=TRAINING,
                                      help="Seed of the data order and the initial weights.")] = _T.seed,
    width: Annotated[int, typer.Option("--width", min=8, rich_help_panel=MODEL, help="Model width.")] = _M.width,
    heads: Annotated[int, typer.Option("--heads", min=1, rich_help_panel=MODEL, help="Attention heads.")] = _M.heads,
    layers: Annotated[int, typer.Option("--layers", min=1, rich_help_panel=MODEL, help="Encoder blocks.")] = _M.layers,
    decoder_layers: Annotated[int, typer.Option("--decoder-layers", min=1, rich_help_panel=MODEL,
                                                help="Decoder blocks.")] = _M.decoder_layers,
    decoder_input: Annotated[
        Literal["atoms", "embedding"],
        typer.Option("--decoder-input", rich_help_panel=MODEL,
                     help="Decoder input: encoder atom features + z (paper), or z + embeddings."),
    ] = _M.decoder_input,
    radius: Annotated[
        float, typer.Option("--radius", min=1.0, rich_help_panel=MODEL,
                            help="Microenvironment radius around each C-alpha, in Å (ISM: 8); stored with the "
                                 "model, so encoding reads environments of the same radius.")
    ] = _M.radius,
    kernel: Annotated[
        Literal["fixed", "learned"],
        typer.Option("--kernel", rich_help_panel=MODEL,
                     help="Distance features: fixed radial basis + bins, or learned Gaussians."),
    ] = _M.kernel,
    init: Annotated[
        Path | None, typer.Option("--init", rich_help_panel=RUN,
                                  help="Start from this model's weights (a stage-1 run for --stage 2). A narrower "
                                  "or shallower model (same settings otherwise, width and heads by one whole "
                                  "factor) is first grown into this one without changing what it computes.")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", rich_help_panel=RUN,
                           help="Continue from the run folder's latest checkpoint, exactly where it stopped; model "
                           "and schedule options and --max-steps, where not given, come from the run's "
                           "config.json.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", rich_help_panel=RUN, help="Start afresh in a run folder that holds a run.")
    ] = False,
    max_steps: Annotated[int | None, typer.Option("--max-steps", min=1, rich_help_panel=RUN,
                                                  help="Stop after this many steps in total.")] = _T.max_steps,
    max_minutes: Annotated[
        float | None, typer.Option("--max-minutes", min=0, rich_help_panel=RUN,
                                   help="Stop after this many minutes (validated, saved).")
    ] = _T.max_minutes,
    checkpoint_every: Annotated[
        int, typer.Option("--checkpoint-every", min=1, rich_help_panel=RUN,
                          help="Steps between checkpoints (also at every epoch end).")
    ] = _T.checkpoint_every,
    best_metric: Annotated[
        str, typer.Option("--best-metric", rich_help_panel=RUN,
                          help=f"Validation metric that picks RUN/best/: {', '.join(BEST_METRICS)}.")
    ] = _T.best_metric,
    output: output_option("Run folder (checkpoints, metrics, model)."),
    processes: TrainingProcesses = TrainingProcesses(),
) -> None:
    """Train the atomic autoencoder (ISM) on the masked microenvironments of protein structures.

    With an index.csv (data/structures layout) one chain per 40% cluster is drawn each epoch and chains homologous to
    the scope40_dev bench or TS50 sets are left out (logged). Validation metrics (amino-acid recovery, aligned RMSD,
    distogram accuracy) are written to RUN/metrics.jsonl and RUN/metrics.png after every epoch; RUN/model.json +
    RUN/model.pt hold the model, RUN/best/ the best validation so far.

    [bold]Example[/bold]: ismtk train-ae data/structures -o runs/ae --width 64 --layers 2 --batch-size 64 --nproc 2
    """
    from ismtk.autoencoder.train import train_autoencoder

    device = processes.relaunch()
    model_cfg = AutoencoderConfig(width=width, heads=heads, layers=layers, decoder_layers=decoder_layers,
                                  decoder_input=decoder_input, kernel=kernel, radius=radius)
    cfg = TrainAEConfig(
        stage=stage,
        epochs_stage1=epochs_stage1,
        epochs_stage2=epochs_stage2,
        batch_size=batch_size,
        lr=lr,
        warmup_epochs=warmup_epochs,
        coord_weight=coord_weight,
        residues_per_chain=residues_per_chain,
        checkpoint_every=checkpoint_every,
        max_steps=max_steps,
        max_minutes=max_minutes,
        best_metric=best_metric,
        data_shards=data_shards,
        loader_workers=loader_workers,
        micro_batch_pairs=micro_batch_pairs,
        seed=seed,
        drop_bench_homologs=not keep_bench_homologs,
        drop_ts50_homologs=not keep_ts50_homologs,
        pair_alignments=None if pair_alignments is None else str(pair_alignments.resolve()),
        pair_structures=None if pair_structures is None else str(pair_structures.resolve()),
        pair_weight=pair_weight,
        pair_batch=pair_batch,
        pair_temperature=pair_temperature,
        pair_min_tm=pair_min_tm,
        pair_group=pair_group,
        pair_rivals=pair_rivals,
        pair_codebook=None if pair_codebook is None else str(pair_codebook.resolve()),
        pair_val_alignments=None if pair_val_alignments is None else str(pair_val_alignments.resolve()),
    )
    if resume:
        given = given_options(ctx)
        given |= {"drop_" + name.removeprefix("keep_") for name in given if name.startswith("keep_")}
        model_cfg, cfg, taken = resumed_configs(output, model_cfg, cfg, given)
        if taken and is_main_process():
            console.info("resuming with the run's options: " + ", ".join(f"{k}={v}" for k, v in taken.items()))
    with console.progress("training", total=None, unit="steps") as advance:
        val = train_autoencoder(
            inputs, output, model_cfg, cfg, index=index, device=device, resume=resume, init=init, overwrite=overwrite,
            threads=processes.threads, log=console.info, on_progress=console.step_reporter(advance),
        )  # fmt: skip
    if val and is_main_process():
        console.info("final validation: " + ", ".join(f"{k} {v:.4g}" for k, v in val.items()) + f" -> {output}")
