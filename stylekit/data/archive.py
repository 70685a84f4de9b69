"""Safe zip/tar extraction: no member may land outside the destination folder.

Downloaded archives are untrusted. `zipfile.extractall` and `tarfile.extractall` (without a filter)
follow member names such as `../../.bashrc` or `/etc/passwd`, and tar links can point anywhere
("zip-slip"). Here every member is checked before anything is written: absolute paths, drive
letters, `..` components, symlinks, hard links and device/fifo entries are refused with BadInput
naming the archive and the member, and nothing is extracted. Files are then streamed out one by one.

The member list is also checked as a whole before anything is written: two members with the same
path (the second would silently overwrite the first), a path that is both a file and a folder
(`a` and `a/b`), and sizes beyond the limits below are refused. The limits stop decompression
bombs (a 1 MB zip declaring 1 GiB of zeros):

- MAX_MEMBER_BYTES: no single member may extract to more than this.
- MAX_TOTAL_BYTES: the whole archive may not extract to more than this.
- MAX_RATIO: a member (zip) or the whole archive may not extract to more than MAX_RATIO times its
  compressed size, once it is larger than RATIO_FLOOR bytes (tiny files may compress very well).
  Images barely compress and CSV/JSON text compresses about 5-20x; bombs reach 1000x.

Declared sizes are checked up front and actual bytes are counted while streaming, so a member
that lies about its size is stopped at the limit too.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from stylekit.errors import BadInput
from stylekit.io.console import get_console

MAX_MEMBER_BYTES = 64 * 2**30  # 64 GiB: larger than any single file of the data sets stylekit downloads
MAX_TOTAL_BYTES = 1024 * 2**30  # 1 TiB: WikiArt extracts to ~25 GB
MAX_RATIO = 200
RATIO_FLOOR = 8 * 2**20  # 8 MiB: below this a member or archive may compress arbitrarily well


def _refuse(archive: Path, member: str, why: str) -> BadInput:
    return BadInput(
        f"{archive}: unsafe archive member '{member}' ({why}); nothing was extracted",
        hint="the archive may be malicious or corrupt: delete it and get it again from the original source",
    )


def safe_member_path(archive: Path, name: str) -> PurePosixPath:
    """The relative path a member may be written to, or BadInput if the name escapes the folder."""
    text = name.replace("\\", "/")
    if not text or "\x00" in text:
        raise _refuse(archive, name, "empty or NUL in name")
    if text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        raise _refuse(archive, name, "absolute path")
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise _refuse(archive, name, "'..' in path")
    if not parts:
        raise _refuse(archive, name, "empty path")
    return PurePosixPath(*parts)


def _too_big(archive: Path, member: str, what: str, limit: str) -> BadInput:
    return BadInput(
        f"{archive}: archive member '{member}' {what}, over the limit of {limit}; nothing was extracted",
        hint="the archive may be a decompression bomb: delete it and get it again from the original source "
        "(limits: stylekit.data.archive, docs/download.md)",
    )


def _check_layout(archive: Path, entries: list[tuple[str, PurePosixPath, bool]]) -> None:
    """Refuse duplicate paths and paths that are both a file and a folder. entries: (name, rel, is_dir)."""
    files: dict[PurePosixPath, str] = {}
    dirs: dict[PurePosixPath, str] = {}
    for name, rel, is_dir in entries:
        if is_dir:
            if rel in files:
                raise _refuse(archive, name, f"a folder with the path of the file member '{files[rel]}'")
            dirs.setdefault(rel, name)
            continue
        if rel in files:
            raise _refuse(archive, name, f"duplicate of the member '{files[rel]}'")
        if rel in dirs:
            raise _refuse(archive, name, f"a file with the path of the folder '{dirs[rel]}'")
        files[rel] = name
        for parent in rel.parents:
            if parent == PurePosixPath("."):
                break
            if parent in files:
                raise _refuse(archive, name, f"inside '{files[parent]}', which is a file member")
            dirs.setdefault(parent, name)


def _check_sizes(archive: Path, sizes: list[tuple[str, int, int | None]]) -> None:
    """sizes: (member name, uncompressed bytes, compressed bytes or None for tar members)."""
    total = 0
    for name, size, packed in sizes:
        if size > MAX_MEMBER_BYTES:
            raise _too_big(archive, name, f"declares {size} bytes", f"{MAX_MEMBER_BYTES} bytes per member (MAX_MEMBER_BYTES)")
        if packed is not None and size > RATIO_FLOOR and size > MAX_RATIO * max(packed, 1):
            raise _too_big(archive, name, f"expands {packed} bytes to {size} (ratio {size // max(packed, 1)})",
                           f"ratio {MAX_RATIO} (MAX_RATIO)")
        total += size
        if total > MAX_TOTAL_BYTES:
            raise _too_big(archive, name, f"brings the total to {total} bytes", f"{MAX_TOTAL_BYTES} bytes (MAX_TOTAL_BYTES)")
    archive_size = archive.stat().st_size
    if total > RATIO_FLOOR and total > MAX_RATIO * max(archive_size, 1):
        raise _too_big(archive, sizes[-1][0], f"brings the total to {total} bytes from a {archive_size}-byte archive",
                       f"ratio {MAX_RATIO} (MAX_RATIO)")


def _zip_members(archive: Path, zf: zipfile.ZipFile) -> list[tuple[zipfile.ZipInfo, PurePosixPath]]:
    members = []
    for info in zf.infolist():
        rel = safe_member_path(archive, info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise _refuse(archive, info.filename, "symbolic link")
        if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise _refuse(archive, info.filename, "special file")
        members.append((info, rel))
    _check_layout(archive, [(i.filename, rel, i.is_dir()) for i, rel in members])
    _check_sizes(archive, [(i.filename, i.file_size, i.compress_size) for i, rel in members if not i.is_dir()])
    return members


def _tar_members(archive: Path, tf: tarfile.TarFile) -> list[tuple[tarfile.TarInfo, PurePosixPath]]:
    members = []
    for info in tf.getmembers():
        rel = safe_member_path(archive, info.name)
        if info.issym():
            raise _refuse(archive, info.name, "symbolic link")
        if info.islnk():
            raise _refuse(archive, info.name, "hard link")
        if not (info.isfile() or info.isdir()):
            raise _refuse(archive, info.name, "special file")
        members.append((info, rel))
    _check_layout(archive, [(i.name, rel, i.isdir()) for i, rel in members])
    _check_sizes(archive, [(i.name, i.size, None) for i, rel in members if not i.isdir()])
    return members


def _copy_capped(archive: Path, name: str, src: BinaryIO, dst: BinaryIO, declared: int, budget: list[int]) -> None:
    """Stream one member, stopping at its declared size or at the archive's remaining byte budget."""
    written = 0
    while chunk := src.read(1 << 20):
        written += len(chunk)
        budget[0] -= len(chunk)
        if written > declared:
            raise _too_big(archive, name, f"holds more than the {declared} bytes it declares", "its declared size")
        if budget[0] < 0:
            raise _too_big(archive, name, "extracts past the archive's byte budget",
                           f"ratio {MAX_RATIO} or {MAX_TOTAL_BYTES} bytes in all")
        dst.write(chunk)


