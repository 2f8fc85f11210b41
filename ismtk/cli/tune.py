"""``ismtk structure-tune``: distil structure-token streams into an ESM2 backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ismtk.cli import console
from ismtk.cli.options import (
    INPUT,
    RUN,
    TRAINING,
    Overwrite,
    Resume,
    TrainingProcesses,
    given_options,
    output_option,
    with_option_groups,
)
from ismtk.errors import InputError
from ismtk.plm.tune import Precision, TuneConfig, TuneRuntime
from ismtk.train.launch import is_main_process

__all__ = ["structure_tune"]

_D = TuneConfig(backbone="", aa="", tokens=())
_R = TuneRuntime(out="")


@with_option_groups
def structure_tune(
    ctx: typer.Context,
    backbone: Annotated[
        str | None,
        typer.Argument(help="fair-esm hub name, fair-esm .pt, state dict or HF ESM folder (with --resume: the run's).",
                       show_default=False),
    ] = None,
    *,
    aa: Annotated[
        Path | None,
        typer.Option("--aa", rich_help_panel=INPUT, show_default=False,
                     help="Amino-acid FASTA of the training chains (required; with --resume: the run's)."),
    ] = None,
    tokens: Annotated[
        list[str] | None,
        typer.Option("--tokens", rich_help_panel=INPUT, show_default=False,
                     help="Token FASTA stream, repeatable (required; with --resume: the run's): "
                     "PATH[:name=N][:weight=W][:alphabet=3di|SYMBOLS][:codebook=JSON][:ignore=SYMBOL] (ignore = "
                     "disorder token s*, left out of the loss)."),
    ] = None,
    val_fraction: Annotated[float, typer.Option("--val-fraction", min=0, max=0.9, rich_help_panel=INPUT,
                                                help="Share of records held out for validation.")] = _D.val_fraction,
    val_names: Annotated[
        Path | None, typer.Option("--val-names", rich_help_panel=INPUT,
                                  help="File of record names to hold out instead (one per line).")
    ] = _D.val_names,
    groups: Annotated[
        Path | None,
        typer.Option("--groups", rich_help_panel=INPUT,
                     help="File of 'record group' lines (PDB entry or sequence cluster): each epoch trains on one "
                     "random record per group."),
    ] = _D.groups,
    epochs: Annotated[int, typer.Option("--epochs", min=1, rich_help_panel=TRAINING,
                                        help="Training epochs.")] = _D.epochs,
    warmup_epochs: Annotated[float, typer.Option("--warmup-epochs", min=0, rich_help_panel=TRAINING,
                                                 help="Linear warm-up epochs before cosine decay.")] = _D.warmup_epochs,
    lr: Annotated[float, typer.Option("--lr", min=0, rich_help_panel=TRAINING,
                                      help="Peak AdamW learning rate.")] = _D.lr,
    weight_decay: Annotated[float, typer.Option("--weight-decay", min=0, rich_help_panel=TRAINING,
                                                help="AdamW weight decay (matrices only).")] = _D.weight_decay,
    clip: Annotated[float, typer.Option("--clip", min=0, rich_help_panel=TRAINING,
                                        help="Gradient-norm clipping (0: none).")] = _D.clip,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, rich_help_panel=TRAINING,
                          help="Global batch (sequences per optimizer step, all processes).")
    ] = _D.batch_size,
    crop: Annotated[int, typer.Option("--crop", min=8, max=1022, rich_help_panel=TRAINING,
                                      help="Random crop length in residues.")] = _D.crop,
    mlm_weight: Annotated[float, typer.Option("--mlm-weight", min=0, rich_help_panel=TRAINING,
                                              help="Weight of the masked-language-model loss.")] = _D.mlm_weight,
    seed: Annotated[int, typer.Option("--seed", rich_help_panel=TRAINING,
                                      help="Seed of data order, crops, masks and new heads.")] = _D.seed,
    micro_batch: Annotated[
        int, typer.Option("--micro-batch", min=1, rich_help_panel=RUN,
                          help="Sequences per forward pass per process (accumulated to the batch).")
    ] = _R.micro_batch,
    precision: Annotated[
        Precision, typer.Option("--precision", rich_help_panel=RUN,
                                help="Autocast: auto = bf16 on GPUs that have it, fp16 with loss scaling on older "
                                "GPUs (V100, T4), fp32 on CPU.")
    ] = _R.precision,
    activation_checkpointing: Annotated[
        bool, typer.Option("--activation-checkpointing/--no-activation-checkpointing", rich_help_panel=RUN,
                           help="Recompute layer activations in the backward pass (large backbones).")
    ] = _R.activation_checkpointing,
    fsdp: Annotated[
        bool, typer.Option("--fsdp/--no-fsdp", rich_help_panel=RUN,
                           help="Shard weights, gradients and optimizer state over processes (FSDP2; 3B/15B).")
    ] = _R.fsdp,
    resume: Resume = _R.resume,
    overwrite: Overwrite = _R.overwrite,
    stop_after: Annotated[int | None, typer.Option("--stop-after", min=1, rich_help_panel=RUN,
                                                   help="Stop (with a checkpoint) after this many steps (of this run: "
                                                        "with --resume, this many more).")
                          ] = _R.stop_after,
    max_minutes: Annotated[float | None, typer.Option("--max-minutes", min=0.0, rich_help_panel=RUN,
                                                      help="Stop (with a checkpoint) after the step that ends past "
                                                           "this many minutes; set it below a job's time limit.")
                           ] = _R.max_minutes,
    checkpoint_every: Annotated[int, typer.Option("--checkpoint-every", min=0, rich_help_panel=RUN,
                                                  help="Also checkpoint every N steps (0: each epoch).")
                                ] = _R.checkpoint_every,
    output: output_option("Run folder (checkpoint, metrics, export/)."),
    processes: TrainingProcesses = TrainingProcesses(),
) -> None:
    """Structure-tune ESM2: MLM loss plus one linear token head per stream, then export for fair-esm and HF.

    Writes RUN/checkpoint.pt, RUN/metrics.jsonl and .png, and at the end RUN/export/ with esm2_t<L>_ismtk.pt
    (+ contact regression), an HF EsmForMaskedLM folder hf/ and heads.pt.

    [bold]Example[/bold]: ismtk structure-tune esm2_t6_8M_UR50D --aa aa.fasta --tokens tokens.fasta -o run/
    (tokens.fasta and aa.fasta from ismtk encode structs/ -o tokens.fasta --aa-output aa.fasta; a stream's
    alphabet comes from the tokenizer= tags)
    (continue it after a stop: ismtk structure-tune --resume -o run/)
    """
    from ismtk.plm.tune import resumed_config
    from ismtk.plm.tune import structure_tune as run_structure_tune

    device = processes.relaunch()
    config = TuneConfig(
        backbone=backbone or "", aa=str(aa) if aa else "", tokens=tuple(tokens or ()), epochs=epochs,
        warmup_epochs=warmup_epochs, lr=lr, weight_decay=weight_decay, clip=clip, batch_size=batch_size, crop=crop,
        mlm_weight=mlm_weight, val_fraction=val_fraction, val_names=str(val_names) if val_names else None,
        groups=str(groups) if groups else None, seed=seed,
    )
    runtime = TuneRuntime(
        out=str(output), micro_batch=micro_batch, precision=precision,
        activation_checkpointing=activation_checkpointing, fsdp=fsdp, resume=resume, overwrite=overwrite,
        stop_after=stop_after, max_minutes=max_minutes, checkpoint_every=checkpoint_every, device=device,
        threads=processes.threads,
    )
    if resume:
        config, runtime, taken = resumed_config(output, config, runtime, given_options(ctx))
        if taken and is_main_process():
            console.info("resuming with the run's options: " + ", ".join(f"{k}={v}" for k, v in taken.items()))
    if not (config.backbone and config.aa and config.tokens):
        raise InputError(
            "structure-tune needs a BACKBONE, --aa and at least one --tokens stream (or --resume with a run folder "
            "that recorded them)"
        )
    with console.progress("structure-tune", total=None, unit="steps") as advance:
        result = run_structure_tune(config, runtime, on_progress=console.step_reporter(advance), on_note=console.info)
    if result.exported:
        console.info(f"exported {', '.join(str(p) for p in result.exported)}")
