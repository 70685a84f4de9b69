"""The named data sets of `stylekit download`: wikiart and midjourney (Kaggle), toy-styles (generated).

Every source ends by writing `OUT/.stylekit-download.json` (the completed marker with its summary), so
a rerun on the same --out is a no-op (cron-safe). Work happens in hidden staging folders inside OUT
(`.download/`, `.extracting/`) that a rerun resumes (the Kaggle client resumes its zip) or wipes and
redoes (extraction), so an interrupted run never leaves a half data set that looks complete.

The Kaggle API object is a parameter: tests pass a fake whose `dataset_download_files` writes a zip.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stylekit.errors import BadInput, MissingResource
from stylekit.io.atomic import write_json_atomic, write_text_atomic
from stylekit.io.console import get_console

MARKER = ".stylekit-download.json"
WIKIART_DATASET = "steubk/wikiart"
MIDJOURNEY_DATASET = "succinctlyai/midjourney-texttoimage"
PROMPT_COLUMNS = ["prompt", "params", "url", "width", "height", "filename"]

CREDENTIALS_HINT = (
    "create a token at https://www.kaggle.com/settings (API -> Create New Token), then either "
    "export KAGGLE_API_TOKEN=<token>, or put kaggle.json in ~/.kaggle/ (chmod 600), "
    "or export KAGGLE_USERNAME and KAGGLE_KEY"
)


class KaggleLike(Protocol):
    def dataset_download_files(self, dataset: str, path: str | None = None, force: bool = False,
                               quiet: bool = True, unzip: bool = False) -> Any: ...


@dataclass
class DatasetResult:
    """What `stylekit download <dataset>` produced (or found already complete)."""

    name: str
    out: str
    skipped: bool
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- markers ------------------------------------------------------------------------------------


def read_marker(out: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def write_marker(out: Path, name: str, params: dict[str, Any], summary: dict[str, Any]) -> None:
    write_json_atomic(out / MARKER, {"name": name, "params": params, "summary": summary, "complete": True})


def _completed(out: Path, name: str, params: dict[str, Any], force: bool) -> DatasetResult | None:
    marker = read_marker(out)
    if force or not marker or not marker.get("complete"):
        return None
    if marker.get("name") != name or marker.get("params", {}) != params:
        raise BadInput(
            f"{out} already holds a completed '{marker.get('name')}' download made with {marker.get('params')}",
            hint="use another --out, or --fresh to redo it",
        )
    get_console().log(f"{out}: '{name}' is already complete (marker {MARKER}); nothing to do")
    return DatasetResult(name, str(out), True, marker.get("summary", {}))


def _prepare_out(out: Path) -> None:
    from stylekit.io.rundir import ensure_writable_dir

    ensure_writable_dir(out)


# --- Kaggle -------------------------------------------------------------------------------------


def kaggle_api() -> KaggleLike:
    """An authenticated KaggleApi, or MissingResource (exit 3) that says how to provide credentials.

    The kaggle package authenticates at import and prints help on stdout when it fails; both are
    captured so `--json` output stays clean.
    """
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:
        raise MissingResource(
            f"the kaggle package cannot be imported ({type(exc).__name__}: {exc})",
            hint="reinstall it in this environment: pip install --upgrade kaggle six",
        ) from None
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - kaggle/__init__ authenticates at import
        raise MissingResource(f"the kaggle package failed to start ({type(exc).__name__}: {exc})", hint=CREDENTIALS_HINT) from None
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            api = KaggleApi()
            api.authenticate()
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - authenticate() calls exit(1)
        detail = f" ({type(exc).__name__}: {exc})" if not isinstance(exc, SystemExit) and str(exc) else ""
        raise MissingResource(
            f"no usable Kaggle credentials{detail}: set KAGGLE_API_TOKEN, or ~/.kaggle/kaggle.json, "
            "or KAGGLE_USERNAME+KAGGLE_KEY",
            hint=CREDENTIALS_HINT,
        ) from None
    return api


def _kaggle_zip(api: KaggleLike | None, dataset: str, staging: Path) -> Path:
    """Download a Kaggle data set's zip into `staging` (the Kaggle client resumes a partial one)."""
    api = api if api is not None else kaggle_api()
    staging.mkdir(parents=True, exist_ok=True)
    get_console().log(f"downloading Kaggle data set {dataset} into {staging} (this can take long)")
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink):
            api.dataset_download_files(dataset, path=str(staging), quiet=True, unzip=False)
    except (SystemExit, Exception) as exc:  # noqa: BLE001 - the client raises many kinds
        text = str(exc)
        if isinstance(exc, SystemExit) or "401" in text or "403" in text or "nauthorized" in text:
            raise MissingResource(f"Kaggle refused the download of {dataset}: {text or 'not authenticated'}",
                                  hint=CREDENTIALS_HINT + f"; and accept the data set's terms on kaggle.com/datasets/{dataset}") from None
        raise MissingResource(f"Kaggle download of {dataset} failed: {type(exc).__name__}: {text}",
                              hint="check the network and rerun the same command: it resumes") from None
    slug = dataset.split("/")[-1]
    expected = staging / f"{slug}.zip"
    zips = [expected] if expected.is_file() else sorted(staging.glob("*.zip"))
    if not zips:
        raise MissingResource(f"Kaggle reported success but no zip for {dataset} is in {staging}",
                              hint="rerun the command; if it persists, download the zip by hand and extract it into --out")
    return zips[0]


