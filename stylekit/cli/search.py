"""`stylekit classify` (top-k styles per image) and `stylekit similar` (nearest images by style)."""

from pathlib import Path
from typing import Annotated, Any

import typer

from stylekit.cli.common import Table, command, render
from stylekit.cli.vocabulary import option

ORDER = 42

_CLASSIFY_EXAMPLES = [
    "stylekit classify photos/ --style-model runs/style",
    "stylekit classify a.jpg b.png more.zip --style-model runs/style -k 3 --out styles.csv",
    "stylekit classify list.txt --style-model runs/style --json > styles.json",
]

_SIMILAR_EXAMPLES = [
    "stylekit similar query.jpg --in collection/ --style-model runs/style --out found/",
    "stylekit similar q1.png q2.png --in art.zip --style-model runs/style -k 5 --json",
    "stylekit similar query.jpg --in collection/ --embedder gram --out found-gram/",
    "stylekit similar queries/ --in list.txt --embedder clip -k 20 --out found-clip/",
]

_INPUTS = "Images: folders (recursive), .zip files, image files, or .txt files listing one path per line."


def _skipped(doc: dict[str, Any]) -> list[Table]:
    skipped = doc.get("skipped") or []
    return [Table(f"skipped ({len(skipped)})", ["file", "reason"], [[s["path"], s["reason"]] for s in skipped[:20]])] if skipped else []


def _classify_table(doc: dict[str, Any]) -> list[Table]:
    rows = [[r["path"], ", ".join(f"{t['style']} {t['probability']:.3f}" for t in r["top"])] for r in doc["images"]]
    return [Table(f"classify: {len(doc['images'])} images, top-{doc['k']} of {len(doc['classes'])} styles",
                  ["image", "styles (probability)"], rows), *_skipped(doc)]


def _similar_table(doc: dict[str, Any]) -> list[Table]:
    from stylekit.io.console import get_console

    tables = [Table(f"nearest to {q['path']} ({doc['embedder']})", ["rank", "image", "cosine"],
                    [[i + 1, n["path"], f"{n['score']:.4f}"] for i, n in enumerate(q["neighbours"])]) for q in doc["queries"]]
    if doc["metrics"]:
        tables.append(Table("retrieval (labels from class folders)", ["metric", "value"], [[k, v] for k, v in doc["metrics"].items()]))
    console = get_console()
    index = doc["features"]["collection"]
    console.log(f"index: {doc['collection']['used']} images ({index['hits']} cached, {index['computed']} embedded now)")
    for key, path in doc["out"].items():
        console.log(f"{key}: {path}")
    return tables


def register(app: typer.Typer) -> None:
    @command(app, "classify", help="Top-k styles with probabilities for every image, from a train-classifier style model.",
             examples=_CLASSIFY_EXAMPLES)
    def classify(
        images: Annotated[list[str], typer.Argument(help=_INPUTS, show_default=False)],
        style_model: str = option("style_model", required=True),
        k: int = option("k", "Styles listed per image.", default=5),
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the results as a CSV file (path, style_1, p_1, ...).", show_default=False)] = None,
        batch: int = option("batch", "Images per forward pass.", default=32),
        workers: int | None = option("workers", "Decoding worker processes (0 = in the main process; default: auto = 0)."),
        device: str = option("device"),
        cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Per-image feature cache in $STYLEKIT_HOME/features.")] = True,
    ) -> None:
        from stylekit.metrics.search import ClassifyConfig, classify_images

        result = classify_images(ClassifyConfig(images=images, style_model=style_model, k=k, out=str(out) if out else None,
                                                batch=batch, workers=0 if workers is None else workers, device=device, cache=cache))
        render(result.to_dict(), table=_classify_table)

    @command(app, "similar", help="Nearest images in a collection by style, with a JSON list and a labelled contact sheet.",
             examples=_SIMILAR_EXAMPLES)
    def similar(
        queries: Annotated[list[str], typer.Argument(help="Query images. " + _INPUTS, show_default=False)],
        collection: Annotated[list[str], typer.Option("--in", help="The collection searched (repeatable). " + _INPUTS, show_default=False)],
        style_model: str | None = option("style_model", "A train-classifier run directory or its style-model export (--embedder style)."),
        k: int = option("k", "Neighbours per query.", default=10),
        embedder: str = option("embedder", "style (the style model), gram (VGG19 Gram sketch) or clip (open_clip).", default="style"),
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for similar.json and contact_sheet.png.", show_default=False)] = None,
        vgg_weights: str | None = option("vgg_weights", "VGG19 weights for --embedder gram (default: registry vgg19)."),
        clip_model: Annotated[str, typer.Option("--clip-model", help="open_clip architecture, or a local open_clip model folder (--embedder clip).")] = "ViT-B-32",
        clip_weights: Annotated[str | None, typer.Option("--clip-weights", help="CLIP weights file (default: registry clip-vit-b-32).", show_default=False)] = None,
        size: Annotated[int | None, typer.Option("--size", help="Image side fed to the embedder (default: the style model's size; 256 for gram).", show_default=False)] = None,
        batch: int = option("batch", "Images per forward pass.", default=32),
        workers: int | None = option("workers", "Decoding worker processes (0 = in the main process; default: auto = 0)."),
        device: str = option("device"),
        cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Keep the collection's embeddings (the index) in $STYLEKIT_HOME/features.")] = True,
    ) -> None:
        from stylekit.metrics.search import SimilarConfig, similar_images

        result = similar_images(SimilarConfig(
            queries=queries, collection=collection, style_model=style_model, embedder=embedder, k=k,
            out=str(out) if out else None, vgg_weights=vgg_weights, clip_model=clip_model, clip_weights=clip_weights,
            size=size, batch=batch, workers=0 if workers is None else workers, device=device, cache=cache,
        ))
        render(result.to_dict(), table=_similar_table)
