"""What an `--out` value names, and what a command's output files would replace.

`pathlib.Path("newdir/")` drops the trailing slash, so commands whose --out may be a file or a folder
take it as text and ask here before turning it into a Path. A command that writes more than the file
--out names (a sidecar .json next to a .pt) lists every file it will write and asks
`refuse_existing` before writing any of them.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from stylekit.errors import BadInput


def names_folder(out: str | os.PathLike[str]) -> bool:
    """True for an existing folder or a path written with a trailing separator (`styled/`)."""
    text = os.fspath(out)
    return text.endswith(("/", os.sep)) or Path(text).is_dir()


def refuse_existing(paths: Sequence[Path], replace: bool = False) -> None:
    """BadInput (exit 2) naming every file in `paths` that exists, unless `replace`; nothing is written before."""
    present = [p for p in paths if os.path.lexists(p)]
    if not present or replace:
        return
    listed = ", ".join(str(p) for p in present)
    writes = ", ".join(str(p) for p in paths)
    raise BadInput(f"{listed} already exist{'s' if len(present) == 1 else ''}; nothing was written (this command writes {writes})",
                   hint="move those files away, choose another --out, or pass --fresh to replace them")
