"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder.

A kill at any moment leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stylekit.errors import BadInput


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    """The process umask, read without changing it (os.umask's set-and-restore races with threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | os.PathLike[str], writer: Callable[[Path], None]) -> Path:
    """Call `writer(tmp_path)` to produce the file, then move it over `path` atomically.

    The file gets the mode a plain open() would give (0666 minus the umask), not mkstemp's 0600."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise _write_error(path, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise _write_error(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _write_error(path: Path, exc: OSError) -> BadInput:
    """A failed write names the file it was writing (exit 2), never a bare OSError."""
    return BadInput(f"cannot write {path}: {exc.strerror or exc}", hint="choose a writable location with free space")


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_bytes(data))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def write_json_atomic(path: str | os.PathLike[str], document: Any) -> Path:
    from stylekit.io.console import _json_default

    return write_text_atomic(path, json.dumps(document, indent=2, default=_json_default) + "\n")


def save_image_atomic(path: str | os.PathLike[str], image: Any, **save_kwargs: Any) -> Path:
    """Save a PIL image atomically; the format follows the final path's extension."""
    fmt = Path(path).suffix.lstrip(".").upper().replace("JPG", "JPEG") or "PNG"
    return write_atomic(path, lambda tmp: image.save(tmp, format=fmt, **save_kwargs))


def link_atomic(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Make `dst` a second name of the file `src` (a hard link; a copy where links are impossible), atomically."""
    import shutil

    src, dst = Path(src), Path(dst)

    def make(tmp: Path) -> None:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)

    return write_atomic(dst, make)
