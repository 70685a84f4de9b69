"""`stylekit stats DATA --name NAME`: FID/KID reference statistics of your own data set (stats:NAME/R)."""

from typing import Any

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.configs.stats import StatsConfig

ORDER = 41

_EXAMPLES = [
    "stylekit download toy-styles --out data/toy --size 32 --per-style 4",
    "stylekit stats data/toy --name toy",
    "stylekit stats data/toy --name toy --size 16 --fresh",
    "stylekit stats data/toy --name toy_try --inception-weights random",
    "stylekit score data/toy stats:toy/32 --metrics fid,kid",
]
_NOTES = "Statistics are saved in $STYLEKIT_HOME/stats (clean-fid's file format); score reads them as stats:NAME/R."


def _table(doc: dict[str, Any]) -> list[Table]:
    rows = [["use as", doc["spec"]], ["mode", doc["mode"]], ["images", f"{doc['used']}/{doc['n']}"],
            ["fid file", doc["files"]["fid"]], ["kid file", doc["files"]["kid"]],
            ["cached features", f"{doc['features']['hits']} of {doc['used'] + len(doc['skipped'])}"]]
    if doc["standin"]:
        rows.append(["stand-in", doc["standin"]])
    tables = [fields(f"stats: {doc['spec']}" + (" (replaced)" if doc["replaced"] else ""), rows)]
    if doc["skipped"]:
        tables.append(Table(f"skipped ({len(doc['skipped'])})", ["file", "reason"], [[s["path"], s["reason"]] for s in doc["skipped"][:20]]))
    return tables


def register(app: typer.Typer) -> None:
    @command(app, "stats", help="Save FID/KID reference statistics of your data set, for `score A stats:NAME/R`.",
             examples=_EXAMPLES, notes=_NOTES, config=StatsConfig)
    def stats(cfg: StatsConfig) -> None:
        from stylekit.metrics.stats import make_stats

        render(make_stats(cfg).to_dict(), table=_table)
