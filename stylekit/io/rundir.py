"""Run directories: OUT/config.json, log.txt, metrics.jsonl, checkpoints/, samples/, and a lock.

Layout (DESIGN.md): every training or long job writes only below its --out. Re-running the same
command on the same --out resumes; `fresh=True` clears previous state first. A second process on
the same directory gets `Busy` (exit 75). Under torchrun only rank 0 writes and locks.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any

from stylekit.errors import BadInput, Busy
from stylekit.io.atomic import write_json_atomic
from stylekit.io.console import get_console

LOCK_NAME = ".stylekit.lock"


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


class DirLock:
    """An exclusive, non-blocking flock on DIR/.stylekit.lock, released when the process ends."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / LOCK_NAME
        self._fh: Any = None

    def acquire(self) -> None:
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise Busy(
                f"{self.path.parent} is in use by {holder}",
                hint="wait for that run to finish or choose another --out",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()}")
        fh.flush()
        self._fh = fh

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def ensure_writable_dir(path: Path) -> Path:
    """Create `path` (and parents) or raise BadInput naming it."""
    if path.exists() and not path.is_dir():
        raise BadInput(f"cannot write to {path}: it is a file, not a folder", hint="choose a folder for --out")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".stylekit-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise BadInput(f"cannot write to {path}: {exc.strerror or exc}", hint="choose a writable --out") from None
    return path


class RunDir:
    """A locked output directory for one run. Use as a context manager."""

    def __init__(self, path: str | os.PathLike[str], fresh: bool = False, lock: bool = True) -> None:
        self.path = Path(path)
        self.fresh = fresh
        self._lock = DirLock(self.path) if lock and _is_rank_zero() else None
        self._log_fh: Any = None

    # -- layout
    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    # -- lifecycle
    def open(self) -> RunDir:
        if _is_rank_zero():
            ensure_writable_dir(self.path)
            if self._lock is not None:
                self._lock.acquire()
            if self.fresh:
                self._clear()
            self.checkpoints.mkdir(exist_ok=True)
            self.samples.mkdir(exist_ok=True)
            self._log_fh = open(self.path / "log.txt", "a", encoding="utf-8")
            get_console().log_file = self._log_fh
        return self

    def close(self) -> None:
        if self._log_fh is not None:
            get_console().log_file = None
            self._log_fh.close()
            self._log_fh = None
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> RunDir:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _clear(self) -> None:
        for child in self.path.iterdir():
            if child.name == LOCK_NAME:
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()

    # -- files
    def write_config(self, config: dict[str, Any]) -> None:
        if _is_rank_zero():
            write_json_atomic(self.config_path, config)

    def read_config(self) -> dict[str, Any] | None:
        if not self.config_path.exists():
            return None
        from stylekit.checks import read_json_object

        return read_json_object(self.config_path, hint="the run directory is damaged: move it away, or use --fresh")

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl, flushed and fsynced (rank 0 only)."""
        if not _is_rank_zero():
            return
        from stylekit.io.console import _json_default

        with open(self.metrics_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=_json_default) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def read_metrics(self) -> list[dict[str, Any]]:
        """All complete records; a torn last line (kill mid-write) is ignored."""
        if not self.metrics_path.exists():
            return []
        records = []
        for line in self.metrics_path.read_text(encoding="utf-8").splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return records

    def rewind_metrics(self, key: str, last_value: float) -> None:
        """On resume: drop records written after the checkpoint we resume from (record[key] > last_value)."""
        if not _is_rank_zero() or not self.metrics_path.exists():
            return
        kept = [r for r in self.read_metrics() if r.get(key, 0) <= last_value]
        from stylekit.io.atomic import write_text_atomic

        write_text_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))
