"""``ismtk structure-tune``: distil structure-token streams into an ESM2 backbone."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ismtk.cli import console
from ismtk.cli.options import (
    DEFAULT_NNODES,
    DeviceOpt,
    GpusOpt,
    NnodesOpt,
    NodeRankOpt,
    NprocOpt,
    RdzvEndpointOpt,
    RdzvIdOpt,
    ResumeOpt,
    TorchThreads,
    relaunch,
)
from ismtk.plm.tune import Precision, TuneConfig, TuneRuntime
from ismtk.plm.tune import structure_tune as run_structure_tune

_D = TuneConfig(backbone="", aa="", tokens=())
_R = TuneRuntime(out="")


def structure_tune(
    backbone: Annotated[str, typer.Argument(help="fair-esm hub name, fair-esm .pt, state dict or HF ESM folder.")],
    aa: Annotated[Path, typer.Option("--aa", help="Amino-acid FASTA of the training chains.")],
    tokens: Annotated[
        list[str],
        typer.Option("--tokens", help="Token FASTA stream, repeatable: PATH[:name=N][:weight=W][:alphabet=3di|SYMBOLS]"
                     "[:codebook=JSON][:ignore=SYMBOL] (ignore = disorder token s*, left out of the loss)."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (checkpoint, metrics, export/).")],
    epochs: Annotated[int, typer.Option(min=1, help="Training epochs.")] = _D.epochs,
    warmup_epochs: Annotated[float, typer.Option(min=0, help="Linear warm-up epochs before cosine decay.")] = _D.warmup_epochs,
    lr: Annotated[float, typer.Option(help="Peak AdamW learning rate.")] = _D.lr,
    weight_decay: Annotated[float, typer.Option(help="AdamW weight decay (matrices only).")] = _D.weight_decay,
    clip: Annotated[float, typer.Option(help="Gradient-norm clipping.")] = _D.clip,
    batch_size: Annotated[int, typer.Option(min=1, help="Global batch (sequences per optimizer step, all processes).")] = _D.batch_size,
    micro_batch: Annotated[int, typer.Option(min=1, help="Sequences per forward pass per process (accumulated).")] = _R.micro_batch,
    crop: Annotated[int, typer.Option(min=8, max=1022, help="Random crop length in residues.")] = _D.crop,
    mlm_weight: Annotated[float, typer.Option(help="Weight of the masked-language-model loss.")] = _D.mlm_weight,
    val_fraction: Annotated[float, typer.Option(min=0, max=0.9, help="Share of records held out for validation.")] = _D.val_fraction,
    val_names: Annotated[Path | None, typer.Option(help="File of record names to hold out instead (one per line).")] = None,
    groups: Annotated[
        Path | None,
        typer.Option(help="File of 'record group' lines (PDB entry or sequence cluster): each epoch trains on one "
                     "random record per group."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of data order, crops, masks and new heads.")] = _D.seed,
    precision: Annotated[Precision, typer.Option(help="auto = bf16 autocast on GPU, fp32 on CPU.")] = _R.precision,
    activation_checkpointing: Annotated[
        bool, typer.Option(help="Recompute layer activations in the backward pass (large backbones).")
    ] = _R.activation_checkpointing,
    fsdp: Annotated[
        bool, typer.Option(help="Shard weights, gradients and optimizer state over processes (FSDP2; 3B/15B).")
    ] = _R.fsdp,
    stop_after: Annotated[int | None, typer.Option(help="Stop (with a checkpoint) after this many steps.")] = None,
    checkpoint_every: Annotated[int, typer.Option(min=0, help="Also checkpoint every N steps (0: each epoch).")] = 0,
    threads: TorchThreads = None,
    gpus: GpusOpt = 0,
    nproc: NprocOpt = 0,
    resume: ResumeOpt = False,
    device: DeviceOpt = _R.device,
    nnodes: NnodesOpt = DEFAULT_NNODES,
    node_rank: NodeRankOpt = None,
    rdzv_endpoint: RdzvEndpointOpt = None,
    rdzv_id: RdzvIdOpt = None,
) -> None:
    """Structure-tune ESM2: MLM loss plus one linear token head per stream, then export for fair-esm and HF.

    Writes RUN/checkpoint.pt, RUN/metrics.jsonl and .png, and at the end RUN/export/ with esm2_t<L>_ismtk.pt
    (+ contact regression), an HF EsmForMaskedLM folder hf/ and heads.pt.

    [bold]Example[/bold]: ismtk structure-tune esm2_t6_8M_UR50D --aa aa.fasta --tokens tokens.fasta:alphabet=3di -o run/
    """
    status, device = relaunch(gpus, nproc, device, nnodes, node_rank, rdzv_endpoint, rdzv_id)
    if status is not None:
        raise typer.Exit(status)
    config = TuneConfig(
        backbone=backbone, aa=str(aa), tokens=tuple(tokens), epochs=epochs, warmup_epochs=warmup_epochs, lr=lr,
        weight_decay=weight_decay, clip=clip, batch_size=batch_size, crop=crop, mlm_weight=mlm_weight,
        val_fraction=val_fraction, val_names=str(val_names) if val_names else None,
        groups=str(groups) if groups else None, seed=seed,
    )
    runtime = TuneRuntime(
        out=str(out), micro_batch=micro_batch, precision=precision, activation_checkpointing=activation_checkpointing,
        fsdp=fsdp, resume=resume, stop_after=stop_after, checkpoint_every=checkpoint_every, device=device,
        threads=threads,
    )
    with console.progress("structure-tune", total=None, unit="steps") as advance:
        done = [0]

        def report(p) -> None:
            advance(p.step - done[0])
            done[0] = p.step

        result = run_structure_tune(config, runtime, on_progress=report, on_note=console.info)
    if result.exported:
        console.info(f"exported {', '.join(str(p) for p in result.exported)}")
