"""The ledger of a download into OUT: `OUT/.stylekit-download.json`, the completed marker with the data set's
name, parameters, summary and the top-level entries it placed. A rerun with the same parameters is a no-op
that says so; one with other parameters is refused (exit 2) unless --fresh."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from stylekit.errors import BadInput
from stylekit.io.atomic import write_json_atomic
from stylekit.io.console import get_console

MARKER = ".stylekit-download.json"


@dataclass
class DatasetResult:
    """What `stylekit download <dataset>` produced (or found already complete)."""

    name: str
    out: str
    skipped: bool
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

def read_marker(out: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return doc if isinstance(doc, dict) else None


def write_marker(out: Path, name: str, params: dict[str, Any], summary: dict[str, Any], entries: set[str] | None = None) -> None:
    doc = {"name": name, "params": params, "summary": summary, "complete": True}
    if entries is not None:
        doc["entries"] = sorted(entries)
    write_json_atomic(out / MARKER, doc)

def is_complete(out: Path, name: str, params: dict[str, Any], force: bool) -> bool:
    """Whether OUT holds a completed download of `name` with `params` (read only; nothing is created). A completed
    download with other parameters is BadInput: the rerun rule never mixes two downloads in one OUT."""
    marker = read_marker(out)
    if force or not marker or not marker.get("complete"):
        return False
    if marker.get("name") != name or marker.get("params", {}) != params:
        raise BadInput(
            f"{out} already holds a completed '{marker.get('name')}' download made with {marker.get('params')}",
            hint="use another --out, or --fresh to redo it",
        )
    return True


def completed(out: Path, name: str, params: dict[str, Any], force: bool) -> DatasetResult | None:
    """The result of a completed download of `name` with `params` in OUT, said so (None: there is none, or --fresh)."""
    if not is_complete(out, name, params, force):
        return None
    get_console().log(f"{out}: '{name}' is already complete (marker {MARKER}); nothing to do")
    return DatasetResult(name, str(out), True, (read_marker(out) or {}).get("summary", {}))
