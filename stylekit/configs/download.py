"""`stylekit download`: the options that fetch a data set (wikiart, midjourney, toy-styles) or weights by name."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stylekit.declare import Config, argument, option, require

TOY = "toy-styles"
MIDJOURNEY = "midjourney"
NETWORK = "Network"

# The data set names (stylekit/data/sources/DATASETS holds their sources); any other NAME is a weights name.
DATASET_NAMES = ("wikiart", "midjourney", "toy-styles")
TOY_STYLE_COUNT = 10  # len(stylekit.data.toy.TOY_STYLES)


def prompt_pattern(text: str) -> re.Pattern[str]:
    """--prompt-include/--prompt-exclude as matched: case-insensitive, whole words (wrapped in \\b...\\b)."""
    return re.compile(rf"\b(?:{text})\b", re.IGNORECASE)


@dataclass(frozen=True)
class DownloadConfig(Config):
    name: str | None = argument("wikiart, midjourney, toy-styles, or a weights name (see --list).", default=None, cover=())
    out: Path | None = option(None, "Output folder (required for data sets; weights default to the cache).",
                              concept="out", cover=())
    list_names: bool = option(False, "List every downloadable name with description, licence and size.", flags="--list",
                              cover=())
    size: int = option(64, "toy-styles: image side.", concept="size", unit="px", ge=16, le=4096, panel=TOY, cover=(16, 24))
    per_style: int = option(200, "toy-styles: images per style.", ge=1, le=100_000, panel=TOY, cover=(1, 2))
    styles: int = option(8, "toy-styles: number of styles (the first N of the built-in ones).", ge=1, le=TOY_STYLE_COUNT, panel=TOY, cover=(1, 2))
    images: int = option(0, "midjourney: also fetch the first N image URLs of prompts.csv.", ge=0, le=10_000_000,
                         panel=MIDJOURNEY, cover=())
    retry_dead: bool = option(False, "midjourney: retry links already recorded as dead (HTTP 4xx).", panel=MIDJOURNEY,
                              cover=())
    prompt_include: str | None = option(None, "midjourney: fetch only prompts matching this regular expression "
                                        "(case-insensitive, whole words), e.g. 'woman|man|portrait'.", panel=MIDJOURNEY,
                                        cover=())
    prompt_exclude: str | None = option(None, "midjourney: skip prompts matching this regular expression "
                                        "(case-insensitive, whole words).", panel=MIDJOURNEY, cover=())
    timeout: float = option(60.0, "Seconds without data before a request fails.", unit="s", gt=0, le=3600, panel=NETWORK,
                            cover=())
    retries: int = option(3, "Extra attempts after a transient network failure (timeouts, HTTP 5xx).", ge=0, le=100,
                          panel=NETWORK, cover=())
    keep_archive: bool = option(False, "wikiart/midjourney: keep the downloaded Kaggle zip in OUT/.download.", cover=())
    fresh: bool = option(concept="fresh", help="Redo a completed download (weights: fetch again; unpinned checksums are "
                         "re-recorded).")
    workers: int | None = option(help="midjourney: parallel image downloads (0 = one at a time; default: auto = 8).",
                                 concept="workers", ge=0, le=256, cover=())
    seed: int = option(concept="seed", help="toy-styles: random seed (same seed, same bytes).", ge=0, le=2**32 - 1,
                       cover=(0, 1))

    def check(self) -> None:
        require(self.name is not None or self.list_names, "give a NAME to download, or --list",
                hint=f"data sets: {', '.join(DATASET_NAMES)}; weights: see `stylekit download --list`")
        require(self.name not in DATASET_NAMES or self.out is not None, f"'{self.name}' needs --out DIR",
                hint=f"e.g. stylekit download {self.name} --out data/{self.name}")
        for flag, text in (("--prompt-include", self.prompt_include), ("--prompt-exclude", self.prompt_exclude)):
            if text:
                try:
                    prompt_pattern(text)
                except re.error as exc:
                    require(False, f"bad {flag} regular expression '{text}': {exc}",
                            hint="e.g. --prompt-include 'woman|man|portrait'")

    @property
    def concurrency(self) -> int:
        """Parallel image downloads: --workers, auto = 8."""
        return 8 if self.workers is None else max(1, self.workers)
