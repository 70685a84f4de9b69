"""`stylekit train-pix2pix DATA --refs 5 --size 512 --out RUN`: pix2pix conditioned on K style references."""

from pathlib import Path
from typing import Annotated, Any

import typer

from stylekit.cli.common import command, render
from stylekit.io.console import get_console

ORDER = 50

_EXAMPLES = """

Examples:

  stylekit download toy-styles --out data/toy --size 64 --per-style 200

  stylekit train-pix2pix data/toy --refs 5 --size 64 --epochs 5 --epochs-decay 5 --out runs/p2p-toy

  torchrun --nproc_per_node 8 -m stylekit train-pix2pix data/pairs --refs 5 --size 512 --batch 8 --out runs/p2p

  stylekit transfer content/ style1.png style2.png style3.png --method pix2pix --model runs/p2p --out styled/

Re-running the same command on the same --out resumes (networks, optimizers, schedules, epoch);
--fresh starts over. DATA: a toy-styles folder, A/ + B/ folders, or aligned A|B images (docs/pix2pix.md).
"""

_MODEL = "Model"
_TRAIN = "Training"
_DATA = "Data"


def _show(r: Any) -> None:
    ratio = r.ratio
    rows = [
        ["run", r.out],
        ["data", f"{r.data_format}: {r.train_pairs} train / {r.val_pairs} held out, {r.styles} style(s)"],
        ["epochs / steps", f"{r.epochs} / {r.steps}"],
        ["parameters", f"G {r.params_g / 1e6:.2f}M, D {r.params_d / 1e6:.2f}M"],
        ["val_l1 (right-style refs)", "-" if r.val_l1 is None else f"{r.val_l1:.4f}"],
        ["val_l1_wrong_refs", "-" if r.val_l1_wrong_refs is None else f"{r.val_l1_wrong_refs:.4f}"],
        ["right / wrong", "-" if ratio is None else f"{ratio:.3f}"],
        ["generator", r.generator],
        ["seconds", r.seconds],
    ]
    get_console().print_table("train-pix2pix", ["field", "value"], rows)


def _doc(r: Any) -> dict[str, Any]:
    import dataclasses

    return {**dataclasses.asdict(r), "ratio": r.ratio}


def register(app: typer.Typer) -> None:
    @command(app, "train-pix2pix", help="Train pix2pix whose generator reads K style reference images (resumable, torchrun-ready)." + _EXAMPLES)
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
        vgg_weights: Annotated[str, typer.Option("--vgg-weights", help="VGG19 weights for --ref-encoder vgg19 and --lambda-vgg: registry name or local file.", rich_help_panel=_MODEL)] = "vgg19",
        style_dim: Annotated[int, typer.Option("--style-dim", help="Size of the style vector fed to the decoder.", rich_help_panel=_MODEL)] = 256,
        ref_size: Annotated[int, typer.Option("--ref-size", help="Side the references are resized to (0 = min(size, 128)).", rich_help_panel=_MODEL)] = 0,
        grad_checkpoint: Annotated[bool, typer.Option("--grad-checkpoint", help="Recompute UNet blocks in backward (less memory at 512px+).", rich_help_panel=_MODEL)] = False,
        epochs: Annotated[int, typer.Option("--epochs", help="Epochs at the initial learning rate.", rich_help_panel=_TRAIN)] = 100,
        epochs_decay: Annotated[int, typer.Option("--epochs-decay", help="Further epochs with the rate decaying linearly to 0.", rich_help_panel=_TRAIN)] = 100,
        batch: Annotated[int, typer.Option("--batch", help="Global batch size (split over torchrun processes).", rich_help_panel=_TRAIN)] = 1,
        lr: Annotated[float, typer.Option("--lr", help="Adam learning rate (betas 0.5, 0.999).", rich_help_panel=_TRAIN)] = 2e-4,
        gan_mode: Annotated[str, typer.Option("--gan-mode", help="vanilla (BCE) | lsgan.", rich_help_panel=_TRAIN)] = "vanilla",
        lambda_l1: Annotated[float, typer.Option("--lambda-l1", help="Weight of the L1 loss.", rich_help_panel=_TRAIN)] = 100.0,
        lambda_vgg: Annotated[float, typer.Option("--lambda-vgg", help="Weight of a VGG19 perceptual loss (0 = off; needs VGG19 weights).", rich_help_panel=_TRAIN)] = 0.0,
        amp: Annotated[bool, typer.Option("--amp/--no-amp", help="Autocast in the device's native low-precision dtype (fp16 + GradScaler on GPUs without native bf16).", rich_help_panel=_TRAIN)] = False,
        seed: Annotated[int, typer.Option("--seed", help="Seed for initialisation, data order, crops and references.", rich_help_panel=_TRAIN)] = 0,
        save_every: Annotated[int, typer.Option("--save-every", help="Also checkpoint every N steps inside an epoch (0 = only at epoch ends).", rich_help_panel=_TRAIN)] = 1000,
        keep: Annotated[int, typer.Option("--keep", help="Checkpoints kept (the final one is always kept).", rich_help_panel=_TRAIN)] = 3,
        direction: Annotated[str, typer.Option("--direction", help="AtoB | BtoA.", rich_help_panel=_DATA)] = "AtoB",
        val_fraction: Annotated[float, typer.Option("--val-fraction", help="Held-out share of compositions when the data has no split.", rich_help_panel=_DATA)] = 0.1,
        val_max: Annotated[int, typer.Option("--val-max", help="At most this many held-out pairs per evaluation (0 = all).", rich_help_panel=_DATA)] = 200,
        samples: Annotated[int, typer.Option("--samples", help="Rows in each epoch's samples grid.", rich_help_panel=_DATA)] = 4,
        workers: Annotated[int, typer.Option("--workers", help="Data loader worker processes.", rich_help_panel=_DATA)] = 0,
        device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N (torchrun: each process its LOCAL_RANK GPU).")] = "auto",
        fresh: Annotated[bool, typer.Option("--fresh", help="Start over: clear --out instead of resuming.")] = False,
    ) -> None:
        from stylekit.errors import BadInput
        from stylekit.train.pix2pix import Pix2PixConfig, train_pix2pix

        if batch < 1 or workers < 0 or samples < 0 or keep < 1 or save_every < 0 or val_max < 0:
            raise BadInput("--batch and --keep must be >= 1; --workers, --samples, --save-every and --val-max >= 0")
        cfg = Pix2PixConfig(
            data=data, out=out, refs=refs, size=size, direction=direction, epochs=epochs, epochs_decay=epochs_decay,
            batch=batch, lr=lr, gan_mode=gan_mode, lambda_l1=lambda_l1, lambda_vgg=lambda_vgg, norm=norm,
            dropout=dropout, ngf=ngf, ndf=ndf, n_layers_d=n_layers_d, ref_inject=ref_inject, ref_encoder=ref_encoder,
            vgg_weights=vgg_weights, style_dim=style_dim, ref_size=ref_size, val_fraction=val_fraction,
            val_max=val_max, samples=samples, device=device, amp=amp, grad_checkpoint=grad_checkpoint, seed=seed,
            workers=workers, fresh=fresh, save_every=save_every, keep=keep,
        )
        result = train_pix2pix(cfg)
        if get_console().json_mode:
            render(_doc(result))
        else:
            _show(result)
