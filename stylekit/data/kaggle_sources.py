"""The named data sets of `stylekit download`: wikiart and midjourney (Kaggle), toy-styles (generated).

Every source ends by writing `OUT/.stylekit-download.json` (the completed marker with its summary), so
a rerun on the same --out is a no-op (cron-safe). Work happens in hidden staging folders inside OUT
(`.download/`, a fresh `.extracting-*/` per attempt) that a rerun resumes (the Kaggle client resumes
its zip) or discards, so an interrupted run never leaves a half data set that looks complete.

Nothing a user put in OUT is replaced: the top-level entries a download places (extracted folders,
prompts.csv, ...) are recorded (the marker's "entries", and `.download/entries.json` while a run is
in progress), and an existing entry of the same name that stylekit did not place is refused with
BadInput naming it, before anything is moved. A whole download holds OUT's lock (`.stylekit.lock`):
a second download into the same OUT gets Busy (exit 75).

The Kaggle API object is a parameter: tests pass a fake whose `dataset_download_files` writes a zip.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import re
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from stylekit.errors import BadInput, MissingResource
from stylekit.io.atomic import write_json_atomic, write_text_atomic
from stylekit.io.console import get_console
from stylekit.offline import require_online

MARKER = ".stylekit-download.json"
STAGING = ".download"
JOURNAL = "entries.json"  # in STAGING: the entries this download has placed so far
TMP_PREFIX = ".extracting-"
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


def write_marker(out: Path, name: str, params: dict[str, Any], summary: dict[str, Any], entries: set[str] | None = None) -> None:
    doc = {"name": name, "params": params, "summary": summary, "complete": True}
    if entries is not None:
        doc["entries"] = sorted(entries)
    write_json_atomic(out / MARKER, doc)


def _plain_names(names: Any) -> set[str]:
    """Plain top-level names from a marker/journal list (a hand-edited file cannot point elsewhere)."""
    if not isinstance(names, list):
        return set()
    return {n for n in names if isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and "\x00" not in n}


def _owned(out: Path) -> set[str]:
    """Top-level entries of OUT that a stylekit download placed (completed marker + in-progress journal)."""
    marker = read_marker(out) or {}
    names = _plain_names(marker.get("entries"))
    try:
        names |= _plain_names(json.loads((out / STAGING / JOURNAL).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass
    return names


def _claim(out: Path, owned: set[str], names: set[str]) -> None:
    """Record `names` as stylekit's before writing them; BadInput if one is a user's existing entry."""
    from stylekit.io.rundir import LOCK_NAME

    for name in sorted(names):
        if name in (MARKER, STAGING, LOCK_NAME) or name.startswith(TMP_PREFIX):
            raise BadInput(f"{out}: the download holds an entry named '{name}', a name stylekit uses for its own "
                           "bookkeeping; nothing was changed", hint="the archive is not the expected data set")
        if name not in owned and os.path.lexists(out / name):
            raise BadInput(f"{out / name} already exists and was not written by stylekit download; nothing was changed",
                           hint="move it out of --out, or download into a new or empty folder")
    owned |= names
    write_json_atomic(out / STAGING / JOURNAL, sorted(owned))


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold OUT's lock for a whole download (a second download into OUT exits 75)."""
    from stylekit.io.rundir import DirLock, ensure_writable_dir

    ensure_writable_dir(out)
    lock = DirLock(out)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


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


def _start(out: Path) -> set[str]:
    """Begin a (re)download in a locked OUT: keep the record of what stylekit placed, drop the marker."""
    owned = _owned(out)
    (out / STAGING).mkdir(exist_ok=True)
    write_json_atomic(out / STAGING / JOURNAL, sorted(owned))
    (out / MARKER).unlink(missing_ok=True)
    return owned


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
    if api is None:
        require_online(f"Kaggle data set {dataset}", f"kaggle datasets download -d {dataset} -p {staging}")
        api = kaggle_api()
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


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _extract_into(archive: Path, out: Path, owned: set[str], into: str | None = None) -> None:
    """Safe-extract into a fresh OUT/.extracting-*, strip a single wrapping folder, then move the
    entries into OUT (or the whole tree to OUT/`into`). Only entries stylekit placed are replaced."""
    from stylekit.data.archive import extract_archive

    record = out / STAGING / "extracting"  # names the temp folder, so a killed run's one is removed
    try:
        stale = record.read_text(encoding="utf-8").strip()
        if stale.startswith(TMP_PREFIX) and "/" not in stale:
            shutil.rmtree(out / stale, ignore_errors=True)
    except OSError:
        pass
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=out))
    write_text_atomic(record, tmp.name)
    try:
        extract_archive(archive, tmp, progress=f"extracting {archive.name}")
        root = tmp
        entries = list(root.iterdir())
        if len(entries) == 1 and entries[0].is_dir():
            root = entries[0]
        moves = {into: root} if into is not None else {entry.name: entry for entry in root.iterdir()}
        _claim(out, owned, set(moves))
        for name, entry in sorted(moves.items()):
            _remove(out / name)
            entry.rename(out / name)
    finally:
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
    with _locked(out):
        done = _completed(out, "wikiart", params, force)
        if done:
            return done
        owned = _start(out)
        _claim(out, owned, {"download-summary.json"})
        staging = out / STAGING
        archive = _kaggle_zip(api, WIKIART_DATASET, staging)
        _extract_into(archive, out, owned)
        summary = wikiart_summary(out)
        write_json_atomic(out / "download-summary.json", summary)
        write_marker(out, "wikiart", params, summary, owned)
        if not keep_archive:
            shutil.rmtree(staging, ignore_errors=True)
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


