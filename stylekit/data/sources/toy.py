"""toy-styles: the built-in generated stand-in for WikiArt (stylekit.data.toy), with the same completed marker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from stylekit.data.sources.ledger import MARKER, DatasetResult, completed, write_marker
from stylekit.data.sources.lock import locked
from stylekit.data.toy import generate_toy_styles


def download_toy_styles(out: str | Path, size: int = 64, per_style: int = 200, styles: int = 8, seed: int = 0,
                        force: bool = False) -> DatasetResult:
    """The built-in generated stand-in for WikiArt (stylekit.data.toy), with the same completed marker."""

    out = Path(out)
    params: dict[str, Any] = {"size": size, "per_style": per_style, "styles": styles, "seed": seed}
    with locked(out):
        done = completed(out, "toy-styles", params, force)
        if done:
            return done
        (out / MARKER).unlink(missing_ok=True)
        result = generate_toy_styles(out, size, per_style, styles, seed)
        summary = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        write_marker(out, "toy-styles", params, summary)
    return DatasetResult("toy-styles", str(out), False, summary)
