"""Checks that need more than an option's declaration (stylekit/declare.py holds option ranges).

`check_fits` refuses a request whose estimated memory exceeds what the machine has, before anything is
allocated; `read_json_object` reads a JSON file that must hold an object (BadInput naming it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from stylekit.errors import BadInput


def memory_bytes() -> int:
    """Physical memory of this machine (a large default where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 64 * 2**30


def check_fits(what: str, nbytes: float, hint: str) -> None:
    """Refuse up front when `what` needs more than half of the machine's memory (with the estimate)."""
    limit = memory_bytes() // 2
    if nbytes > limit:
        raise BadInput(f"{what} needs about {_human(nbytes)} of memory; this machine has {_human(memory_bytes())}",
                       hint=hint)


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def read_json_object(path: os.PathLike[str] | str, hint: str) -> dict:
    """A JSON file that must hold an object: a damaged or foreign file is BadInput naming it (exit 2)."""

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadInput(f"{path} is damaged: not valid JSON ({exc})", hint=hint) from None
    if not isinstance(doc, dict):
        raise BadInput(f"{path} is damaged: a JSON {type(doc).__name__}, not an object", hint=hint)
    return doc
