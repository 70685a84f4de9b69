"""OUT's lock for a whole download: a second download into the same OUT gets Busy (exit 75)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

from stylekit.io.rundir import DirLock, ensure_writable_dir


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold OUT's lock for a whole download (a second download into OUT exits 75)."""

    ensure_writable_dir(out)
    lock = DirLock(out)
    lock.acquire()
    try:
        yield
    finally:
        lock.release()
