"""Path checks every command makes before it reads or writes anything.

- `require_regular_file` / `open_regular`: a FIFO, socket or device named like an image, network,
  config or latent file would block `open()`/`read()` forever (a FIFO waits for a writer). Every
  reader calls one of these first: a named input that is not a regular file is BadInput (exit 2);
  folder readers catch it per file and skip the entry like a corrupt image.
- `refuse_out_overlap`: an `--out` that equals an input, contains one, or (for folders read as
  data) lies inside one would overwrite, delete (`--fresh`) or later re-read the user's inputs.
  Every command's library entry point calls it before touching anything.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from stylekit.errors import BadInput

_KINDS = {
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFDIR: "a folder",
}


def not_regular_reason(path: str | os.PathLike[str]) -> str | None:
    """Why `path` cannot be read as a file (missing, dangling link, loop, FIFO, ...), or None if it can.

    Uses stat(), which never blocks, even on a FIFO."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "dangling symbolic link" if os.path.islink(path) else "file not found"
    except OSError as exc:  # ELOOP (symlink loop), ENAMETOOLONG, EACCES, ...
        return f"cannot be read: {exc.strerror or exc}"
    if stat.S_ISREG(mode):
        return None
    return f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'a special file')})"


def require_regular_file(path: str | os.PathLike[str], what: str) -> Path:
    """Return `path` if it is a regular file (symlinks to one are fine); else BadInput naming `what`."""
    reason = not_regular_reason(path)
    if reason is not None:
        raise BadInput(f"{what} {os.fsdecode(path)}: {reason}", hint=f"give {what} as a path to a regular file")
    return Path(path)


def open_regular(path: str | os.PathLike[str], what: str) -> BinaryIO:
    """Open a regular file for binary reading without ever blocking on a FIFO.

    O_NONBLOCK makes open() return at once even if the path was swapped for a FIFO after a check;
    fstat() on the open descriptor then decides. For regular files O_NONBLOCK changes nothing."""
    require_regular_file(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise BadInput(f"{what} {os.fsdecode(path)}: cannot be read: {exc.strerror or exc}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise BadInput(f"{what} {os.fsdecode(path)}: not a regular file", hint=f"give {what} as a path to a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular_bytes(path: str | os.PathLike[str], what: str) -> bytes:
    with open_regular(path, what) as fh:
        return fh.read()


def read_regular_text(path: str | os.PathLike[str], what: str, encoding: str = "utf-8") -> str:
    """Text of a regular file; undecodable bytes are BadInput naming the file."""
    data = read_regular_bytes(path, what)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise BadInput(f"{what} {os.fsdecode(path)}: not {encoding} text ({exc.reason} at byte {exc.start})") from None


@dataclass(frozen=True)
class Input:
    """One input of a command, for `refuse_out_overlap`.

    `option`: how the user named it ("DATA", "--network"). `data_folder`: the command reads the files
    below this folder as its data, so an --out inside it would be read back as input on the next run."""

    option: str
    path: str | os.PathLike[str] | None
    data_folder: bool = False


def _real(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.path.abspath(path)))


def refuse_out_overlap(out: str | os.PathLike[str], inputs: Iterable[Input], out_option: str = "--out",
                       out_read_back: bool = True) -> None:
    """BadInput (exit 2) if `out` is an input, contains an input, or lies inside a data folder input.

    Inputs that do not exist as paths (registry names such as `ffhq-256`) are ignored. Symlinks are
    resolved, so `--out link-to-data` is caught too. `out_read_back=False` says the output is never
    picked up as data (e.g. score's JSON report), so it may sit inside a data folder, but never on
    an existing file there."""
    out_real = _real(out)
    for item in inputs:
        if item.path is None or str(item.path) == "" or not os.path.lexists(item.path):
            continue
        in_real = _real(item.path)
        shown = f"{out_option} {os.fsdecode(out)}"
        name = f"{item.option} {os.fsdecode(item.path)}"
        if out_real == in_real:
            why = f"is the input {name}: writing there would overwrite or delete it"
        elif in_real.is_relative_to(out_real):
            why = f"contains the input {name}: writing there could overwrite or delete it"
        elif item.data_folder and out_real.is_relative_to(in_real) and out_read_back:
            why = f"is inside the {item.option} folder {os.fsdecode(item.path)}: its outputs would be read back as input data"
        elif item.data_folder and out_real.is_relative_to(in_real) and os.path.lexists(out):
            why = f"is a file of the input {item.option} {os.fsdecode(item.path)}: writing there would overwrite it"
        else:
            continue
        raise BadInput(f"{shown} {why}; nothing was changed", hint=f"choose a {out_option} outside your inputs")
