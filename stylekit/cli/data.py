"""`stylekit prepare SRC OUT`: class folders or a path,label CSV -> sized, split, manifest-described data."""

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from stylekit.cli.common import Table, command, render
from stylekit.cli.vocabulary import option
from stylekit.io.console import get_console

ORDER = 20


class Crop(StrEnum):
    center = "center"
    center_wide = "center-wide"
    none = "none"


class ResizeFilter(StrEnum):
    lanczos = "lanczos"
    box = "box"
    bicubic = "bicubic"


class Format(StrEnum):
    folder = "folder"
    stylegan_zip = "stylegan-zip"
    pairs = "pairs"

_EXAMPLES = [
    "stylekit prepare data/toy data/toy-64 --size 64 --split 0.8,0.1,0.1 --exclude content",
    "stylekit prepare data/wikiart data/wikiart-256 --size 256 --dedupe --workers 8",
    "stylekit prepare data/toons data/toons-256.zip --size 256 --format stylegan-zip",
    "stylekit prepare data/toy/content data/pairs --format pairs --pair-with data/toy --exclude content --size 64",
    "stylekit prepare labels.csv data/out --size 128",
    "stylekit prepare photos/ data/faces-256 --align ffhq --size 256 --split 1",
]
_NOTES = "SRC may be a CSV with path,label columns. With --format stylegan-zip an OUT ending in .zip is the NVlabs-style archive itself."


def _show(doc: dict[str, Any]) -> Table:
    console = get_console()
    splits = list(doc["splits"])
    rows = [[label or "(none)", *[doc["counts"][label].get(s, 0) for s in splits], sum(doc["counts"][label].values())]
            for label in doc["labels"]]
    rows.append(["total", *[doc["splits"][s] for s in splits], doc["used"]])
    for s in doc["skipped"][:10]:
        console.log(f"skipped {s['path']}: {s['reason']}")
    if len(doc["skipped"]) > 10:
        console.log(f"... and {len(doc['skipped']) - 10} more skipped (see {doc['out']}/report.json)")
    console.log(f"{doc['used']} images, {len(doc['skipped'])} skipped, {doc['seconds']:.1f}s ({doc['images_per_s']:.0f} images/s)")
    return Table(f"prepared {doc['out']} ({doc['format']})", ["label", *splits, "images"], rows)


def register(app: typer.Typer) -> None:
    @command(app, "prepare", help="Turn class folders or a path,label CSV into a sized, split data set with manifest.csv.",
             examples=_EXAMPLES, notes=_NOTES)
    def prepare(
        src: Annotated[Path, typer.Argument(help="Class folders (SRC/<label>/...) or a CSV with path,label columns.", show_default=False)],
        out: Annotated[Path, typer.Argument(help="Output folder: images, manifest.csv, report.json. stylegan-zip: OUT/dataset.zip, or OUT itself when it ends in .zip.", show_default=False)],
        size: Annotated[int | None, typer.Option("--size", help="Output side in pixels (default: keep the source size).")] = None,
        crop: Annotated[Crop, typer.Option("--crop", help="center: central square; center-wide: W:H strip padded to a square (NVlabs); none: keep aspect, shorter side to --size.")] = Crop.center,
        resize_filter: Annotated[ResizeFilter, typer.Option("--resize-filter", help="Resampling filter.")] = ResizeFilter.lanczos,
        min_size: Annotated[int, typer.Option("--min-size", help="Skip images whose shorter side is below this.")] = 0,
        split: Annotated[str, typer.Option("--split", help="train,val,test fractions (stratified per label, seeded).")] = "0.8,0.1,0.1",
        dedupe: Annotated[bool, typer.Option("--dedupe", help="Skip exact duplicates (same file bytes); the first is kept.")] = False,
        fmt: Annotated[Format, typer.Option("--format", help="folder: OUT/<label>/<name>.png; stylegan-zip: NVlabs dataset_tool zip; pairs: aligned A|B images.")] = Format.folder,
        pair_with: Annotated[Path | None, typer.Option("--pair-with", help="pairs: folder of B images named like SRC's A images (its class folders give the labels).")] = None,
        max_images: Annotated[int | None, typer.Option("--max-images", help="At most this many images (round-robin over labels).")] = None,
        exclude: Annotated[list[str] | None, typer.Option("--exclude", help="Leave out this label (repeatable), e.g. --exclude content.")] = None,
        wide_aspect: Annotated[str, typer.Option("--wide-aspect", help="center-wide: width:height of the kept strip.")] = "4:3",
        align: Annotated[str | None, typer.Option("--align", help="ffhq: FFHQ-style aligned crop of the largest face (--size, default 1024); images without a face are skipped with a reason.")] = None,
        face_detector: Annotated[str, typer.Option("--face-detector", help="--align: face landmark network, a registry name or a local weights file.")] = "retinaface-mobilenet0.25",
        face_threshold: Annotated[float, typer.Option("--face-threshold", help="--align: minimum face confidence.")] = 0.8,
        workers: int | None = option("workers", "Worker processes (default: auto = one per core, 1 with --align; the output is identical for any number)."),
        seed: int = option("seed", "Seed of the split."),
    ) -> None:
        from stylekit.data.prepare import PrepareConfig, parse_aspect, parse_split
        from stylekit.data.prepare import prepare as run_prepare
        from stylekit.edit.align import DEFAULT_ALIGN_SIZE, FaceAlign

        preprocess = FaceAlign(align, size or DEFAULT_ALIGN_SIZE, face_detector, face_threshold).load() if align else None
        cfg = PrepareConfig(
            src=src, out=out, size=size, crop=crop.value, resize_filter=resize_filter.value, min_size=min_size,
            split=parse_split(split), dedupe=dedupe, workers=workers, format=fmt.value, pair_with=pair_with,
            max_images=max_images, seed=seed, exclude=tuple(exclude or ()), wide_aspect=parse_aspect(wide_aspect),
            preprocess=preprocess,
        )
        render(run_prepare(cfg).to_dict(), table=_show)
