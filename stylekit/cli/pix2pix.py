"""`stylekit train-pix2pix DATA --refs 5 --size 512 --out RUN`: pix2pix conditioned on K style references."""

from pathlib import Path
from typing import Annotated, Any

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.cli.vocabulary import option

ORDER = 50

_EXAMPLES = [
    "stylekit download toy-styles --out data/toy --size 64 --per-style 200",
    "stylekit train-pix2pix data/toy --refs 5 --size 64 --epochs 10 --decay-epochs 5 --out runs/p2p-toy",
    "stylekit train-pix2pix data/facades --refs 0 --net-g resnet9 --preprocess crop --no-flip --out runs/facades",
    "stylekit train-pix2pix data/toy --refs 3 --size 64 --ref-cls-weight 1 --ref-metric-weight 1 --out runs/p2p-code",
    "torchrun --nproc_per_node 8 -m stylekit train-pix2pix data/pairs --refs 5 --size 512 --batch 8 --out runs/p2p",
    "stylekit transfer content/ style1.png style2.png style3.png --method pix2pix --model runs/p2p --out styled/",
]
_NOTES = ("Re-running the same command on the same --out resumes (networks, optimizers, schedules, epoch); "
          "--fresh starts over. DATA: a toy-styles folder, A/ + B/ folders, or aligned A|B images (docs/pix2pix.md).")

_MODEL = "Model"
_TRAIN = "Training"
_DATA = "Data"


def _show(r: dict[str, Any]) -> Table:
    def num(value: float | None, fmt: str = ".4f") -> str:
        return "-" if value is None else format(value, fmt)

    rows = [
        ["run", r["out"]],
        ["data", f"{r['data_format']}: {r['train_pairs']} train / {r['val_pairs']} held out, {r['styles']} style(s)"],
        ["epochs / steps", f"{r['epochs']} / {r['steps']}"],
        ["parameters", f"G {r['params_g'] / 1e6:.2f}M, D {r['params_d'] / 1e6:.2f}M"],
        ["val_l1 (right-style refs)", num(r["val_l1"])],
        ["val_l1_wrong_refs", num(r["val_l1_wrong_refs"])],
        ["right / wrong", num(r["ratio"], ".3f")],
        ["generator", r["generator"]],
        ["seconds", r["seconds"]],
    ]
    return fields("train-pix2pix", rows)


def _doc(r: Any) -> dict[str, Any]:
    import dataclasses

    return {**dataclasses.asdict(r), "ratio": r.ratio}


