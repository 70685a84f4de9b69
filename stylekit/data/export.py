"""Output formats of `stylekit prepare`: PNG encoding, the NVlabs-style zip, aligned A|B pairs.

Everything here is deterministic: fixed PNG parameters, no metadata, fixed zip timestamps, so the
same input gives the same bytes whatever the number of workers.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

from PIL import Image

# Folder/pairs output: zlib level 1 is ~3x faster than PIL's default 6 for ~15% larger files.
FOLDER_PNG_LEVEL = 1
# stylegan-zip: uncompressed PNGs in a stored zip, as NVlabs dataset_tool writes them (fast to decode).
ZIP_PNG_LEVEL = 0
ZIP_NAME = "dataset.zip"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def encode_png(img: Image.Image, compress_level: int = FOLDER_PNG_LEVEL) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level, optimize=False)
    return buf.getvalue()


def write_file(path: Path, data: bytes) -> None:
    """Temp file + rename: a killed run never leaves a torn image (no fsync: the manifest is the commit)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def side_by_side(a: Image.Image, b: Image.Image) -> Image.Image:
    """The aligned A|B image of junyanz/pytorch-CycleGAN-and-pix2pix: A on the left, B on the right."""
    if a.size != b.size:
        a = a.resize(b.size, Image.Resampling.LANCZOS)
    out = Image.new("RGB", (a.width + b.width, b.height))
    out.paste(a, (0, 0))
    out.paste(b, (a.width, 0))
    return out


def stylegan_member(idx: int) -> str:
    """NVlabs dataset_tool archive name: 00000/img00000000.png (folders of 100,000... by prefix)."""
    s = f"{idx:08d}"
    return f"{s[:5]}/img{s}.png"


class StyleganZip:
    """Streams PNGs into OUT/dataset.zip (stored, fixed timestamps) via a temp file; `close` renames."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        self._zf = zipfile.ZipFile(self.tmp, mode="w", compression=zipfile.ZIP_STORED)
        self.count = 0

    def _write(self, name: str, data: bytes) -> None:
        info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
        info.compress_type = zipfile.ZIP_STORED
        info.external_attr = 0o644 << 16
        self._zf.writestr(info, data)

    def add(self, png: bytes) -> str:
        name = stylegan_member(self.count)
        self._write(name, png)
        self.count += 1
        return name

    def close(self, labels: list[list[Any]] | None, extra: dict[str, str] | None = None) -> Path:
        """Write dataset.json ({"labels": [[name, int], ...] or null}) and any `extra` text members
        (manifest.csv, report.json when the archive is the whole output), then move it into place."""
        self._write("dataset.json", json.dumps({"labels": labels}))
        for name, text in (extra or {}).items():
            self._write(name, text.encode("utf-8", "surrogateescape"))  # non-UTF-8 names stay lossless
        self._zf.close()
        with open(self.tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        self._zf.close()
        self.tmp.unlink(missing_ok=True)


def remove_stale(out: Path, old_files: set[Path], new_files: set[Path]) -> int:
    """Delete files an earlier run wrote (per its manifest) that this run did not, then empty folders."""
    removed = 0
    for path in sorted(old_files - new_files):
        try:
            path.resolve().relative_to(out.resolve())
        except ValueError:
            continue  # never touch anything outside OUT
        if path.is_file():
            path.unlink()
            removed += 1
            parent = path.parent
            while parent != out and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
    return removed
