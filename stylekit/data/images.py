"""Finding and decoding images safely.

Every command reads images through here, so one bad file never stops a run: `scan_images` decodes
each candidate and returns the good paths plus an `ImageReport` of what was skipped and why.
The content decides the format (PIL sniffs it), not the extension; EXIF orientation is applied; all
modes end as RGB with transparency composited on white; decompression bombs are refused.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError

from stylekit.errors import BadImage, BadInput
from stylekit.io.atomic import write_json_atomic
from stylekit.io.console import get_console
from stylekit.io.limits import parse_json
from stylekit.io.paths import not_regular_reason, read_regular_text

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
# Twice PIL's default warning threshold (~89.5 MP): larger images are refused as decompression bombs.
MAX_PIXELS = 2 * 89_478_485
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


@dataclass
class SkippedFile:
    path: str
    reason: str


@dataclass
class ImageReport:
    """What a command used and what it skipped (with reasons). Printable and JSON-able."""

    used: int = 0
    skipped: list[SkippedFile] = field(default_factory=list)

    def skip(self, path: str | os.PathLike[str], reason: str) -> None:
        self.skipped.append(SkippedFile(printable(path), reason))

    def merge(self, other: ImageReport) -> ImageReport:
        self.used += other.used
        self.skipped.extend(other.skipped)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"used": self.used, "skipped": [{"path": s.path, "reason": s.reason} for s in self.skipped]}

    def summary(self) -> str:
        return f"{self.used} images used, {len(self.skipped)} skipped"


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in {"Thumbs.db", "desktop.ini", "__MACOSX"}


def is_image_name(path: str | os.PathLike[str]) -> bool:
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS and not _is_hidden(Path(path).name)


COMPOSITES_MARKER = ".stylekit-composites.json"


def _composites(folder: str, filenames: list[str]) -> dict[str, int]:
    """{name: size in bytes} of the pictures stylekit marked as made from other images in `folder`."""
    if COMPOSITES_MARKER not in filenames:
        return {}

    try:
        doc = parse_json(read_regular_text(Path(folder) / COMPOSITES_MARKER, "composites marker"), COMPOSITES_MARKER)
        files = doc.get("files", {}) if isinstance(doc, dict) else {}
        return {str(k): int(v) for k, v in files.items()} if isinstance(files, dict) else {}
    except (OSError, ValueError, TypeError, AttributeError, BadInput):  # a damaged marker hides nothing
        return {}


def _is_composite(folder: str, name: str, composites: dict[str, int]) -> bool:
    if name not in composites:
        return False
    try:
        return os.stat(os.path.join(folder, name)).st_size == composites[name]
    except OSError:
        return False


def mark_composite(path: str | os.PathLike[str]) -> None:
    """Record that stylekit made `path` from other images (a grid, a contact sheet): folder listings skip it.

    The rule: pictures stylekit composes go into the same folder as samples (generate --grid writes
    grid.png next to seedNNNN.png) and are named in that folder's .stylekit-composites.json with their
    size, so `score`, `stats`, `similar`, training data... never read them as samples. A file replaced
    by another of a different size is an image again.
    """

    p = Path(path)
    marker = p.parent / COMPOSITES_MARKER
    files = _composites(str(p.parent), [COMPOSITES_MARKER] if marker.is_file() else [])
    files[p.name] = p.stat().st_size
    write_json_atomic(marker, {"format": "stylekit-composites", "files": dict(sorted(files.items())),
                               "about": "pictures stylekit made from other images; stylekit's image listings skip them"})


def list_images(root: str | os.PathLike[str], recursive: bool = True, report: ImageReport | None = None) -> list[Path]:
    """Image files below `root` (or `[root]` for a single image file), sorted, hidden files skipped,
    and pictures stylekit marked as composites (grids, contact sheets; see `mark_composite`) skipped.

    Symlinked folders are followed once: a folder whose real path was already visited is skipped,
    so symlink loops terminate. Entries named like images that cannot be read as files (dangling
    symlinks, symlink loops, FIFOs, sockets, devices) are skipped: added to `report`, or warned
    about when no report is given. They never stop a run and are never opened (a FIFO would block).
    Names that are not valid UTF-8 come back as str with surrogate escapes (os.fsencode restores
    the bytes); they are kept.
    """
    root = Path(root)
    if not root.exists():
        raise BadInput(f"{root} does not exist", hint="check the path")
    if root.is_file():
        return [root]
    found: list[Path] = []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        if not recursive:
            dirnames[:] = []
        composites = _composites(dirpath, filenames)
        for name in filenames:
            if not is_image_name(name) or _is_composite(dirpath, name, composites):
                continue
            path = Path(dirpath) / name
            reason = not_regular_reason(path)
            if reason is None:
                found.append(path)
            elif report is not None:
                report.skip(path, reason)
            else:
                from stylekit.io.console import get_console

                get_console().warn(f"skipped {printable(path)}: {reason}")
    return sorted(found, key=lambda p: p.as_posix())


def printable(path: str | os.PathLike[str]) -> str:
    """A path for messages and JSON: undecodable bytes of a non-UTF-8 name shown as \\xNN escapes.

    Paths themselves stay lossless (str with surrogate escapes); only their display is escaped, so
    printing or json-dumping them never raises UnicodeEncodeError."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


