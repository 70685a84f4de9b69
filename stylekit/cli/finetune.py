"""`stylekit finetune-stylegan`: StyleGAN2-ADA transfer learning with ADA and FreezeD (resumable, torchrun)."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.cli.vocabulary import option

ORDER = 70

EXAMPLES = [
    "stylekit finetune-stylegan data/toons.zip --network ffhq-256 --aug ada --freezed 4 --kimg 200 --out runs/toon",
    "torchrun --standalone --nproc_per_node 8 -m stylekit finetune-stylegan data/faces.zip --network ffhq-1024 --cfg paper1024 --augpipe bg --mirror --out runs/faces",
    "stylekit finetune-stylegan data/toons.zip --network ffhq-256 --metrics fid10k,kid10k,ppl2_wend --out runs/toon",
]


def _relaunch(nproc: int) -> int:
    """Run this very command line again under torchrun with `nproc` processes (without --nproc)."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
            continue
        if arg == "--nproc":
            skip = True
            continue
        if arg.startswith("--nproc="):
            continue
        args.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", "-m", "stylekit", *args]
    return subprocess.call(cmd, env=os.environ.copy())


def register(app: typer.Typer) -> None:
    @command(
        app,
        "finetune-stylegan",
        help="Fine-tune a pretrained StyleGAN2 on your images with ADA and FreezeD (resumable, multi-GPU).",
        examples=EXAMPLES,
        notes="Rerun the same command to resume; --fresh starts over.",
    )
    def finetune_stylegan(
        data: Annotated[Path, typer.Argument(help="Folder of square images or an NVlabs-style zip (stylekit prepare --format stylegan-zip).")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (rerun the command to resume).")],
        resume: str = option("network", "Transfer source: registry name (ffhq-256, ffhq-1024, ...), .pkl/.pt/.safetensors, a run directory, or 'none' to train from scratch.", required=True),
        cfg: Annotated[str, typer.Option("--cfg", help="Preset: auto | stylegan2 | paper256 | paper512 | paper1024 | cifar.")] = "auto",
        batch: int | None = option("batch", "Global batch (split over processes). Default: the preset's."),
        gamma: Annotated[float | None, typer.Option("--gamma", help="R1 weight. Default: the preset's.")] = None,
        kimg: Annotated[float | None, typer.Option("--kimg", help="Train until this many thousand real images were shown (fractions allowed).")] = None,
        lr: Annotated[float | None, typer.Option("--lr", help="Adam learning rate of G and D. Default: the preset's.")] = None,
        ema_kimg: Annotated[float | None, typer.Option("--ema-kimg", help="G EMA half-life in kimg. Default: the preset's.")] = None,
        ema_rampup: Annotated[float | None, typer.Option("--ema-rampup", help="EMA ramp-up (0 = off). Default: the preset's, off with a transfer source (NVlabs).")] = None,
        mbstd_group: Annotated[int | None, typer.Option("--mbstd-group", help="Minibatch-stddev group size. Default: the preset's.")] = None,
        mirror: Annotated[bool, typer.Option("--mirror", help="Add x-flipped copies of the images.")] = False,
        aug: Annotated[str, typer.Option("--aug", help="ada (adaptive p) | noaug | fixed (constant --p).")] = "ada",
        p: Annotated[float, typer.Option("--p", help="Initial (ada) or constant (fixed) augmentation probability.")] = 0.0,
        target: Annotated[float, typer.Option("--target", help="ADA target for r_t = E[sign(D(real))].")] = 0.6,
        augpipe: Annotated[str, typer.Option("--augpipe", help="blit|geom|color|filter|noise|cutout|bg|bgc|bgcf|bgcfn|bgcfnc.")] = "bgc",
        ada_kimg: Annotated[float | None, typer.Option("--ada-kimg", help="ADA speed: kimg for p to move by 1. Default 500, 100 with a transfer source.")] = None,
        freezed: Annotated[int, typer.Option("--freezed", help="FreezeD: freeze the first N discriminator layers (NVlabs numbering).")] = 0,
        snap: Annotated[int, typer.Option("--snap", help="Snapshot (network, sample grid, metrics) every N ticks.")] = 50,
        tick_kimg: Annotated[float, typer.Option("--tick-kimg", help="kimg per tick (log line, checkpoint).")] = 4.0,
        ckpt_ticks: Annotated[int, typer.Option("--ckpt-ticks", help="Resumable checkpoint every N ticks.")] = 1,
        metrics: Annotated[str, typer.Option("--metrics", help="Metric registry names at each snapshot, e.g. fid10k,kid10k,ppl2_wend (also metric-NAME.jsonl), or none.")] = "none",
        metric_images: int = option("num_gen", "Generated images for snapshot metrics without a count in their name (fid, kid, pr, is, ppl_*).", default=1000),
        keep: Annotated[int, typer.Option("--keep", help="Unpinned checkpoints to keep.")] = 3,
        nproc: Annotated[int, typer.Option("--nproc", help="Re-launch under torchrun with N processes (one per GPU).")] = 1,
        device: str = option("device"),
        workers: int | None = option("workers", "Data loader worker processes (default: auto = 0)."),
        amp: bool = option("amp"),
        seed: int = option("seed"),
        fresh: bool = option("fresh", "Delete the run directory's contents and start over."),
    ) -> None:
        from stylekit.errors import BadInput

        if nproc < 1:
            raise BadInput("--nproc must be at least 1")
        if nproc > 1 and "LOCAL_RANK" not in os.environ:
            code = _relaunch(nproc)
            raise typer.Exit(130 if code in (130, -2) else code)
        from stylekit.train.stylegan import FinetuneConfig, finetune_stylegan

        cfg_obj = FinetuneConfig(
            data=str(data), out=str(out), resume=resume, cfg=cfg, batch=batch, gamma=gamma, kimg=kimg, lr=lr,
            ema_kimg=ema_kimg, ema_rampup=ema_rampup, mbstd_group=mbstd_group, mirror=mirror, seed=seed, aug=aug,
            p=p, target=target, augpipe=augpipe, ada_kimg=ada_kimg, freezed=freezed, snap=snap, tick_kimg=tick_kimg,
            ckpt_ticks=ckpt_ticks, metrics=[m.strip() for m in metrics.split(",") if m.strip()] or ["none"],
            metric_images=metric_images, keep=keep, device=device, fresh=fresh, workers=0 if workers is None else workers, amp=amp,
        )
        result = finetune_stylegan(cfg_obj)
        render(result.to_dict(), table=lambda r: _table(r, cfg_obj.metrics))


def _table(r: dict, metric_names: list[str]) -> Table:
    from stylekit.metrics.snapshot import parse_snapshot_metrics

    rows = [["network", r["network"]], ["kimg", r["kimg"]], ["ticks", r["ticks"]], ["augment p", round(r["augment_p"], 4)],
            ["r_t", "-" if r["rt"] is None else round(r["rt"], 3)], ["resolution", r["resolution"]], ["batch", r["batch"]],
            ["frozen D layers", ", ".join(r["frozen_layers"]) or "none"], ["images", r["images"]],
            ["sec/kimg", r["sec_per_kimg"] or "-"], ["seconds", r["seconds"]]]
    names = [s.name for s in parse_snapshot_metrics(metric_names)]
    rows += [[k, v] for k, v in r["last_metrics"].items() if any(k == n or k.startswith(f"{n}_") for n in names)]
    return fields("finetune-stylegan", rows)
