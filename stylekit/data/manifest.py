"""The prepared-folder manifest: `manifest.csv` with one row per image (path,label,split,width,height,sha1).

An optional `prompt` column carries each image's text prompt when the source had one (Midjourney).
`stylekit prepare` writes it last (atomically), so a folder with a manifest is a complete folder.
Later commands (train-classifier, pix2pix, score) read prepared folders only through `read_manifest`.
Paths are stored relative to the folder (POSIX separators) and returned resolved against it. For
the stylegan-zip format, a path such as `dataset.zip/00000/img00000000.png` names a member inside
the archive; `read_row_bytes` opens both kinds. When OUT itself is `NAME.zip`, the manifest is stored
inside the archive and `read_manifest("NAME.zip")` reads it from there. Only `path` and `label` are required, so a
toy-styles folder's manifest (path,label,layout) reads too, with split "train".

The file is UTF-8; a file or class name that is not valid UTF-8 (possible on Linux) is stored as its
raw bytes (Python's surrogateescape), so every path round-trips exactly instead of failing the write.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from stylekit.errors import BadInput
from stylekit.io.atomic import write_bytes_atomic
from stylekit.io.paths import read_regular_bytes

MANIFEST_NAME = "manifest.csv"
COLUMNS = ("path", "label", "split", "width", "height", "sha1")
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class ManifestRow:
    path: Path
    label: str
    split: str = "train"
    width: int = 0
    height: int = 0
    sha1: str = ""
    prompt: str = ""  # the text prompt of a generated image (Midjourney), when the source CSV had one


def manifest_path(folder: str | os.PathLike[str]) -> Path:
    folder = Path(folder)
    return folder if folder.suffix.lower() in (".csv", ".zip") else folder / MANIFEST_NAME


def _manifest_source(path: Path, fix: str) -> str:
    """The manifest text of a folder, a .csv file, or a stylegan-zip archive (stored inside it)."""
    if path.suffix.lower() == ".zip":
        try:
            with zipfile.ZipFile(path) as zf:
                return zf.read(MANIFEST_NAME).decode("utf-8-sig", "surrogateescape")
        except KeyError:
            raise BadInput(f"{path} has no {MANIFEST_NAME} inside: it was not written by 'stylekit prepare'", hint=fix) from None
        except (OSError, zipfile.BadZipFile, UnicodeDecodeError) as exc:
            raise BadInput(f"cannot read {path}: {exc}", hint=fix) from None
    try:
        return read_regular_bytes(path, "manifest").decode("utf-8-sig", "surrogateescape")
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"cannot read {path}: {exc}", hint=fix) from None


def read_manifest(folder: str | os.PathLike[str]) -> list[ManifestRow]:
    """Rows of FOLDER/manifest.csv (or of a .csv, or of the manifest inside a prepared .zip), with
    paths resolved against the folder holding it."""
    path = manifest_path(folder)
    fix = f"run 'stylekit prepare SRC {path if path.suffix.lower() == '.zip' else path.parent}' to (re)create it"
    if not path.parent.is_dir():
        raise BadInput(f"{path.parent} does not exist", hint="check the path")
    if not path.is_file():
        raise BadInput(f"{path} is missing: {path.parent} is not a prepared folder", hint=fix)
    text = _manifest_source(path, fix)
    reader = csv.DictReader(io.StringIO(text))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in ("path", "label") if c not in header]
    if missing:
        raise BadInput(f"{path} is malformed: missing column(s) {', '.join(missing)} (found: {', '.join(header) or 'nothing'})", hint=fix)
    reader.fieldnames = header
    rows: list[ManifestRow] = []
    for line, rec in enumerate(reader, start=2):
        try:
            rel = (rec.get("path") or "").strip()
            if not rel:
                raise ValueError("empty path")
            rows.append(ManifestRow(
                path=path.parent / rel,
                label=(rec.get("label") or "").strip(),
                split=(rec.get("split") or "train").strip(),
                width=int(rec.get("width") or 0),
                height=int(rec.get("height") or 0),
                sha1=(rec.get("sha1") or "").strip(),
                prompt=rec.get("prompt") or "",
            ))
        except (ValueError, TypeError) as exc:
            raise BadInput(f"{path} line {line} is malformed: {exc}", hint=fix) from None
    return rows


def _relative(path: Path, folder: Path) -> str:
    try:
        return path.relative_to(folder).as_posix()
    except ValueError:
        return Path(os.path.relpath(path, folder)).as_posix()


def manifest_text(folder: str | os.PathLike[str], rows: list[ManifestRow]) -> str:
    """The CSV text; row paths may be absolute or relative to `folder`."""
    folder = Path(folder)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    with_prompts = any(r.prompt for r in rows)  # the column exists only where there is something in it
    writer.writerow([*COLUMNS, "prompt"] if with_prompts else COLUMNS)
    for r in rows:
        rel = _relative(Path(r.path), folder) if Path(r.path).is_absolute() else Path(r.path).as_posix()
        writer.writerow([rel, r.label, r.split, r.width, r.height, r.sha1, *([r.prompt] if with_prompts else [])])
    return buf.getvalue()


def write_manifest(folder: str | os.PathLike[str], rows: list[ManifestRow]) -> Path:
    """Write FOLDER/manifest.csv atomically; row paths may be absolute or relative to the folder."""

    return write_bytes_atomic(Path(folder) / MANIFEST_NAME, manifest_text(folder, rows).encode("utf-8", "surrogateescape"))


def read_row_bytes(path: str | os.PathLike[str]) -> bytes:
    """Bytes of a manifest path: a plain file, or `ARCHIVE.zip/member` inside a zip."""
    path = Path(path)
    if path.is_file():
        return read_regular_bytes(path, "image")
    parts = path.parts
    for i in range(len(parts) - 1, 0, -1):
        if parts[i - 1].lower().endswith(".zip"):
            archive = Path(*parts[:i])
            if archive.is_file():
                with zipfile.ZipFile(archive) as zf:
                    try:
                        return zf.read("/".join(parts[i:]))
                    except KeyError:
                        break
    raise BadInput(f"{path} listed in the manifest does not exist", hint="re-run 'stylekit prepare' for that folder")
