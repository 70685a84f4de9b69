"""Midjourney prompts from Kaggle succinctlyai/midjourney-texttoimage (the Discord message dump) ->
OUT/prompts.csv, and optionally the first N images (of the prompts a filter keeps) into OUT/images/."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stylekit.configs.download import prompt_pattern
from stylekit.data.http import fetch_many
from stylekit.data.sources.journal import STAGING, claim, extract_into, owned_entries, start
from stylekit.data.sources.kaggle import KaggleLike, connect, kaggle_zip
from stylekit.data.sources.ledger import DatasetResult, completed, is_complete, read_marker, write_marker
from stylekit.data.sources.lock import locked
from stylekit.io.atomic import write_json_atomic, write_text_atomic
from stylekit.io.console import get_console

MIDJOURNEY_DATASET = "succinctlyai/midjourney-texttoimage"
PROMPT_COLUMNS = ["prompt", "params", "url", "width", "height", "filename"]


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

    def select(self, rows: list[dict[str, str]]) -> tuple[list[dict[str, str]], dict[str, Any]]:
        """The rows that pass, and counts for the report."""
        inc, exc = (prompt_pattern(p) if p else None for p in (self.include, self.exclude))
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
    out = Path(out)
    params: dict[str, Any] = {"dataset": MIDJOURNEY_DATASET}
    if api is None and not is_complete(out, "midjourney", params, force):
        api = connect(MIDJOURNEY_DATASET, out)
    with locked(out):
        done = completed(out, "midjourney", params, force)
        if done is None:
            owned = start(out)
            claim(out, owned, {"prompts.csv"})
            staging = out / STAGING
            archive = kaggle_zip(api, MIDJOURNEY_DATASET, staging)
            extract_into(archive, out, owned, into="raw")
            summary = build_prompts_csv(out / "raw", out / "prompts.csv")
            write_marker(out, "midjourney", params, summary, owned)
            if not keep_archive:
                shutil.rmtree(staging, ignore_errors=True)
            get_console().log(f"midjourney: {summary['rows']} image prompts from {summary['json_files']} JSON dumps -> {out / 'prompts.csv'}")
            result = DatasetResult("midjourney", str(out), False, summary)
        else:
            result = done
        if images:
            owned = owned_entries(out)
            claim(out, owned, set(IMAGE_OUTPUTS))
            write_marker(out, "midjourney", params, (read_marker(out) or {}).get("summary", result.summary), owned)
            report = fetch_midjourney_images(out, images, concurrency=concurrency, timeout=timeout, retries=retries,
                                             backoff=backoff, retry_dead=retry_dead, prompt_filter=prompt_filter)
            result.summary = {**result.summary, "images": report}
            if report["fetched"]:
                result.skipped = False
    return result
