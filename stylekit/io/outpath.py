"""What an `--out` value names: `--out newdir/` (a trailing separator) is a folder, even before it exists.

`pathlib.Path("newdir/")` drops the trailing slash, so commands whose --out may be a file or a folder
take it as text and ask here before turning it into a Path.
"""

from __future__ import annotations

import os
from pathlib import Path


def names_folder(out: str | os.PathLike[str]) -> bool:
    """True for an existing folder or a path written with a trailing separator (`styled/`)."""
    text = os.fspath(out)
    return text.endswith(("/", os.sep)) or Path(text).is_dir()