# Decoded bytes per pixel of each PIL mode (anything else: 4), and the greyscale modes wider than 8 bits.
_MODE_BYTES = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "I;16": 2, "I;16B": 2, "I;16L": 2, "RGB": 3, "YCbCr": 3, "LAB": 3,
               "HSV": 3}
_WIDE_GREY = ("I;16", "I;16B", "I;16L", "I")
_STRIP_PIXELS = 1 << 20  # wide greyscale is scaled to 8 bits a strip of rows at a time


def decode_cost(mode: str, width: int, height: int) -> int:
    """Bytes decoding an image of this mode and size to RGB takes at its peak: the decoded pixels,
    an 8-bit greyscale copy for wide greyscale, and the RGB result. Known before decoding."""
    grey = 1 if mode in _WIDE_GREY or mode == "F" else 0
    return width * height * (_MODE_BYTES.get(mode, 4) + grey + 3)


# The most one image may cost: an RGBA image at MAX_PIXELS decoded and converted to RGB.
DECODE_BYTES_MAX = MAX_PIXELS * (4 + 3)


def _to_l_in_strips(img: Image.Image) -> Image.Image:
    """16/32-bit integer or float greyscale to 8 bits, one strip of rows at a time: no full-size
    float64 copies (a 9000 x 9000 16-bit PNG took 2.4 GB that way). Integers: 0..255 kept when no
    value exceeds 255, else 0..65535 scaled, rounding half up (exact integer arithmetic). Floats:
    0..1 scaled to 0..255 when no value exceeds 1, truncated."""
    import numpy as np

    high = img.getextrema()[1]
    out = np.empty((img.height, img.width), dtype=np.uint8)
    rows = max(1, _STRIP_PIXELS // max(img.width, 1))
    for top in range(0, img.height, rows):
        box = (0, top, img.width, min(top + rows, img.height))
        if img.mode == "F":
            strip = np.asarray(img.crop(box), dtype=np.float32) * (255.0 if high <= 1 else 1.0)
            out[top:top + rows] = np.clip(strip, 0, 255, out=strip)
        else:
            peak = 65535 if high > 255 else 255
            ints = np.clip(np.asarray(img.crop(box), dtype=np.int64), 0, peak)
            out[top:top + rows] = (ints * 510 + peak) // (2 * peak)
    return Image.fromarray(out, mode="L")


def _to_rgb(img: Image.Image) -> Image.Image:
    """Every PIL mode to RGB; anything with transparency is composited on white."""
    if img.mode in ("P", "L", "RGB") and "transparency" in img.info:  # tRNS chunk / GIF transparent index
        img = img.convert("RGBA")
    elif img.mode == "P":
        img = img.convert("RGB")
    if img.mode in _WIDE_GREY or img.mode == "F":
        img = _to_l_in_strips(img)
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


def load_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Decode one image file fully to RGB, or raise BadImage(path, reason)."""
    path = Path(path)
    reason = not_regular_reason(path)  # before any open(): a FIFO would block it forever
    if reason is not None:
        raise BadImage(printable(path), reason)
    if path.stat().st_size == 0:
        raise BadImage(printable(path), "empty file")
    return decode_rgb(path, printable(path))


def decode_rgb(source: str | os.PathLike[str] | BinaryIO, name: object, plain_convert: bool = False) -> Image.Image:
    """Decode a file or binary stream to RGB; errors are BadImage(name, reason).

    Default: EXIF orientation applied, alpha composited on white (`_to_rgb`). `plain_convert` decodes
    the way clean-fid does (`Image.open(f).convert("RGB")`: no EXIF rotation, alpha dropped) so FID/KID
    match its numbers on the same files. Both refuse decompression bombs.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                if img.width * img.height > MAX_PIXELS:  # read at call time, so tests can lower it
                    raise Image.DecompressionBombError(f"{img.width}x{img.height}")
                cost = decode_cost(img.mode, img.width, img.height)
                if cost > DECODE_BYTES_MAX:
                    raise BadImage(name, f"refused: decoding this {img.width}x{img.height} {img.mode} image would take "
                                         f"{cost >> 20} MiB, above the {DECODE_BYTES_MAX >> 20} MiB limit")
                img.seek(0)  # first frame of animated GIF/WebP/TIFF
                img.load()
                if plain_convert:
                    return img.convert("RGB")
                ImageOps.exif_transpose(img, in_place=True)  # in place: an upright image is not copied
                if img.readonly:  # memory-mapped (uncompressed BMP/TIFF...): detach it from the file
                    img = img.copy()
                return _to_rgb(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImage(name, f"refused: more than {MAX_PIXELS} pixels (decompression bomb guard)") from None
    except UnidentifiedImageError:
        raise BadImage(name, "not an image (unrecognised content)") from None
    except FileNotFoundError:
        raise BadImage(name, "file not found") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImage(name, f"cannot decode: {exc}") from None


def resize_square(img: Image.Image, size: int, resample: int = Image.Resampling.LANCZOS) -> Image.Image:
    """Shorter side to `size`, then centre crop to size x size."""
    w, h = img.size
    scale = size / min(w, h)
    new = (max(size, round(w * scale)), max(size, round(h * scale)))
    img = img.resize(new, resample)
    left, top = (new[0] - size) // 2, (new[1] - size) // 2
    return img.crop((left, top, left + size, top + size))


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL RGB -> float tensor [3, H, W] in [0, 1]."""
    import numpy as np
    import torch

    arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def tensor_to_pil(t: torch.Tensor) -> Image.Image:
    """Float tensor [3, H, W] in [0, 1] (clamped) -> PIL RGB, rounding to nearest."""
    arr = t.detach().float().clamp(0, 1).mul(255).add_(0.5).to("cpu").byte().permute(1, 2, 0).numpy()
    return Image.fromarray(arr, mode="RGB")


def load_tensor(path: str | os.PathLike[str], size: int | None = None) -> torch.Tensor:
    """Decode to a [3, H, W] float tensor in [0, 1], optionally resized/centre-cropped to size x size."""
    img = load_rgb(path)
    if size is not None:
        img = resize_square(img, size)
    return pil_to_tensor(img)


def scan_images(paths: list[Path], report: ImageReport | None = None) -> tuple[list[Path], ImageReport]:
    """Decode every path; return the decodable ones and a report naming the rest."""

    report = report if report is not None else ImageReport()
    good: list[Path] = []
    with get_console().progress(len(paths), "checking images") as task:
        for p in paths:
            try:
                load_rgb(p)
            except BadImage as exc:
                report.skip(p, exc.reason)
            else:
                good.append(p)
            task.advance()
    report.used += len(good)
    return good, report

