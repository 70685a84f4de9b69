"""Image sets: a folder (recursive), a single image, or a .zip of images, listed with the identity
caches key on, decoded safely, and streamed as square tensors. Every command that reads "a set of
images" (score, finetune-stylegan, the metrics) lists and decodes it here.

Zip members are identified by "<resolved zip>::<member>", the member's size and its CRC-32 (in
place of the mtime), so rewriting a zip with the same member bytes keeps their identity.
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from stylekit.data.images import (
    ImageReport,
    SkippedFile,
    decode_rgb,
    is_image_name,
    list_images,
    load_rgb,
    resize_square,
)
from stylekit.errors import BadImage, BadInput
from stylekit.io.console import get_console
from stylekit.io.limits import read_image_member
from stylekit.io.paths import read_regular_bytes


@dataclass(frozen=True)
class ImageItem:
    """One image of a set, with the identity the cache keys on."""

    key_path: str  # resolved file path, or "<resolved zip>::<member>"
    size: int
    mtime_ns: int  # file mtime; for zip members the member's CRC-32
    rel: str  # path relative to the set's root (posix), used for labels and --pairs
    file: str  # the file to open (the zip itself for members)
    member: str | None = None

    @property
    def label(self) -> str | None:
        """Class label = first folder below the set root (class-folder layout), else None."""
        parts = self.rel.split("/")
        return parts[0] if len(parts) > 1 else None

    @property
    def stem(self) -> str:
        """Relative path without extension (how --pairs matches A and B)."""
        return self.rel.rsplit(".", 1)[0] if "." in self.rel.rsplit("/", 1)[-1] else self.rel


@dataclass
class ImageSet:
    source: str
    items: list[ImageItem]
    skipped: list[SkippedFile] = field(default_factory=list)  # entries found but unreadable as files

    def __len__(self) -> int:
        return len(self.items)

    def folder_counts(self) -> dict[str, int]:
        """Images per top-level folder of the set ("." for images directly in it), in sorted order."""
        counts: dict[str, int] = {}
        for item in self.items:
            key = item.label or "."
            counts[key] = counts.get(key, 0) + 1
        return dict(sorted(counts.items()))


def open_image_set(source: str | os.PathLike[str]) -> ImageSet:
    """List the images of a folder (recursive), a single image, or a .zip file. BadInput if unusable."""
    path = Path(source).expanduser()
    if not path.exists():
        raise BadInput(f"{path} does not exist", hint="give a folder or a .zip of images")
    if path.is_file() and path.suffix.lower() == ".zip":
        return _zip_set(path)
    report = ImageReport()
    files = list_images(path, report=report)  # dangling/looping symlinks, FIFOs: skipped and reported
    root = path if path.is_dir() else path.parent
    items: list[ImageItem] = []
    for f in files:
        try:
            st = f.stat()
        except OSError as exc:  # vanished or unreadable between listing and stat
            report.skip(f, f"cannot read: {exc.strerror or exc}")
            continue
        items.append(ImageItem(str(f.resolve()), st.st_size, st.st_mtime_ns, f.relative_to(root).as_posix(), str(f)))
    return ImageSet(str(path), items, report.skipped)


def _zip_set(path: Path) -> ImageSet:
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError) as exc:
        raise BadInput(f"{path}: not a readable zip file ({exc})", hint="re-create the archive or pass a folder") from None
    resolved = str(path.resolve())
    items = [
        ImageItem(f"{resolved}::{i.filename}", i.file_size, i.CRC, i.filename, str(path), i.filename)
        for i in infos
        if not i.is_dir() and is_image_name(i.filename) and not any(p.startswith(".") or p == "__MACOSX" for p in i.filename.split("/")[:-1])
    ]
    items.sort(key=lambda it: it.rel)
    return ImageSet(str(path), items)


_zip_handles: dict[tuple[int, str], zipfile.ZipFile] = {}
_zip_lock = threading.Lock()


def _read_member(zip_path: str, member: str) -> bytes:

    key = (os.getpid(), zip_path)
    with _zip_lock:
        zf = _zip_handles.get(key)
        if zf is None:
            zf = _zip_handles[key] = zipfile.ZipFile(zip_path)
        return read_image_member(zf, member, f"{zip_path}::{member}")


def decode_item(item: ImageItem, cleanfid_compat: bool = False) -> Image.Image:
    """Decode one item to RGB or raise BadImage.

    stylekit decoding (default) applies EXIF orientation and composites alpha on white, like
    `load_rgb`. `cleanfid_compat` decodes the way clean-fid does (`Image.open(f).convert("RGB")`: no
    EXIF rotation, alpha dropped) so FID/KID match clean-fid's numbers on the same files. Both
    refuse decompression bombs and report truncated or non-image files.
    """
    if item.member is None and not cleanfid_compat:
        return load_rgb(item.file)
    name = item.key_path if item.member is None else f"{item.file}::{item.member}"
    try:
        data = read_regular_bytes(item.file, "image") if item.member is None else _read_member(item.file, item.member)
    except BadInput as exc:  # not a regular file (a FIFO would block a plain read forever)
        raise BadImage(name, exc.message) from None
    except (OSError, KeyError, zipfile.BadZipFile) as exc:
        raise BadImage(name, f"cannot read: {exc}") from None
    if not data:
        raise BadImage(name, "empty file")
    return decode_rgb(io.BytesIO(data), name, plain_convert=cleanfid_compat)


class SquareResize:
    """Picklable preprocessing: shorter side to `size` (PIL `resample`), centre crop, -> [3,S,S] in [0,1]."""

    def __init__(self, size: int, resample: int = Image.Resampling.BICUBIC) -> None:
        self.size = size
        self.resample = resample

    def __call__(self, img: Image.Image) -> torch.Tensor:
        arr = np.asarray(resize_square(img, self.size, self.resample), dtype=np.uint8)
        return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


class ItemDataset(torch.utils.data.Dataset):
    """(index, preprocessed tensor or None, error or None) per item: decoding errors are data, not exceptions."""

    def __init__(self, items: list[ImageItem], preprocess: Callable[[Image.Image], torch.Tensor], compat: bool) -> None:
        self.items = items
        self.preprocess = preprocess
        self.compat = compat

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            img = decode_item(self.items[i], self.compat)
        except BadImage as exc:
            return i, None, exc.reason
        try:
            return i, self.preprocess(img), None
        except (OSError, ValueError) as exc:
            return i, None, f"cannot preprocess: {exc}"


def collate_list(batch: list[Any]) -> list[Any]:
    return batch


@dataclass
class LoadedBatch:
    items: list[ImageItem]
    images: torch.Tensor


def iter_images(items: list[ImageItem], size: int, batch_size: int = 16, workers: int = 0,
                report: ImageReport | None = None, description: str = "images") -> Iterator[LoadedBatch]:
    """Yield LoadedBatch of square `size` images in [0,1]; undecodable items go to `report`."""
    dataset = ItemDataset(items, SquareResize(size, Image.Resampling.LANCZOS), False)
    loader = torch.utils.data.DataLoader(dataset, batch_size=max(1, batch_size), shuffle=False,
                                         num_workers=max(0, workers), collate_fn=collate_list)
    with get_console().progress(len(items), description) as task:
        for batch in loader:
            good = [(items[j], t) for j, t, err in batch if t is not None]
            if report is not None:
                for j, _, err in batch:
                    if err is not None:
                        it = items[j]
                        report.skip(it.key_path if it.member is None else f"{it.file}::{it.member}", err)
            task.advance(len(batch))
            if good:
                yield LoadedBatch([g[0] for g in good], torch.stack([g[1] for g in good]))
