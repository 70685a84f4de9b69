"""`stylekit stats DATA --name NAME --size R`: reference statistics of your own data set for FID/KID.

clean-fid's `make_custom_stats` semantics, stored where `score A stats:NAME/R` looks
($STYLEKIT_HOME/stats, never site-packages), in clean-fid's file format:
    NAME_MODE_custom_R.npz       mu [2048], sigma [2048, 2048]   (FID)
    NAME_MODE_custom_R_kid.npz   feats [N, 2048]                 (KID)
(clean-fid writes `custom_na`; stylekit records the resolution R the images were compared at, so
`stats:NAME/R` reads like the hosted names). Features come from the same extractor and cache as
`score` (so statistics of a folder already scored cost no Inception pass). Existing statistics are
never replaced silently: BadInput unless `fresh`.

R: with `size`, every image is first brought to R x R (shorter side to R, centre crop, Lanczos), as
`prepare --size R` does; without it the images must all be the same square size, which becomes R.

Under torchrun every rank runs the checks, computes its block of the uncached features
(`extract_features(dist=...)`) and rank 0 alone writes the two files.
"""

from __future__ import annotations

import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stylekit.configs.stats import StatsConfig
from stylekit.data.images import resize_square
from stylekit.data.imageset import ImageItem, open_image_set
from stylekit.errors import BadInput
from stylekit.io.atomic import write_atomic
from stylekit.io.console import get_console
from stylekit.io.rundir import ensure_writable_dir
from stylekit.metrics import score as score_mod
from stylekit.metrics.features import FeatureResult, extract_features
from stylekit.metrics.fid import CUSTOM_SPLIT, KNOWN_STATS, RefStats, fid_warning, stats_dir
from stylekit.metrics.frechet import gaussian_stats
from stylekit.standins import is_random, label
from stylekit.train.distributed import DistInfo, agree, distributed_job


@dataclass
class StatsResult:
    spec: str  # what to pass to `score`: stats:NAME/R
    name: str
    size: int
    mode: str
    files: dict[str, str]
    n: int
    used: int
    skipped: list[dict[str, str]]
    features: dict[str, Any]
    replaced: bool
    seconds: float
    standin: str | None = None  # set when the features came from a random-init stand-in (not meaningful)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SquareThen:
    """Picklable preprocessing: the image to R x R (shorter side, centre crop, Lanczos), then `inner`."""

    def __init__(self, size: int, inner: Any) -> None:
        self.size = size
        self.inner = inner

    def __call__(self, img: Image.Image) -> torch.Tensor:

        return self.inner(resize_square(img, self.size))


class ResizedExtractor:
    """`extractor` on images brought to R x R first; a cache mode of its own (`MODE@Rpx`)."""

    def __init__(self, extractor: Any, size: int) -> None:
        self.extractor = extractor
        self.name = extractor.name
        self.mode = f"{extractor.mode}@{size}px"
        self.dim = extractor.dim
        self.cleanfid_decode = extractor.cleanfid_decode
        self.preprocess = SquareThen(size, extractor.preprocess)

    def __call__(self, batch: torch.Tensor) -> Any:
        return self.extractor(batch)


def common_size(items: list[ImageItem], source: str) -> int:
    """The one square side all readable images share (read from headers only), else BadInput."""

    sizes: set[tuple[int, int]] = set()
    zips: dict[str, zipfile.ZipFile] = {}
    try:
        for item in items:
            try:
                if item.member is None:
                    with Image.open(item.file) as img:
                        sizes.add(img.size)
                else:
                    zf = zips.setdefault(item.file, zipfile.ZipFile(item.file))
                    with zf.open(item.member) as fh, Image.open(fh) as img:
                        sizes.add(img.size)
            except (OSError, KeyError, ValueError, zipfile.BadZipFile, Image.DecompressionBombError):
                continue  # unreadable: extraction skips and reports it
    finally:
        for zf in zips.values():
            zf.close()
    if len(sizes) == 1:
        (w, h), = sizes
        if w == h:
            return w
    shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:4])
    raise BadInput(f"{source}: images are not all one square size ({shown or 'none readable'})",
                   hint="give --size R to bring every image to R x R (shorter side, centre crop) first")