def register(app: typer.Typer) -> None:
    @command(app, "train-pix2pix", help="Train pix2pix whose generator reads K style reference images (resumable, torchrun-ready).",
             examples=_EXAMPLES, notes=_NOTES, renamed={"--epochs-decay": "--decay-epochs"})
    def train_pix2pix_cmd(
        data: Annotated[Path, typer.Argument(help="toy-styles folder, folder with A/ and B/, or aligned A|B pairs.", show_default=False)],
        out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (resumed when it holds a checkpoint).", show_default=False)],
        refs: Annotated[int, typer.Option("--refs", help="K style references per target (0 = plain pix2pix).", rich_help_panel=_MODEL)] = 5,
        size: Annotated[int, typer.Option("--size", help="Square training size, a power of two >= 32 (sets the UNet depth: 256 -> 8 downs).", rich_help_panel=_MODEL)] = 256,
        ngf: Annotated[int, typer.Option("--ngf", help="Generator width.", rich_help_panel=_MODEL)] = 64,
        ndf: Annotated[int, typer.Option("--ndf", help="Discriminator width.", rich_help_panel=_MODEL)] = 64,
        n_layers_d: Annotated[int, typer.Option("--n-layers-d", help="PatchGAN layers (3 = 70x70 patches).", rich_help_panel=_MODEL)] = 3,
        norm: Annotated[str, typer.Option("--norm", help="batch | instance.", rich_help_panel=_MODEL)] = "batch",
        dropout: Annotated[bool, typer.Option("--dropout/--no-dropout", help="Dropout 0.5 in the inner decoder blocks.", rich_help_panel=_MODEL)] = True,
        ref_inject: Annotated[str, typer.Option("--ref-inject", help="adain (per-scale affine from the reference code) | concat.", rich_help_panel=_MODEL)] = "adain",
        ref_encoder: Annotated[str, typer.Option("--ref-encoder", help="small-cnn (trained jointly, no downloads) | vgg19 (frozen pretrained; needs `stylekit download vgg19`).", rich_help_panel=_MODEL)] = "small-cnn",
        vgg_weights: str = option("vgg_weights", "VGG19 weights for --ref-encoder vgg19 and --lambda-vgg: registry name or local file.", default="vgg19", panel=_MODEL),
        style_dim: Annotated[int, typer.Option("--style-dim", help="Size of the style vector fed to the decoder.", rich_help_panel=_MODEL)] = 256,
        ref_size: Annotated[int, typer.Option("--ref-size", help="Side the references are resized to (0 = min(size, 128)).", rich_help_panel=_MODEL)] = 0,
        net_g: Annotated[str, typer.Option("--net-g", help="Generator: unet (sizes a power of two) | resnet9 (junyanz resnet_9blocks; sizes a multiple of 4). References drive both.", rich_help_panel=_MODEL)] = "unet",
        grad_checkpoint: Annotated[bool, typer.Option("--grad-checkpoint", help="Recompute UNet blocks in backward (less memory at 512px+).", rich_help_panel=_MODEL)] = False,
        epochs: int = option("epochs", "Total epochs: constant learning rate, then the last --decay-epochs decay it linearly to 0.", default=200, panel=_TRAIN),
        decay_epochs: Annotated[int | None, typer.Option("--decay-epochs", help="The last N of --epochs, with the rate decaying linearly to 0 (default: half of --epochs).", rich_help_panel=_TRAIN, show_default=False)] = None,
        batch: int = option("batch", "Global batch size (split over torchrun processes).", default=1, panel=_TRAIN),
        lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (betas 0.5, 0.999).", rich_help_panel=_TRAIN)] = 2e-4,
        gan_mode: Annotated[str, typer.Option("--gan-mode", help="vanilla (BCE) | lsgan.", rich_help_panel=_TRAIN)] = "vanilla",
        lambda_l1: Annotated[float, typer.Option("--lambda-l1", help="Weight of the L1 loss.", rich_help_panel=_TRAIN)] = 100.0,
        lambda_vgg: Annotated[float, typer.Option("--lambda-vgg", help="Weight of a VGG19 perceptual loss (0 = off; needs VGG19 weights).", rich_help_panel=_TRAIN)] = 0.0,
        ref_cls_weight: Annotated[float, typer.Option("--ref-cls-weight", help="Weight of a style classifier's cross-entropy on the reference code (0 = off); the exported style model then classifies.", rich_help_panel=_TRAIN)] = 0.0,
        ref_metric_weight: Annotated[float, typer.Option("--ref-metric-weight", help="Weight of SupCon (same style = positive) on the reference code (0 = off): the code becomes a style metric (score/similar --style-model RUN).", rich_help_panel=_TRAIN)] = 0.0,
        save_every: Annotated[int, typer.Option("--save-every", help="Also checkpoint every N steps inside an epoch (0 = only at epoch ends).", rich_help_panel=_TRAIN)] = 1000,
        keep: Annotated[int, typer.Option("--keep", help="Checkpoints kept (the final one is always kept).", rich_help_panel=_TRAIN)] = 3,
        direction: Annotated[str, typer.Option("--direction", help="AtoB | BtoA.", rich_help_panel=_DATA)] = "AtoB",
        layout: Annotated[str, typer.Option("--layout", help="auto | toy-styles | folders | aligned. auto reads single images as A|B halves only with evidence of pairing (a `prepare --format pairs` folder, or images twice as wide as tall).", rich_help_panel=_DATA)] = "auto",
        preprocess: Annotated[str, typer.Option("--preprocess", help="resize_and_crop (load 286 -> random 256 crop, scaled with --size) | crop (random crop, no resize) | none (images must be --size).", rich_help_panel=_DATA)] = "resize_and_crop",
        flip: Annotated[bool, typer.Option("--flip/--no-flip", help="Random horizontal flips of pairs and references.", rich_help_panel=_DATA)] = True,
        val_fraction: Annotated[float, typer.Option("--val-fraction", help="Held-out share of compositions when the data has no split.", rich_help_panel=_DATA)] = 0.1,
        val_max: Annotated[int, typer.Option("--val-max", help="At most this many held-out pairs per evaluation (0 = all).", rich_help_panel=_DATA)] = 200,
        samples: Annotated[int, typer.Option("--samples", help="Rows in each epoch's samples grid.", rich_help_panel=_DATA)] = 4,
        workers: int | None = option("workers", "Data loader worker processes (default: auto = 0)."),
        amp: bool = option("amp"),
        device: str = option("device"),
        seed: int = option("seed", "Seed for initialisation, data order, crops and references."),
        fresh: bool = option("fresh", "Start over: clear --out instead of resuming."),
    ) -> None:
        from stylekit.train.pix2pix import Pix2PixConfig, train_pix2pix

        cfg = Pix2PixConfig(
            data=data, out=out, refs=refs, size=size, direction=direction, epochs=epochs, decay_epochs=decay_epochs,
            batch=batch, lr=lr, gan_mode=gan_mode, lambda_l1=lambda_l1, lambda_vgg=lambda_vgg, norm=norm,
            dropout=dropout, ngf=ngf, ndf=ndf, n_layers_d=n_layers_d, ref_inject=ref_inject, ref_encoder=ref_encoder,
            vgg_weights=vgg_weights, style_dim=style_dim, ref_size=ref_size, val_fraction=val_fraction,
            val_max=val_max, samples=samples, device=device, amp=amp, grad_checkpoint=grad_checkpoint, seed=seed,
            workers=0 if workers is None else workers, fresh=fresh, save_every=save_every, keep=keep,
            ref_cls_weight=ref_cls_weight, ref_metric_weight=ref_metric_weight, layout=layout,
            net_g=net_g, preprocess=preprocess, flip=flip,
        )
        result = train_pix2pix(cfg)
        render(_doc(result), table=_show)