@dataclass(frozen=True)
class PromptFilter:
    """--prompt-include / --prompt-exclude: case-insensitive regular expressions matched as whole words
    (wrapped in \\b...\\b) against a row's prompt text (not its --parameters)."""

    include: str | None = None
    exclude: str | None = None

    def _compiled(self, pattern: str | None, option: str) -> re.Pattern[str] | None:
        if not pattern:
            return None
        try:
            return re.compile(rf"\b(?:{pattern})\b", re.IGNORECASE)
        except re.error as exc:
            raise BadInput(f"bad {option} regular expression '{pattern}': {exc}", hint="e.g. --prompt-include 'woman|man|portrait'") from None

    def select(self, rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """The rows that pass, and counts for the report."""
        inc, exc = self._compiled(self.include, "--prompt-include"), self._compiled(self.exclude, "--prompt-exclude")
        included = [r for r in rows if inc is None or inc.search(r.get("prompt", ""))]
        kept = [r for r in included if exc is None or not exc.search(r.get("prompt", ""))]
        return kept, {"include": self.include, "exclude": self.exclude, "rows": len(rows),
                      "matched_include": len(included), "removed_by_exclude": len(included) - len(kept), "selected": len(kept)}


def _read_dead(path: Path) -> dict[str, tuple[str, str]]:
    if not path.is_file():
        return {}
    with open(path, newline="", encoding="utf-8") as fh:
        return {r["url"]: (r.get("status", ""), r.get("reason", "")) for r in csv.DictReader(fh) if r.get("url")}


IMAGE_OUTPUTS = ("images", "dead_links.csv", "images.csv", "images-report.json")  # what fetch_midjourney_images writes


def fetch_midjourney_images(out: Path, n: int, *, concurrency: int = 8, timeout: float = 30.0, retries: int = 2,
                            backoff: float = 1.0, retry_dead: bool = False,
                            prompt_filter: PromptFilter | None = None) -> dict[str, Any]:
    """Fetch the first `n` image URLs of OUT/prompts.csv (of those `prompt_filter` keeps) into
    OUT/images/ and report the dead links. OUT/images.csv (path,label,prompt,url) lists the fetched
    images of this selection: `stylekit prepare OUT/images.csv DEST` keeps each image's prompt.

    Resumable: files already in OUT/images are skipped, and links recorded as permanently dead
    (HTTP 4xx) in OUT/dead_links.csv are not retried unless `retry_dead`.
    """
    from stylekit.data.http import fetch_many

    csv_path = out / "prompts.csv"
    with open(csv_path, newline="", encoding="utf-8") as fh:
        rows, selection = (prompt_filter or PromptFilter()).select(list(csv.DictReader(fh)))
    rows = rows[:n]
    images = out / "images"
    images.mkdir(parents=True, exist_ok=True)
    dead_path = out / "dead_links.csv"
    known_dead = {} if retry_dead else _read_dead(dead_path)
    jobs, previously_dead = [], []
    prompts = {r["url"]: r.get("prompt", "") for r in rows}
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
    wi.writerow(["path", "label", "prompt", "url"])
    for url, dest in jobs:
        if dest.exists():
            wi.writerow([f"images/{dest.name}", "", prompts[url], url])
    write_text_atomic(out / "images.csv", index.getvalue())
    states = Counter(o.state for o in outcomes)
    report = {
        "requested": len(rows),
        "fetched": states.get("fetched", 0),
        "already_present": states.get("exists", 0),
        "dead": len(dead),
        "dead_by_status": dict(sorted(by_status.items())),
        "dead_links_csv": str(dead_path),
        "filter": selection,
    }
    write_json_atomic(out / "images-report.json", report)
    if dead:
        get_console().warn(f"{len(dead)} of {len(rows)} Midjourney image links are dead "
                           f"({', '.join(f'{k}: {v}' for k, v in sorted(by_status.items()))}); see {dead_path}")
    return report


def download_midjourney(out: str | Path, api: KaggleLike | None = None, force: bool = False, images: int = 0,
                        concurrency: int = 8, timeout: float = 30.0, retries: int = 2, backoff: float = 1.0,
                        keep_archive: bool = False, retry_dead: bool = False,
                        prompt_filter: PromptFilter | None = None) -> DatasetResult:
    """Kaggle succinctlyai/midjourney-texttoimage -> OUT/prompts.csv; `images` > 0 also fetches that many
    images, of the prompts `prompt_filter` keeps (e.g. only prompts about people)."""
    if prompt_filter is not None:
        prompt_filter.select([])  # a bad regular expression fails before any download
    if images < 0:
        raise BadInput(f"--images must be >= 0, got {images}")
    if concurrency < 1:
        raise BadInput(f"--workers must be >= 1 for downloads, got {concurrency}")
    out = Path(out)
    params: dict[str, Any] = {"dataset": MIDJOURNEY_DATASET}
    with _locked(out):
        done = _completed(out, "midjourney", params, force)
        if done is None:
            owned = _start(out)
            _claim(out, owned, {"prompts.csv"})
            staging = out / STAGING
            archive = _kaggle_zip(api, MIDJOURNEY_DATASET, staging)
            _extract_into(archive, out, owned, into="raw")
            summary = build_prompts_csv(out / "raw", out / "prompts.csv")
            write_marker(out, "midjourney", params, summary, owned)
            if not keep_archive:
                shutil.rmtree(staging, ignore_errors=True)
            get_console().log(f"midjourney: {summary['rows']} image prompts from {summary['json_files']} JSON dumps -> {out / 'prompts.csv'}")
            result = DatasetResult("midjourney", str(out), False, summary)
        else:
            result = done
        if images:
            owned = _owned(out)
            _claim(out, owned, set(IMAGE_OUTPUTS))
            write_marker(out, "midjourney", params, (read_marker(out) or {}).get("summary", result.summary), owned)
            report = fetch_midjourney_images(out, images, concurrency=concurrency, timeout=timeout, retries=retries,
                                             backoff=backoff, retry_dead=retry_dead, prompt_filter=prompt_filter)
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
    with _locked(out):
        done = _completed(out, "toy-styles", params, force)
        if done:
            return done
        (out / MARKER).unlink(missing_ok=True)
        result = generate_toy_styles(out, size, per_style, styles, seed)
        summary = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        write_marker(out, "toy-styles", params, summary)
    return DatasetResult("toy-styles", str(out), False, summary)


# --- the registry `stylekit download` reads ------------------------------------------------------


@dataclass(frozen=True)
class DownloadOptions:
    """Every data set option of `stylekit download`; each source reads the ones it has."""

    force: bool = False
    keep_archive: bool = False
    timeout: float = 60.0
    retries: int = 3
    size: int = 64  # toy-styles
    per_style: int = 200
    styles: int = 8
    seed: int = 0
    images: int = 0  # midjourney
    concurrency: int = 8
    retry_dead: bool = False
    prompt_filter: PromptFilter | None = None


@dataclass(frozen=True)
class DatasetSource:
    description: str
    licence: str
    fetch: Callable[[Path, DownloadOptions], DatasetResult]


DATASETS: dict[str, DatasetSource] = {
    "wikiart": DatasetSource(
        "WikiArt from Kaggle steubk/wikiart: 27 style folders, 81,444 images, ~25 GB (needs Kaggle credentials)",
        "images: WikiArt terms (non-commercial research); see the Kaggle page",
        lambda out, o: download_wikiart(out, force=o.force, keep_archive=o.keep_archive),
    ),
    "midjourney": DatasetSource(
        "Midjourney prompts from Kaggle succinctlyai/midjourney-texttoimage (CC0) -> prompts.csv; --images N fetches images",
        "CC0 (the message dump); images: Midjourney terms",
        lambda out, o: download_midjourney(out, force=o.force, images=o.images, concurrency=o.concurrency, timeout=o.timeout,
                                           retries=o.retries, keep_archive=o.keep_archive, retry_dead=o.retry_dead,
                                           prompt_filter=o.prompt_filter),
    ),
    "toy-styles": DatasetSource(
        "built-in generated stand-in: the same layouts rendered in N styles (offline, seconds)",
        "generated by stylekit (same licence as stylekit)",
        lambda out, o: download_toy_styles(out, size=o.size, per_style=o.per_style, styles=o.styles, seed=o.seed, force=o.force),
    ),
}
