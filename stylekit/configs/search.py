"""`stylekit classify` and `stylekit similar`: the options of style search over image collections."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stylekit.configs.features import batch_option, cache_option, workers_option
from stylekit.declare import Config, argument, option, require

INPUTS = "Images: folders (recursive), .zip files, image files, or .txt files listing one path per line."
MAX_K = 10_000  # neighbours / styles per image: more is a typo (the result lists every one)


class Embedder(StrEnum):
    style = "style"
    gram = "gram"
    clip = "clip"


@dataclass(frozen=True)
class ClassifyConfig(Config):
    images: tuple[str, ...] = argument(INPUTS, cover=())
    style_model: str = option(concept="style_model", cover=())
    k: int = option(5, "Styles listed per image (capped at the model's number of styles).", concept="k", ge=1, le=MAX_K,
                    cover=(5, 1))
    out: Path | None = option(None, "Also write the results as a CSV file (path, style_1, p_1, ...).", concept="out",
                              cover=(None, Path("styles.csv")))
    batch: int = batch_option()
    workers: int | None = workers_option()
    device: str = option(concept="device", cover=())
    cache: bool = cache_option()
    fresh: bool = option(concept="fresh", help="Replace an existing --out CSV (a rerun otherwise refuses it).")
    cache_dir: str | None = None  # the feature cache's folder (default $STYLEKIT_HOME/features); not an option

    def check(self) -> None:
        require(self.out is None or self.out.suffix.lower() == ".csv", f"--out {self.out} is not a .csv file",
                hint="name the table like styles.csv (use --json for JSON)")


@dataclass(frozen=True)
class SimilarConfig(Config):
    queries: tuple[str, ...] = argument("Query images. " + INPUTS, cover=())
    collection: tuple[str, ...] = option(help="The collection searched (repeatable). " + INPUTS, flags="--in", cover=())
    style_model: str | None = option(None, "A train-classifier run directory or its style-model export (--embedder style).",
                                     concept="style_model", cover=())
    k: int = option(10, "Neighbours per query.", concept="k", ge=1, le=MAX_K, cover=(10, 1))
    embedder: Embedder = option(Embedder.style, "style (the style model), gram (VGG19 Gram sketch) or clip (open_clip).",
                                concept="embedder")
    out: Path | None = option(None, "Folder for similar.json and contact_sheet.png.", concept="out",
                              cover=(None, Path("found")))
    vgg_weights: str | None = option(None, "VGG19 weights for --embedder gram: registry name (default vgg19), local file, "
                                     "or random (a random-init stand-in).", concept="vgg_weights", cover=())
    clip_model: str = option("ViT-B-32", "open_clip architecture, or a local open_clip model folder (--embedder clip).",
                             cover=())
    clip_weights: str | None = option(None, "CLIP weights: a file, or random (a random-init stand-in of --clip-model, "
                                      "an open_clip architecture name). Default: registry clip-vit-b-32.", cover=())
    size: int | None = option(None, "Image side fed to the embedder (default: the style model's size; 256 for gram).",
                              concept="size", unit="px", ge=16, le=4096, cover=(16, 32))
    batch: int = batch_option()
    workers: int | None = workers_option()
    device: str = option(concept="device", cover=())
    cache: bool = cache_option("Keep the collection's embeddings (the index) in $STYLEKIT_HOME/features.")
    fresh: bool = option(concept="fresh", help="Replace the results an earlier run left in --out (a rerun otherwise "
                         "refuses them).")
    cache_dir: str | None = None  # the feature cache's folder (default $STYLEKIT_HOME/features); not an option
    chunk: int = 65536  # collection rows per similarity block; not an option

    def check(self) -> None:
        require(self.embedder is not Embedder.style or self.style_model,
                "--embedder style needs --style-model RUN",
                hint="pass a train-classifier run directory, or use --embedder gram | clip")
        require(self.chunk >= 1, f"chunk must be >= 1, got {self.chunk}")
