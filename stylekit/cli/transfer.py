"""`stylekit transfer`: Gatys neural style transfer of one image or a folder of images."""

from pathlib import Path
from typing import Annotated, Any

import typer

from stylekit.cli.common import Table, command, parse_float_list, parse_int_list, render
from stylekit.cli.vocabulary import option

ORDER = 60

_EXAMPLES = [
    "stylekit transfer content.jpg starry.jpg --size 512 --out out.png",
    "stylekit transfer photo.jpg a.jpg b.jpg --style-blend-weights 0.7,0.3 --original-colors --out out.png",
    "stylekit transfer photo.jpg starry.jpg --multires 256,512,1024 --steps 1000,500,200 --out big.png",
    "stylekit transfer photos/ starry.jpg --size 384 --steps 300 --out stylised/",
    "stylekit transfer photos/ starry.jpg --size 384 --optimizer adam --batch 8 --device cuda --out stylised/",
    "stylekit transfer photo.jpg starry.jpg --normalize-gradients --optimizer adam --content-weight 5 --style-weight 100 --out out.png",
    "stylekit transfer photos/ r1.png r2.png r3.png --method pix2pix --model runs/p2p --out styled/",
    "stylekit transfer val/A r1.png r2.png --method pix2pix --model runs/p2p --targets val/B --out results/",
]
_NOTES = ("A folder CONTENT is batch mode: up-to-date outputs are skipped, edited content images redone, and outputs "
          "made with other styles, options or model refused (--fresh redoes them). A pix2pix folder run also writes "
          "OUT/index.html. A step is one loss+gradient evaluation (one Adam update; an L-BFGS iteration takes one or more).")


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def register(app: typer.Typer) -> None:
    @command(app, "transfer", help="Neural style transfer: restyle CONTENT (an image or a folder) after STYLE image(s) (Gatys, or a trained pix2pix-ref model).",
             examples=_EXAMPLES, notes=_NOTES)
    def transfer(
        content: Annotated[Path, typer.Argument(help="Content image, or a folder of images (batch mode).", show_default=False)],
        style: Annotated[list[Path], typer.Argument(help="One or more style images.", show_default=False)],
        out: Annotated[str, typer.Option("--out", "-o", help="Output image (.png/.jpg/...) or folder (an existing one, or ending in /); a folder in batch mode.", show_default=False)],
        method: Annotated[str, typer.Option(help="Transfer method: gatys | pix2pix (a train-pix2pix model; STYLE images are its references).")] = "gatys",
        model: Annotated[Path | None, typer.Option(help="--method pix2pix: a train-pix2pix run directory (or its generator.safetensors).", show_default=False)] = None,
        targets: Annotated[Path | None, typer.Option("--targets", help="--method pix2pix on a folder: ground-truth images at the same relative names; OUT/index.html then shows input | refs | output | target.", show_default=False)] = None,
        arch: Annotated[str, typer.Option(help="VGG architecture: vgg19 | vgg16.")] = "vgg19",
        content_layers: Annotated[str, typer.Option(help="Comma-separated content layers.")] = "relu4_2",
        style_layers: Annotated[str, typer.Option(help="Comma-separated style layers.")] = "relu1_1,relu2_1,relu3_1,relu4_1,relu5_1",
        content_weight: Annotated[float, typer.Option(help="Content loss weight (PyTorch tutorial default for torchvision VGG).")] = 1.0,
        style_weight: Annotated[float, typer.Option(help="Style loss weight (PyTorch tutorial default for torchvision VGG).")] = 1e6,
        tv_weight: Annotated[float, typer.Option(help="Total-variation weight (jcjohnson default).")] = 1e-3,
        layer_weights: Annotated[str | None, typer.Option(help="Per style layer weights, e.g. 1,1,1,0.5,0.5 (default all 1).", show_default=False)] = None,
        optimizer: Annotated[str, typer.Option(help="lbfgs | adam.")] = "lbfgs",
        steps: Annotated[str, typer.Option(help="Steps (loss+gradient evaluations) per stage: one value, or one per --multires size.")] = "1000",
        lr: Annotated[float, typer.Option(help="Adam learning rate on the [0,1] image (~ jcjohnson's 10 on 0-255).")] = 0.04,
        init: Annotated[str, typer.Option(help="Initial image: content | random | PATH.")] = "content",
        style_blend_weights: Annotated[str | None, typer.Option(help="Weights of several STYLE images, normalised to sum 1 (default equal).", show_default=False)] = None,
        style_scale: Annotated[float, typer.Option(help="Style image size relative to the output size.")] = 1.0,
        original_colors: Annotated[bool, typer.Option("--original-colors", help="Luminance-only transfer: keep the content's colours (chroma) exactly.")] = False,
        pooling: Annotated[str, typer.Option(help="VGG pooling: max | avg.")] = "max",
        size: int | None = option("size", "Longer side of the output in pixels (default: 512 for gatys, the model's training size for pix2pix).", default=None),
        multires: Annotated[str | None, typer.Option(help="Coarse-to-fine stage sizes, e.g. 256,512,1024 (overrides --size).", show_default=False)] = None,
        content_loss: Annotated[str, typer.Option(help="mse | cosine (direction of features only; see docs/transfer.md).")] = "mse",
        normalize_gradients: Annotated[bool, typer.Option("--normalize-gradients", help="jcjohnson: divide each content/style layer's gradient by its L1 norm (then times the weight), so the weights alone set the balance; needs --optimizer adam (docs/transfer.md).")] = False,
        weights: str | None = option("vgg_weights", "VGG weights: a local .pth/.safetensors state dict or a registry name (default: the --arch entry)."),
        save_every: Annotated[int, typer.Option(help="Write an intermediate frame every N steps to <out stem>_frames/ (0 = off).")] = 0,
        device: str = option("device"),
        amp: bool = option("amp"),
        seed: int = option("seed", "Seed for the random init."),
        fresh: bool = option("fresh", "Batch mode: redo outputs made with other styles, options or model (a rerun otherwise refuses them)."),
        batch: int = option("batch", "Folder mode, gatys with --optimizer adam: optimise up to N content images of equal size at once (faster on a GPU; results equal to single runs up to float rounding).", default=1),
    ) -> None:
        from stylekit.transfer import TransferConfig, run_transfer

        cfg = TransferConfig(
            content=content,
            styles=list(style),
            out=out,
            method=method,
            arch=arch,
            content_layers=_names(content_layers),
            style_layers=_names(style_layers),
            content_weight=content_weight,
            style_weight=style_weight,
            tv_weight=tv_weight,
            layer_weights=parse_float_list(layer_weights, "--layer-weights") if layer_weights else None,
            optimizer=optimizer,
            steps=parse_int_list(steps, "--steps"),
            lr=lr,
            init=init,
            seed=seed,
            style_blend_weights=parse_float_list(style_blend_weights, "--style-blend-weights") if style_blend_weights else None,
            style_scale=style_scale,
            original_colors=original_colors,
            pooling=pooling,
            size=size,
            multires=parse_int_list(multires, "--multires") if multires else None,
            content_loss=content_loss,
            normalize_gradients=normalize_gradients,
            weights=weights,
            save_every=save_every,
            device=device,
            precision="auto" if amp else "fp32",  # --amp: bf16 where the device runs it natively
            model=model,
            targets=targets,
            fresh=fresh,
            batch=batch,
        )
        report = run_transfer(cfg)
        render(report, table=_table)


def _table(report: Any) -> Table:
    rows = []
    for item in report.items:
        stages = item.get("stages") or []
        loss = f"{stages[0]['loss_start'].get('total', float('nan')):.4g} -> {stages[-1]['loss_end']['total']:.4g}" if stages else ""
        rows.append([item["content"], item["output"], item["status"], item.get("steps", ""), item.get("seconds", ""), loss or item.get("reason", "")])
    title = f"transfer ({report.method}): {report.done} done, {report.skipped} skipped, {report.failed} failed in {report.seconds:.1f}s"
    return Table(title, ["content", "output", "status", "steps", "seconds", "loss / reason"], rows)
