"""`stylekit prepare SRC OUT`: class folders or a path,label CSV -> sized, split, manifest-described data."""

from typing import Any

import typer

from stylekit.cli.common import Table, command, render
from stylekit.configs.prepare import PrepareConfig
from stylekit.io.console import get_console

ORDER = 20

_EXAMPLES = [
    "stylekit prepare data/toy data/toy-64 --size 64 --split 0.8,0.1,0.1 --exclude content",
    "stylekit prepare data/toy data/toy-64.zip --size 64 --format stylegan-zip --exclude content",
    "stylekit prepare data/toy/content data/pairs --format pairs --pair-with data/toy --exclude content --size 64",
    "stylekit prepare data/toy-64/manifest.csv data/toy-32 --size 32 --dedupe --max-images 40 --workers 2",
    "stylekit prepare data/toy data/toy-wide --size 64 --crop center-wide --wide-aspect 2:1 --split 1",
]
_NOTES = ("SRC may be a CSV with path,label columns (a prepared set's manifest.csv is one). With --format stylegan-zip an OUT "
          "ending in .zip is the NVlabs-style archive itself. data/toy: `stylekit download toy-styles --out data/toy`. "
          "Rerunning into a used OUT with the same settings refreshes it; with other settings it is refused unless --fresh.")


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
             examples=_EXAMPLES, notes=_NOTES, config=PrepareConfig)
    def prepare(cfg: PrepareConfig) -> None:
        from stylekit.data.prepare import prepare as run_prepare

        if cfg.align is not None:  # the face detector is located (or fetched) before OUT is touched
            from stylekit.edit.align import DEFAULT_ALIGN_SIZE, FaceAlign

            align = FaceAlign(cfg.align.value, cfg.size or DEFAULT_ALIGN_SIZE, cfg.face_detector, cfg.face_threshold)
            cfg = cfg.replace(preprocess=align.load())
        render(run_prepare(cfg).to_dict(), table=_show)
