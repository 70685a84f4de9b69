"""`stylekit download NAME`: data sets (wikiart, midjourney, toy-styles) and pretrained weights by name."""

from typing import Any

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.configs.download import DownloadConfig
from stylekit.errors import BadInput

ORDER = 10

_EXAMPLES = [
    "stylekit download --list",
    "stylekit download toy-styles --out data/toy --size 64 --per-style 200 --styles 8 --seed 0",
    "stylekit download wikiart --out data/wikiart",
    "stylekit download midjourney --out data/mj --images 1000 --workers 8",
    "stylekit download midjourney --out data/mj-people --images 2000 --prompt-include 'woman|man|girl|boy|person|portrait' --prompt-exclude 'robot|cat|dog'",
    "stylekit download lpips-vgg16",
]
_NOTES = ("wikiart and midjourney need Kaggle credentials (found before --out is created). Weights (vgg19, ffhq-256, ...: "
          "see --list) go to $STYLEKIT_HOME/weights unless --out is given. A rerun with the same options is a no-op; "
          "with other options it is refused unless --fresh.")


def _mb(n: int | None) -> str:
    return f"~{n / 1e6:.0f} MB" if n else "-"


def _listing() -> dict[str, Any]:
    from stylekit.data.sources import DATASETS
    from stylekit.weights import registry_groups, weights_dir

    cache = weights_dir()
    return {
        "datasets": [{"name": k, "description": v.description, "licence": v.licence} for k, v in DATASETS.items()],
        "weights": [
            {**spec.to_dict(), "cached": (cache / spec.filename).is_file()}
            for specs in registry_groups().values() for spec in specs
        ],
        "cache": str(cache),
    }


def _show_listing(doc: dict[str, Any]) -> list[Table]:
    return [
        Table("data sets", ["name", "description", "licence"], [[d["name"], d["description"], d["licence"]] for d in doc["datasets"]]),
        *[Table(f"weights: {family} (cache: {doc['cache']})", ["name", "file", "size", "checksum", "cached", "licence", "description"],
                [[w["name"], w["filename"], _mb(w["size_bytes"]), w["checksum_policy"], "yes" if w["cached"] else "no", w["licence"],
                  w["description"]] for w in doc["weights"] if w["family"] == family])
          for family in dict.fromkeys(w["family"] for w in doc["weights"])],
    ]


def _show_result(doc: dict[str, Any]) -> Table:
    if doc["kind"] == "weights":
        rows = [["path", doc["path"]], ["sha256", doc["sha256"]], ["bytes", doc["size"]], ["trust", doc["trust"]],
                ["status", "already present (verified)" if doc["skipped"] else f"downloaded from {doc['url']}"]]
    else:
        rows = [["out", doc["out"]], ["status", "already complete" if doc["skipped"] else "done"]]
        for key, value in doc["summary"].items():
            if key in ("out", "name"):
                continue
            if isinstance(value, dict):
                value = ", ".join(f"{k}={v}" for k, v in value.items()) if len(value) <= 30 else f"{len(value)} entries"
            rows.append([key, value])
    return fields(f"download {doc['name']}", rows)


def register(app: typer.Typer) -> None:
    @command(app, "download", help="Fetch a data set (wikiart, midjourney, toy-styles) or pretrained weights by name.",
             examples=_EXAMPLES, notes=_NOTES, config=DownloadConfig)
    def download(cfg: DownloadConfig) -> None:
        from stylekit.data.sources import DATASETS
        from stylekit.weights import REGISTRY

        if cfg.list_names:
            render(_listing(), table=_show_listing)
            return
        assert cfg.name is not None  # DownloadConfig.check
        if cfg.name in REGISTRY:
            from stylekit.weights import ensure_weights

            res = ensure_weights(cfg.name, force=cfg.fresh, dest_dir=cfg.out, timeout=cfg.timeout, retries=cfg.retries)
            render({"kind": "weights", **res.to_dict()}, table=_show_result)
            return
        if cfg.name not in DATASETS:
            raise BadInput(f"unknown download name '{cfg.name}'",
                           hint=f"data sets: {', '.join(DATASETS)}; weights: {', '.join(REGISTRY)} (see `stylekit download --list`)")
        assert cfg.out is not None  # DownloadConfig.check
        result = DATASETS[cfg.name].fetch(cfg.out, cfg)
        render({"kind": "dataset", **result.to_dict()}, table=_show_result)
