"""`stylekit train-classifier`: art-style classifier + learned style-similarity embedding."""

from pathlib import Path
from typing import Annotated, Any

import typer

from stylekit.cli.common import Table, command, parse_float_list, render
from stylekit.cli.vocabulary import option

ORDER = 30

_EXAMPLES = [
    "stylekit train-classifier data/toy-styles --out runs/toy --epochs 10",
    "stylekit train-classifier data/wikiart-256 --backbone efficientnet_b0 --loss ce+supcon --size 224 --epochs 30 --out runs/style",
    "torchrun --standalone --nproc_per_node 8 -m stylekit train-classifier data/wikiart-256 --backbone resnet50 --batch 256 --amp --out runs/style",
    "stylekit train-classifier data/other-art --eval-only --style-model runs/style --out runs/style-eval",
]


def _table(result: dict[str, Any]) -> Table:
    t = result["test"]
    rows = [[k, t[k]] for k in ("top1", "top5", "macro_f1", "map@10", "recall@1", "n") if k in t]
    rows.append(["skipped images", len(result["images"].get("skipped", []))])
    rows.append(["style model", result["style_model"]])
    title = "evaluation" if result["eval_only"] else f"train-classifier: {result['epochs']} epochs, {result['steps']} steps"
    return Table(title, ["metric", "value"], rows)


def register(app: typer.Typer) -> None:
    @command(app, "train-classifier", help="Train an art-style classifier and style-similarity embedding (CE + SupCon).",
             examples=_EXAMPLES)
    def train_classifier(
        data: Annotated[Path, typer.Argument(help="Prepared folder (manifest.csv with splits) or class folders DATA/<style>/*.png.")],
        out: Annotated[Path, typer.Option("--out", "-o", help="Run directory (re-running resumes; --fresh starts over).")],
        backbone: Annotated[str, typer.Option(help="small-cnn | resnet18/34/50 | efficientnet_b0..b3 | vgg16_bn | vit_b_16 | convnext_tiny | timm:<name> | clip:<open_clip model>.")] = "small-cnn",
        pretrained: Annotated[bool | None, typer.Option("--pretrained/--no-pretrained", help="ImageNet/CLIP weights via the registry (default: on, except small-cnn).")] = None,
        weights: Annotated[str | None, typer.Option("--backbone-weights", help="Backbone weights file (.pth/.safetensors) or registry name; needed for timm:<name> pretrained.")] = None,
        loss: Annotated[str, typer.Option(help="ce | supcon | ce+supcon.")] = "ce+supcon",
        supcon_weight: Annotated[float, typer.Option(help="Weight of SupCon in ce+supcon.")] = 1.0,
        temperature: Annotated[float, typer.Option(help="SupCon temperature.")] = 0.1,
        embed_dim: Annotated[int, typer.Option(help="Projection (style embedding) size.")] = 256,
        label_smoothing: Annotated[float, typer.Option(help="CE label smoothing.")] = 0.1,
        freeze_backbone_epochs: Annotated[int, typer.Option(help="Train only the heads for the first N epochs.")] = 0,
        balanced_sampler: Annotated[bool | None, typer.Option("--balanced-sampler/--no-balanced-sampler", help="P classes x K images per batch (default: on when the loss uses SupCon).")] = None,
        classes_per_batch: Annotated[int | None, typer.Option(help="P for the balanced sampler (default: --batch / K).")] = None,
        per_class: Annotated[int | None, typer.Option(help="K for the balanced sampler (default 4).")] = None,
        epochs: Annotated[int, typer.Option(help="Total training epochs.")] = 20,
        batch: Annotated[int, typer.Option(help="Global batch size (split over torchrun processes).")] = 64,
        lr: Annotated[float | None, typer.Option(help="AdamW learning rate (default 1e-3 from scratch, 3e-4 pretrained); cosine schedule, 1 warm-up epoch.")] = None,
        wd: Annotated[float, typer.Option(help="AdamW weight decay.")] = 0.05,
        size: Annotated[int | None, typer.Option(help="Input size (default 64 for small-cnn, 224 otherwise).")] = None,
        split: Annotated[str, typer.Option(help="train,val,test fractions for class folders (prepared folders keep their split).")] = "0.8,0.1,0.1",
        eval_only: Annotated[bool, typer.Option("--eval-only", help="Evaluate --style-model on DATA instead of training.")] = False,
        checkpoint: Path | None = option("style_model", "--eval-only: the run directory or style-model export to evaluate."),
        eval_split: Annotated[str, typer.Option(help="Split evaluated by --eval-only (all images if it is empty).")] = "test",
        workers: int | None = option("workers", "Data loader workers (default: auto = one per core but one on CPU, up to 8 on CUDA)."),
        amp: bool = option("amp"),
        device: str = option("device"),
        seed: int = option("seed", "Seed for init, split, sampler and augmentation."),
        fresh: bool = option("fresh", "Start over instead of resuming."),
    ) -> None:
        from stylekit.train.classifier import ClassifierConfig, train_classifier

        fractions = parse_float_list(split, "--split")
        if len(fractions) != 3:
            from stylekit.errors import BadInput

            raise BadInput(f"bad --split '{split}'", hint="three fractions train,val,test, e.g. 0.8,0.1,0.1")
        cfg = ClassifierConfig(
            data=data, out=out, backbone=backbone, pretrained=pretrained, weights=weights, loss=loss,
            supcon_weight=supcon_weight, temperature=temperature, embed_dim=embed_dim,
            label_smoothing=label_smoothing, freeze_backbone_epochs=freeze_backbone_epochs,
            balanced_sampler=balanced_sampler, classes_per_batch=classes_per_batch, per_class=per_class,
            epochs=epochs, batch=batch, lr=lr, wd=wd, size=size, split=(fractions[0], fractions[1], fractions[2]),
            workers=workers, amp=amp, device=device, seed=seed, fresh=fresh, eval_only=eval_only,
            checkpoint=checkpoint, eval_split=eval_split,
        )
        result = train_classifier(cfg)
        render(result.to_dict(), table=_table)
