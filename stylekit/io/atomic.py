"""Atomic file writes: temp file in the same folder, fsync, rename, fsync the folder.

A kill at any moment leaves either the old file or the new one, never a torn one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stylekit.errors import BadInput
from stylekit.io.console import _json_default

# Called with each path just before it is written (so a kill mid-write still leaves it claimed):
# an open RunDir records the entries stylekit itself writes below it (stylekit/io/rundir.py).
_write_listeners: list[Callable[[Path], None]] = []


def add_write_listener(listener: Callable[[Path], None]) -> None:
    _write_listeners.append(listener)


def remove_write_listener(listener: Callable[[Path], None]) -> None:
    if listener in _write_listeners:
        _write_listeners.remove(listener)


def announce_write(path: str | os.PathLike[str]) -> None:
    """Tell the open run folders that stylekit is about to write `path` (every writer here calls it)."""
    for listener in list(_write_listeners):
        listener(Path(path))


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
    announce_write(path)
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

    return write_text_atomic(path, json.dumps(document, indent=2, default=_json_default) + "\n")


def save_image_atomic(path: str | os.PathLike[str], image: Any, **save_kwargs: Any) -> Path:
    """Save a PIL image atomically; the format follows the final path's extension."""
    fmt = Path(path).suffix.lstrip(".").upper().replace("JPG", "JPEG") or "PNG"
    return write_atomic(path, lambda tmp: image.save(tmp, format=fmt, **save_kwargs))


def link_atomic(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Make `dst` a second name of the file `src` (a hard link; a copy where links are impossible), atomically."""

    src, dst = Path(src), Path(dst)

    def make(tmp: Path) -> None:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)

    return write_atomic(dst, make)
