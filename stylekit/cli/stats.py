"""`stylekit stats DATA --name NAME`: FID/KID reference statistics of your own data set (stats:NAME/R)."""

from typing import Annotated, Any

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.cli.vocabulary import option

ORDER = 41

_EXAMPLES = [
    "stylekit stats data/toons-256 --name toons",
    "stylekit stats data/wikiart.zip --name wikiart --size 256",
    "stylekit score samples/ stats:toons/256 --metrics fid,kid",
    "stylekit stats data/toons-256 --name toons --fresh",
]
_NOTES = "Statistics are saved in $STYLEKIT_HOME/stats (clean-fid's file format); score reads them as stats:NAME/R."


def _table(doc: dict[str, Any]) -> list[Table]:
    rows = [["use as", doc["spec"]], ["mode", doc["mode"]], ["images", f"{doc['used']}/{doc['n']}"],
            ["fid file", doc["files"]["fid"]], ["kid file", doc["files"]["kid"]],
            ["cached features", f"{doc['features']['hits']} of {doc['used'] + len(doc['skipped'])}"]]
    tables = [fields(f"stats: {doc['spec']}" + (" (replaced)" if doc["replaced"] else ""), rows)]
    if doc["skipped"]:
        tables.append(Table(f"skipped ({len(doc['skipped'])})", ["file", "reason"], [[s["path"], s["reason"]] for s in doc["skipped"][:20]]))
    return tables


def register(app: typer.Typer) -> None:
    @command(app, "stats", help="Save FID/KID reference statistics of your data set, for `score A stats:NAME/R`.", examples=_EXAMPLES, notes=_NOTES)
    def stats(
        data: Annotated[str, typer.Argument(help="Folder (searched recursively) or .zip of images.", show_default=False)],
        name: Annotated[str, typer.Option("--name", help="Name of the statistics (lower-case letters, digits, _).", show_default=False)],
        size: Annotated[int | None, typer.Option("--size", help="Resolution R: images are brought to R x R first (default: their own size, which must be one square size).", show_default=False)] = None,
        mode: Annotated[str, typer.Option("--mode", help="clean-fid mode: clean, legacy_pytorch, legacy_tensorflow (score must use the same).")] = "clean",
        inception_weights: Annotated[str | None, typer.Option("--inception-weights", help="Local FID Inception file (default: registry inception-fid).", show_default=False)] = None,
        cache: Annotated[bool, typer.Option("--cache/--no-cache", help="Per-image feature cache in $STYLEKIT_HOME/features.")] = True,
        batch: int = option("batch", "Images per forward pass.", default=32),
        fresh: bool = option("fresh", "Replace existing statistics of this name, size and mode."),
        workers: int | None = option("workers", "Decoding worker processes (0 = in the main process; default: auto = 0)."),
        device: str = option("device"),
    ) -> None:
        from stylekit.metrics.stats import StatsConfig, make_stats

        result = make_stats(StatsConfig(data=data, name=name, size=size, mode=mode, inception_weights=inception_weights,
                                        fresh=fresh, batch=batch, workers=0 if workers is None else workers, device=device, cache=cache))
        render(result.to_dict(), table=_table)