def _extract_into(archive: Path, out: Path) -> None:
    """Safe-extract into OUT/.extracting, strip a single wrapping folder, then move entries into OUT."""
    from stylekit.data.archive import extract_archive

    tmp = out / ".extracting"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        extract_archive(archive, tmp, progress=f"extracting {archive.name}")
    except BadInput:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    root = tmp
    entries = [p for p in root.iterdir()]
    if len(entries) == 1 and entries[0].is_dir():
        root = entries[0]
    for entry in root.iterdir():
        target = out / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        entry.replace(target)
    shutil.rmtree(tmp, ignore_errors=True)


# --- WikiArt --------------------------------------------------------------------------------------


def wikiart_summary(out: Path) -> dict[str, Any]:
    """Style folders (direct subfolders holding images) and their image counts."""
    from stylekit.data.images import IMAGE_EXTENSIONS

    styles: dict[str, int] = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        n = sum(1 for f in folder.rglob("*") if f.suffix.lower() in IMAGE_EXTENSIONS and not f.name.startswith("."))
        if n:
            styles[folder.name] = n
    return {"styles": len(styles), "images": sum(styles.values()), "per_style": styles,
            "csv_files": sorted(p.name for p in out.glob("*.csv"))}


def download_wikiart(out: str | Path, api: KaggleLike | None = None, force: bool = False,
                     keep_archive: bool = False) -> DatasetResult:
    """Kaggle steubk/wikiart (27 style folders, 81,444 images, ~25 GB) into OUT/<Style>/..."""
    out = Path(out)
    params: dict[str, Any] = {"dataset": WIKIART_DATASET}
    done = _completed(out, "wikiart", params, force)
    if done:
        return done
    _prepare_out(out)
    (out / MARKER).unlink(missing_ok=True)
    staging = out / ".download"
    archive = _kaggle_zip(api, WIKIART_DATASET, staging)
    _extract_into(archive, out)
    summary = wikiart_summary(out)
    if not keep_archive:
        shutil.rmtree(staging, ignore_errors=True)
    write_json_atomic(out / "download-summary.json", summary)
    write_marker(out, "wikiart", params, summary)
    get_console().log(f"wikiart: {summary['styles']} style folders, {summary['images']} images in {out}")
    if summary["styles"] != 27:
        get_console().warn(f"expected 27 WikiArt style folders, found {summary['styles']}")
    return DatasetResult("wikiart", str(out), False, summary)


# --- Midjourney -----------------------------------------------------------------------------------

_BOLD = re.compile(r"\*\*(.+?)\*\*", re.DOTALL)
_PARAM_START = re.compile(r"(?:^|\s)--[A-Za-z]")


def split_prompt(content: str) -> tuple[str, str]:
    """Midjourney bot text '**a cat --ar 3:2 --v 3** - <@123> (fast)' -> ('a cat', '--ar 3:2 --v 3')."""
    m = _BOLD.search(content or "")
    text = (m.group(1) if m else (content or "")).strip()
    p = _PARAM_START.search(text)
    if not p:
        return " ".join(text.split()), ""
    start = p.start() if text[p.start()] == "-" else p.start() + 1
    return " ".join(text[:start].split()), " ".join(text[start:].split())


