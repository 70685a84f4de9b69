"""`stylekit download NAME`: data sets (wikiart, midjourney, toy-styles) and pretrained weights by name."""

from pathlib import Path
from typing import Annotated, Any

import typer

from stylekit.cli.common import Table, command, fields, render
from stylekit.cli.vocabulary import option
from stylekit.errors import BadInput

ORDER = 10

_EXAMPLES = [
    "stylekit download --list",
    "stylekit download --list | grep ffhq",
    "stylekit download toy-styles --out data/toy --size 64 --per-style 200 --styles 8 --seed 0",
    "stylekit download wikiart --out data/wikiart",
    "stylekit download midjourney --out data/mj --images 1000 --workers 8",
    "stylekit download midjourney --out data/mj-people --images 2000 --prompt-include 'woman|man|girl|boy|person|portrait' --prompt-exclude 'robot|cat|dog'",
    "stylekit download vgg19",
]
_NOTES = "wikiart and midjourney need Kaggle credentials; weights go to $STYLEKIT_HOME/weights unless --out is given."


def _mb(n: int | None) -> str:
    return f"~{n / 1e6:.0f} MB" if n else "-"


def _listing() -> dict[str, Any]:
    from stylekit.data.kaggle_sources import DATASETS
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
             examples=_EXAMPLES, notes=_NOTES)
    def download(
        name: Annotated[str | None, typer.Argument(help="wikiart, midjourney, toy-styles, or a weights name (see --list).", show_default=False)] = None,
        out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (required for data sets; weights default to the cache).")] = None,
        list_names: Annotated[bool, typer.Option("--list", help="List every downloadable name with description, licence and size.")] = False,
        size: Annotated[int, typer.Option("--size", help="toy-styles: image size in pixels.", rich_help_panel="toy-styles")] = 64,
        per_style: Annotated[int, typer.Option("--per-style", help="toy-styles: images per style.", rich_help_panel="toy-styles")] = 200,
        styles: Annotated[int, typer.Option("--styles", help="toy-styles: number of styles.", rich_help_panel="toy-styles")] = 8,
        images: Annotated[int, typer.Option("--images", help="midjourney: fetch the first N image URLs of prompts.csv.", rich_help_panel="midjourney")] = 0,
        retry_dead: Annotated[bool, typer.Option("--retry-dead", help="midjourney: retry links already recorded as dead (HTTP 4xx).", rich_help_panel="midjourney")] = False,
        prompt_include: Annotated[str | None, typer.Option("--prompt-include", help="midjourney: fetch only prompts matching this regular expression (case-insensitive, whole words), e.g. 'woman|man|portrait'.", rich_help_panel="midjourney")] = None,
        prompt_exclude: Annotated[str | None, typer.Option("--prompt-exclude", help="midjourney: skip prompts matching this regular expression (case-insensitive, whole words).", rich_help_panel="midjourney")] = None,
        timeout: Annotated[float, typer.Option("--timeout", help="Seconds without data before a request fails.")] = 60.0,
        retries: Annotated[int, typer.Option("--retries", help="Extra attempts after a transient network failure.")] = 3,
        keep_archive: Annotated[bool, typer.Option("--keep-archive", help="wikiart/midjourney: keep the downloaded Kaggle zip in OUT/.download.")] = False,
        force: bool = option("fresh", "Redo a completed download (weights: fetch again; unpinned checksums are re-recorded)."),
        workers: int | None = option("workers", "midjourney: parallel image downloads (default: auto = 8)."),
        seed: int = option("seed", "toy-styles: random seed (same seed, same bytes)."),
    ) -> None:
        from stylekit.data.kaggle_sources import DATASETS
        from stylekit.weights import REGISTRY

        if list_names:
            render(_listing(), table=_show_listing)
            return
        if name is None:
            raise BadInput("give a NAME to download, or --list", hint=f"names: {', '.join([*DATASETS, *REGISTRY])}")
        if timeout <= 0 or retries < 0:
            raise BadInput("--timeout must be > 0 and --retries >= 0")
        if name in REGISTRY:
            from stylekit.weights import ensure_weights

            res = ensure_weights(name, force=force, dest_dir=out, timeout=timeout, retries=retries)
            render({"kind": "weights", **res.to_dict()}, table=_show_result)
            return
        if name not in DATASETS:
            raise BadInput(f"unknown download name '{name}'",
                           hint=f"data sets: {', '.join(DATASETS)}; weights: {', '.join(REGISTRY)} (see `stylekit download --list`)")
        if out is None:
            raise BadInput(f"'{name}' needs --out DIR", hint=f"e.g. stylekit download {name} --out data/{name}")
        from stylekit.data.kaggle_sources import DownloadOptions, PromptFilter

        options = DownloadOptions(force=force, keep_archive=keep_archive, timeout=timeout, retries=retries, size=size,
                                  per_style=per_style, styles=styles, seed=seed, images=images,
                                  concurrency=8 if workers is None else workers, retry_dead=retry_dead,
                                  prompt_filter=PromptFilter(prompt_include, prompt_exclude))
        result = DATASETS[name].fetch(out, options)
        render({"kind": "dataset", **result.to_dict()}, table=_show_result)
