"""OUT/index.html for a folder run of `transfer --method pix2pix`: one row per image, junyanz-style
(input | references | output | target), images linked by relative paths (nothing is copied).

Targets are found under `--targets DIR` at the content image's relative path with any image
extension (photos/a/b.jpg -> DIR/a/b.png); a row's L1 is the mean |output - target| in [0, 1] pixel
units with the target resized to the output.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from PIL import Image

from stylekit.data.images import IMAGE_EXTENSIONS, load_rgb
from stylekit.io.atomic import write_text_atomic

PAGE = "index.html"
THUMB = 256


def find_target(content: Path, content_root: Path, targets: Path) -> Path | None:
    rel = content.relative_to(content_root)
    for ext in sorted(IMAGE_EXTENSIONS):
        for cand in (targets / rel.with_suffix(ext), targets / rel.with_suffix(ext.upper())):
            if cand.is_file():
                return cand
    return None


def l1_to_target(output: Path, target: Path) -> float:
    out = load_rgb(output)
    ref = load_rgb(target).resize(out.size, Image.Resampling.BICUBIC)
    return float(np.abs(np.asarray(out, np.float32) - np.asarray(ref, np.float32)).mean() / 255)


def _img(path: Path, page_dir: Path, title: str) -> str:
    href = quote(os.path.relpath(path, page_dir).replace(os.sep, "/"))
    return f'<a href="{href}"><img src="{href}" title="{html.escape(title)}" style="max-width:{THUMB}px;max-height:{THUMB}px"></a>'


def write_results_page(out: Path, items: list[dict[str, Any]], styles: list[Path], title: str) -> Path:
    """Write OUT/index.html for `items` (TransferReport items, plus optional "target" and "l1_target")."""
    with_target = any(i.get("target") for i in items)
    heads = ["input", "references", "output"] + (["target", "L1"] if with_target else [])
    refs = " ".join(_img(s, out, s.name) for s in styles) or "-"
    rows = []
    for item in items:
        output = Path(item["output"])
        if item["status"] == "failed" or not output.is_file():
            continue
        cells = [_img(Path(item["content"]), out, item["content"]), refs, _img(output, out, output.name)]
        if with_target:
            target = item.get("target")
            cells.append(_img(Path(target), out, target) if target else "no target")
            cells.append(f"{item['l1_target']:.4f}" if item.get("l1_target") is not None else "-")
        name = html.escape(str(Path(item["content"]).name))
        rows.append(f"<tr><td>{name}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    doc = ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html.escape(title) + "</title></head><body>\n"
           f"<h1>{html.escape(title)}</h1>\n<table border=\"1\" style=\"border-collapse:collapse\">\n"
           "<tr><th>name</th>" + "".join(f"<th>{h}</th>" for h in heads) + "</tr>\n" + "\n".join(rows)
           + "\n</table>\n</body></html>\n")
    return write_text_atomic(out / PAGE, doc)
