"""`stylekit classify` (top-k styles per image) and `stylekit similar` (nearest images by style)."""

from typing import Any

import typer

from stylekit.cli.common import Table, command, render
from stylekit.configs.search import ClassifyConfig, SimilarConfig

ORDER = 42

_CLASSIFY_EXAMPLES = [
    "stylekit download toy-styles --out data/toy --size 32 --per-style 8",
    "stylekit train-classifier data/toy --size 32 --epochs 2 --out runs/style",
    "stylekit classify data/toy/dots --style-model runs/style",
    "stylekit classify data/toy/pop/00000.png data/toy/checks --style-model runs/style -k 3 --out styles.csv",
    "stylekit classify data/toy/pop --style-model runs/style --json",
]

_SIMILAR_EXAMPLES = [
    "stylekit similar data/toy/pop/00000.png --in data/toy --style-model runs/style --out found/",
    "stylekit similar data/toy/pop/00000.png data/toy/dots/00001.png --in data/toy --style-model runs/style -k 5 --json",
    "stylekit similar data/toy/pop/00000.png --in data/toy --style-model runs/style --out found/ --fresh",
    "stylekit similar data/toy/dots --in data/toy --embedder gram --vgg-weights random --size 32 --out found-gram/",
]
_SIMILAR_NOTES = ("--embedder clip takes --clip-model (an open_clip name, or a local model folder) and --clip-weights. "
                  "A rerun into an --out that holds results refuses (exit 2) unless --fresh.")


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
    if doc["standin"]:
        tables.append(Table("stand-in", ["warning"], [[doc["standin"]]]))
    index = doc["features"]["collection"]
    console.log(f"index: {doc['collection']['used']} images ({index['hits']} cached, {index['computed']} embedded now)")
    for key, path in doc["out"].items():
        console.log(f"{key}: {path}")
    return tables


def register(app: typer.Typer) -> None:
    @command(app, "classify", help="Top-k styles with probabilities for every image, from a train-classifier style model.",
             examples=_CLASSIFY_EXAMPLES, config=ClassifyConfig)
    def classify(cfg: ClassifyConfig) -> None:
        from stylekit.metrics.search import classify_images

        render(classify_images(cfg).to_dict(), table=_classify_table)

    @command(app, "similar", help="Nearest images in a collection by style, with a JSON list and a labelled contact sheet.",
             examples=_SIMILAR_EXAMPLES, notes=_SIMILAR_NOTES, config=SimilarConfig)
    def similar(cfg: SimilarConfig) -> None:
        from stylekit.metrics.search import similar_images

        render(similar_images(cfg).to_dict(), table=_similar_table)
