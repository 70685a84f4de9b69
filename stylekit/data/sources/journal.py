"""The journal of a download in progress: which top-level entries of OUT stylekit placed (the completed
marker's "entries", and `OUT/.download/entries.json` while a run is in progress). Nothing a user put in OUT is
replaced: an existing entry that stylekit did not place is refused with BadInput naming it, before anything
is moved. Work happens in hidden staging folders (`.download/`, a fresh `.extracting-*/` per attempt) that a
rerun resumes or discards."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from stylekit.data.archive import extract_archive
from stylekit.data.sources.ledger import MARKER, read_marker
from stylekit.errors import BadInput
from stylekit.io.atomic import write_json_atomic, write_text_atomic
from stylekit.io.rundir import LOCK_NAME

STAGING = ".download"
JOURNAL = "entries.json"  # in STAGING: the entries this download has placed so far
TMP_PREFIX = ".extracting-"


def _plain_names(names: Any) -> set[str]:
    """Plain top-level names from a marker/journal list (a hand-edited file cannot point elsewhere)."""
    if not isinstance(names, list):
        return set()
    return {n for n in names if isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and "\x00" not in n}


def owned_entries(out: Path) -> set[str]:
    """Top-level entries of OUT that a stylekit download placed (completed marker + in-progress journal)."""
    marker = read_marker(out) or {}
    names = _plain_names(marker.get("entries"))
    try:
        names |= _plain_names(json.loads((out / STAGING / JOURNAL).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        pass
    return names


def claim(out: Path, owned: set[str], names: set[str]) -> None:
    """Record `names` as stylekit's before writing them; BadInput if one is a user's existing entry."""

    for name in sorted(names):
        if name in (MARKER, STAGING, LOCK_NAME) or name.startswith(TMP_PREFIX):
            raise BadInput(f"{out}: the download holds an entry named '{name}', a name stylekit uses for its own "
                           "bookkeeping; nothing was changed", hint="the archive is not the expected data set")
        if name not in owned and os.path.lexists(out / name):
            raise BadInput(f"{out / name} already exists and was not written by stylekit download; nothing was changed",
                           hint="move it out of --out, or download into a new or empty folder")
    owned |= names
    write_json_atomic(out / STAGING / JOURNAL, sorted(owned))

def start(out: Path) -> set[str]:
    """Begin a (re)download in a locked OUT: keep the record of what stylekit placed, drop the marker."""
    owned = owned_entries(out)
    (out / STAGING).mkdir(exist_ok=True)
    write_json_atomic(out / STAGING / JOURNAL, sorted(owned))
    (out / MARKER).unlink(missing_ok=True)
    return owned

def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def extract_into(archive: Path, out: Path, owned: set[str], into: str | None = None) -> None:
    """Safe-extract into a fresh OUT/.extracting-*, strip a single wrapping folder, then move the
    entries into OUT (or the whole tree to OUT/`into`). Only entries stylekit placed are replaced."""

    record = out / STAGING / "extracting"  # names the temp folder, so a killed run's one is removed
    try:
        stale = record.read_text(encoding="utf-8").strip()
        if stale.startswith(TMP_PREFIX) and "/" not in stale:
            shutil.rmtree(out / stale, ignore_errors=True)
    except OSError:
        pass
    tmp = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=out))
    write_text_atomic(record, tmp.name)
    try:
        extract_archive(archive, tmp, progress=f"extracting {archive.name}")
        root = tmp
        entries = list(root.iterdir())
        if len(entries) == 1 and entries[0].is_dir():
            root = entries[0]
        moves = {into: root} if into is not None else {entry.name: entry for entry in root.iterdir()}
        claim(out, owned, set(moves))
        for name, entry in sorted(moves.items()):
            _remove(out / name)
            entry.rename(out / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