def _messages(doc: Any) -> Iterator[dict[str, Any]]:
    """Every Discord message object in a dump, however it is nested (lists of lists, {'messages': ...})."""
    stack = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "content" in node and "attachments" in node:
                yield node
            else:
                stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))


def parse_midjourney_messages(doc: Any) -> list[dict[str, Any]]:
    """Rows (prompt, params, url, width, height, filename) for each image attachment in a JSON dump."""
    rows = []
    for msg in _messages(doc):
        attachments = msg.get("attachments") or []
        if not isinstance(attachments, list):
            continue
        prompt, params = split_prompt(str(msg.get("content") or ""))
        for att in attachments:
            if not isinstance(att, dict) or not att.get("url"):
                continue
            rows.append({
                "prompt": prompt,
                "params": params,
                "url": str(att["url"]),
                "width": att.get("width") if att.get("width") is not None else "",
                "height": att.get("height") if att.get("height") is not None else "",
                "filename": str(att.get("filename") or ""),
            })
    return rows


def build_prompts_csv(json_root: Path, csv_path: Path) -> dict[str, Any]:
    """Parse every *.json under `json_root` into one prompts.csv (deduplicated by URL, stable order)."""
    files = sorted(p for p in json_root.rglob("*.json") if not p.name.startswith("."))
    seen: set[str] = set()
    rows: list[dict[str, Any]] = []
    bad: list[str] = []
    with get_console().progress(len(files), "parsing midjourney dumps") as task:
        for path in files:
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                bad.append(f"{path.name}: {exc}")
                task.advance()
                continue
            for row in parse_midjourney_messages(doc):
                if row["url"] not in seen:
                    seen.add(row["url"])
                    rows.append(row)
            task.advance()
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=PROMPT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(csv_path, buf.getvalue())
    if bad:
        get_console().warn(f"{len(bad)} unreadable JSON files skipped, e.g. {bad[0]}")
    return {"json_files": len(files), "bad_json_files": len(bad), "rows": len(rows),
            "with_params": sum(1 for r in rows if r["params"])}


def image_name(url: str, filename: str) -> str:
    """Stable local name for an image URL: sha1 of the URL plus the attachment's extension."""
    ext = Path(filename or url.split("?")[0]).suffix.lower()
    if not re.fullmatch(r"\.[a-z0-9]{1,5}", ext):
        ext = ".png"
    return hashlib.sha1(url.encode("utf-8")).hexdigest()[:20] + ext


def _read_dead(path: Path) -> dict[str, tuple[str, str]]:
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["url"]: (r.get("status", ""), r.get("reason", "")) for r in csv.DictReader(fh) if r.get("url")}


def fetch_midjourney_images(out: Path, n: int, *, concurrency: int = 8, timeout: float = 30.0, retries: int = 2,
                            backoff: float = 1.0, retry_dead: bool = False) -> dict[str, Any]:
    """Fetch the first `n` image URLs of OUT/prompts.csv into OUT/images/ and report the dead links.

    Resumable: files already in OUT/images are skipped, and links recorded as permanently dead
    (HTTP 4xx) in OUT/dead_links.csv are not retried unless `retry_dead`.
    """
    from stylekit.data.http import fetch_many

    csv_path = out / "prompts.csv"
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows = [r for _, r in zip(range(n), csv.DictReader(fh), strict=False)]
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    dead_path = out / "dead_links.csv"
    known_dead = {} if retry_dead else _read_dead(dead_path)
    jobs, previously_dead = [], []
    for r in rows:
        dest = images / image_name(r["url"], r.get("filename", ""))
        status = known_dead.get(r["url"], ("", ""))[0]
        if status.isdigit() and 400 <= int(status) < 500 and not dest.exists():
            previously_dead.append((r["url"], status, known_dead[r["url"]][1]))
        else:
            jobs.append((r["url"], dest))
    outcomes = fetch_many(jobs, concurrency=concurrency, timeout=timeout, retries=retries, backoff=backoff,
                          require_image=True, progress="midjourney images")
    dead = [(o.url, str(o.status) if o.status is not None else "", o.reason) for o in outcomes if o.state == "dead"]
    dead += previously_dead
    by_status = Counter(status if status else reason.split(":")[0] for _, status, reason in dead)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["url", "status", "reason"])
    w.writerows(sorted(dead))
    write_text_atomic(dead_path, buf.getvalue())
    index = io.StringIO()
    wi = csv.writer(index, lineterminator="\n")
    wi.writerow(["url", "file"])
    for url, dest in jobs:
        if dest.exists():
            wi.writerow([url, f"images/{dest.name}"])
    write_text_atomic(out / "images.csv", index.getvalue())
    states = Counter(o.state for o in outcomes)
    report = {
        "requested": len(rows),
        "fetched": states.get("fetched", 0),
        "already_present": states.get("exists", 0),
        "dead": len(dead),
        "dead_by_status": dict(sorted(by_status.items())),
        "dead_links_csv": str(dead_path),
    }
    write_json_atomic(out / "images-report.json", report)
    if dead:
        get_console().warn(f"{len(dead)} of {len(rows)} Midjourney image links are dead "
                           f"({', '.join(f'{k}: {v}' for k, v in sorted(by_status.items()))}); see {dead_path}")
    return report


