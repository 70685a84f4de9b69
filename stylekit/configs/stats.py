"""`stylekit stats`: the options of FID/KID reference statistics of your own data set."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from stylekit.configs.features import batch_option, cache_option, workers_option
from stylekit.declare import Config, argument, option, require

NAME_PATTERN = r"[a-z0-9_]+"


class Mode(StrEnum):
    """clean-fid's modes (score must read the statistics in the same one)."""

    clean = "clean"
    legacy_pytorch = "legacy_pytorch"
    legacy_tensorflow = "legacy_tensorflow"


@dataclass(frozen=True)
class StatsConfig(Config):
    data: Path = argument("Folder (searched recursively) or .zip of images.", cover=())
    name: str = option(help="Name of the statistics (lower-case letters, digits, _): score reads them as stats:NAME/R.",
                       cover=())
    size: int | None = option(None, "Resolution R: images are brought to R x R first (default: their own size, which "
                              "must be one square size).", concept="size", unit="px", ge=16, le=4096, cover=(None, 16))
    mode: Mode = option(Mode.clean, "clean-fid mode (score must use the same).")
    inception_weights: str | None = option(None, "FID Inception: a local pytorch-fid state dict, a registry name "
                                           "(default: inception-fid), or random (a random-init stand-in).", cover=())
    cache: bool = cache_option()
    batch: int = batch_option()
    fresh: bool = option(concept="fresh", help="Replace existing statistics of this name, size and mode.")
    workers: int | None = workers_option()
    device: str = option(concept="device", cover=())
    cache_dir: str | None = None  # the feature cache's folder (default $STYLEKIT_HOME/features); not an option

    def check(self) -> None:
        require(re.fullmatch(NAME_PATTERN, self.name), f"bad --name '{self.name}'",
                hint="use lower-case letters, digits and _ (it becomes stats:NAME/R)")
