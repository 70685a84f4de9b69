"""`stylekit prepare`: the options that turn class folders or a path,label CSV into a sized, split data set."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from stylekit.declare import Config, argument, float_list, option, require
from stylekit.errors import BadInput

IMAGES = "Images"
ALIGN = "Face alignment"


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


class Align(StrEnum):
    ffhq = "ffhq"


def aspect(text: str, flag: str = "--wide-aspect") -> tuple[int, ...]:
    """'4:3' -> (4, 3), the width:height of the strip center-wide keeps."""
    m = re.fullmatch(r"\s*(\d+)\s*[:x/,]\s*(\d+)\s*", text)
    if not m:
        raise BadInput(f"bad {flag} '{text}'", hint="give WIDTH:HEIGHT with width >= height, e.g. 4:3 or 2:1")
    return int(m[1]), int(m[2])


def fractions(text: str, flag: str = "--split") -> tuple[float, ...]:
    """'0.8,0.1,0.1' -> (0.8, 0.1, 0.1) (the rules on them are PrepareConfig.check's)."""
    return float_list(text, flag)


# What a rerun compares with the set already in OUT: the options that change the images or the split.
SETTINGS = ("src", "size", "crop", "resize_filter", "min_size", "split", "dedupe", "format", "pair_with", "max_images",
            "exclude", "wide_aspect", "align", "face_detector", "face_threshold", "seed")


# Options parsed from text (--split, --wide-aspect) declare their default as that text: the command line shows it
# as typed, and constructing the config parses it like a typed value.
@dataclass(frozen=True)
class PrepareConfig(Config):
    src: Path = argument("Class folders (SRC/<label>/...) or a CSV with path,label columns.", cover=())
    out: Path = argument("Output folder: images, manifest.csv, report.json. stylegan-zip: OUT/dataset.zip, or OUT "
                         "itself when it ends in .zip.", cover=())
    size: int | None = option(None, "Output side (default: keep the source size).", concept="size", unit="px", ge=1,
                              le=8192, panel=IMAGES, cover=(16, 8))
    crop: Crop = option(Crop.center, "center: central square; center-wide: W:H strip padded to a square (NVlabs); "
                        "none: keep aspect, shorter side to --size.", panel=IMAGES)
    resize_filter: ResizeFilter = option(ResizeFilter.lanczos, "Resampling filter.", panel=IMAGES, cover=(ResizeFilter.box,
                                         ResizeFilter.lanczos))
    min_size: int = option(0, "Skip images whose shorter side is below this.", unit="px", ge=0, le=65_536, panel=IMAGES,
                           cover=(0, 4))
    wide_aspect: tuple[int, ...] = option("4:3", "center-wide: width:height of the kept strip, e.g. 4:3.", ge=1,
                                          le=65_536, parse=aspect, panel=IMAGES, metavar="W:H", cover=((4, 3), (2, 1)))
    split: tuple[float, ...] = option("0.8,0.1,0.1", "train,val,test fractions (stratified per label, seeded; 1-3 "
                                      "values that sum to 1).", ge=0, le=1, parse=fractions, cover=((0.8, 0.1, 0.1), (1.0,)))
    dedupe: bool = option(False, "Skip exact duplicates (same file bytes); the first is kept.")
    format: Format = option(Format.folder, "folder: OUT/<label>/<name>.png; stylegan-zip: NVlabs dataset_tool zip; "
                            "pairs: aligned A|B images (with --pair-with).", flags="--format", cover=(Format.folder,
                            Format.stylegan_zip))
    pair_with: Path | None = option(None, "pairs: folder of B images named like SRC's A images (its class folders give "
                                    "the labels).", cover=())
    max_images: int | None = option(None, "At most this many images (round-robin over labels).", ge=1, le=10**9,
                                    cover=(None, 6))
    exclude: tuple[str, ...] = option((), "Leave out this class folder (repeatable), e.g. --exclude content; it must "
                                      "exist in SRC (or --pair-with).", cover=((), ("content",)))
    align: Align | None = option(None, "ffhq: FFHQ-style aligned crop of the largest face (--size, default 1024); images "
                                 "without a face are skipped with a reason.", panel=ALIGN, cover=())
    face_detector: str = option("retinaface-mobilenet0.25", "--align: face landmark network, a registry name, a local "
                                "weights file, or random (a random-init stand-in, for trying --align offline; use a low "
                                "--face-threshold).", panel=ALIGN, cover=())
    face_threshold: float = option(0.8, "--align: minimum face confidence.", ge=0.01, le=0.99, panel=ALIGN, cover=())
    workers: int | None = option(help="Worker processes (0 or 1 = in this process; default: auto = one per core, 1 with "
                                 "--align; the output is identical for any number).", concept="workers", ge=0, le=1024,
                                 cover=(None, 1))
    seed: int = option(concept="seed", help="Seed of the split.", ge=0, le=2**32 - 1, cover=(0, 1))
    fresh: bool = option(concept="fresh", help="Replace a set OUT already holds that was prepared with other settings "
                         "(without it that rerun is refused).", cover=())
    # Applied to each decoded image before crop/resize (--align's face alignment, built by the CLI); raises
    # ValueError(reason) to skip the image. Must be picklable: it runs in the worker processes. Not an option.
    preprocess: Callable[[Any], Any] | None = field(default=None, compare=False)

    def check(self) -> None:
        require(1 <= len(self.split) <= 3 and abs(sum(self.split) - 1) <= 1e-3,
                f"bad --split {','.join(f'{v:g}' for v in self.split)}",
                hint="give 1-3 comma-separated fractions for train,val,test that sum to 1, e.g. --split 0.8,0.1,0.1")
        require(len(self.wide_aspect) == 2 and self.wide_aspect[0] >= self.wide_aspect[1],
                f"bad --wide-aspect {':'.join(map(str, self.wide_aspect))}",
                hint="give WIDTH:HEIGHT with width >= height, e.g. 4:3 or 2:1")
        require(self.crop is not Crop.center_wide or self.size is not None, "--crop center-wide needs --size",
                hint="e.g. --size 512 --crop center-wide --wide-aspect 4:3")
        if self.format is Format.stylegan_zip:
            require(self.size is not None and self.size >= 4 and not self.size & (self.size - 1),
                    "--format stylegan-zip needs --size as a power of two (square images of one size)", hint="e.g. --size 256")
        require(self.out.suffix.lower() != ".zip" or self.format is Format.stylegan_zip,
                f"OUT {self.out} ends in .zip but --format is {self.format}",
                hint="use --format stylegan-zip (OUT becomes the archive), or an OUT folder name without .zip")
        require(self.align is None or self.format is not Format.pairs, "--align does not apply to --format pairs",
                hint="align the A and B images separately first")
        require((self.format is Format.pairs) == (self.pair_with is not None), "--format pairs and --pair-with DIR go together",
                hint="give both, e.g. --format pairs --pair-with data/B")

    def settings(self) -> dict[str, Any]:
        """The options a rerun into the same OUT must repeat (JSON-ready): see SETTINGS."""
        values = self.to_dict()
        return {key: values[key] for key in SETTINGS}

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_dict().items() if k != "preprocess"}
