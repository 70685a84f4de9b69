"""Run directories: OUT/config.json, log.txt, metrics.jsonl, checkpoints/, samples/, and a lock.

Layout (DESIGN.md): every training or long job writes only below its --out. Re-running the same
command on the same --out resumes; `fresh=True` clears previous state first. A second process on
the same directory gets `Busy` (exit 75). Under torchrun only rank 0 writes and locks.

Ownership: a run directory carries a marker, OUT/.stylekit-run.json, written when stylekit creates
or adopts the folder (only a new or empty folder is adopted). The marker lists the top-level entries
stylekit itself wrote there: each is recorded just before it is first written (RunDir.claim, and
every stylekit.io.atomic write below the folder announces itself), never by comparing the folder's
contents, so a file a user adds while a run is going stays the user's. `fresh=True` removes exactly
the recorded entries (and the temp files of their interrupted atomic writes), nothing else. A folder
that is not empty and carries no marker is refused (BadInput, exit 2), with or without `fresh`,
before anything is written: its layout (config.json, checkpoints/) does not make it stylekit's.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import socket
from pathlib import Path
from typing import Any

from stylekit.checks import read_json_object
from stylekit.errors import BadInput, Busy
from stylekit.io.atomic import add_write_listener, remove_write_listener, write_json_atomic, write_text_atomic
from stylekit.io.console import _json_default, get_console

LOCK_NAME = ".stylekit.lock"
MARKER_NAME = ".stylekit-run.json"
PROBE_NAME = ".stylekit-write-test"
TENSORBOARD_PREFIX = "events.out.tfevents."  # torch's SummaryWriter: events.out.tfevents.<time>.<host>.<pid>.<n>
_OWN = frozenset({LOCK_NAME, MARKER_NAME, PROBE_NAME})


def _is_rank_zero() -> bool:
    return os.environ.get("RANK", "0") == "0"


UNLOCKABLE = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)  # filesystems without (cross-host) flock


class DirLock:
    """An exclusive, non-blocking flock on DIR/.stylekit.lock, released when the process ends.

    On network filesystems flock is honoured across hosts by NFSv4 (Linux maps it to fcntl locks),
    CephFS, GPFS and Lustre mounted with `flock`; a filesystem without locks answers ENOLCK or
    EOPNOTSUPP: then the run goes on unlocked with a warning, rather than refusing to train. The
    holder line names the host, since on a shared filesystem the other run may be on another node.
    """

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
        except OSError as exc:
            if exc.errno not in UNLOCKABLE:
                raise
            fh.close()
            get_console().warn(f"{self.path.parent}: this filesystem has no file locks ({exc.strerror}); "
                               "nothing stops a second run on the same --out")
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()}")
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
        probe = path / PROBE_NAME
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
        self._written: set[str] | None = None  # rank 0, while open: the entries stylekit wrote

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
            owned = self._check_ownership()
            ensure_writable_dir(self.path)
            if self._lock is not None:
                self._lock.acquire()
            self._written = owned or set()
            if self.fresh:
                self._clear()
            self._save_marker()
            for folder in (self.checkpoints, self.samples):
                self._make_dir(folder)
            self.claim("log.txt")
            self._log_fh = open(self.path / "log.txt", "a", encoding="utf-8")
            get_console().log_file = self._log_fh
            add_write_listener(self._on_write)  # last: a failed open() leaves no listener behind
        return self

    def close(self) -> None:
        if self._written is not None:
            remove_write_listener(self._on_write)
            self._claim_tensorboard()
            self._written = None
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

    # -- ownership (module docstring)
    @property
    def marker_path(self) -> Path:
        return self.path / MARKER_NAME

    def _check_ownership(self) -> set[str] | None:
        """The entries the marker says stylekit wrote (None: a new or empty folder).

        BadInput if the folder holds entries and no marker; nothing is touched then."""
        if not self.path.is_dir():
            return None
        if self.marker_path.is_file():
            return _read_marker(self.marker_path)
        entries = sorted(_entries(self.path))
        if not entries:
            return None
        raise BadInput(
            f"--out {self.path} is not empty and is not a stylekit run folder (no {MARKER_NAME}; it holds "
            f"{len(entries)} entries, e.g. '{entries[0]}'); nothing was changed",
            hint="choose a new or empty folder for --out; a run folder of another tool (or of a stylekit older than "
            "the marker) is never resumed or cleared by --fresh: move it away or empty it yourself",
        )

    def claim(self, name: str) -> None:
        """Record the top-level entry `name` as stylekit's before stylekit first writes it (rank 0, while open)."""
        if self._written is None or name in _OWN or name in self._written:
            return
        self._written.add(name)
        self._save_marker()

    def _on_write(self, path: Path) -> None:
        """A stylekit.io.atomic write is about to happen: claim its top-level entry when it is below this folder."""
        try:
            rel = path.absolute().relative_to(self.path.absolute())
        except ValueError:
            return
        if rel.parts:
            self.claim(rel.parts[0])

    def _make_dir(self, folder: Path) -> None:
        """Create a layout folder; it is recorded only when stylekit creates it (or created it before)."""
        if not folder.exists():
            self.claim(folder.name)
        folder.mkdir(exist_ok=True)

    def _claim_tensorboard(self) -> None:
        """The event files this process's SummaryWriter created (their names carry its pid)."""
        tag = f".{os.getpid()}."
        for name in _entries(self.path):
            if name.startswith(TENSORBOARD_PREFIX) and tag in name:
                self.claim(name)

    def _clear(self) -> None:
        """--fresh: remove the entries stylekit wrote (marker list), never anything else."""
        assert self._written is not None
        kept = []
        for child in sorted(self.path.iterdir()):
            if child.name in _OWN:
                continue
            if child.name not in self._written and not _is_temp_of(child.name, self._written):
                kept.append(child.name)
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        self._written = set()
        if kept:
            get_console().log(f"--fresh: kept {len(kept)} entries stylekit did not write in {self.path}: "
                              + ", ".join(kept[:5]) + (" ..." if len(kept) > 5 else ""))

    def _save_marker(self) -> None:
        assert self._written is not None
        write_json_atomic(self.marker_path, {"format": 1, "tool": "stylekit", "written": sorted(self._written)})

    # -- files
    def write_config(self, config: dict[str, Any]) -> None:
        if _is_rank_zero():
            write_json_atomic(self.config_path, config)

    def read_config(self) -> dict[str, Any] | None:
        if not self.config_path.exists():
            return None

        return read_json_object(self.config_path, hint="the run directory is damaged: move it away, or use --fresh")

    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line to metrics.jsonl, flushed and fsynced (rank 0 only)."""
        self.append_jsonl(self.metrics_path.name, record)

    def append_jsonl(self, name: str, record: dict[str, Any]) -> None:
        """Append one JSON line to the run's file `name` (e.g. NVlabs' metric-fid50k_full.jsonl), flushed and fsynced (rank 0 only)."""
        if not _is_rank_zero():
            return

        self.claim(name)
        with open(self.path / name, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record, default=_json_default) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._claim_tensorboard()  # so a run killed later still leaves an accurate marker

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

        write_text_atomic(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))


def _entries(folder: Path) -> list[str]:
    """Top-level names in `folder` other than stylekit's lock, marker and write probe."""
    return [name for name in os.listdir(folder) if name not in _OWN]


def _is_temp_of(name: str, written: set[str]) -> bool:
    """A temp file `.NAME.<random>.tmp` that an interrupted atomic write of a recorded entry left behind."""
    if not (name.startswith(".") and name.endswith(".tmp")):
        return False
    stem = name[1:-4].rpartition(".")[0]
    return stem in written


def _read_marker(path: Path) -> set[str]:
    """The entry names a marker lists; an unreadable marker counts as listing nothing extra."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        names = doc.get("written", []) if isinstance(doc, dict) else []
    except (OSError, ValueError):
        return set()
    # Only plain names directly inside the folder: a hand-edited marker cannot point elsewhere.
    return {n for n in names if isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and "\x00" not in n}