def _write_npz(path: Path, **arrays: np.ndarray) -> None:

    def writer(tmp: Path) -> None:
        with open(tmp, "wb") as fh:  # a file object: np.savez would append .npz to a name
            np.savez_compressed(fh, **arrays)

    write_atomic(path, writer)


@dataclass(frozen=True)
class _InceptionSpec:
    """What score's Inception factories read (`score_mod.EXTRACTORS`), so stats and score share one
    extractor and one feature-cache identity."""

    mode: str
    inception_weights: str | None


def _inception(cfg: StatsConfig, device: torch.device) -> Any:
    """score's Inception for cfg.mode (the same feature-cache identity); `random` is its random-init stand-in."""

    return score_mod.EXTRACTORS["inception"](_InceptionSpec(cfg.mode, cfg.inception_weights), device)


def make_stats(cfg: StatsConfig) -> StatsResult:
    """Compute and save FID/KID reference statistics of cfg.data as stats:NAME/R (see the module docstring).

    Every check (name, images, existing statistics, weights) runs before the statistics folder is made."""
    with distributed_job(cfg.device) as dist:
        return _make_stats(cfg, dist)


def _checked_inputs(cfg: StatsConfig) -> tuple[Any, int, dict[str, Path], list[Path]]:
    """(the image set, R, the two statistics files, those that exist already), checked before any work."""

    if any(n == cfg.name for n, _ in KNOWN_STATS):
        raise BadInput(f"--name {cfg.name} is one of clean-fid's hosted statistics", hint="pick another name for your data set")
    image_set = open_image_set(cfg.data)
    if len(image_set) == 0:
        raise BadInput(f"{cfg.data}: no images found", hint="give a folder (searched recursively) or a .zip of images")
    size = cfg.size or common_size(image_set.items, image_set.source)
    ref = RefStats(cfg.name, size, CUSTOM_SPLIT, cfg.mode)
    files = {"fid": stats_dir() / ref.filename(), "kid": stats_dir() / ref.filename(kid=True)}
    existing = [p for p in files.values() if p.exists()]
    if existing and not cfg.fresh:
        raise BadInput(f"statistics {ref.label} (mode {cfg.mode}) already exist: {existing[0]}",
                       hint="pass --fresh to replace them, or pick another --name")
    return image_set, size, files, existing


def _make_stats(cfg: StatsConfig, dist: DistInfo) -> StatsResult:

    start = time.perf_counter()
    # Agreed: a node that sees other files (no images, statistics already there) stops every rank.
    image_set, size, files, existing = agree(lambda: _checked_inputs(cfg), dist)
    extractor = agree(lambda: _inception(cfg, dist.device), dist)
    standin = label("--inception-weights random") if is_random(cfg.inception_weights) else None
    if standin:
        get_console().warn(standin)
    agree(lambda: ensure_writable_dir(stats_dir()) if dist.is_main else None, dist)
    if cfg.size is not None:
        extractor = ResizedExtractor(extractor, cfg.size)
    cache: bool | str = (cfg.cache_dir or True) if cfg.cache else False
    result: FeatureResult = extract_features(image_set, extractor, cache=cache, batch_size=cfg.batch,
                                             workers=cfg.workers or 0, description="inception features", dist=dist)
    if len(result.items) < 2:
        raise BadInput(f"{cfg.data}: only {len(result.items)} of {len(image_set)} images are readable; need at least 2",
                       hint="; ".join(f"{s.path}: {s.reason}" for s in result.report.skipped[:3]) or None)
    feats = result.features.astype(np.float32)

    def write() -> None:
        mu, sigma = gaussian_stats(feats)
        _write_npz(files["fid"], mu=mu, sigma=sigma)
        _write_npz(files["kid"], feats=feats)

    agree(lambda: write() if dist.is_main else None, dist)
    warning = fid_warning(len(feats), str(cfg.data))
    if warning:
        get_console().warn(warning)
    return StatsResult(
        spec=f"stats:{cfg.name}/{size}", name=cfg.name, size=size, mode=str(cfg.mode),
        files={k: str(v) for k, v in files.items()}, n=len(image_set), used=len(result.items),
        skipped=[{"path": s.path, "reason": s.reason} for s in result.report.skipped], features=result.stats(),
        replaced=bool(existing), seconds=round(time.perf_counter() - start, 3), standin=standin,
    )
