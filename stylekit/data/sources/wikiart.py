"""WikiArt from Kaggle steubk/wikiart: 27 style folders, 81,444 images, ~25 GB, into OUT/<Style>/..."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from stylekit.data.images import IMAGE_EXTENSIONS
from stylekit.data.sources.journal import STAGING, claim, extract_into, start
from stylekit.data.sources.kaggle import KaggleLike, connect, kaggle_zip
from stylekit.data.sources.ledger import DatasetResult, completed, is_complete, write_marker
from stylekit.data.sources.lock import locked
from stylekit.io.atomic import write_json_atomic
from stylekit.io.console import get_console

WIKIART_DATASET = "steubk/wikiart"


def wikiart_summary(out: Path) -> dict[str, Any]:
    """Style folders (direct subfolders holding images) and their image counts."""

    styles: dict[str, int] = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        n = sum(1 for f in folder.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."))
        if n:
            styles[folder.name] = n
    return {"styles": len(styles), "images": sum(styles.values()), "per_style": styles,
            "csv_files": sorted(p.name for p in out.glob("*.csv"))}


def download_wikiart(out: str | Path, api: KaggleLike | None = None, force: bool = False,
                     keep_archive: bool = False) -> DatasetResult:
    """Kaggle steubk/wikiart (27 style folders, 81,444 images, ~25 GB) into OUT/<Style>/...; without a
    client (`api`), credentials are found before OUT is created."""
    out = Path(out)
    params: dict[str, Any] = {"dataset": WIKIART_DATASET}
    if api is None and not is_complete(out, "wikiart", params, force):
        api = connect(WIKIART_DATASET, out)
    with locked(out):
        done = completed(out, "wikiart", params, force)
        if done:
            return done
        owned = start(out)
        claim(out, owned, {"download-summary.json"})
        staging = out / STAGING
        archive = kaggle_zip(api, WIKIART_DATASET, staging)
        extract_into(archive, out, owned)
        summary = wikiart_summary(out)
        write_json_atomic(out / "download-summary.json", summary)
        write_marker(out, "wikiart", params, summary, owned)
        if not keep_archive:
            shutil.rmtree(staging, ignore_errors=True)
    get_console().log(f"wikiart: {summary['styles']} style folders, {summary['images']} images in {out}")
    if summary["styles"] != 27:
        get_console().warn(f"expected 27 WikiArt style folders, found {summary['styles']}")
    return DatasetResult("wikiart", str(out), False, summary)