def extract_archive(archive: str | Path, dest: str | Path, progress: str | None = "extracting") -> list[Path]:
    """Extract a .zip or .tar[.gz|.bz2|.xz] into `dest` after checking every member. Returns the files."""
    archive = Path(archive)
    dest = Path(dest)
    if not archive.is_file():
        raise BadInput(f"archive {archive} does not exist")
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    written: list[Path] = []

    def target(rel: PurePosixPath) -> Path:
        out = dest.joinpath(*rel.parts)
        # Belt and braces: a folder symlink already in dest must not redirect a member outside it.
        if not out.resolve().is_relative_to(root):
            raise _refuse(archive, str(rel), "resolves outside the destination")
        return out

    console = get_console()
    # Actual bytes may not pass what the size checks allowed for the whole archive.
    archive_size = archive.stat().st_size
    budget = [min(MAX_TOTAL_BYTES, max(RATIO_FLOOR, MAX_RATIO * archive_size))]
    if zipfile.is_zipfile(archive):
        try:
            with zipfile.ZipFile(archive) as zf:
                members = _zip_members(archive, zf)
                with console.progress(len(members), progress or "extracting") if progress else _null() as task:
                    for info, rel in members:
                        out = target(rel)
                        if info.is_dir():
                            out.mkdir(parents=True, exist_ok=True)
                        else:
                            out.parent.mkdir(parents=True, exist_ok=True)
                            with zf.open(info) as src, open(out, "xb") as dst:
                                _copy_capped(archive, info.filename, src, dst, info.file_size, budget)
                            written.append(out)
                        if task is not None:
                            task.advance()
        except (zipfile.BadZipFile, EOFError) as exc:
            raise BadInput(f"{archive}: corrupt zip archive ({exc})", hint="delete it and download it again") from None
        return written
    try:
        with tarfile.open(archive) as tf:
            members = _tar_members(archive, tf)
            with console.progress(len(members), progress or "extracting") if progress else _null() as task:
                for info, rel in members:
                    out = target(rel)
                    if info.isdir():
                        out.mkdir(parents=True, exist_ok=True)
                    else:
                        out.parent.mkdir(parents=True, exist_ok=True)
                        src = tf.extractfile(info)
                        if src is None:
                            raise _refuse(archive, info.name, "unreadable member")
                        with src, open(out, "xb") as dst:
                            _copy_capped(archive, info.name, src, dst, info.size, budget)
                        written.append(out)
                    if task is not None:
                        task.advance()
    except tarfile.TarError as exc:
        raise BadInput(f"{archive}: not a readable zip or tar archive ({exc})", hint="delete it and download it again") from None
    return written


class _null:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