def download_midjourney(out: str | Path, api: KaggleLike | None = None, force: bool = False, images: int = 0,
                        concurrency: int = 8, timeout: float = 30.0, retries: int = 2, backoff: float = 1.0,
                        keep_archive: bool = False, retry_dead: bool = False) -> DatasetResult:
    """Kaggle succinctlyai/midjourney-texttoimage -> OUT/prompts.csv; `images` > 0 also fetches that many images."""
    if images < 0:
        raise BadInput(f"--images must be >= 0, got {images}")
    if concurrency < 1:
        raise BadInput(f"--workers must be >= 1 for downloads, got {concurrency}")
    out = Path(out)
    params: dict[str, Any] = {"dataset": MIDJOURNEY_DATASET}
    done = _completed(out, "midjourney", params, force)
    if done is None:
        _prepare_out(out)
        (out / MARKER).unlink(missing_ok=True)
        staging = out / ".download"
        archive = _kaggle_zip(api, MIDJOURNEY_DATASET, staging)
        raw = out / "raw"
        shutil.rmtree(raw, ignore_errors=True)
        raw.mkdir(parents=True)
        _extract_into(archive, raw)
        summary = build_prompts_csv(raw, out / "prompts.csv")
        if not keep_archive:
            shutil.rmtree(staging, ignore_errors=True)
        write_marker(out, "midjourney", params, summary)
        get_console().log(f"midjourney: {summary['rows']} image prompts from {summary['json_files']} JSON dumps -> {out / 'prompts.csv'}")
        result = DatasetResult("midjourney", str(out), False, summary)
    else:
        result = done
    if images:
        report = fetch_midjourney_images(out, images, concurrency=concurrency, timeout=timeout, retries=retries,
                                         backoff=backoff, retry_dead=retry_dead)
        result.summary = {**result.summary, "images": report}
        if report["fetched"]:
            result.skipped = False
    return result


# --- toy-styles -----------------------------------------------------------------------------------


def download_toy_styles(out: str | Path, size: int = 64, per_style: int = 200, styles: int = 8, seed: int = 0,
                        force: bool = False) -> DatasetResult:
    """The built-in generated stand-in for WikiArt (stylekit.data.toy), with the same completed marker."""
    from stylekit.data.toy import generate_toy_styles
    from stylekit.io.rundir import ensure_writable_dir

    out = ensure_writable_dir(Path(out))
    params: dict[str, Any] = {"size": size, "per_style": per_style, "styles": styles, "seed": seed}
    done = _completed(out, "toy-styles", params, force)
    if done:
        return done
    (out / MARKER).unlink(missing_ok=True)
    result = generate_toy_styles(out, size, per_style, styles, seed)
    summary = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    write_marker(out, "toy-styles", params, summary)
    return DatasetResult("toy-styles", str(out), False, summary)


DATASETS: dict[str, str] = {
    "wikiart": "WikiArt from Kaggle steubk/wikiart: 27 style folders, 81,444 images, ~25 GB (needs Kaggle credentials)",
    "midjourney": "Midjourney prompts from Kaggle succinctlyai/midjourney-texttoimage (CC0) -> prompts.csv; --images N fetches images",
    "toy-styles": "built-in generated stand-in: the same layouts rendered in N styles (offline, seconds)",
}
DATASET_LICENCES: dict[str, str] = {
    "wikiart": "images: WikiArt terms (non-commercial research); see the Kaggle page",
    "midjourney": "CC0 (the message dump); images: Midjourney terms",
    "toy-styles": "generated by stylekit (same licence as stylekit)",
}
