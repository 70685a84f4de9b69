"""What made an output: a digest of the inputs and options, so a rerun never keeps stale results.

Batch commands that skip finished outputs on a rerun (`transfer` on a folder, `invert` on a folder)
record, for every output, the *recipe* that made it (a digest of the options and of the model and
style files' bytes) and the identity of its source image (size + mtime, as the feature cache keys
files). On a rerun each existing output is:

- up to date (same recipe, same source): skipped;
- made from a source that changed since (same recipe): redone, as `make` would;
- made with other options, styles or model, or with no record at all: the run refuses (exit 2)
  naming one such output, and `--fresh` redoes them. Silently keeping them would mix two recipes
  in one folder; silently overwriting them could throw away hours of work.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stylekit.errors import BadInput
from stylekit.io.atomic import write_json_atomic

_CHUNK = 1 << 20


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 of a file's bytes (path-independent: a moved style image keeps its identity)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def source_identity(path: str | os.PathLike[str]) -> str:
    """Cheap identity of a source image: size and mtime (a rerun over 10k images stats, never reads)."""
    st = Path(path).stat()
    return f"{st.st_size}:{st.st_mtime_ns}"


def recipe_digest(options: Mapping[str, Any]) -> str:
    """Digest of a JSON-able mapping of everything that shapes an output (keys sorted)."""
    text = json.dumps(options, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Plan:
    """Which (source, output) jobs to run and which are already up to date."""

    todo: list[tuple[Path, Path]] = field(default_factory=list)
    current: list[tuple[Path, Path]] = field(default_factory=list)
    redo_changed: int = 0  # sources edited since their output was made


@dataclass(frozen=True)
class Recorded:
    recipe: str
    source: str


def plan_outputs(jobs: list[tuple[Path, Path]], recorded: Mapping[Path, Recorded | None], recipe: str,
                 out: Path, fresh: bool) -> Plan:
    """Sort jobs by the rules in the module docstring; BadInput (exit 2) for outputs of another recipe.

    `recorded[output]` is what the output's record says made it (None: an output with no record);
    outputs that do not exist are simply to do.
    """
    plan = Plan()
    foreign: list[Path] = []
    for src, dst in jobs:
        if fresh or dst not in recorded:
            plan.todo.append((src, dst))
            continue
        rec = recorded[dst]
        if rec is None or rec.recipe != recipe:
            foreign.append(dst)
        elif rec.source != source_identity(src):
            plan.todo.append((src, dst))
            plan.redo_changed += 1
        else:
            plan.current.append((src, dst))
    if foreign:
        raise BadInput(
            f"--out {out} already holds {len(foreign)} output(s) made with other inputs or options, or with no "
            f"record of what made them (e.g. {foreign[0]}); keeping them would mix two runs in one folder",
            hint="pass --fresh to redo them with these settings, or choose another --out",
        )
    return plan


class OutputRecord:
    """`OUT/stylekit-outputs.json`: output path (relative to OUT) -> the recipe and source that made it.

    Rewritten atomically after every finished output, so an interrupted run leaves a true record. Under
    torchrun rank r > 0 records its own outputs in `stylekit-outputs.rank<r>.json` (no two processes write one
    file); rank 0 folds those parts into the record (`merge_parts`) before the work, which takes in what an
    interrupted run left, and after it. Reading takes the record and any parts.
    """

    NAME = "stylekit-outputs.json"
    PART = re.compile(r"stylekit-outputs\.rank[1-9][0-9]*\.json")  # only names a rank > 0 writes

    def __init__(self, out: Path, rank: int = 0) -> None:
        self.out = out
        self.path = out / (self.NAME if rank == 0 else f"stylekit-outputs.rank{rank}.json")
        self.entries: dict[str, dict[str, str]] = {}  # every output's record (the record, then the parts)
        self._added: dict[str, dict[str, str]] = {}  # what this process recorded (a part holds only these)
        self._main = rank == 0
        for path in [out / self.NAME, *self._parts()]:
            self.entries.update(_read_outputs(path))

    def _parts(self) -> list[Path]:
        """The other ranks' part files: stylekit's own name and a record inside (a user's look-alike is left alone)."""
        if not self.out.is_dir():
            return []
        return sorted(p for p in self.out.iterdir() if self.PART.fullmatch(p.name) and p.is_file() and _is_record(p))

    def _key(self, output: Path) -> str:
        return output.relative_to(self.out).as_posix()

    def recorded(self, outputs: list[Path]) -> dict[Path, Recorded | None]:
        """For each existing output: its record, or None when it has none."""
        found: dict[Path, Recorded | None] = {}
        for output in outputs:
            if output.exists():
                entry = self.entries.get(self._key(output))
                found[output] = Recorded(entry.get("recipe", ""), entry.get("source", "")) if entry else None
        return found

    def add(self, output: Path, recipe: str, source: Path) -> None:
        entry = {"recipe": recipe, "source": source_identity(source), "from": str(source)}
        self.entries[self._key(output)] = self._added[self._key(output)] = entry
        self._save(self.path, self.entries if self._main else self._added)

    def merge_parts(self) -> None:
        """Rank 0: take the other ranks' parts into the record, then remove them (a no-op without parts)."""
        parts = self._parts()
        if not parts:
            return
        for path in parts:
            self.entries.update(_read_outputs(path))
        self._save(self.out / self.NAME, self.entries)
        for path in parts:
            path.unlink(missing_ok=True)

    @staticmethod
    def _save(path: Path, entries: dict[str, dict[str, str]]) -> None:
        write_json_atomic(path, {"version": 1, "outputs": entries})


def _is_record(path: Path) -> bool:
    """The file is a record stylekit writes: {"version": 1, "outputs": {...}}."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and doc.get("version") == 1 and isinstance(doc.get("outputs"), dict)


def _read_outputs(path: Path) -> dict[str, dict[str, str]]:
    """The entries of a record or part; none when it is missing or unreadable (its outputs count as unrecorded)."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    outputs = doc.get("outputs") if isinstance(doc, dict) else None
    return {k: v for k, v in outputs.items() if isinstance(v, dict)} if isinstance(outputs, dict) else {}
