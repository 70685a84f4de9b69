"""Range checks shared by the config dataclasses, so a Python caller and the CLI get the same errors.

Each check raises BadInput (exit 2) naming the option. `check_fits` refuses a request whose estimated
memory exceeds what the machine has, before anything is allocated.
"""

from __future__ import annotations

import math
import os

from stylekit.errors import BadInput


def check_number(option: str, value: float, *, minimum: float | None = None, maximum: float | None = None,
                 above: float | None = None, hint: str | None = None) -> None:
    """A finite number within [minimum, maximum] (and > `above` when given)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise BadInput(f"{option} must be a finite number, got {value}", hint=hint)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum) or (above is not None and value <= above):
        bounds = [f">= {minimum}" if minimum is not None else "", f"> {above}" if above is not None else "",
                  f"<= {maximum}" if maximum is not None else ""]
        raise BadInput(f"{option} must be {' and '.join(b for b in bounds if b)}, got {value}", hint=hint)


def check_int(option: str, value: int | None, minimum: int, maximum: int | None = None, hint: str | None = None) -> None:
    """An integer >= minimum (None is allowed: it means the default)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadInput(f"{option} must be an integer, got {value!r}", hint=hint)
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise BadInput(f"{option} must be >= {minimum}{upper}, got {value}", hint=hint)


def check_trunc(value: float, option: str = "--trunc") -> None:
    """Truncation psi: finite (nan/inf give black images); any finite value is allowed (psi > 1 extrapolates)."""
    check_number(option, value, hint="1 = no truncation, 0.7 a common choice")


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
    import json
    from pathlib import Path

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise BadInput(f"{path} is damaged: not valid JSON ({exc})", hint=hint) from None
    if not isinstance(doc, dict):
        raise BadInput(f"{path} is damaged: a JSON {type(doc).__name__}, not an object", hint=hint)
    return doc
