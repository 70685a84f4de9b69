"""`stylekit classify` (top-k styles per image) and `stylekit similar` (nearest images by style)."""

from pathlib import Path
from typing import Annotated, Any

import typer

from stylekit.cli.common import command, render

ORDER = 42

_CLASSIFY_EXAMPLES = """
Examples:

  stylekit classify photos/ --style-model runs/style

  stylekit classify a.jpg b.png more.zip --style-model runs/style -k 3 --out styles.csv

  stylekit classify list.txt --style-model runs/style --json > styles.json
"""

_SIMILAR_EXAMPLES = """
Examples:

  stylekit similar query.jpg --in collection/ --style-model runs/style --out found/

  stylekit similar q1.png q2.png --in art.zip --style-model runs/style -k 5 --json

  stylekit similar query.jpg --in collection/ --embedder gram --out found-gram/

  stylekit similar queries/ --in list.txt --embedder clip -k 20 --out found-clip/
"""

_INPUTS = "Images: folders (recursive), .zip files, image files, or .txt files listing one path per line."


def _classify_table(doc: dict[str, Any]) -> None:
    from stylekit.io.console import get_console

    rows = [[r["path"], ", ".join(f"{t['style']} {t['probability']:.3f}" for t in r["top"])] for r in doc["images"]]
    get_console().print_table(f"classify: {len(doc['images'])} images, top-{doc['k']} of {len(doc['classes'])} styles",
                              ["image", "styles (probability)"], rows)
    if doc["skipped"]:
        get_console().print_table(f"skipped ({len(doc['skipped'])})", ["file", "reason"],
                                  [[s["path"], s["reason"]] for s in doc["skipped"][:20]])


def _similar_table(doc: dict[str, Any]) -> None:
    from stylekit.io.console import get_console

    console = get_console()
    for q in doc["queries"]:
        console.print_table(f"nearest to {q['path']} ({doc['embedder']})", ["rank", "image", "cosine"],
                            [[i + 1, n["path"], f"{n['score']:.4f}"] for i, n in enumerate(q["neighbours"])])
    if doc["metrics"]:
        console.print_table("retrieval (labels from class folders)", ["metric", "value"], [[k, v] for k, v in doc["metrics"].items()])
    index = doc["features"]["collection"]
    console.log(f"index: {doc['collection']['used']} images ({index['hits']} cached, {index['computed']} embedded now)")
    for key, path in doc["out"].items():
        console.log(f"{key}: {path}")


def register(app: typer.Typer) -> None:
    @command(app, "classify", help="Top-k styles with probabilities for every image, from a train-classifier style model.",
             epilog=_CLASSIFY_EXAMPLES)
    def classify(
        images: Annotated[list[str], typer.Argument(help=_INPUTS, show_default=False)],
        style_model: Annotated[str, typer.Option("--style-model", help="train-classifier run directory or style-model export.", show_default=False)],
        k: Annotated[int, typer.Option("--k", "-k", help="Styles listed per image.")] = 5,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Also write the results as a CSV file (path, style_1, p_1, ...).", show_default=False)] = None,
        batch: Annotated[int, typer.Option("--batch", help="Images per forward pass.")] = 32,
        workers: Annotated[int, typer.Option("--workers", "-j", help="Decoding worker processes (0 = in the main process).")] = 0,
        device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
        cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Per-image feature cache in $STYLEKIT_HOME/features.")] = True,
    ) -> None:
        from stylekit.metrics.search import ClassifyConfig, classify_images

        result = classify_images(ClassifyConfig(images=images, style_model=style_model, k=k, out=str(out) if out else None,
                                                batch=batch, workers=workers, device=device, cache=cache))
        render(result.to_dict(), table=_classify_table)

    @command(app, "similar", help="Nearest images in a collection by style, with a JSON list and a labelled contact sheet.",
             epilog=_SIMILAR_EXAMPLES)
    def similar(
        queries: Annotated[list[str], typer.Argument(help="Query images. " + _INPUTS, show_default=False)],
        collection: Annotated[list[str], typer.Option("--in", help="The collection searched (repeatable). " + _INPUTS, show_default=False)],
        style_model: Annotated[str | None, typer.Option("--style-model", help="train-classifier run directory or style-model export (--embedder style).", show_default=False)] = None,
        k: Annotated[int, typer.Option("--k", "-k", help="Neighbours per query.")] = 10,
        embedder: Annotated[str, typer.Option("--embedder", help="style (the style model), gram (VGG19 Gram sketch) or clip (open_clip).")] = "style",
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for similar.json and contact_sheet.png.", show_default=False)] = None,
        vgg_weights: Annotated[str | None, typer.Option("--vgg-weights", help="VGG19 weights for --embedder gram (default: registry vgg19).", show_default=False)] = None,
        clip_model: Annotated[str, typer.Option("--clip-model", help="open_clip architecture, or a local open_clip model folder (--embedder clip).")] = "ViT-B-32",
        clip_weights: Annotated[str | None, typer.Option("--clip-weights", help="CLIP weights file (default: registry clip-vit-b-32).", show_default=False)] = None,
        size: Annotated[int | None, typer.Option("--size", help="Image side fed to the embedder (default: the style model's size; 256 for gram).", show_default=False)] = None,
        batch: Annotated[int, typer.Option("--batch", help="Images per forward pass.")] = 32,
        workers: Annotated[int, typer.Option("--workers", "-j", help="Decoding worker processes (0 = in the main process).")] = 0,
        device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
        cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Keep the collection's embeddings (the index) in $STYLEKIT_HOME/features.")] = True,
    ) -> None:
        from stylekit.metrics.search import SimilarConfig, similar_images

        result = similar_images(SimilarConfig(
            queries=queries, collection=collection, style_model=style_model, embedder=embedder, k=k,
            out=str(out) if out else None, vgg_weights=vgg_weights, clip_model=clip_model, clip_weights=clip_weights,
            size=size, batch=batch, workers=workers, device=device, cache=cache,
        ))
        render(result.to_dict(), table=_similar_table)
