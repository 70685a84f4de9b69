"""The one rerun rule of the edit commands (generate, mix, blend-layers sweeps, styleclip), and stand-in labels.

A command that writes into a folder records in OUT/record.json what made it (the command, a digest of
the options that shape the outputs, the networks' identities) and which files it wrote. On a rerun into
the same --out:
- same recipe, finished: nothing is redone; the result says the outputs are up to date;
- same recipe, unfinished (interrupted): the run is redone over it (same options, same files);
- another recipe, or files with no record: exit 2 naming the folder, with the `--fresh` hint; `--fresh`
  removes the files the record lists (never anything else) and starts over.
So two runs never mix in one folder. The folder is created and locked only after every argument check,
so a refused run leaves nothing behind; the lock is taken before anything is printed. Under torchrun rank 0
alone claims the folder (`claim_out(..., dist)`); the record it writes at the end lists every rank's files.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stylekit.errors import BadInput
from stylekit.io.atomic import write_json_atomic
from stylekit.io.console import get_console
from stylekit.io.recipe import file_digest, recipe_digest
from stylekit.io.rundir import LOCK_NAME, DirLock, ensure_writable_dir
from stylekit.standins import is_random, label, random_network_resolution
from stylekit.train.distributed import broadcast_object
from stylekit.train.shares import on_main

if TYPE_CHECKING:
    from stylekit.train.distributed import DistInfo

RECORD = "record.json"
_RUNNING, _DONE = "running", "done"


def network_identity(spec: str, source: str) -> str:
    """What identifies a network for a recipe: a stand-in by its name, a file by its bytes."""
    path = Path(source)
    return file_digest(path) if path.is_file() else str(spec)


def standin(spec: str | os.PathLike[str] | None, what: str) -> str | None:
    """The stand-in label when `spec` names a random-init stand-in (random, random:RES), else None."""

    if not isinstance(spec, str) or not (is_random(spec) or random_network_resolution(spec) is not None):
        return None
    return label(f"{what} {spec}")


def warn_standins(labels: list[str]) -> None:
    """One warning line per stand-in used (after the --out checks: nothing is printed before them)."""

    for text in labels:
        get_console().warn(text)


@dataclass
class Claim:
    """A locked --out folder and what its previous run left there."""

    out: Path
    command: str
    recipe: str
    options: dict[str, Any]
    up_to_date: bool
    files: list[str] = field(default_factory=list)
    _lock: DirLock | None = None
    recorded: bool = True  # False: the output records its own recipe (a single network file), no record.json

    def finish(self, files: list[str | Path]) -> None:
        """Record the run as finished with the files it wrote (paths inside --out)."""
        if not self.recorded:
            return
        self.files = sorted({Path(f).resolve().relative_to(self.out.resolve()).as_posix() for f in files})
        _write(self.out, self.command, self.recipe, self.options, _DONE, self.files)

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _write(out: Path, command: str, recipe: str, options: dict[str, Any], status: str, files: list[str]) -> None:

    write_json_atomic(out / RECORD, {"command": command, "recipe": recipe, "status": status, "options": options,
                                     "files": files})


def _read(out: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((out / RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("files"), list) else None


def _changed(before: dict[str, Any], now: dict[str, Any]) -> str:
    keys = [k for k in sorted(set(before) | set(now)) if before.get(k) != now.get(k)]
    return ", ".join("--" + k.replace("_", "-") for k in keys[:4]) or "the networks"


def _remove(out: Path, files: list[str]) -> None:
    root = out.resolve()
    for name in files:
        path = (out / name).resolve()
        if path.parent == root or root in path.parents:
            path.unlink(missing_ok=True)


def claim_out(out: Path, command: str, options: dict[str, Any], fresh: bool, dist: DistInfo | None = None) -> Claim:
    """Create and lock --out, then apply the rerun rule (module docstring) for a run shaped by `options`.

    Under torchrun rank 0 does it (an error there, Busy included, ends every rank with its exit code); the other
    ranks get a claim that knows whether the run is up to date and records nothing."""
    if dist is None or not dist.distributed:
        return _claim(out, command, options, fresh)

    claim = on_main(lambda: _claim(out, command, options, fresh), dist)
    up_to_date, files = broadcast_object((claim.up_to_date, claim.files) if claim is not None else None, dist)
    return claim if claim is not None else Claim(out, command, "", options, up_to_date, files, recorded=False)


def _claim(out: Path, command: str, options: dict[str, Any], fresh: bool) -> Claim:
    recipe = recipe_digest({"command": command, **options})
    ensure_writable_dir(out)
    lock = DirLock(out)
    lock.acquire()
    try:
        before = _read(out)
        others = sorted(p.name for p in out.iterdir() if p.name not in (LOCK_NAME, RECORD))
        if before is None and others and not fresh:
            raise BadInput(f"--out {out} already holds files with no record of what made them (e.g. {others[0]}); "
                           "writing there would mix two runs in one folder",
                           hint="choose an empty or new --out, or pass --fresh to write into it anyway")
        same = before is not None and before.get("recipe") == recipe
        if before is not None and not same and not fresh:
            raise BadInput(f"--out {out} holds a {before.get('command', 'previous')} run made with other options "
                           f"({_changed(before.get('options') or {}, options)}); keeping both would mix two runs in one folder",
                           hint="pass --fresh to replace that run, or choose another --out")
        if same and before is not None and before.get("status") == _DONE and not fresh:
            return Claim(out, command, recipe, options, True, [str(f) for f in before["files"]], _lock=lock)
        if before is not None and fresh:
            _remove(out, [str(f) for f in before["files"]])
        _write(out, command, recipe, options, _RUNNING, [])
        return Claim(out, command, recipe, options, False, [], _lock=lock)
    except BaseException:
        lock.release()
        raise
